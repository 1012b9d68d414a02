"""Sliding-window geometry shared by convolution and pooling: the one place for output-size arithmetic.

Notation, per spatial axis (every hyper-parameter is a pair (h, w); one axis is written here):

    H   input size          K   kernel (window) size
    S   stride              P   zero padding on every side
    c   the kernel's centre element, 0 <= c < K: the origin of the kernel's coordinates

Output size, PyTorch's, whatever the centre::

    H_out = floor((H + 2P - K) / S) + 1

Window placement.  Output cell ``i`` reads the rows of the padded input ``Xp``::

    xcorr (cross-correlation):   i*S + (a - c)     for a = 0 .. K-1
    conv  (true convolution):    i*S - (a - c)

A read outside ``Xp`` counts as zero (as minus infinity for max-pooling).  Substituting
``a' = K-1-a`` in the convolution gives the identity used throughout::

    conv(W, centre c)  ==  xcorr(W[..., ::-1, ::-1], centre K-1-c)

In input coordinates a cross-correlation window starts at row ``i*S - lead`` with ``lead = P + c``
and spans ``K`` rows; together the windows span ``(H_out - 1)*S + K`` rows.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

MODES = ("xcorr", "conv")


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """``H_out = floor((H + 2P - K) / S) + 1``; callers check ``K <= H + 2P`` first."""
    return (size + 2 * padding - kernel) // stride + 1


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


@dataclass(frozen=True)
class Window:
    """Validated hyper-parameters of a 2-D sliding window (a convolution kernel or a pooling window)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    center: tuple[int, int]
    mode: str

    @classmethod
    def of(cls, kernel_size, stride=1, padding=0, mode="xcorr", center=None, where="window") -> Window:
        """Normalise and check user arguments; raise ``ValueError`` naming the argument at fault."""
        kernel = pair(kernel_size, "kernel_size", where)
        stride = pair(stride, "stride", where)
        padding = pair(padding, "padding", where)
        center = (0, 0) if center is None else pair(center, "center", where)
        if min(kernel) < 1:
            raise ValueError(f"{where}: kernel_size must be >= 1, got {kernel}")
        if min(stride) < 1:
            raise ValueError(f"{where}: stride must be >= 1, got {stride}")
        if min(padding) < 0:
            raise ValueError(f"{where}: padding must be >= 0, got {padding}")
        if not all(0 <= c < k for c, k in zip(center, kernel)):
            raise ValueError(
                f"{where}: center must be a cell of the {kernel[0]}x{kernel[1]} kernel, "
                f"0 <= center < kernel_size on each axis, got {center}"
            )
        if mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {MODES}, got {mode!r}")
        return cls(kernel, stride, padding, center, mode)

    def as_xcorr(self) -> Window:
        """The cross-correlation window that reads the same cells: centre ``K-1-c`` for a convolution."""
        if self.mode == "xcorr":
            return self
        flipped = tuple(k - 1 - c for k, c in zip(self.kernel, self.center))
        return Window(self.kernel, self.stride, self.padding, flipped, "xcorr")

    @property
    def lead(self) -> tuple[int, int]:
        """``P + c``: zero rows (columns) a cross-correlation window sees before the input starts."""
        window = self.as_xcorr()
        return tuple(p + c for p, c in zip(window.padding, window.center))

    def output_size(self, height: int, width: int, where: str = "window") -> tuple[int, int]:
        """``(H_out, W_out)`` for an ``H x W`` input; ``ValueError`` if the kernel exceeds the padded input."""
        padded = (height + 2 * self.padding[0], width + 2 * self.padding[1])
        if self.kernel[0] > padded[0] or self.kernel[1] > padded[1]:
            raise ValueError(
                f"{where}: kernel_size {self.kernel} is larger than the padded input {padded} "
                f"(input {(height, width)}, padding {self.padding})"
            )
        return tuple(
            conv_output_size(n, k, s, p) for n, k, s, p in zip((height, width), self.kernel, self.stride, self.padding)
        )

    def span(self, out_size: tuple[int, int]) -> tuple[int, int]:
        """``(H_out - 1)*S + K``: rows (columns) covered by all windows together."""
        return tuple((o - 1) * s + k for o, s, k in zip(out_size, self.stride, self.kernel))

    def cell_reads(self, size: tuple[int, int], out: tuple[int, int]):
        """For each window cell ``(a, b)`` of the cross-correlation window, the cells it reads, as slices.

        Yields ``(a, b, out_rows, out_cols, in_rows, in_cols)``: output cell ``(i, j)`` in
        ``out_rows x out_cols`` reads input cell ``(i*S_h + a - lead_h, j*S_w + b - lead_w)``, which runs over
        ``in_rows x in_cols``.  Reads that fall outside the input (padding) are left out, so a kernel cell
        that reads only padding yields nothing.  For ``mode="conv"`` the cells are those of the flipped kernel.
        """
        per_axis = [[(a, *self._axis_reads(a, size[k], out[k], k)) for a in range(self.kernel[k])] for k in (0, 1)]
        for a, out_rows, in_rows in per_axis[0]:
            for b, out_cols, in_cols in per_axis[1]:
                if out_rows is not None and out_cols is not None:
                    yield a, b, out_rows, out_cols, in_rows, in_cols

    def _axis_reads(self, a: int, size: int, out: int, axis: int):
        """Output indices i with ``0 <= i*S + a - lead < size``, and the input indices they read, as slices."""
        s, lead = self.stride[axis], self.lead[axis]
        first = max(0, -(-(lead - a) // s))  # ceil((lead - a) / S), at least 0
        last = min(out - 1, (size - 1 + lead - a) // s)
        if last < first:
            return None, None
        start = first * s + a - lead
        return slice(first, last + 1), slice(start, start + (last - first) * s + 1, s)

    def check_every_window_sees_input(self, size: tuple[int, int], out: tuple[int, int], where: str) -> None:
        """Raise ``ValueError`` if a window holds padding only (for pooling, whose padding never wins).

        Window i covers input rows ``[i*S - lead, i*S - lead + K)``; the first and the last window are the
        ones that can miss the input.
        """
        for axis, name in ((0, "rows"), (1, "columns")):
            first = -self.lead[axis]
            last = (out[axis] - 1) * self.stride[axis] - self.lead[axis]
            if first + self.kernel[axis] <= 0 or last >= size[axis]:
                raise ValueError(
                    f"{where}: some windows hold only padding {name} (kernel_size {self.kernel}, stride "
                    f"{self.stride}, padding {self.padding}, center {self.center}, input {tuple(size)}); "
                    f"reduce padding or move the center"
                )
