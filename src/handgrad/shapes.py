"""Sliding-window geometry shared by convolution and pooling: the one place for output-size arithmetic.

Notation, per spatial axis (every hyper-parameter is a pair (h, w); one axis is written here):

    H   input size          K   kernel (window) size        D   dilation (1: none)
    S   stride              P0, P1  padding before and after (P on both sides for an int padding)
    c   the kernel's centre element, 0 <= c < K: the origin of the kernel's coordinates

Output size, PyTorch's, whatever the centre::

    H_out = floor((H + P0 + P1 - D*(K - 1) - 1) / S) + 1

(``ceil`` instead of ``floor`` with ``ceil_mode``, for pooling, dropping a last window that would start
in the padding after the input, as PyTorch does).

Window placement.  Output cell ``i`` reads the rows of the padded input ``Xp``::

    xcorr (cross-correlation):   i*S + D*(a - c)     for a = 0 .. K-1
    conv  (true convolution):    i*S - D*(a - c)

A read outside ``Xp`` counts as zero (as minus infinity for max-pooling).  Substituting ``a' = K-1-a`` in
the convolution gives the identity used throughout::

    conv(W, centre c) == xcorr(W[..., ::-1, ::-1], centre K-1-c)

In input coordinates a cross-correlation window reads rows ``i*S + D*a - lead`` with ``lead = P0 + D*c``,
and together the windows span ``(H_out - 1)*S + D*(K - 1) + 1`` rows.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass

MODES = ("xcorr", "conv")


def conv_output_size(
    size: int, kernel: int, stride: int, padding: int | tuple, dilation: int = 1, ceil_mode=False
) -> int:
    """``H_out = floor((H + P0 + P1 - D*(K - 1) - 1) / S) + 1``; callers check the kernel fits first.

    ``padding`` is P (both sides) or ``(P0, P1)``.  With ``ceil_mode`` the division rounds up, and a last
    window that would start in the padding after the input is dropped (PyTorch's pooling rule).
    """
    before, after = (padding, padding) if isinstance(padding, int) else padding
    extent = size + before + after - dilation * (kernel - 1) - 1
    out = (math.ceil(extent / stride) if ceil_mode else extent // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    return out


def pair(value, name: str, where: str) -> tuple[int, int]:
    """Normalise an int or a pair of ints to ``(h, w)``, naming ``where.name`` in errors."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
    try:
        if any(isinstance(v, bool) for v in items):
            raise TypeError
        return (operator.index(items[0]), operator.index(items[1]))
    except TypeError:
        raise ValueError(f"{where}: {name} must be an int or a pair of ints, got {value!r}") from None


def _sides(padding, kernel, stride, dilation, where) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` from an int, a pair, such a pair of pairs, ``"valid"`` or ``"same"``."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"{where}: padding='same' needs stride 1 (the output keeps the input's size), got stride {stride}"
                )
            totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
            return tuple((t // 2, t - t // 2) for t in totals)  # the odd cell goes after, as in PyTorch
        raise ValueError(f"{where}: padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
        return (pair(padding[0], "padding", where), pair(padding[1], "padding", where))
    p = pair(padding, "padding", where)
    return ((p[0], p[0]), (p[1], p[1]))


@dataclass(frozen=True)
class Window:
    """Validated hyper-parameters of a 2-D sliding window (a convolution kernel or a pooling window)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
    center: tuple[int, int]
    mode: str
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    @classmethod
    def of(
        cls, kernel_size, stride=1, padding=0, mode="xcorr", center=None, where="window", dilation=1, ceil_mode=False
    ) -> Window:
        """Normalise and check user arguments; raise ``ValueError`` naming the argument at fault."""
        kernel = pair(kernel_size, "kernel_size", where)
        stride = pair(stride, "stride", where)
        dilation = pair(dilation, "dilation", where)
        center = (0, 0) if center is None else pair(center, "center", where)
        if min(kernel) < 1:
            raise ValueError(f"{where}: kernel_size must be >= 1, got {kernel}")
        if min(stride) < 1:
            raise ValueError(f"{where}: stride must be >= 1, got {stride}")
        if min(dilation) < 1:
            raise ValueError(f"{where}: dilation must be >= 1, got {dilation}")
        sides = _sides(padding, kernel, stride, dilation, where)
        if min(min(s) for s in sides) < 0:
            raise ValueError(f"{where}: padding must be >= 0, got {padding}")
        if not all(0 <= c < k for c, k in zip(center, kernel)):
            raise ValueError(
                f"{where}: center must be a cell of the {kernel[0]}x{kernel[1]} kernel, "
                f"0 <= center < kernel_size on each axis, got {center}"
            )
        if mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {MODES}, got {mode!r}")
        return cls(kernel, stride, sides, center, mode, dilation, bool(ceil_mode))

    @classmethod
    def pooling(
        cls, kernel_size, stride=None, padding=0, mode="xcorr", center=None, where="window", dilation=1, ceil_mode=False
    ) -> Window:
        """:meth:`of` for a pooling, whose ``stride=None`` (the default) is the window size: windows that tile."""
        stride = kernel_size if stride is None else stride
        return cls.of(kernel_size, stride, padding, mode, center, where, dilation, ceil_mode)

    def as_xcorr(self) -> Window:
        """The cross-correlation window that reads the same cells: centre ``K-1-c`` for a convolution."""
        if self.mode == "xcorr":
            return self
        flipped = tuple(k - 1 - c for k, c in zip(self.kernel, self.center))
        return Window(self.kernel, self.stride, self.padding, flipped, "xcorr", self.dilation, self.ceil_mode)

    def without_padding(self) -> Window:
        """The same window on an input that is padded already (a padding mode filled it)."""
        return Window(self.kernel, self.stride, ((0, 0), (0, 0)), self.center, self.mode, self.dilation, self.ceil_mode)

    def describe(self) -> str:
        """The window's options as a layer's ``repr`` shows them, padding written as PyTorch takes it when both
        sides agree."""
        padding = tuple(p[0] for p in self.padding) if all(p[0] == p[1] for p in self.padding) else self.padding
        text = f"kernel_size={self.kernel}, stride={self.stride}, padding={padding}, mode={self.mode!r}"
        text += f", center={self.center}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        return text

    @functools.cached_property  # a window is immutable; layers ask for these on every call
    def extent(self) -> tuple[int, int]:
        """``D*(K - 1) + 1``: the rows (columns) one window covers."""
        return tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel))

    @functools.cached_property
    def lead(self) -> tuple[int, int]:
        """``P0 + D*c``: rows (columns) a cross-correlation window reads before the input starts."""
        window = self.as_xcorr()
        return tuple(p[0] + d * c for p, d, c in zip(window.padding, window.dilation, window.center))

    def padded(self, height: int, width: int) -> tuple[int, int]:
        return (height + sum(self.padding[0]), width + sum(self.padding[1]))

    def output_size(self, height: int, width: int, where: str = "window") -> tuple[int, int]:
        """``(H_out, W_out)`` for an ``H x W`` input; ``ValueError`` if the kernel exceeds the padded input."""
        out = _output_size(self, height, width)
        if out is None:
            padded = self.padded(height, width)
            spread = f" (dilated to {self.extent})" if self.dilation != (1, 1) else ""
            raise ValueError(
                f"{where}: kernel_size {self.kernel}{spread} is larger than the padded input {padded} "
                f"(input {(height, width)}, padding {self.padding})"
            )
        return out

    def pooled_size(self, height: int, width: int, where: str = "window") -> tuple[int, int]:
        """``output_size`` for pooling, which also needs every window to hold an input cell."""
        out = self.output_size(height, width, where)
        self.check_every_window_sees_input((height, width), out, where)
        return out

    def span(self, out_size: tuple[int, int]) -> tuple[int, int]:
        """``(H_out - 1)*S + D*(K - 1) + 1``: rows (columns) covered by all windows together."""
        return tuple((o - 1) * s + e for o, s, e in zip(out_size, self.stride, self.extent))

    def cell_reads(self, size: tuple[int, int], out: tuple[int, int]):
        """For each window cell ``(a, b)`` of the cross-correlation window, the cells it reads, as slices.

        Yields ``(a, b, out_rows, out_cols, in_rows, in_cols)``: output cell ``(i, j)`` in
        ``out_rows x out_cols`` reads input cell ``(i*S_h + D_h*a - lead_h, j*S_w + D_w*b - lead_w)``, which
        runs over ``in_rows x in_cols``.  Reads that fall outside the input (padding) are left out, so a
        kernel cell that reads only padding yields nothing.  For ``mode="conv"`` the cells are those of the
        flipped kernel.
        """
        per_axis = [[(a, *self._axis_reads(a, size[k], out[k], k)) for a in range(self.kernel[k])] for k in (0, 1)]
        for a, out_rows, in_rows in per_axis[0]:
            for b, out_cols, in_cols in per_axis[1]:
                if out_rows is not None and out_cols is not None:
                    yield a, b, out_rows, out_cols, in_rows, in_cols

    def _axis_reads(self, a: int, size: int, out: int, axis: int):
        """Output indices i with ``0 <= i*S + D*a - lead < size``, and the input indices they read, as slices."""
        s, offset = self.stride[axis], self.dilation[axis] * a - self.lead[axis]
        first = max(0, -(offset // s))  # the first i with i*S + offset >= 0
        last = min(out - 1, (size - 1 - offset) // s)
        if last < first:
            return None, None
        start = first * s + offset
        return slice(first, last + 1), slice(start, start + (last - first) * s + 1, s)

    def check_every_window_sees_input(self, size: tuple[int, int], out: tuple[int, int], where: str) -> None:
        """Raise ``ValueError`` if a window reads no input cell (for pooling, whose padding never wins)."""
        unseen = _unseen(self, tuple(size), tuple(out))
        if unseen is not None:
            name = ("rows", "columns")[unseen]
            raise ValueError(
                f"{where}: some windows hold only padding {name} (kernel_size {self.kernel}, stride "
                f"{self.stride}, padding {self.padding}, dilation {self.dilation}, center {self.center}, "
                f"input {tuple(size)}); reduce padding or move the center"
            )


@functools.lru_cache(maxsize=256)  # windows and input sizes are few, and layers ask at every step
def _output_size(window: Window, height: int, width: int) -> tuple[int, int] | None:
    """:meth:`Window.output_size`, or None where the kernel exceeds the padded input."""
    padded = window.padded(height, width)
    if window.extent[0] > padded[0] or window.extent[1] > padded[1]:
        return None
    return tuple(
        conv_output_size(n, k, s, p, d, window.ceil_mode)
        for n, k, s, p, d in zip((height, width), window.kernel, window.stride, window.padding, window.dilation)
    )


@functools.lru_cache(maxsize=256)  # windows are few and immutable, and pooling checks on every call
def _unseen(window: Window, size: tuple[int, int], out: tuple[int, int]) -> int | None:
    """The first axis (0 rows, 1 columns) on which some window reads no input cell, or None."""
    for axis in (0, 1):
        seen = [False] * out[axis]
        for a in range(window.kernel[axis]):
            out_range = window._axis_reads(a, size[axis], out[axis], axis)[0]
            if out_range is not None:
                for i in range(out_range.start, out_range.stop):
                    seen[i] = True
        if not all(seen):
            return axis
    return None
