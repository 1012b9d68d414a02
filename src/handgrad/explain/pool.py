"""Max-pooling worked out on numbers: each window's maximum, and the gradient routed back to it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from .. import functional as F
from ..shapes import Window
from .explanation import Explanation, Step, number, placements, readable, window_command


@dataclass
class PoolWork:
    """Where each window sits and which cell won it.  ``placed[i, j]`` lists ``(a, b, r, q)`` for every window
    cell, placed on input cell ``X[r, q]`` for output ``(i, j)`` (outside X: padding, which never wins);
    ``routes`` lists, in order, ``(i, j, r, q, total)``: dY[i, j] goes to its winner X[r, q], whose dX is
    then ``total``."""

    window: Window
    size: tuple[int, int]
    placed: dict[tuple[int, int], list[tuple[int, int, int, int]]]
    routes: list[tuple[int, int, int, int, float]]

    def met(self, i: int, j: int) -> list[tuple[int, int]]:
        """The input cells of window ``(i, j)``, in row order."""
        return sorted((r, q) for _, _, r, q in self.placed[i, j] if 0 <= r < self.size[0] and 0 <= q < self.size[1])


def pool(
    input_size=(4, 4), kernel_size=(2, 2), stride=None, padding=0, mode="xcorr", center=None, dilation=1
) -> Explanation:
    """Max-pooling: each window's maximum, and the gradient routed back to it."""
    rng = np.random.default_rng(0)
    x = rng.permutation(int(np.prod(input_size))).reshape(input_size).astype(np.float64) + 1  # distinct values
    window = Window.pooling(kernel_size, stride, padding, mode, center, "explain pool", dilation)
    out = window.pooled_size(*input_size, "explain pool")
    dy = readable(out)
    (top, _), (left, _) = window.padding
    work = PoolWork(window, input_size, placements(window, out, shift=(top, left)), [])
    y, dx, lines, routes, won = np.zeros(out), np.zeros(input_size), [], [], set()
    for i, j in product(*map(range, out)):
        cells = work.met(i, j)
        r, q = max(cells, key=lambda cell: x[cell])
        y[i, j] = x[r, q]
        before = dx[r, q]
        dx[r, q] += dy[i, j]
        work.routes.append((i, j, r, q, dx[r, q]))
        lines.append(
            f"Y[{i},{j}] = max({', '.join(f'X[{a},{b}]={number(x[a, b])}' for a, b in cells)}) = {number(y[i, j])} at X[{r},{q}]"
        )
        routes.append(
            f"dX[{r},{q}] += dY[{i},{j}] = {number(dy[i, j])}"
            + (
                f", so dX[{r},{q}] = {number(before)} + {number(dy[i, j])} = {number(dx[r, q])}"
                if (r, q) in won
                else ""
            )
        )
        won.add((r, q))
    y_kernel, cache = F.maxpool2d_forward(x[None, None], kernel_size, stride, padding, mode, center, dilation)
    dx_kernel = F.maxpool2d_backward(dy[None, None], cache)
    return Explanation(
        layer="pool",
        title=f"Max-pooling of a {input_size[0]}x{input_size[1]} input with a {window.kernel[0]}x{window.kernel[1]} window",
        notes=[
            (
                f"stride {window.stride}, padding {window.padding}, centre {window.center}, "
                f"dilation {window.dilation}, mode {mode!r}; padding never wins."
            )
        ],
        inputs=[("X", x), ("dY", dy)],
        steps=[
            Step(
                "Y",
                "Y[i,j] = max over the window's input cells",
                r"Y_{ij} = \max_{a,b} X^p_{\dots}",
                y,
                y_kernel[0, 0],
                lines,
                "maxpool2d_forward",
            ),
            Step(
                "dX",
                "dX[h,w] = sum of dY[i,j] over the windows that (h,w) won; 0 elsewhere",
                r"\partial X_{hw} = \sum_{(i,j):\ \arg\max = (h,w)} \partial Y_{ij}",
                dx,
                dx_kernel[0, 0],
                routes,
                "maxpool2d_backward",
            ),
        ],
        command=window_command("pool", input_size, window, mode, center),
        work=work,
    )
