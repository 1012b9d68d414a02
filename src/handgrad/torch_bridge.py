"""The same network in PyTorch: build the ``torch.nn`` module equivalent to a handgrad ``Sequential`` and
copy parameters both ways.  PyTorch is optional; this module alone needs it.

The mapping, layer by layer:

- ``Conv2D``: PyTorch's ``conv2d`` is handgrad's cross-correlation with centre (0, 0).  Any other centre and
  mode go through the identity ``conv(W, centre c) == xcorr(W[..., ::-1, ::-1], centre K-1-c)`` and
  asymmetric padding: a cross-correlation with centre c reads ``Xp[i*S + D*(a - c)]``, which is ``conv2d``
  (no padding) on the input padded by ``P0 + D*c`` before and ``P1 - D*c`` after (a negative pad crops).
  So the module is ``ZeroPad2d`` then ``Conv2d`` (with a padding mode: its padding module first), and a
  true convolution's torch weight is the flipped kernel.  Dilation and groups map one to one.
- ``MaxPool2D``: the same, padding with minus infinity (``ConstantPad2d``) before ``MaxPool2d``; with
  ``ceil_mode`` only the windows PyTorch's own padding can express.
- ``AvgPool2D``: ``AvgPool2d`` for the windows it expresses (origin centre, cross-correlation placement,
  padding at most half the window); ``GlobalAvgPool2D``: ``AdaptiveAvgPool2d(1)`` then ``Flatten``.
- ``Linear``: handgrad's ``(in, out)`` weight is the transpose of ``nn.Linear``'s ``(out, in)``.
- ``BatchNorm2D``/``1D`` (with their running statistics), ``Dropout``, ``ReLU``, ``LeakyReLU``, ``ELU``,
  ``Sigmoid``, ``Tanh``, ``Flatten``, ``Softmax`` (over dim 1): their ``torch.nn`` namesakes; ``Residual``:
  :class:`TorchResidual`.  Dropout draws its own masks in PyTorch, so models with it agree only in eval mode.
"""

from __future__ import annotations

import numpy as np

from ._extras import install_command

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "handgrad.torch_bridge (and handgrad compare) needs PyTorch, which handgrad does not install by itself: "
        f"{install_command('compare')}: PyTorch 2.13.0, CPU is enough, and matplotlib for the plot"
    ) from None

from . import layers as L
from . import plain_window
from .model import Sequential, named_leaves

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _shift(window):
    """``(left, right, top, bottom)`` padding that makes a plain PyTorch window read what handgrad's reads."""
    (top, bottom), (left, right) = plain_window.reads(window)
    return (left, right, top, bottom)


_PAD_MODULES = {"reflect": "ReflectionPad2d", "replicate": "ReplicationPad2d", "circular": "CircularPad2d"}


def _conv(layer: L.Conv2D) -> nn.Module:
    w = layer.window
    conv = nn.Conv2d(
        layer.in_channels,
        layer.out_channels,
        w.kernel,
        w.stride,
        dilation=w.dilation,
        groups=layer.groups,
        bias="bias" in layer.params,
    )
    if plain_window.is_plain(w) and layer.padding_mode == "zeros":
        conv.padding = tuple(p[0] for p in w.padding)  # exactly nn.Conv2d(..., padding=P)
        return conv
    if layer.padding_mode == "zeros":
        return nn.Sequential(*_shifts(_shift(w)), conv)
    # fill the padding as the mode says, then move by the centre (reads beyond count as zero)
    (top, bottom), (left, right) = w.padding
    fill = getattr(nn, _PAD_MODULES[layer.padding_mode])((left, right, top, bottom))
    return nn.Sequential(fill, *_shifts([a - b for a, b in zip(_shift(w), (left, right, top, bottom))]), conv)


def _pool(layer: L.MaxPool2D) -> nn.Module:
    w = layer.window
    half = all(2 * p[0] <= k for p, k in zip(w.padding, w.kernel))  # PyTorch's limit on its padding
    if plain_window.is_plain(w) and half:
        return nn.MaxPool2d(w.kernel, w.stride, tuple(p[0] for p in w.padding), w.dilation, ceil_mode=w.ceil_mode)
    if w.ceil_mode:
        raise ValueError(
            "to_torch_module: MaxPool2D with ceil_mode and a centre, mode or padding PyTorch cannot express has "
            "no PyTorch counterpart (its ceil_mode rule depends on its own padding)"
        )
    return nn.Sequential(*_shifts(_shift(w), -float("inf")), nn.MaxPool2d(w.kernel, w.stride, dilation=w.dilation))


def _shifts(pad, value=0.0) -> list:
    """The pad as modules: the additions, then the crops (negative pads), which PyTorch cannot take in one
    step when a crop is larger than the input it starts from."""
    grow, crop = plain_window.grow_and_crop(pad)
    return [nn.ConstantPad2d(grow, value)] + ([nn.ConstantPad2d(crop, value)] if any(crop) else [])


