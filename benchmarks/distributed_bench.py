"""Data-parallel training on this machine: images/s of a training step of handgrad in 1 process and on 2 MPI
ranks, and of PyTorch, on the same global batch; the time of an Allreduce of each model's gradient; and the
ring-allreduce projection to 2 to 64 machines (docs/distributed.md).

- 1 process: handgrad's compiled model, NumPy's OpenBLAS on 2 threads;
- 2 ranks: ``mpiexec -n 2``, OpenBLAS on 1 thread each (``OPENBLAS_NUM_THREADS=1`` before NumPy loads), each
  rank half of the batch, the gradients averaged by ``handgrad.distributed`` (one Allreduce a step);
- PyTorch: the same network (``handgrad.torch_bridge``, the same weights), ``torch.set_num_threads(2)``.

A step is forward, loss, backward (no gradient of the images) and an SGD update, as in bench.py; with
``--keep-freed-memory`` every process keeps its freed memory (``handgrad.allocator``, as bench.py's option).  Each
configuration runs in its own processes; the three run one after the other in each of ``--rounds`` rounds (so
that the machine's slow and fast spells fall on all three), and each figure is the median over the rounds.
The Allreduce time is the median over ``--allreduces`` calls on 2 ranks of a buffer of the gradient's size
(float32, with the 4 numbers a step adds).

Run:  python benchmarks/distributed_bench.py
      python benchmarks/distributed_bench.py --models seed-cnn --rounds 1 --steps 2 --allreduces 5   (a check)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

BATCH = {"seed-cnn": 64, "fashion-cnn": 128}  # the global batch of each model, as in bench.py
CONFIGS = ("handgrad, 1 process", "handgrad, 2 ranks", "PyTorch")
THREADS = 2  # the cores a configuration uses: BLAS threads of one process, ranks, or PyTorch threads
WARMUP = 3
MACHINES = (2, 4, 8, 16, 32, 64)
LINKS_GBIT = (10, 100)


def _model(name: str):
    import numpy as np

    from handgrad import presets

    rng = np.random.default_rng(0)
    model, loss = presets.build(name, rng)
    x = rng.standard_normal((BATCH[name], 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=BATCH[name])
    return model, loss, x, y


def handgrad_child(name: str, steps: int) -> None:
    """Time ``steps`` data-parallel steps on this rank's slice of the batch (the whole batch alone)."""
    from handgrad import compile as compile_model
    from handgrad import distributed
    from handgrad.optim import SGD

    world = distributed.world()
    model, loss, x, y = _model(name)
    start, stop = distributed.shard_bounds(len(y), world.size, world.rank)
    x, y = x[start:stop].copy(), y[start:stop]  # this rank's (n_r, 1, 28, 28) images
    compiled = compile_model(model)
    world.dropout_streams(compiled, 0, 0)
    optimizer = SGD(model.params, 0.01)
    average = world.gradient_average(model.params)

    def step():
        out = compiled.forward(x)
        value = loss.forward(out, y)
        compiled.backward(loss.backward(), input_grad=False)
        optimizer.step(average(model.grads, len(y), value * len(y), 0).grads)

    for _ in range(WARMUP):
        step()
    world.agree()  # every rank starts the clock together
    began = time.perf_counter()
    for _ in range(steps):
        step()
    world.agree()
    if world.root:
        print(json.dumps({"images_per_second": steps * BATCH[name] / (time.perf_counter() - began)}))


def torch_child(name: str, steps: int) -> None:
    import torch

    from handgrad import torch_bridge as tb

    torch.set_num_threads(THREADS)
    model, loss, x, y = _model(name)
    module = tb.to_torch_module(model).train()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01)
    torch_loss, xt, yt = tb.torch_loss(loss), torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch_loss(module(xt), yt).backward()
        optimizer.step()

    for _ in range(WARMUP):
        step()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"images_per_second": steps * BATCH[name] / (time.perf_counter() - began)}))


def allreduce_child(sizes: list[int], calls: int) -> None:
    """Median seconds of one in-place Allreduce (sum) of ``size`` float32 values, for each size."""
    import numpy as np

    from handgrad import distributed

    world = distributed.world()
    comm, mpi = world.comm, world.mpi
    medians = {}
    for size in sizes:
        buffer = np.ones(size, np.float32)
        times = []
        for _ in range(calls + WARMUP):
            comm.Barrier()
            began = time.perf_counter()
            comm.Allreduce(mpi.IN_PLACE, buffer, op=mpi.SUM)
            times.append(time.perf_counter() - began)
        medians[size] = statistics.median(times[WARMUP:])
    if world.root:
        print(json.dumps(medians))


def _run(command: list[str], threads: int | None = None) -> dict:
    env = dict(os.environ)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(threads)  # read once, when NumPy loads its OpenBLAS
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def gradient_values(name: str) -> int:
    """The length of the gradient buffer: every parameter and the 4 numbers a step adds."""
    model, *_ = _model(name)
    return sum(p.size for p in model.params.values()) + 4


