"""handgrad's semantics rebuilt from PyTorch operations, as the outside reference.

The centre and the mode have no PyTorch counterpart; they are expressed with the identity
``conv(W, centre c) == xcorr(W[..., ::-1, ::-1], centre K-1-c)`` and with asymmetric padding:
a cross-correlation with centre c reads ``Xp[i*S + a - c]``, which is PyTorch's ``conv2d`` on the
input padded by ``P + c`` before and ``P - c`` after (a negative pad crops).
"""

from __future__ import annotations

import torch
import torch.nn.functional as TF


def _as_xcorr(kernel, center, mode):
    if mode == "xcorr":
        return center
    return tuple(k - 1 - c for k, c in zip(kernel, center))


def _sides(padding):
    """((top, bottom), (left, right)) from an int pair or a pair of pairs."""
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def _shift(padding, center, dilation=(1, 1)):
    ((top, bottom), (left, right)), (ch, cw), (dh, dw) = _sides(padding), center, dilation
    return (left + dw * cw, right - dw * cw, top + dh * ch, bottom - dh * ch)


def _shifted(x, padding, center, dilation=(1, 1), value=0.0):
    """x padded by the shift, in two steps: the additions first, then the crops (a negative pad), which torch
    cannot take in one step when a crop is larger than the input it starts from."""
    shift = _shift(padding, center, dilation)
    x = TF.pad(x, tuple(max(0, p) for p in shift), value=value)
    return TF.pad(x, tuple(min(0, p) for p in shift))


def conv2d(x, w, b, stride, padding, mode, center, dilation=(1, 1), groups=1, padding_mode="zeros"):
    center = _as_xcorr(w.shape[2:], center, mode)
    if mode == "conv":
        w = torch.flip(w, dims=(2, 3))
    if padding_mode != "zeros":
        ((top, bottom), (left, right)) = _sides(padding)
        x = TF.pad(x, (left, right, top, bottom), mode=padding_mode)
        padding = ((0, 0), (0, 0))
    return TF.conv2d(_shifted(x, padding, center, dilation), w, b, stride, dilation=dilation, groups=groups)


def maxpool2d(x, kernel, stride, padding, mode, center, dilation=(1, 1)):
    center = _as_xcorr(kernel, center, mode)
    return TF.max_pool2d(
        TF.pad(x, _shift(padding, center, dilation), value=-torch.inf), kernel, stride, dilation=dilation
    )


def grads(f, dy, *inputs):
    """Forward with autograd, then the gradients of ``sum(dy * f(inputs))`` for every input (None stays None)."""
    leaves = [None if a is None else torch.tensor(a, requires_grad=True) for a in inputs]
    y = f(*leaves)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), [None if leaf is None else leaf.grad.numpy() for leaf in leaves]
