"""What a derivation is: the inputs and a list of :class:`Step`, each a formula, the worked terms and arrays,
the result computed here by hand and the same result from :mod:`handgrad.functional`; and how it is written
out as text or Markdown.  The small helpers the layers' derivations share live here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import product

import numpy as np

TOLERANCE = 1e-12  # by-hand float results (softmax, batch normalisation) against the kernel


@dataclass
class Step:
    name: str  # "Y", "dX", ...
    formula: str  # plain text
    latex: str
    by_hand: np.ndarray  # worked out below, term by term
    kernel: np.ndarray  # the kernel's result (handgrad.functional)
    lines: list[str] = field(default_factory=list)  # the worked terms
    kernel_name: str = ""
    worked: list[tuple[str, np.ndarray]] = field(default_factory=list)  # arrays worked out on the way

    @property
    def ok(self) -> bool:
        return self.by_hand.shape == self.kernel.shape and bool(
            np.allclose(self.by_hand, self.kernel, rtol=TOLERANCE, atol=TOLERANCE)
        )


@dataclass
class Explanation:
    """A derivation on numbers.  ``work`` holds a layer's geometry (which cells meet which), from which the
    worked terms are written and the figures are drawn."""

    layer: str  # "conv", "pool", ...: the name ``handgrad explain`` takes
    title: str
    notes: list[str]
    inputs: list[tuple[str, np.ndarray]]
    steps: list[Step]
    command: str
    work: object = None

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every named array of the derivation: the inputs, and each step's worked arrays and result (by hand)."""
        named = dict(self.inputs)
        for step in self.steps:
            named.update(step.worked)
            named[step.name] = step.by_hand
        return named

    def text(self) -> str:
        out = [self.title, "=" * len(self.title), *self.notes, ""]
        for name, value in self.inputs:
            out += [f"{name} =", grid_text(value), ""]
        for step in self.steps:
            out += [f"{step.name}: {step.formula}", *(f"  {line}" for line in step.lines)]
            for name, value in [*step.worked, (step.name, step.by_hand)]:
                out += [f"{name} =", grid_text(value)]
            out += [f"check: {step.kernel_name} gives the same {step.name}: {'yes' if step.ok else 'NO'}", ""]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"# {self.title}", "", *self.notes, "", f"`{self.command}`", ""]
        for name, value in self.inputs:
            out += [f"$${_latex_name(name)} = {_bmatrix(value)}$$", ""]
        for step in self.steps:
            out += [f"## {step.name}", "", f"$${step.latex}$$", ""]
            out += [f"- `{line}`" for line in step.lines] + [""]
            for name, value in [*step.worked, (step.name, step.by_hand)]:
                out += [f"$${_latex_name(name)} = {_bmatrix(value)}$$", ""]
            out += [f"Check: `{step.kernel_name}` gives the same {step.name}: **{'yes' if step.ok else 'NO'}**.", ""]
        return "\n".join(out)


def number(v) -> str:
    """Integers as integers, other values to 4 significant digits."""
    v = float(v)
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else f"{v:.4g}"


def grid_text(a: np.ndarray) -> str:
    """A matrix as rows of right-aligned numbers, as the text derivation prints it."""
    a = np.atleast_2d(a)
    cells = [[number(v) for v in row] for row in a]
    width = max(len(c) for row in cells for c in row)
    return "\n".join("  [" + " ".join(c.rjust(width) for c in row) + "]" for row in cells)


def _bmatrix(a: np.ndarray) -> str:
    a = np.atleast_2d(a)
    return r"\begin{bmatrix}" + r" \\ ".join(" & ".join(number(v) for v in row) for row in a) + r"\end{bmatrix}"


def _latex_name(name: str) -> str:
    """A name in LaTeX: each gradient in it (``dX``, ``dW``, ``db``, ``dgamma``...) written with ``\\partial``; other
    words (``dropout``) as they are."""
    return re.sub(r"\bd(?=[A-Z]|b\b|beta\b|gamma\b)", r"\\partial ", name)


def readable(shape, start=1) -> np.ndarray:
    """1, 2, 3, ... laid out row by row: an input whose cells are easy to follow."""
    return np.arange(start, start + int(np.prod(shape)), dtype=np.float64).reshape(shape)


def signed(shape) -> np.ndarray:
    """1, -2, 3, -1, 2, -3, ...: a gradient of small integers of both signs."""
    k = np.arange(int(np.prod(shape)))
    return ((k % 3 + 1) * (-1.0) ** k).reshape(shape)


def inline(a: np.ndarray) -> str:
    """A small matrix on one line: [[0, 2], [-1, 1]]."""
    return "[" + ", ".join("[" + ", ".join(number(v) for v in row) + "]" for row in np.atleast_2d(a)) + "]"


def factor(v) -> str:
    """A number as a factor of a product: negative ones in parentheses."""
    return number(v) if v >= 0 else f"({number(v)})"


def times(a, b) -> str:
    """``a*b`` with negative factors in parentheses."""
    return f"{factor(a)}*{factor(b)}"


def placements(window, out: tuple[int, int], shift: tuple[int, int] = (0, 0)) -> dict:
    """For each output cell ``(i, j)`` of ``out``, the window's cells ``(a, b)`` with the cells ``(r, q)`` they meet:
    ``r = i*S_h + D_h(a - c_h)`` in a cross-correlation, ``i*S_h - D_h(a - c_h)`` in a true convolution (the kernel
    flipped about its centre), less ``shift[0]``; ``q`` the same along the width."""
    sign = 1 if window.mode == "xcorr" else -1
    (s_h, s_w), (c_h, c_w), (d_h, d_w) = window.stride, window.center, window.dilation
    return {
        (i, j): [
            (a, b, i * s_h + sign * d_h * (a - c_h) - shift[0], j * s_w + sign * d_w * (b - c_w) - shift[1])
            for a, b in product(*map(range, window.kernel))
        ]
        for i, j in product(*map(range, out))
    }


def window_command(layer, input_size, window, mode, center) -> str:
    """The ``handgrad explain conv|pool`` command line that gives this derivation: the options that differ from
    the command's defaults (stride 1 for conv, the window itself for pool), a pair written ``h,w`` where its two
    values differ.  Padding that differs before and after a side has no option: the command leaves it out and
    says so."""
    text = f"handgrad explain {layer} --input {input_size[0]}x{input_size[1]} --kernel {_size(window.kernel)}"
    if window.stride != ((1, 1) if layer == "conv" else window.kernel):
        text += f" --stride {_pair(window.stride)}"
    before, after = zip(*window.padding)
    if any(before) and before == after:
        text += f" --padding {_pair(before)}"
    if mode != "xcorr":
        text += f" --mode {mode}"
    if center is not None:
        text += f" --center {center[0]},{center[1]}"
    if window.dilation != (1, 1):
        text += f" --dilation {_pair(window.dilation)}"
    if before != after:
        (top, bottom), (left, right) = window.padding
        text += f"  # and padding top {top}, bottom {bottom}, left {left}, right {right}: the Python API only"
    return text


def _pair(value) -> str:
    """``(a, a)`` as ``a``, ``(a, b)`` as ``a,b``: how the command's options take them."""
    return str(value[0]) if value[0] == value[1] else f"{value[0]},{value[1]}"


def _size(value: tuple[int, int]) -> str:
    return f"{value[0]}x{value[1]}"
