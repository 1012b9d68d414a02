"""Any handgrad window as the plain one of PyTorch and ONNX: the input padded (or cropped), then a
cross-correlation with centre (0, 0) and no padding of its own.  The torch bridge and the ONNX exporter both
build their layers from these identities.

A cross-correlation with centre ``c`` reads ``Xp[i*S + D*(a - c)]``, that is input row ``i*S + D*a - (P0 + D*c)``
(see :mod:`handgrad.shapes`).  So it is the plain window over the input padded by ``P0 + D*c`` before and
``P1 - D*c`` after, where a negative pad crops.  A true convolution reads the cells of the cross-correlation
with the flipped kernel and centre ``K-1-c``::

    conv(W, centre c) == xcorr(W[..., ::-1, ::-1], centre K-1-c)
"""

from __future__ import annotations

import numpy as np

from .shapes import Window


def is_plain(window: Window) -> bool:
    """A window a plain padding argument expresses: cross-correlation placement, origin centre, equal sides."""
    return window.mode == "xcorr" and window.center == (0, 0) and all(p[0] == p[1] for p in window.padding)


def reads(window: Window, size: tuple[int, int] | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))``: the padding (negative: cropping) of the input after which a plain
    window reads what ``window`` reads, ``P0 + D*c`` before and ``P1 - D*c`` after.

    With ``ceil_mode`` the input's ``size`` (H, W) is needed: the pad after grows until the last window fits,
    so that a plain window without ``ceil_mode`` gives the same output size.
    """
    xc = window.as_xcorr()
    sides = [(p0 + d * c, p1 - d * c) for (p0, p1), d, c in zip(xc.padding, xc.dilation, xc.center)]
    if window.ceil_mode:
        if size is None:
            raise ValueError("reads: a window with ceil_mode needs the input size")
        span = window.span(window.output_size(*size))  # the rows all windows cover together
        sides = [(before, max(after, s - n - before)) for (before, after), s, n in zip(sides, span, size)]
    return tuple(sides)


def grow_and_crop(pads) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A sequence of pads split into what it adds (the positive ones) and what it removes (the negative ones)."""
    return tuple(max(0, p) for p in pads), tuple(min(0, p) for p in pads)


def xcorr_weight(weight: np.ndarray, window: Window) -> np.ndarray:
    """The kernel of the cross-correlation that computes the layer: flipped for a true convolution.  Its own
    inverse."""
    return weight[:, :, ::-1, ::-1] if window.mode == "conv" else weight