def _avgpool(layer: L.AvgPool2D) -> nn.Module:
    w = layer.window
    if not (plain_window.is_plain(w) and all(2 * p[0] <= k for p, k in zip(w.padding, w.kernel))):
        raise ValueError(
            "to_torch_module: AvgPool2D with a centre, mode or padding PyTorch's AvgPool2d cannot express has "
            "no PyTorch counterpart (the padding it counts would differ)"
        )
    padding = tuple(p[0] for p in w.padding)
    return nn.AvgPool2d(w.kernel, w.stride, padding, w.ceil_mode, layer.count_include_pad)


def _batchnorm(layer) -> nn.Module:
    cls = nn.BatchNorm2d if isinstance(layer, L.BatchNorm2D) else nn.BatchNorm1d
    return cls(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine="weight" in layer.params)


class TorchResidual(nn.Module):
    """``body(x) + x``, or ``body(x) + projection(x)``: handgrad's Residual in PyTorch."""

    def __init__(self, body: nn.Module, projection: nn.Module | None):
        super().__init__()
        self.body, self.projection = body, projection

    def forward(self, x):
        return self.body(x) + (x if self.projection is None else self.projection(x))


_MODULES = {
    L.Conv2D: _conv,
    L.MaxPool2D: _pool,
    L.AvgPool2D: _avgpool,
    L.GlobalAvgPool2D: lambda layer: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    L.Linear: lambda layer: nn.Linear(layer.in_features, layer.out_features, bias="bias" in layer.params),
    L.BatchNorm2D: _batchnorm,
    L.BatchNorm1D: _batchnorm,
    L.Dropout: lambda layer: nn.Dropout(layer.p),
    L.ReLU: lambda layer: nn.ReLU(),
    L.LeakyReLU: lambda layer: nn.LeakyReLU(layer.negative_slope),
    L.ELU: lambda layer: nn.ELU(layer.alpha),
    L.Sigmoid: lambda layer: nn.Sigmoid(),
    L.Tanh: lambda layer: nn.Tanh(),
    L.Flatten: lambda layer: nn.Flatten(),
    L.Softmax: lambda layer: nn.Softmax(dim=1),
}


def _build(layer, where: str) -> nn.Module:
    if isinstance(layer, Sequential):
        return nn.Sequential(*(_build(part, f"{where}{i}.") for i, part in enumerate(layer)))
    if isinstance(layer, L.Residual):
        projection = None if layer.projection is None else _build(layer.projection, f"{where}projection.")
        return TorchResidual(_build(layer.body, f"{where}body."), projection)
    if type(layer) not in _MODULES:
        raise ValueError(
            f"to_torch_module: layer {where.rstrip('.')} ({type(layer).__name__}) has no PyTorch counterpart here"
        )
    module = _MODULES[type(layer)](layer)
    module.train(layer.training)
    return module


def _torch_layer(module: nn.Module) -> nn.Module:
    """The module that holds the parameters (the Conv2d inside a pad-then-convolve Sequential)."""
    return module[-1] if isinstance(module, nn.Sequential) else module


def _leaves(model, module: nn.Module):
    """(name prefix, handgrad layer, torch module holding its parameters) for every leaf layer, in order."""
    for name, layer in named_leaves(model):
        try:
            sub = module.get_submodule(name) if name else module
        except AttributeError:
            raise ValueError(f"the torch module has no layer {name!r} where the handgrad model has one") from None
        yield (f"{name}." if name else ""), layer, _torch_layer(sub)


def _swap_layout(layer, name, value: np.ndarray) -> np.ndarray:
    """A handgrad parameter as torch stores it, or back: each mapping is its own inverse."""
    if isinstance(layer, L.Linear) and name == "weight":
        return value.T  # (in, out) -> (out, in)
    if isinstance(layer, L.Conv2D) and name == "weight":
        return plain_window.xcorr_weight(value, layer.window)
    return value


def to_torch_module(model: Sequential) -> nn.Module:
    """An ``nn.Sequential`` that computes what ``model`` computes, with ``model``'s parameters, running
    statistics, dtype and training mode."""
    module = _build(model, "")
    dtypes = {p.dtype for p in model.params.values()} or {np.dtype(np.float32)}
    if len(dtypes) != 1:
        raise ValueError(f"to_torch_module: the model mixes parameter dtypes {sorted(map(str, dtypes))}")
    module.to(TORCH_DTYPES[dtypes.pop()])
    to_torch(model, module)
    return module


def to_torch(model: Sequential, module: nn.Module) -> None:
    """Copy handgrad's parameters and buffers into a module built by :func:`to_torch_module`."""
    with torch.no_grad():
        for _, layer, target in _leaves(model, module):
            for name, value in {**layer.params, **layer.buffers}.items():
                getattr(target, name).copy_(torch.from_numpy(np.ascontiguousarray(_swap_layout(layer, name, value))))