def projection(seconds_per_step: float, batch: int, values: int, latency: float) -> list[str]:
    """Rows of the ring-allreduce model: T_ar(K) = 2(K-1)/K * S / bandwidth + 2(K-1) alpha, with S the gradient's
    bytes; one machine per rank, each with the measured one-process step of ``batch`` images (weak scaling,
    the global batch K * batch) or of batch / K images at linear cost (strong scaling, the global batch batch)."""
    rows = []
    for k in MACHINES:
        cells = [str(k)]
        for gbit in LINKS_GBIT:
            t_ar = 2 * (k - 1) / k * 4 * values / (gbit * 1e9 / 8) + 2 * (k - 1) * latency
            weak = k * batch / (seconds_per_step + t_ar)
            strong = batch / (seconds_per_step / k + t_ar)
            cells += [f"{t_ar * 1e3:.3f}", f"{weak:,.0f}", f"{strong:,.0f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def machine() -> str:
    import numpy as np
    import torch

    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    versions = f"Python {platform.python_version()}, NumPy {np.__version__}, PyTorch {torch.__version__}"
    return f"{cpu}, {os.cpu_count()} cores; {versions}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(BATCH), default=sorted(BATCH, reverse=True))
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three configurations (median taken)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per configuration and round")
    parser.add_argument("--allreduces", type=int, default=2000, help="timed Allreduce calls per size")
    parser.add_argument(
        "--latency-us", type=float, default=0.0, help="per-message latency alpha of the projected network (µs)"
    )
    parser.add_argument("--keep-freed-memory", action="store_true", help="glibc keeps freed memory, in every process")
    parser.add_argument("--child", choices=("handgrad", "torch", "allreduce"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for option in ("rounds", "steps", "allreduces"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be >= 1, got {getattr(args, option)}")
    if args.child and args.keep_freed_memory:
        from handgrad.allocator import keep_freed_memory

        keep_freed_memory()
    if args.child == "handgrad":
        return handgrad_child(args.model, args.steps)
    if args.child == "torch":
        return torch_child(args.model, args.steps)
    if args.child == "allreduce":
        return allreduce_child(args.sizes, args.allreduces)

    from handgrad.distributed import mpiexec_command

    me = [sys.executable, __file__]
    rates = {(name, config): [] for name in args.models for config in CONFIGS}
    for _ in range(args.rounds):
        for name in args.models:
            kept = ["--keep-freed-memory"] if args.keep_freed_memory else []
            child = [*me, *kept, "--model", name, "--steps", str(args.steps), "--child"]
            commands = {
                "handgrad, 1 process": ([*child, "handgrad"], THREADS),
                "handgrad, 2 ranks": (mpiexec_command(2, [*child, "handgrad"], blas_threads=1), None),
                "PyTorch": ([*child, "torch"], None),
            }
            for config, (command, threads) in commands.items():
                rates[name, config].append(_run(command, threads)["images_per_second"])
    values = {name: gradient_values(name) for name in args.models}
    sizes = [str(v) for v in values.values()]
    timing = [*me, "--allreduces", str(args.allreduces), "--child", "allreduce", "--sizes", *sizes]
    allreduce = _run(mpiexec_command(2, timing))

    malloc = "freed memory kept" if args.keep_freed_memory else "malloc as it comes"
    print(f"{machine()}; {malloc}; {args.rounds} rounds of {args.steps} steps, median\n")
    ratios = "2 ranks / 1 process | 2 ranks / PyTorch"
    print("| model, global batch | " + " | ".join(f"{c} images/s" for c in CONFIGS) + f" | {ratios} |")
    print("| --- |" + " ---: |" * (len(CONFIGS) + 2))
    for name in args.models:
        m = [statistics.median(rates[name, c]) for c in CONFIGS]
        cells = " | ".join(f"{r:,.0f}" for r in m)
        print(f"| {name}, {BATCH[name]} | {cells} | {m[1] / m[0]:.2f} | {m[1] / m[2]:.2f} |")
    print("\n| model | gradient values | bytes (float32) | Allreduce on 2 local ranks, median µs |")
    print("| --- | ---: | ---: | ---: |")
    for name in args.models:
        print(f"| {name} | {values[name]:,} | {4 * values[name]:,} | {allreduce[str(values[name])] * 1e6:.1f} |")
    for name in args.models:
        one = BATCH[name] / statistics.median(rates[name, CONFIGS[0]])
        print(
            f"\n{name}: projection, one process of {BATCH[name]} images a step per machine ({one * 1e3:.2f} ms), "
            f"latency {args.latency_us} µs a message"
        )
        header = " | ".join(f"T_ar {g} Gbit/s ms | weak images/s | strong images/s" for g in LINKS_GBIT)
        print(f"| machines | {header} |\n|" + " ---: |" * 7)
        print("\n".join(projection(one, BATCH[name], values[name], args.latency_us * 1e-6)))


if __name__ == "__main__":
    main()
