"""handgrad against PyTorch on the CPU: images per second of a training step and of inference, and peak memory,
on a zoo of models from an MLP to a residual network, at several batch sizes.

Both run in this one process on the same workloads (the same network, built by handgrad.torch_bridge from
the same weights, float32, the same batch): handgrad's compiled model (``handgrad.compile``), and PyTorch with
``torch.set_num_threads`` equal to the cores.  Training is forward, loss, backward (neither library computes
the gradient of the input) and an SGD update; inference is ``predict`` against ``module(x)`` under
``torch.inference_mode``.  After a warm-up, the two are timed in alternating blocks of steps (so machine noise
falls on both), with a pause before each block so that neither library's idle worker threads (which
spin-wait for a while after their last task) steal a core from the other; each rate is the median over the
blocks.  Peak memory is measured in a fresh child process per case: the rise of the peak resident set size
(``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident size once the model and the batch exist.

Run:  python benchmarks/bench.py                 (every model at its batch size: several minutes)
      python benchmarks/bench.py --models seed-cnn mlp --batches 1 64 256
      python benchmarks/bench.py --threads 1     (both libraries on one core: PyTorch's threads and OpenBLAS's)
      python benchmarks/bench.py --keep-freed-memory   (glibc keeps freed memory for the process, for both
          libraries: neither library's steps then take fresh pages from the operating system)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import handgrad
from handgrad import torch_bridge as tb
from handgrad.allocator import keep_freed_memory
from handgrad.fast.head import compile_with_loss
from handgrad.optim import SGD

LR = 0.01
BLAS_THREADS = "OPENBLAS_NUM_THREADS"  # read once, when NumPy loads its OpenBLAS
SETTLE_SECONDS = 0.2  # between blocks: the other library's worker threads stop spin-waiting for work


# Each builder takes the seeded generator and the handgrad package to build with (benchmarks/paired.py passes
# another commit's), and returns (model, loss).


def wide_cnn(rng, lib=handgrad):
    """1 -> 32 maps 3x3 padding 1, max-pool 2, 32 -> 64 maps 3x3 padding 1, max-pool 2, 3136 -> 128 -> 10."""
    L = lib.layers
    model = lib.Sequential(
        [L.Conv2D(1, 32, 3, padding=1, rng=rng), L.ReLU(), L.MaxPool2D(2)]
        + [L.Conv2D(32, 64, 3, padding=1, rng=rng), L.ReLU(), L.MaxPool2D(2)]
        + [L.Flatten(), L.Linear(3136, 128, rng=rng), L.ReLU(), L.Linear(128, 10, rng=rng)]
    )
    return model, lib.losses.SoftmaxCrossEntropy()


def residual_cnn(rng, lib=handgrad):
    """conv 1 -> 16 + BN + ReLU, a residual block of two 3x3 convolutions with BN, max-pool 2, conv 16 -> 32 + BN
    + ReLU, a residual block, global average pooling, 32 -> 10."""
    L = lib.layers

    def conv(c, o):
        return L.Conv2D(c, o, 3, padding=1, bias=False, rng=rng)

    def block(c):
        return L.Residual([conv(c, c), L.BatchNorm2D(c), L.ReLU(), conv(c, c), L.BatchNorm2D(c)])

    model = lib.Sequential(
        [conv(1, 16), L.BatchNorm2D(16), L.ReLU(), block(16), L.MaxPool2D(2)]
        + [conv(16, 32), L.BatchNorm2D(32), L.ReLU(), block(32)]
        + [L.GlobalAvgPool2D(), L.Linear(32, 10, rng=rng)]
    )
    return model, lib.losses.SoftmaxCrossEntropy()


def colour_cnn(rng, lib=handgrad):
    """3x32x32 input: three blocks of 3x3 convolution (32, 64, 64 maps, padding 1), ReLU and max-pool 2, then
    1024 -> 128 -> 10."""
    L, layers, channels = lib.layers, [], 3
    for maps in (32, 64, 64):
        layers += [L.Conv2D(channels, maps, 3, padding=1, rng=rng), L.ReLU(), L.MaxPool2D(2)]
        channels = maps
    layers += [L.Flatten(), L.Linear(1024, 128, rng=rng), L.ReLU(), L.Linear(128, 10, rng=rng)]
    return lib.Sequential(layers), lib.losses.SoftmaxCrossEntropy()


def mlp(rng, lib=handgrad):
    """The matrix-form network of the seeds: 784 -> 256 -> 256 -> 10 with sigmoids."""
    L = lib.layers
    model = lib.Sequential(
        [L.Flatten(), L.Linear(784, 256, rng=rng), L.Sigmoid(), L.Linear(256, 256, rng=rng), L.Sigmoid()]
        + [L.Linear(256, 10, rng=rng)]
    )
    return model, lib.losses.SoftmaxCrossEntropy()


def _preset(name):
    return lambda rng, lib=handgrad: importlib.import_module(f"{lib.__name__}.presets").build(name, rng)


GREY, COLOUR = (1, 28, 28), (3, 32, 32)
# name -> (builder, input shape, batch sizes)
WORKLOADS = {
    "seed-cnn": (_preset("seed-cnn"), GREY, (64, 256)),
    "lenet5": (_preset("lenet5"), GREY, (64,)),
    "habr-cnn": (_preset("habr-cnn"), GREY, (64,)),
    "strided-conv": (_preset("strided-conv"), GREY, (64,)),
    "fashion-cnn": (_preset("fashion-cnn"), GREY, (128,)),
    "wide-cnn": (wide_cnn, GREY, (128,)),
    "residual-cnn": (residual_cnn, GREY, (64,)),
    "colour-cnn": (colour_cnn, COLOUR, (64,)),
    "mlp": (mlp, GREY, (128,)),
}
MODES = ("training", "inference")


def setup(workload: str, batch: int):
    """The four steps (handgrad and PyTorch, training and inference) of one workload on one batch."""
    build, shape, _ = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    source, loss = build(rng)
    model = handgrad.compile(source)  # handgrad's fast tier, as `handgrad predict` runs it
    trainer, objective = compile_with_loss(source, loss)  # as `handgrad train` runs it: a softmax's loss fused
    module = tb.to_torch_module(source)
    inference_module = tb.to_torch_module(source).eval()  # as handgrad's predict: running statistics, no dropout
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    optimizer = SGD(trainer.params, LR)
    torch_optimizer = torch.optim.SGD(module.parameters(), lr=LR)
    torch_loss = tb.torch_loss(loss)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def handgrad_train():
        objective.forward(trainer.forward(x), y)
        trainer.backward(objective.backward(), input_grad=False)  # as PyTorch: the input needs no gradient
        optimizer.step(trainer.grads)

    def handgrad_infer():
        model.predict(x)  # as under torch.inference_mode: nothing kept for a backward pass

    def torch_train():
        torch_optimizer.zero_grad(set_to_none=True)
        torch_loss(module(xt), yt).backward()
        torch_optimizer.step()

    def torch_infer():
        with torch.inference_mode():
            inference_module(xt)

    trainer.train()
    module.train()
    return {
        ("handgrad", "training"): handgrad_train,
        ("handgrad", "inference"): handgrad_infer,
        ("PyTorch", "training"): torch_train,
        ("PyTorch", "inference"): torch_infer,
    }


def time_calls(calls: dict, batch: int, blocks: int, block_seconds: float) -> dict:
    """Median images/s of each of ``calls`` (name: a call on a batch of ``batch``), timed in alternating blocks
    after a warm-up and a calibration that sets how many calls fill a block."""
    for f in calls.values():
        for _ in range(3):
            f()
    counts = {}
    for name, f in calls.items():  # calls per block, from a short calibration
        began, n = time.perf_counter(), 0
        while time.perf_counter() - began < block_seconds / 3:
            f()
            n += 1
        counts[name] = max(1, int(3 * n))
    rates = {name: [] for name in calls}
    for _ in range(blocks):
        for name, f in calls.items():
            time.sleep(SETTLE_SECONDS)
            began = time.perf_counter()
            for _ in range(counts[name]):
                f()
            rates[name].append(counts[name] * batch / (time.perf_counter() - began))
    return {name: statistics.median(values) for name, values in rates.items()}


def time_pair(a, b, batch: int, blocks: int, block_seconds: float) -> tuple[float, float]:
    """Median images/s of ``a`` and of ``b`` (:func:`time_calls`)."""
    rates = time_calls({"a": a, "b": b}, batch, blocks, block_seconds)
    return rates["a"], rates["b"]


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(framework: str, workload: str, batch: str, mode: str) -> None:
    """In a fresh process: the rise of peak RSS over the set-up's RSS while running the workload."""
    step = setup(workload, int(batch))[(framework, mode)]
    baseline = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    for _ in range(5):
        step()
    print(json.dumps({"peak_bytes": _status("VmHWM") - baseline}))


