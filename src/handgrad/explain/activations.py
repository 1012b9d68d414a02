"""Softmax and its Jacobian, and the element-wise activations and dropout, worked out on numbers."""

from __future__ import annotations

from itertools import product

import numpy as np

from .. import functional as F
from .explanation import Explanation, Step, inline, number, signed, times


def softmax(size=3) -> Explanation:
    """``y = softmax(x)`` of one sample, its full Jacobian, and ``dX = J^T dY``."""
    x = np.arange(1, size + 1, dtype=np.float64)
    dy = signed(size)
    e = np.exp(x - x.max())
    y = e / e.sum()
    jac = np.diag(y) - np.outer(y, y)
    dx = jac.T @ dy
    y_lines = [
        f"y[{k}] = e^{number(x[k])} / (" + " + ".join(f"e^{number(v)}" for v in x) + f") = {number(y[k])}"
        for k in range(size)
    ]
    j_lines = [
        f"J[{k},{j}] = y[{k}] * ({int(k == j)} - y[{j}]) = {number(jac[k, j])}"
        for k, j in product(range(size), range(size))
    ]
    dx_lines = [
        f"dX[{j}] = " + " + ".join(times(dy[k], jac[k, j]) for k in range(size)) + f" = {number(dx[j])}"
        for j in range(size)
    ]
    y_kernel, cache = F.softmax_forward(x[None])
    return Explanation(
        layer="softmax",
        title=f"Softmax of {size} scores and its Jacobian",
        notes=["Every output depends on every input, so the backward pass goes through the full Jacobian."],
        inputs=[("x", x[None]), ("dY", dy[None])],
        steps=[
            Step(
                "y",
                "y[k] = e^x[k] / sum_j e^x[j]",
                r"y_k = \frac{e^{x_k}}{\sum_j e^{x_j}}",
                y[None],
                y_kernel,
                y_lines,
                "softmax_forward",
            ),
            Step(
                "J",
                "J[k,j] = dy[k]/dx[j] = y[k] (delta_kj - y[j])",
                r"J_{kj} = y_k(\delta_{kj} - y_j)",
                jac,
                F.softmax_jacobian(y_kernel)[0],
                j_lines,
                "softmax_jacobian",
            ),
            Step(
                "dX",
                "dX[j] = sum_k dY[k] J[k,j]",
                r"\partial x_j = \sum_k \partial y_k\, J_{kj}",
                dx[None],
                F.softmax_backward(dy[None], cache),
                dx_lines,
                "softmax_backward",
            ),
        ],
        command=f"handgrad explain softmax --input {size}",
    )


def activations(size=5) -> Explanation:
    """ReLU, LeakyReLU, ELU, sigmoid, tanh and dropout on one row of numbers: each value and its derivative."""
    x = np.linspace(-2, 2, size)
    dy = signed(size)
    slope, alpha, p = 0.1, 1.0, 0.5
    rules = [
        (
            "relu",
            "y = max(x, 0); dx = dy * [x > 0]",
            r"y = \max(x,0),\ \partial x = \partial y\,[x>0]",
            np.maximum(x, 0),
            dy * (x > 0),
            F.relu_forward,
            F.relu_backward,
            {},
        ),
        (
            "leaky_relu",
            f"y = x if x > 0 else {slope} x; dx = dy * (1 or {slope})",
            r"y = \max(x, \alpha x)",
            np.where(x > 0, x, slope * x),
            np.where(x > 0, dy, slope * dy),
            F.leaky_relu_forward,
            F.leaky_relu_backward,
            {"negative_slope": slope},
        ),
        (
            "elu",
            f"y = x if x > 0 else {alpha}(e^x - 1); dx = dy * (1 or y + {alpha})",
            r"y = \alpha(e^x - 1)\ (x \le 0),\ \partial x = \partial y\,(y + \alpha)",
            np.where(x > 0, x, alpha * np.expm1(x)),
            np.where(x > 0, dy, dy * alpha * np.exp(x)),
            F.elu_forward,
            F.elu_backward,
            {"alpha": alpha},
        ),
        (
            "sigmoid",
            "y = 1 / (1 + e^-x); dx = dy * y (1 - y)",
            r"y = \frac{1}{1+e^{-x}},\ \partial x = \partial y\, y(1-y)",
            1 / (1 + np.exp(-x)),
            dy / (1 + np.exp(-x)) * (1 - 1 / (1 + np.exp(-x))),
            F.sigmoid_forward,
            F.sigmoid_backward,
            {},
        ),
        (
            "tanh",
            "y = tanh x; dx = dy * (1 - y^2)",
            r"y = \tanh x,\ \partial x = \partial y\,(1 - y^2)",
            np.tanh(x),
            dy * (1 - np.tanh(x) ** 2),
            F.tanh_forward,
            F.tanh_backward,
            {},
        ),
    ]
    steps = []
    for name, formula, latex, y, dx, forward, backward, options in rules:
        y_kernel, cache = forward(x[None], **options)
        steps.append(Step(f"{name} y", formula, latex, y[None], y_kernel, [], f"{name}_forward"))
        steps.append(Step(f"{name} dX", formula, latex, dx[None], backward(dy[None], cache), [], f"{name}_backward"))
    y_kernel, mask = F.dropout_forward(x[None], p, np.random.default_rng(0))  # the kernel draws the mask
    keep = (mask[0] > 0).astype(np.float64)  # which elements it kept; the rest is worked out here
    steps.append(
        Step(
            "dropout y",
            f"y = x * keep / (1 - p), p = {p}",
            r"y = \frac{x \odot m}{1-p}",
            x[None] * keep / (1 - p),
            y_kernel,
            [f"keep = {inline(keep)}"],
            "dropout_forward",
        )
    )
    steps.append(
        Step(
            "dropout dX",
            "dx = dy * keep / (1 - p)",
            r"\partial x = \frac{\partial y \odot m}{1-p}",
            dy[None] * keep / (1 - p),
            F.dropout_backward(dy[None], mask),
            [],
            "dropout_backward",
        )
    )
    return Explanation(
        layer="activations",
        title=f"Element-wise activations on {size} values",
        notes=[
            "Each output depends on its own input only, so each derivative is a number per element.",
            "At a kink (x = 0) ReLU takes 0 and LeakyReLU and ELU their left slope, as PyTorch does.",
        ],
        inputs=[("x", x[None]), ("dY", dy[None])],
        steps=steps,
        command=f"handgrad explain activations --input {size}",
    )
