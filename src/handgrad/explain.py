"""Derivations shown on real numbers: each layer's forward and backward pass worked out by hand on a small
example with readable integers, every result checked against the fast kernel.

An :class:`Explanation` holds the inputs and a list of :class:`Step`: a formula, the worked terms, the
result computed here by hand, and the same result from :mod:`handgrad.functional`.  ``text()`` and
``markdown()`` (LaTeX formulas) render it; ``handgrad explain conv|pool|linear|softmax|batchnorm`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

from . import functional as F
from .shapes import Window

TOLERANCE = 1e-12  # by-hand float results (softmax, batch normalisation) against the kernel


@dataclass
class Step:
    name: str  # "Y", "dX", ...
    formula: str  # plain text
    latex: str
    by_hand: np.ndarray  # worked out below, term by term
    kernel: np.ndarray  # the fast kernel's result
    lines: list[str] = field(default_factory=list)  # the worked terms
    kernel_name: str = ""

    @property
    def ok(self) -> bool:
        return self.by_hand.shape == self.kernel.shape and bool(
            np.allclose(self.by_hand, self.kernel, rtol=TOLERANCE, atol=TOLERANCE)
        )


@dataclass
class Explanation:
    title: str
    notes: list[str]
    inputs: list[tuple[str, np.ndarray]]
    steps: list[Step]
    command: str

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def text(self) -> str:
        out = [self.title, "=" * len(self.title), *self.notes, ""]
        for name, value in self.inputs:
            out += [f"{name} =", _grid(value), ""]
        for step in self.steps:
            out += [
                f"{step.name}: {step.formula}",
                *(f"  {line}" for line in step.lines),
                f"{step.name} =",
                _grid(step.by_hand),
            ]
            out += [f"check: {step.kernel_name} gives the same {step.name}: {'yes' if step.ok else 'NO'}", ""]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"# {self.title}", "", *self.notes, "", f"`{self.command}`", ""]
        for name, value in self.inputs:
            out += [f"$${_latex_name(name)} = {_bmatrix(value)}$$", ""]
        for step in self.steps:
            out += [f"## {step.name}", "", f"$${step.latex}$$", ""]
            out += [f"- `{line}`" for line in step.lines] + [""]
            out += [f"$${_latex_name(step.name)} = {_bmatrix(step.by_hand)}$$", ""]
            out += [f"Check: `{step.kernel_name}` gives the same {step.name}: **{'yes' if step.ok else 'NO'}**.", ""]
        return "\n".join(out)


def number(v) -> str:
    """Integers as integers, other values to 4 significant digits."""
    v = float(v)
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else f"{v:.4g}"


def _grid(a: np.ndarray) -> str:
    a = np.atleast_2d(a)
    cells = [[number(v) for v in row] for row in a]
    width = max(len(c) for row in cells for c in row)
    return "\n".join("  [" + " ".join(c.rjust(width) for c in row) + "]" for row in cells)


def _bmatrix(a: np.ndarray) -> str:
    a = np.atleast_2d(a)
    return r"\begin{bmatrix}" + r" \\ ".join(" & ".join(number(v) for v in row) for row in a) + r"\end{bmatrix}"


def _latex_name(name: str) -> str:
    return name.replace("dX_hat", r"\partial\hat{X}").replace("d", r"\partial ", 1) if name.startswith("d") else name


def _readable(shape, start=1) -> np.ndarray:
    """1, 2, 3, ... laid out row by row: an input whose cells are easy to follow."""
    return np.arange(start, start + int(np.prod(shape)), dtype=np.float64).reshape(shape)


def _signed(shape) -> np.ndarray:
    """1, -2, 3, -1, 2, -3, ...: a gradient of small integers of both signs."""
    k = np.arange(int(np.prod(shape)))
    return ((k % 3 + 1) * (-1.0) ** k).reshape(shape)


def _inline(a: np.ndarray) -> str:
    """A small matrix on one line: [[0, 2], [-1, 1]]."""
    return "[" + ", ".join("[" + ", ".join(number(v) for v in row) + "]" for row in np.atleast_2d(a)) + "]"


def _times(a, b) -> str:
    """``a*b`` with negative factors in parentheses."""
    return "*".join(number(v) if v >= 0 else f"({number(v)})" for v in (a, b))


# convolution ---------------------------------------------------------------------------------------------


def conv(input_size=(3, 3), kernel_size=(2, 2), stride=1, padding=0, mode="xcorr", center=None) -> Explanation:
    """One channel in, one out: ``Y = W * X + b`` and its three gradients, term by term."""
    x, w, b = _readable(input_size), _readable(kernel_size), np.array([1.0])
    window = Window.of(kernel_size, stride, padding, mode, center, "explain conv")
    out = window.output_size(*input_size, "explain conv")
    dy = _signed(out)
    (top, _), (left, _) = window.padding
    xp = np.pad(x, window.padding)
    sign = 1 if mode == "xcorr" else -1
    (s_h, s_w), (c_h, c_w), (k_h, k_w) = window.stride, window.center, window.kernel

    forward, y = [], np.zeros(out)
    reads = {}  # (i, j) -> [(a, b, r, q)] with r, q the rows of Xp read (inside Xp only)
    for i, j in product(*map(range, out)):
        cells = []
        for a, bb in product(range(k_h), range(k_w)):
            r, q = i * s_h + sign * (a - c_h), j * s_w + sign * (bb - c_w)
            if 0 <= r < xp.shape[0] and 0 <= q < xp.shape[1]:
                cells.append((a, bb, r, q))
        reads[i, j] = cells
        y[i, j] = b[0] + sum(w[a, bb] * xp[r, q] for a, bb, r, q in cells)
        terms = " + ".join(f"W[{a},{bb}]*Xp[{r},{q}]" for a, bb, r, q in cells) or "0"
        values = " + ".join(_times(w[a, bb], xp[r, q]) for a, bb, r, q in cells) or "0"
        forward.append(f"Y[{i},{j}] = b + {terms} = {number(b[0])} + {values} = {number(y[i, j])}")

    # backward, as the derivation writes it: dilate, pad by K-1, correlate with the rotated kernel
    w_x = w if mode == "xcorr" else w[::-1, ::-1]  # the cross-correlation kernel of the identity
    xc = window.as_xcorr()
    lead = (top + xc.center[0], left + xc.center[1])
    span = window.span(out)
    d = np.zeros(((out[0] - 1) * s_h + 1, (out[1] - 1) * s_w + 1))
    d[::s_h, ::s_w] = dy
    dp = np.pad(d, ((k_h - 1, k_h - 1), (k_w - 1, k_w - 1)))
    rot = w_x[::-1, ::-1]
    dxq = np.zeros(span)
    for u, v in product(*map(range, span)):
        dxq[u, v] = sum(dp[u + a, v + bb] * rot[a, bb] for a, bb in product(range(k_h), range(k_w)))
    dx = np.zeros(input_size)
    for r, q in product(*map(range, input_size)):
        u, v = r + lead[0], q + lead[1]
        if u < span[0] and v < span[1]:
            dx[r, q] = dxq[u, v]
    backward_x = [
        f"D = dY with S-1 = {s_h - 1},{s_w - 1} zeros between cells = {_inline(d)}",
        f"Dp = D padded by K-1 = {k_h - 1},{k_w - 1} on every side = {_inline(dp)}",
        f"rot180 of the cross-correlation kernel{'' if mode == 'xcorr' else ' (W flipped: conv mode), which is W itself'} = {_inline(rot)}",
    ]
    for u, v in product(*map(range, span)):
        terms = " + ".join(
            f"{number(dp[u + a, v + bb])}*{number(rot[a, bb])}" for a, bb in product(range(k_h), range(k_w))
        )
        backward_x.append(f"dXq[{u},{v}] = {terms} = {number(dxq[u, v])}")
    backward_x.append(
        f"dX = dXq[{lead[0]}:{lead[0] + input_size[0]}, {lead[1]}:{lead[1] + input_size[1]}] (rows past the windows get 0)"
    )

    dw, backward_w = np.zeros(kernel_size), []
    for a, bb in product(range(k_h), range(k_w)):
        cells = [(i, j, r, q) for (i, j), c in reads.items() for (a2, b2, r, q) in c if (a2, b2) == (a, bb)]
        dw[a, bb] = sum(dy[i, j] * xp[r, q] for i, j, r, q in cells)
        values = " + ".join(_times(dy[i, j], xp[r, q]) for i, j, r, q in cells) or "0"
        backward_w.append(f"dW[{a},{bb}] = {values} = {number(dw[a, bb])}")
    db = np.array([dy.sum()])

    y_kernel, cache = F.conv2d_forward(x[None, None], w[None, None], b, stride, padding, mode, center)
    dx_kernel, dw_kernel, db_kernel = F.conv2d_backward(dy[None, None], cache)
    pm = "-" if mode == "conv" else "+"
    command = _command("conv", input_size, kernel_size, stride, padding, mode, center)
    return Explanation(
        title=f"{'True convolution' if mode == 'conv' else 'Cross-correlation'} of a {input_size[0]}x{input_size[1]} input with a {k_h}x{k_w} kernel",
        notes=[
            (
                f"stride {window.stride}, padding {window.padding}, centre {window.center}, mode {mode!r}; "
                f"output size floor((H + P0 + P1 - K)/S) + 1 = {out}."
            ),
            "Xp is X padded with zeros; reads outside Xp count as zero and are left out below.",
            "dY is the gradient of the loss arriving from the layer above.",
        ],
        inputs=[("X", x), ("W", w), ("b", b), ("Xp", xp), ("dY", dy)],
        steps=[
            Step(
                "Y",
                f"Y[i,j] = b + sum_ab W[a,b] * Xp[i*S_h {pm} (a - c_h), j*S_w {pm} (b - c_w)]",
                rf"Y_{{ij}} = b + \sum_{{a,b}} W_{{ab}}\, X^p_{{iS_h {pm} (a - c_h),\ jS_w {pm} (b - c_w)}}",
                y,
                y_kernel[0, 0],
                forward,
                "conv2d_forward",
            ),
            Step(
                "dX",
                "dX = full correlation of the stride-dilated dY with rot180(W), cut to the input",
                r"\partial X = \operatorname{crop}\big(\operatorname{pad}_{K-1}(\operatorname{dilate}_S \partial Y) \star \operatorname{rot180}(W)\big)",
                dx,
                dx_kernel[0, 0],
                backward_x,
                "conv2d_backward",
            ),
            Step(
                "dW",
                "dW[a,b] = sum_ij dY[i,j] * (the Xp cell that W[a,b] met at output (i,j))",
                r"\partial W_{ab} = \sum_{i,j} \partial Y_{ij}\, X^p_{\dots}",
                dw,
                dw_kernel[0, 0],
                backward_w,
                "conv2d_backward",
            ),
            Step(
                "db",
                "db = sum_ij dY[i,j] (one bias per feature map)",
                r"\partial b = \sum_{i,j} \partial Y_{ij}",
                db,
                db_kernel,
                [f"db = {' + '.join(number(v) for v in dy.ravel())} = {number(db[0])}"],
                "conv2d_backward",
            ),
        ],
        command=command,
    )


# pooling -------------------------------------------------------------------------------------------------


def pool(input_size=(4, 4), kernel_size=(2, 2), stride=None, padding=0, mode="xcorr", center=None) -> Explanation:
    """Max-pooling: each window's maximum, and the gradient routed back to it."""
    rng = np.random.default_rng(0)
    x = rng.permutation(int(np.prod(input_size))).reshape(input_size).astype(np.float64) + 1  # distinct values
    command = _command("pool", input_size, kernel_size, stride, padding, mode, center)
    window = Window.pooling(kernel_size, stride, padding, mode, center, "explain pool")
    out = window.pooled_size(*input_size, "explain pool")
    dy = _readable(out)
    (top, _), (left, _) = window.padding
    sign = 1 if mode == "xcorr" else -1
    y, dx, lines, routes = np.zeros(out), np.zeros(input_size), [], []
    for i, j in product(*map(range, out)):
        cells = []
        for a, b in product(*map(range, window.kernel)):
            r = i * window.stride[0] + sign * (a - window.center[0]) - top
            q = j * window.stride[1] + sign * (b - window.center[1]) - left
            if 0 <= r < input_size[0] and 0 <= q < input_size[1]:
                cells.append((r, q))
        r, q = max(sorted(cells), key=lambda cell: x[cell])
        y[i, j] = x[r, q]
        dx[r, q] += dy[i, j]
        lines.append(
            f"Y[{i},{j}] = max({', '.join(f'X[{a},{b}]={number(x[a, b])}' for a, b in sorted(cells))}) = {number(y[i, j])} at X[{r},{q}]"
        )
        routes.append(f"dX[{r},{q}] += dY[{i},{j}] = {number(dy[i, j])}")
    y_kernel, cache = F.maxpool2d_forward(x[None, None], kernel_size, stride, padding, mode, center)
    dx_kernel = F.maxpool2d_backward(dy[None, None], cache)
    return Explanation(
        title=f"Max-pooling of a {input_size[0]}x{input_size[1]} input with a {window.kernel[0]}x{window.kernel[1]} window",
        notes=[
            f"stride {window.stride}, padding {window.padding}, centre {window.center}, mode {mode!r}; padding never wins."
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
        command=command,
    )


# fully connected -----------------------------------------------------------------------------------------


def linear(batch=2, in_features=3, out_features=2) -> Explanation:
    """``Y = X W + B`` for a small batch, and ``dX = dY W^T``, ``dW = X^T dY``, ``dB = sum_n dY``."""
    x, w = _readable((batch, in_features)), _readable((in_features, out_features))
    bias = np.arange(1, out_features + 1, dtype=np.float64)
    dy = _signed((batch, out_features))
    y = np.zeros((batch, out_features))
    fwd = []
    for n, k in product(range(batch), range(out_features)):
        y[n, k] = bias[k] + sum(x[n, m] * w[m, k] for m in range(in_features))
        fwd.append(
            f"Y[{n},{k}] = B[{k}] + "
            + " + ".join(_times(x[n, m], w[m, k]) for m in range(in_features))
            + f" = {number(y[n, k])}"
        )
    dx, dw, db = dy @ w.T, x.T @ dy, dy.sum(axis=0)
    dx_lines = [
        f"dX[{n},{m}] = "
        + " + ".join(_times(dy[n, k], w[m, k]) for k in range(out_features))
        + f" = {number(dx[n, m])}"
        for n, m in product(range(batch), range(in_features))
    ]
    dw_lines = [
        f"dW[{m},{k}] = " + " + ".join(_times(x[n, m], dy[n, k]) for n in range(batch)) + f" = {number(dw[m, k])}"
        for m, k in product(range(in_features), range(out_features))
    ]
    db_lines = [
        f"dB[{k}] = " + " + ".join(number(dy[n, k]) for n in range(batch)) + f" = {number(db[k])}"
        for k in range(out_features)
    ]
    y_kernel, cache = F.linear_forward(x, w, bias)
    kx, kw, kb = F.linear_backward(dy, cache)
    return Explanation(
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


# softmax -------------------------------------------------------------------------------------------------


def softmax(size=3) -> Explanation:
    """``y = softmax(x)`` of one sample, its full Jacobian, and ``dX = J^T dY``."""
    x = np.arange(1, size + 1, dtype=np.float64)
    dy = _signed(size)
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
        f"dX[{j}] = " + " + ".join(_times(dy[k], jac[k, j]) for k in range(size)) + f" = {number(dx[j])}"
        for j in range(size)
    ]
    y_kernel, cache = F.softmax_forward(x[None])
    return Explanation(
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


# batch normalisation -------------------------------------------------------------------------------------


def batchnorm(batch=4, features=2, eps=1e-5) -> Explanation:
    """Training-mode batch normalisation of a (batch, features) input, forward and backward."""
    x = _readable((batch, features)) ** 1.5 // 1  # uneven integers, so the statistics differ per feature
    gamma, beta = np.arange(1, features + 1, dtype=np.float64), np.arange(features, dtype=np.float64)
    dy = _signed((batch, features))
    m = batch
    mean, var = x.mean(axis=0), x.var(axis=0)
    x_hat = (x - mean) / np.sqrt(var + eps)
    y = gamma * x_hat + beta
    dbeta, dgamma = dy.sum(axis=0), (dy * x_hat).sum(axis=0)
    dx = gamma / np.sqrt(var + eps) * (dy - dbeta / m - x_hat * dgamma / m)
    lines_stats = [
        f"feature {c}: mean = ({' + '.join(number(v) for v in x[:, c])})/{m} = {number(mean[c])}, var = {number(var[c])}"
        for c in range(features)
    ]
    lines_y = [
        f"Y[{n},{c}] = {number(gamma[c])} * ({number(x[n, c])} - {number(mean[c])})/sqrt({number(var[c])} + eps) + {number(beta[c])} = {number(y[n, c])}"
        for n, c in product(range(batch), range(features))
    ]
    lines_dx = [f"feature {c}: dbeta = {number(dbeta[c])}, dgamma = {number(dgamma[c])}" for c in range(features)]
    y_kernel, cache, _ = F.batchnorm_forward(x, gamma, beta, np.zeros(features), np.ones(features), True, 0.1, eps)
    kdx, kdgamma, kdbeta = F.batchnorm_backward(dy, cache)
    return Explanation(
        title=f"Batch normalisation of {batch} samples of {features} features (training mode)",
        notes=[f"eps = {eps}; the variance is the biased one (divided by M = {m})."],
        inputs=[("X", x), ("gamma", gamma), ("beta", beta), ("dY", dy)],
        steps=[
            Step(
                "Y",
                "Y = gamma (X - mean) / sqrt(var + eps) + beta",
                r"Y = \gamma \frac{X - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta",
                y,
                y_kernel,
                lines_stats + lines_y,
                "batchnorm_forward",
            ),
            Step(
                "dbeta",
                "dbeta = sum over the batch of dY",
                r"\partial\beta = \sum_n \partial Y_n",
                dbeta,
                kdbeta,
                [],
                "batchnorm_backward",
            ),
            Step(
                "dgamma",
                "dgamma = sum over the batch of dY * X_hat",
                r"\partial\gamma = \sum_n \partial Y_n \hat X_n",
                dgamma,
                kdgamma,
                [],
                "batchnorm_backward",
            ),
            Step(
                "dX",
                "dX = gamma/sqrt(var + eps) * (dY - dbeta/M - X_hat * dgamma/M)",
                r"\partial X = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}\Big(\partial Y - \frac{\partial\beta}{M} - \hat X \frac{\partial\gamma}{M}\Big)",
                dx,
                kdx,
                lines_dx,
                "batchnorm_backward",
            ),
        ],
        command=f"handgrad explain batchnorm --input {batch}x{features}",
    )


# element-wise activations and dropout -------------------------------------------------------------------


def activations(size=5) -> Explanation:
    """ReLU, LeakyReLU, ELU, sigmoid, tanh and dropout on one row of numbers: each value and its derivative."""
    x = np.linspace(-2, 2, size)
    dy = _signed(size)
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
            [f"keep = {_inline(keep)}"],
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
        title=f"Element-wise activations on {size} values",
        notes=[
            "Each output depends on its own input only, so each derivative is a number per element.",
            "At a kink (x = 0) ReLU takes 0 and LeakyReLU and ELU their left slope, as PyTorch does.",
        ],
        inputs=[("x", x[None]), ("dY", dy[None])],
        steps=steps,
        command=f"handgrad explain activations --input {size}",
    )


# residual block ------------------------------------------------------------------------------------------


def residual(batch=2, features=3) -> Explanation:
    """``y = f(x) + x`` with ``f(x) = x W + B``: the gradient reaches x along both paths, and they add."""
    from .layers import Linear, Residual

    x, dy = _readable((batch, features)), _signed((batch, features))
    block = Residual([Linear(features, features, dtype=np.float64)])
    w, bias = block.body[0].params["weight"], block.body[0].params["bias"]
    w[...] = _readable((features, features)) % 4 - 1
    bias[...] = 1
    y, dx = x @ w + bias + x, dy @ w.T + dy
    lines = [
        f"dX[{n},{m}] = (dY W^T)[{n},{m}] + dY[{n},{m}] = {number((dy @ w.T)[n, m])} + {number(dy[n, m])} = {number(dx[n, m])}"
        for n, m in product(range(batch), range(features))
    ]
    y_kernel = block.forward(x)
    dx_kernel = block.backward(dy)
    return Explanation(
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


def _command(layer, input_size, kernel_size, stride, padding, mode, center) -> str:
    text = f"handgrad explain {layer} --input {input_size[0]}x{input_size[1]} --kernel {_size(kernel_size)}"
    if stride not in (None, 1):
        text += f" --stride {stride}"
    if padding:
        text += f" --padding {padding}"
    if mode != "xcorr":
        text += f" --mode {mode}"
    if center is not None:
        text += f" --center {center[0]},{center[1]}"
    return text


def _size(value) -> str:
    h, w = (value, value) if isinstance(value, int) else value
    return f"{h}x{w}"


EXPLAINERS = {
    "conv": conv,
    "pool": pool,
    "linear": linear,
    "activations": activations,
    "softmax": softmax,
    "batchnorm": batchnorm,
    "residual": residual,
}
