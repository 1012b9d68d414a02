"""The convolution worked out on numbers: one channel in, one out, ``Y = W * X + b`` and its three gradients."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from .. import functional as F
from ..shapes import Window
from .explanation import Explanation, Step, number, placements, readable, signed, times, window_command


@dataclass
class ConvWork:
    """Where the kernel sits: ``placed[i, j]`` lists ``(a, b, r, q)`` for every kernel cell, ``W[a, b]`` (the
    kernel as given) placed on ``Xp[r, q]`` for output ``(i, j)``; ``r, q`` may fall outside ``Xp``, where the
    read counts as zero."""

    window: Window
    padded: tuple[int, int]  # Xp's shape
    placed: dict[tuple[int, int], list[tuple[int, int, int, int]]]

    @property
    def lead(self) -> tuple[int, int]:
        """Where the input starts in the coordinates of ``dXq`` (:attr:`~handgrad.shapes.Window.lead`)."""
        return self.window.lead

    def met(self, i: int, j: int) -> list[tuple[int, int, int, int]]:
        """The kernel cells of output ``(i, j)`` that land inside ``Xp``: the terms of its sum."""
        return [(a, b, r, q) for a, b, r, q in self.placed[i, j] if 0 <= r < self.padded[0] and 0 <= q < self.padded[1]]

    def meeting(self, a: int, b: int) -> list[tuple[int, int, int, int]]:
        """``(i, j, r, q)``: the outputs at which kernel cell ``W[a, b]`` meets ``Xp[r, q]``, the terms of dW[a, b]."""
        return [(i, j, r, q) for i, j in self.placed for a2, b2, r, q in self.met(i, j) if (a2, b2) == (a, b)]


def conv(
    input_size=(3, 3), kernel_size=(2, 2), stride=1, padding=0, mode="xcorr", center=None, dilation=1
) -> Explanation:
    """One channel in, one out: ``Y = W * X + b`` and its three gradients, term by term."""
    x, w, b = readable(input_size), readable(kernel_size), np.array([1.0])
    window = Window.of(kernel_size, stride, padding, mode, center, "explain conv", dilation)
    out = window.output_size(*input_size, "explain conv")
    dy = signed(out)
    xp = np.pad(x, window.padding)
    (s_h, s_w), (c_h, c_w), (k_h, k_w), (d_h, d_w) = window.stride, window.center, window.kernel, window.dilation
    work = ConvWork(window, xp.shape, placements(window, out))

    forward, y = [], np.zeros(out)
    for i, j in product(*map(range, out)):
        cells = work.met(i, j)
        y[i, j] = b[0] + sum(w[a, bb] * xp[r, q] for a, bb, r, q in cells)
        terms = " + ".join(f"W[{a},{bb}]*Xp[{r},{q}]" for a, bb, r, q in cells) or "0"
        values = " + ".join(times(w[a, bb], xp[r, q]) for a, bb, r, q in cells) or "0"
        forward.append(f"Y[{i},{j}] = b + {terms} = {number(b[0])} + {values} = {number(y[i, j])}")

    # backward, as the derivation writes it: dilate, pad by dilation*(K-1), correlate with the rotated kernel
    w_x = w if mode == "xcorr" else w[::-1, ::-1]  # the cross-correlation kernel of the identity
    span, lead = window.span(out), work.lead
    d = np.zeros(((out[0] - 1) * s_h + 1, (out[1] - 1) * s_w + 1))
    d[::s_h, ::s_w] = dy
    full = (d_h * (k_h - 1), d_w * (k_w - 1))
    dp = np.pad(d, ((full[0], full[0]), (full[1], full[1])))
    rot = w_x[::-1, ::-1]
    dxq = np.zeros(span)
    for u, v in product(*map(range, span)):
        dxq[u, v] = sum(dp[u + d_h * a, v + d_w * bb] * rot[a, bb] for a, bb in product(range(k_h), range(k_w)))
    dx = np.zeros(input_size)
    for r, q in product(*map(range, input_size)):
        u, v = r + lead[0], q + lead[1]
        if u < span[0] and v < span[1]:
            dx[r, q] = dxq[u, v]
    backward_x = [
        f"D = dY with S-1 = {s_h - 1},{s_w - 1} zeros between cells",
        f"Dp = D padded by dilation*(K-1) = {full[0]},{full[1]} on every side",
        f"rot180 = the cross-correlation kernel{'' if mode == 'xcorr' else ' (W flipped: conv mode)'} rotated by 180 degrees"
        + ("" if mode == "xcorr" else ", which is W itself"),
        f"dXq[u,v] = sum_ab Dp[u + {_times_index(d_h, 'a')}, v + {_times_index(d_w, 'b')}] * rot180[a,b]",
    ]
    for u, v in product(*map(range, span)):
        terms = " + ".join(
            times(dp[u + d_h * a, v + d_w * bb], rot[a, bb]) for a, bb in product(range(k_h), range(k_w))
        )
        backward_x.append(f"dXq[{u},{v}] = {terms} = {number(dxq[u, v])}")
    backward_x.append(
        f"dX = dXq[{lead[0]}:{lead[0] + input_size[0]}, {lead[1]}:{lead[1] + input_size[1]}] (rows past the windows get 0)"
    )

    dw, backward_w = np.zeros(kernel_size), []
    for a, bb in product(range(k_h), range(k_w)):
        cells = work.meeting(a, bb)
        dw[a, bb] = sum(dy[i, j] * xp[r, q] for i, j, r, q in cells)
        values = " + ".join(times(dy[i, j], xp[r, q]) for i, j, r, q in cells) or "0"
        backward_w.append(f"dW[{a},{bb}] = {values} = {number(dw[a, bb])}")
    db = np.array([dy.sum()])

    y_kernel, cache = F.conv2d_forward(x[None, None], w[None, None], b, stride, padding, mode, center, dilation)
    dx_kernel, dw_kernel, db_kernel = F.conv2d_backward(dy[None, None], cache)
    pm = "-" if mode == "conv" else "+"
    kind = "True convolution" if mode == "conv" else "Cross-correlation"
    return Explanation(
        layer="conv",
        title=f"{kind} of a {input_size[0]}x{input_size[1]} input with a {k_h}x{k_w} kernel",
        notes=[
            (
                f"stride {window.stride}, padding {window.padding}, centre {window.center}, dilation "
                f"{window.dilation}, mode {mode!r}; output size floor((H + P0 + P1 - D(K - 1) - 1)/S) + 1 = {out}."
            ),
            (
                f"The kernel's coordinates start at its centre: rows {-c_h}..{k_h - 1 - c_h}, "
                f"columns {-c_w}..{k_w - 1 - c_w}"
                + ("." if mode == "xcorr" else "; conv mode flips it about the centre: flip(W) meets Xp.")
            ),
            "Xp is X padded with zeros; reads outside Xp count as zero and are left out below.",
            "dY is the gradient of the loss arriving from the layer above.",
        ],
        inputs=[("X", x), ("W", w), ("b", b), ("Xp", xp), ("dY", dy)],
        steps=[
            Step(
                "Y",
                f"Y[i,j] = b + sum_ab W[a,b] * Xp[i*S_h {pm} D_h(a - c_h), j*S_w {pm} D_w(b - c_w)]",
                rf"Y_{{ij}} = b + \sum_{{a,b}} W_{{ab}}\, X^p_{{iS_h {pm} D_h(a - c_h),\ jS_w {pm} D_w(b - c_w)}}",
                y,
                y_kernel[0, 0],
                forward,
                "conv2d_forward",
                worked=[] if mode == "xcorr" else [("flip(W)", w[::-1, ::-1])],
            ),
            Step(
                "dX",
                "dX = full correlation of the stride-dilated dY with rot180(W), cut to the input",
                r"\partial X = \operatorname{crop}\big(\operatorname{pad}_{D(K-1)}(\operatorname{dilate}_S \partial Y) \star \operatorname{rot180}(W)\big)",
                dx,
                dx_kernel[0, 0],
                backward_x,
                "conv2d_backward",
                worked=[("D", d), ("Dp", dp), ("rot180", rot), ("dXq", dxq)],
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
        command=window_command("conv", input_size, window, mode, center),
        work=work,
    )


def _times_index(factor: int, index: str) -> str:
    """``a`` or ``2a``: an index scaled by the dilation."""
    return index if factor == 1 else f"{factor}{index}"
