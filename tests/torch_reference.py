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


def _pad(x, padding, center, value=0.0):
    (ph, pw), (ch, cw) = padding, center
    return TF.pad(x, (pw + cw, pw - cw, ph + ch, ph - ch), value=value)


def conv2d(x, w, b, stride, padding, mode, center):
    center = _as_xcorr(w.shape[2:], center, mode)
    if mode == "conv":
        w = torch.flip(w, dims=(2, 3))
    return TF.conv2d(_pad(x, padding, center), w, b, stride)


def maxpool2d(x, kernel, stride, padding, mode, center):
    center = _as_xcorr(kernel, center, mode)
    return TF.max_pool2d(_pad(x, padding, center, value=-torch.inf), kernel, stride)


def grads(f, dy, *inputs):
    """Forward with autograd, then the gradients of ``sum(dy * f(inputs))`` for every input (None stays None)."""
    leaves = [None if a is None else torch.tensor(a, requires_grad=True) for a in inputs]
    y = f(*leaves)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), [None if leaf is None else leaf.grad.numpy() for leaf in leaves]