def peak_memory(framework: str, workload: str, batch: int, mode: str, threads: int | None, keep: bool) -> float:
    options = [] if threads is None else ["--threads", str(threads)]
    options += ["--keep-freed-memory"] if keep else []
    out = subprocess.run(
        [sys.executable, __file__, *options, "--memory-child", framework, workload, str(batch), mode],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.splitlines()[-1])["peak_bytes"] / 2**20


def cpu_name() -> str:
    """The processor's model name, from /proc/cpuinfo."""
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")


def machine(kept: bool) -> str:
    cpu = cpu_name()
    blas = os.environ.get(BLAS_THREADS, "one per core")
    malloc = "freed memory kept (glibc thresholds raised)" if kept else "the C library's default"
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {np.__version__} "
        f"(BLAS threads: {blas}), PyTorch {torch.__version__} ({torch.get_num_threads()} threads); malloc: {malloc}"
    )


def restart_with_blas_threads(threads: int, argv: list[str]) -> None:
    """Run this script again, with ``argv``, with NumPy's OpenBLAS limited to ``threads`` (read only at load)."""
    if os.environ.get(BLAS_THREADS) != str(threads):
        os.environ[BLAS_THREADS] = str(threads)
        os.execv(sys.executable, [sys.executable, __file__, *argv])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=7, help="timed blocks per case (median taken)")
    parser.add_argument("--block-seconds", type=float, default=0.6)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--threads", type=int, help="threads for both libraries (default: one per core); 1 compares one core each"
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="raise glibc's trim and mmap thresholds for this process first (handgrad.allocator), for both libraries",
    )
    parser.add_argument("--models", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS), metavar="MODEL")
    parser.add_argument("--batches", nargs="+", type=int, help="batch sizes (default: each model's own)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        restart_with_blas_threads(args.threads, argv)
    torch.set_num_threads(args.threads or os.cpu_count())
    kept = args.keep_freed_memory and keep_freed_memory()
    if args.keep_freed_memory and not kept:
        parser.error("--keep-freed-memory: not glibc, or the environment sets malloc's thresholds already")
    if args.memory_child:
        memory_child(*args.memory_child)
        return

    print(machine(kept))
    print()
    print(
        "| model | batch | mode | handgrad images/s | PyTorch images/s | handgrad / PyTorch "
        "| handgrad peak MiB | PyTorch peak MiB |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    ratios = {mode: [] for mode in MODES}
    for workload in args.models:
        for batch in args.batches or WORKLOADS[workload][2]:
            steps = setup(workload, batch)
            for mode in args.modes:
                try:
                    steps[("handgrad", mode)]()
                except ValueError as error:  # batch normalisation cannot train on one sample, in either library
                    print(f"| {workload} | {batch} | {mode} | not defined: {error} | | | | |", flush=True)
                    continue
                ours, theirs = time_pair(
                    steps[("handgrad", mode)], steps[("PyTorch", mode)], batch, args.blocks, args.block_seconds
                )
                ratios[mode].append(ours / theirs)
                memory = ("", "")
                if not args.no_memory:
                    memory = tuple(
                        f"{peak_memory(fw, workload, batch, mode, args.threads, kept):.1f}"
                        for fw in ("handgrad", "PyTorch")
                    )
                print(
                    f"| {workload} | {batch} | {mode} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} "
                    f"| {memory[0]} | {memory[1]} |",
                    flush=True,
                )
    for mode, values in ratios.items():
        if values:
            print(f"\ngeometric mean of handgrad / PyTorch, {mode}: {statistics.geometric_mean(values):.2f}")


if __name__ == "__main__":
    main()
