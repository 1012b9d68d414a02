"""Where a compiled training step's time goes, by kind of work: the matrix products, im2col and col2im,
pooling, batch normalisation, element-wise steps, and the rest (Python, small arrays).

cProfile's own time of each function, summed by the category of the module and function that spent it, per
step, for bench.py's models.  The products are every ``np.matmul`` (and the batched row sums and dot products of
batch normalisation); their rate in GFLOP/s is the model's forward and backward multiply-adds over their time.

Run:  python benchmarks/profile_step.py residual-cnn fashion-cnn [--steps 20]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import WORKLOADS, setup

CATEGORIES = [  # (category, a part of "file:function" that puts a function in it), first match wins
    ("matrix products", ("_products.py:", "{built-in method numpy.matmul}", "_row_sums", "_row_dots")),
    ("affine forward (a product)", ("functional/linear.py",)),
    ("im2col and col2im", ("im2col", "col2im", "image_rows", "image_from_rows", "_phase_columns", "_zero_wrapped")),
    ("pooling", ("fast/pool.py", "conv_pool.py")),
    ("batch normalisation", ("norm.py",)),
    ("convolution (rest)", ("fast/conv.py",)),
    ("element-wise and masks", ("_ufuncs.py", "steps.py", "activation.py")),
    ("loss and update", ("losses.py", "optim.py")),
]


def category(key) -> str:
    filename, _, function = key
    where = f"{filename}:{function}"
    for name, parts in CATEGORIES:
        if any(part in where for part in parts):
            return name
    return "NumPy and Python elsewhere"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", choices=list(WORKLOADS))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    for name in args.models:
        batch = WORKLOADS[name][2][0]
        step = setup(name, batch)[("handgrad", "training")]
        for _ in range(3):
            step()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.steps):
            step()
        profile.disable()
        stats = pstats.Stats(profile).stats
        totals: dict[str, float] = {}
        for key, (_, _, own, _, _) in stats.items():
            totals[category(key)] = totals.get(category(key), 0.0) + own
        whole = sum(totals.values())
        print(f"{name}, batch {batch}: {1e3 * whole / args.steps:.2f} ms a step (under cProfile)")
        for kind, seconds in sorted(totals.items(), key=lambda item: -item[1]):
            print(f"  {kind:28s} {1e3 * seconds / args.steps:8.2f} ms  {100 * seconds / whole:5.1f}%")


if __name__ == "__main__":
    main()