def from_torch(model: Sequential, module: nn.Module) -> None:
    """Copy a module's parameters and buffers (built by :func:`to_torch_module`) into handgrad's, in place."""
    for _, layer, source in _leaves(model, module):
        for name, value in {**layer.params, **layer.buffers}.items():
            np.copyto(value, _swap_layout(layer, name, getattr(source, name).detach().cpu().numpy()))


def _named_from_torch(model: Sequential, module: nn.Module, gradients: bool) -> dict[str, np.ndarray]:
    named = {}
    for prefix, layer, source in _leaves(model, module):
        for name in layer.params:
            tensor = getattr(source, name).grad if gradients else getattr(source, name)
            named[f"{prefix}{name}"] = _swap_layout(layer, name, tensor.detach().cpu().numpy())
    return named


def params_from_torch(model: Sequential, module: nn.Module) -> dict[str, np.ndarray]:
    """The module's parameters, named and laid out as ``model.params`` (copies; the model is not changed)."""
    return _named_from_torch(model, module, gradients=False)


def grads_from_torch(model: Sequential, module: nn.Module) -> dict[str, np.ndarray]:
    """The module's parameter gradients, named and laid out as ``model.params``."""
    return _named_from_torch(model, module, gradients=True)


def load_state_dict(model: Sequential, state_dict: dict) -> None:
    """Load a torch ``state_dict`` of a matching architecture into ``model``.

    The entries are taken module by module in their order (``"0.weight"``, ``"0.bias"``, ``"3.weight"``...),
    one module per handgrad layer with parameters or buffers (BatchNorm's running statistics;
    ``num_batches_tracked`` is not used); names, counts and shapes are checked before anything is copied.
    A plain ``nn.Conv2d`` is a cross-correlation, so for a ``Conv2D`` in ``mode="conv"`` the kernel is
    flipped, which keeps the function the module computed.
    """
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in state_dict.items():
        prefix, _, name = key.rpartition(".")
        if name != "num_batches_tracked":
            groups.setdefault(prefix, {})[name] = tensor.detach().cpu().numpy()
    leaves = [
        (prefix, layer) for prefix, layer, _ in _leaves(model, _build(model, "")) if layer.params or layer.buffers
    ]
    if len(groups) != len(leaves):
        raise ValueError(
            f"load_state_dict: the state_dict holds {len(groups)} modules with parameters, the model {len(leaves)}"
        )
    values = []
    for (where, layer), (prefix, group) in zip(leaves, groups.items()):
        targets = {**layer.params, **layer.buffers}
        if set(group) != set(targets):
            raise ValueError(
                f"load_state_dict: {prefix!r} holds {sorted(group)}, layer {where.rstrip('.')} "
                f"({type(layer).__name__}) needs {sorted(targets)}"
            )
        for name, value in group.items():
            value = _swap_layout(layer, name, value)
            if value.shape != targets[name].shape:
                raise ValueError(
                    f"load_state_dict: '{prefix}.{name}' has shape {tuple(value.shape)} as handgrad lays it out, "
                    f"layer {where.rstrip('.')} ({type(layer).__name__}) needs {targets[name].shape}"
                )
            values.append((targets[name], value))
    for target, value in values:
        np.copyto(target, value)


def torch_parameters(model: Sequential, module: nn.Module) -> list:
    """The module's parameters in the order of ``model.params``."""
    return [getattr(source, name) for _, layer, source in _leaves(model, module) for name in layer.params]


def torch_loss(loss):
    """A function ``(prediction, labels) -> loss`` in PyTorch that computes what the handgrad ``loss`` does."""
    import torch.nn.functional as F

    from . import losses

    if isinstance(loss, losses.SoftmaxCrossEntropy):
        return lambda z, t: F.cross_entropy(z, t, reduction=loss.reduction)
    if isinstance(loss, losses.CrossEntropy):  # on probabilities: -sum t ln y
        return lambda y, t: F.nll_loss(torch.log(y), t, reduction=loss.reduction)
    if isinstance(loss, losses.MSE):
        return lambda y, t: F.mse_loss(y, t, reduction=loss.reduction)
    raise ValueError(f"torch_loss: no PyTorch counterpart for {loss!r}")


def torch_optimizer(optimizer, model: Sequential, module: nn.Module):
    """The ``torch.optim`` optimiser with the same rule and hyper-parameters as the handgrad ``optimizer``."""
    from . import optim

    params = torch_parameters(model, module)
    if isinstance(optimizer, optim.SGD):
        return torch.optim.SGD(
            params,
            lr=optimizer.lr,
            momentum=optimizer.momentum,
            nesterov=optimizer.nesterov,
            weight_decay=optimizer.weight_decay,
        )
    if isinstance(optimizer, optim.Adam):
        return torch.optim.Adam(
            params, lr=optimizer.lr, betas=optimizer.betas, eps=optimizer.eps, weight_decay=optimizer.weight_decay
        )
    raise ValueError(f"torch_optimizer: no PyTorch counterpart for {type(optimizer).__name__}")
