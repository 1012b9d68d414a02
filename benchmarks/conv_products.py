"""The floor under an im2col convolution in NumPy: its three matrix products alone, against PyTorch's whole
convolution, forward and backward, on the shapes of the zoo's models that trail PyTorch.

A 3x3, padding-1 convolution of C to K maps on N images of HxH, as im2col lays it out, is three products over
columns of R = 9C rows and P = N*H*W columns (docs/conv.md):

    Y = W · X   (K, P)      dWᵀ = X · dYᵀ   (R, K)      dX_columns = Wᵀ · dY   (R, P)

Here they run on ready random columns (no im2col, no col2im, no bias, no activation), in the orientations handgrad's
kernels use (dW with the longer side, R, as rows: handgrad.fast.conv); PyTorch runs ``conv2d`` forward and
``backward`` for the weight and the input on NCHW tensors, everything included. Where the products alone are slower
than PyTorch's whole convolution, no layout, fusion or ordering of NumPy calls can bring handgrad's convolution
level with it.

Run:  python benchmarks/conv_products.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench import machine, time_pair

SHAPES = {  # name: (N, C, H, K)
    "residual-cnn, first block": (64, 16, 28, 16),
    "residual-cnn, second block": (64, 32, 14, 32),
    "fashion-cnn, second convolution": (128, 32, 28, 32),
    "fashion-cnn, third convolution": (128, 32, 14, 64),
    "colour-cnn, second convolution": (64, 32, 16, 64),
}


def workloads(n: int, c: int, h: int, k: int):
    rng = np.random.default_rng(0)
    rows, columns = 9 * c, n * h * h
    w = rng.standard_normal((k, rows), dtype=np.float32)
    x = rng.standard_normal((rows, columns), dtype=np.float32)
    dy = rng.standard_normal((k, columns), dtype=np.float32)
    y, dw_t, dx = np.empty((k, columns), np.float32), np.empty((rows, k), np.float32), np.empty_like(x)

    def products():
        np.matmul(w, x, out=y)
        np.matmul(x, dy.T, out=dw_t)
        np.matmul(w.T, dy, out=dx)

    tx = torch.from_numpy(rng.standard_normal((n, c, h, h), dtype=np.float32)).requires_grad_()
    tw = torch.from_numpy(rng.standard_normal((k, c, 3, 3), dtype=np.float32)).requires_grad_()
    tdy = torch.from_numpy(dy.reshape(k, n, h, h).transpose(1, 0, 2, 3).copy())

    def convolution():  # the two gradients new each call, as after zero_grad(set_to_none=True) in training
        torch.autograd.grad(torch.nn.functional.conv2d(tx, tw, padding=1), (tx, tw), tdy)

    return products, convolution, 6 * k * rows * columns


def main() -> None:
    torch.set_num_threads(os.cpu_count())
    print(machine(kept=False))
    print()
    print(
        "| convolution | N, C -> K, HxW | NumPy's three products, ms | GFLOP/s "
        "| PyTorch conv2d forward and backward, ms | PyTorch / products |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, (n, c, h, k) in SHAPES.items():
        products, convolution, flop = workloads(n, c, h, k)
        rate_products, rate_torch = time_pair(products, convolution, batch=1, blocks=5, block_seconds=0.5)
        ms_products, ms_torch = 1e3 / rate_products, 1e3 / rate_torch
        print(
            f"| {name} | {n}, {c} -> {k}, {h}x{h} | {ms_products:.2f} | {flop / ms_products / 1e6:.0f} "
            f"| {ms_torch:.2f} | {ms_torch / ms_products:.2f} |"
        )


if __name__ == "__main__":
    main()
