"""The fully connected layer and a residual block around one, worked out on numbers."""

from __future__ import annotations

from itertools import product

import numpy as np

from .. import functional as F
from .explanation import Explanation, Step, number, readable, signed, times


def linear(batch=2, in_features=3, out_features=2) -> Explanation:
    """``Y = X W + B`` for a small batch, and ``dX = dY W^T``, ``dW = X^T dY``, ``dB = sum_n dY``."""
    x, w = readable((batch, in_features)), readable((in_features, out_features))
    bias = np.arange(1, out_features + 1, dtype=np.float64)
    dy = signed((batch, out_features))
    y = np.zeros((batch, out_features))
    fwd = []
    for n, k in product(range(batch), range(out_features)):
        y[n, k] = bias[k] + sum(x[n, m] * w[m, k] for m in range(in_features))
        fwd.append(
            f"Y[{n},{k}] = B[{k}] + "
            + " + ".join(times(x[n, m], w[m, k]) for m in range(in_features))
            + f" = {number(y[n, k])}"
        )
    dx, dw, db = dy @ w.T, x.T @ dy, dy.sum(axis=0)
    dx_lines = [
        f"dX[{n},{m}] = " + " + ".join(times(dy[n, k], w[m, k]) for k in range(out_features)) + f" = {number(dx[n, m])}"
        for n, m in product(range(batch), range(in_features))
    ]
    dw_lines = [
        f"dW[{m},{k}] = " + " + ".join(times(x[n, m], dy[n, k]) for n in range(batch)) + f" = {number(dw[m, k])}"
        for m, k in product(range(in_features), range(out_features))
    ]
    db_lines = [
        f"dB[{k}] = " + " + ".join(number(dy[n, k]) for n in range(batch)) + f" = {number(db[k])}"
        for k in range(out_features)
    ]
    y_kernel, cache = F.linear_forward(x, w, bias)
    kx, kw, kb = F.linear_backward(dy, cache)
    return Explanation(
        layer="linear",
        title=f"Fully connected layer, batch {batch}: ({batch}x{in_features}) @ ({in_features}x{out_features}) + B",
        notes=["One sample per row; B is added to every row."],
        inputs=[("X", x), ("W", w), ("B", bias), ("dY", dy)],
        steps=[
            Step("Y", "Y = X W + B", r"Y = XW + B", y, y_kernel, fwd, "linear_forward"),
            Step("dX", "dX = dY W^T", r"\partial X = \partial Y\, W^\top", dx, kx, dx_lines, "linear_backward"),
            Step(
                "dW",
                "dW = X^T dY (summed over the batch)",
                r"\partial W = X^\top \partial Y",
                dw,
                kw,
                dw_lines,
                "linear_backward",
            ),
            Step(
                "dB",
                "dB = sum over the batch of dY",
                r"\partial B = \sum_n \partial Y_n",
                db,
                kb,
                db_lines,
                "linear_backward",
            ),
        ],
        command=f"handgrad explain linear --input {batch}x{in_features} --output {out_features}",
    )


def residual(batch=2, features=3) -> Explanation:
    """``y = f(x) + x`` with ``f(x) = x W + B``: the gradient reaches x along both paths, and they add."""
    from ..layers import Linear, Residual

    x, dy = readable((batch, features)), signed((batch, features))
    block = Residual([Linear(features, features, dtype=np.float64)])
    w, bias = block.body[0].params["weight"], block.body[0].params["bias"]
    w[...] = readable((features, features)) % 4 - 1
    bias[...] = 1
    y, dx = x @ w + bias + x, dy @ w.T + dy
    lines = [
        f"dX[{n},{m}] = (dY W^T)[{n},{m}] + dY[{n},{m}] = {number((dy @ w.T)[n, m])} + {number(dy[n, m])} = {number(dx[n, m])}"
        for n, m in product(range(batch), range(features))
    ]
    y_kernel = block.forward(x)
    dx_kernel = block.backward(dy)
    return Explanation(
        layer="residual",
        title=f"A residual block y = f(x) + x, with f a fully connected layer, batch {batch}",
        notes=["x reaches y twice, through f and around it; the chain rule with a branch adds the two gradients."],
        inputs=[("x", x), ("W", w), ("B", bias), ("dY", dy)],
        steps=[
            Step("Y", "Y = (X W + B) + X", r"Y = f(X) + X", y, y_kernel, [], "Residual.forward"),
            Step(
                "dX",
                "dX = dY W^T (through f) + dY (around it)",
                r"\partial X = \partial Y\, W^\top + \partial Y",
                dx,
                dx_kernel,
                lines,
                "Residual.backward",
            ),
        ],
        command=f"handgrad explain residual --input {batch}x{features}",
    )
