"""This checkout's handgrad against another commit's, in one process: images per second on bench.py's models.

The other commit's package is extracted with ``git archive`` and imported under another name, the same weights
are copied into both models, and the two are timed in alternating blocks (bench.py's ``time_pair``), so that
machine noise falls on both.  This checkout runs its compiled model (``handgrad.compile``); the baseline runs
its model as that commit's ``handgrad train`` did (compiled too, if it has ``handgrad.compile``).

Run:  python benchmarks/paired.py --baseline 73eb00d [--rounds 3]          (the seed and wide CNNs)
      python benchmarks/paired.py --baseline HEAD~3 --models fashion-cnn residual-cnn --modes training
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

import handgrad
from handgrad.optim import SGD

sys.path.insert(0, str(Path(__file__).parent))
from bench import LR, WORKLOADS, time_pair

BASELINE = "handgrad_baseline"


def load_baseline(commit: str, into: Path):
    """The package ``src/handgrad`` of ``commit``, imported as ``handgrad_baseline``."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "archive", commit, "src/handgrad"], cwd=root, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    (into / "src" / "handgrad").rename(into / BASELINE)
    sys.path.insert(0, str(into))
    for part in ("layers", "losses", "optim", "presets"):  # bench.py's builders use them as attributes
        importlib.import_module(f"{BASELINE}.{part}")
    return importlib.import_module(BASELINE)


def steps(workload: str, batch: int, baseline):
    """Training and inference steps of both versions on the same weights and batch."""
    build, shape, _ = WORKLOADS[workload]
    model, loss = build(np.random.default_rng(0))
    old_model, old_loss = build(np.random.default_rng(0), baseline)
    for name, value in model.params.items():
        np.copyto(old_model.params[name], value)
    compiled, old_params = handgrad.compile(model), old_model.params
    if hasattr(baseline, "compile"):  # a commit with the fast tier runs its compiled model
        old_model = baseline.compile(old_model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    new_sgd = SGD(model.params, LR)
    old_sgd = importlib.import_module(f"{BASELINE}.optim").SGD(old_params, LR)

    def train(net, lossf, sgd):
        def step():
            lossf.forward(net.forward(x), y)
            net.backward(lossf.backward(), input_grad=False)
            sgd.step(net.grads)

        return step

    return {
        "training": (train(compiled, loss, new_sgd), train(old_model, old_loss, old_sgd)),
        "inference": (lambda: compiled.predict(x), lambda: old_model.predict(x)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the commit to compare with, e.g. 73eb00d")
    parser.add_argument("--models", nargs="+", choices=list(WORKLOADS), default=["seed-cnn", "wide-cnn"])
    parser.add_argument("--modes", nargs="+", choices=["training", "inference"], default=["training", "inference"])
    parser.add_argument("--rounds", type=int, default=3, help="runs of time_pair per case (each a median of blocks)")
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--block-seconds", type=float, default=0.6)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = load_baseline(args.baseline, Path(tmp))
        print(f"this checkout (handgrad.compile) / {args.baseline}, images per second; >1: this checkout is faster")
        print("| model | batch | mode | this checkout | baseline | ratio |")
        print("| --- | ---: | --- | ---: | ---: | ---: |")
        for workload in args.models:
            batch = WORKLOADS[workload][2][0]
            cases = steps(workload, batch, baseline)
            for mode in args.modes:
                ours, theirs = cases[mode]
                for _ in range(args.rounds):
                    a, b = time_pair(ours, theirs, batch, args.blocks, args.block_seconds)
                    print(f"| {workload} | {batch} | {mode} | {a:,.0f} | {b:,.0f} | {a / b:.3f} |", flush=True)


if __name__ == "__main__":
    main()
