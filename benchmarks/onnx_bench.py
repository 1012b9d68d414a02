"""Inference on the CPU: images per second of handgrad's compiled ``predict``, ONNX Runtime and PyTorch, on the preset
models at batch 1 and 64.

The three run in this one process on the same model with the same weights, float32, and the same batch:
ONNX Runtime on the file ``handgrad.onnx_export`` makes, with as many intra-op threads as cores and spinning
off (``session.intra_op.allow_spinning = 0``: its idle workers sleep instead of holding cores the others
need); PyTorch on the module ``handgrad.torch_bridge`` builds, with ``torch.set_num_threads`` equal to the
cores, under ``torch.inference_mode``.  Every engine's output is checked against handgrad's first.  After a
warm-up the three are timed in alternating blocks of calls (so machine noise falls on all three), with a
pause before each block; each rate is the median over the blocks.

Run:  python benchmarks/onnx_bench.py                       (every preset, batch 1 and 64)
      python benchmarks/onnx_bench.py --models seed-cnn --batches 64 --blocks 11
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import handgrad
from handgrad import presets
from handgrad import torch_bridge as tb
from handgrad.onnx_export import to_onnx

sys.path.insert(0, str(Path(__file__).parent))
from bench import cpu_name, time_calls

ENGINES = ("handgrad", "ONNX Runtime", "PyTorch")
AGREEMENT = 1e-4  # the largest difference of outputs allowed, relative to the largest output (float32)


def onnx_session(model, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    proto = to_onnx(model, presets.INPUT_SHAPE)
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def engines(name: str, batch: int, threads: int) -> dict:
    """The three ways to run the preset ``name`` on one batch, as calls that return its output."""
    model, _ = presets.build(name, np.random.default_rng(0))
    model.eval()
    module = tb.to_torch_module(model).eval()
    session = onnx_session(model, threads)
    compiled = handgrad.compile(model)
    x = np.random.default_rng(1).standard_normal((batch, *presets.INPUT_SHAPE)).astype(np.float32)
    xt = torch.from_numpy(x)

    def torch_predict():
        with torch.inference_mode():
            return module(xt).numpy()

    return {
        "handgrad": lambda: compiled.predict(x),
        "ONNX Runtime": lambda: session.run(None, {"input": x})[0],
        "PyTorch": torch_predict,
    }


def check_agreement(calls: dict, where: str) -> None:
    expected = calls["handgrad"]()
    for engine in ENGINES[1:]:
        error = np.max(np.abs(calls[engine]() - expected)) / np.max(np.abs(expected))
        if not error <= AGREEMENT:
            raise SystemExit(f"{where}: {engine}'s output differs from handgrad's by {error:.2e} (relative)")


def machine(threads: int) -> str:
    return (
        f"{cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {np.__version__}, "
        f"ONNX Runtime {ort.__version__} ({threads} intra-op threads, no spinning), "
        f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(presets.PRESETS), default=list(presets.PRESETS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--blocks", type=int, default=7, help="timed blocks per engine (median taken)")
    parser.add_argument("--block-seconds", type=float, default=0.5)
    args = parser.parse_args(argv)
    if min(args.batches) < 1 or args.blocks < 1:
        parser.error("--batches and --blocks must be >= 1")
    threads = os.cpu_count()
    torch.set_num_threads(threads)

    print(machine(threads))
    print()
    print(
        "| model, batch | handgrad images/s | ONNX Runtime images/s | PyTorch images/s "
        "| handgrad / ONNX Runtime | handgrad / PyTorch |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.models:
        for batch in args.batches:
            where = f"{name}, batch {batch}"
            calls = engines(name, batch, threads)
            check_agreement(calls, where)
            r = time_calls(calls, batch, args.blocks, args.block_seconds)
            cells = " | ".join(f"{r[engine]:,.0f}" for engine in ENGINES)
            ratios = f"{r['handgrad'] / r['ONNX Runtime']:.2f} | {r['handgrad'] / r['PyTorch']:.2f}"
            print(f"| {where} | {cells} | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
