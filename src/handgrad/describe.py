"""A model as JSON and back: each layer's type and the constructor arguments that rebuild it.

``describe(model, loss)`` gives ``{"layers": [...], "loss": "SoftmaxCrossEntropy"}``, each layer
``{"type": "Conv2D", "args": {...}}`` (a Sequential lists its layers, a Residual its body and projection);
``rebuild(description, dtype)`` makes the same model with fresh weights, for a file's weights to be copied in.
Only handgrad's own layer classes are described, by their exact type: a subclass or a layer of one's own may
compute something else under the same arguments, and is refused with its name.
"""

from __future__ import annotations

import numpy as np

from . import layers as L
from . import losses
from .model import Sequential

LOSSES = {cls.__name__: cls for cls in (losses.SoftmaxCrossEntropy, losses.CrossEntropy, losses.MSE)}


def _window(w, pooling: bool) -> dict:
    args = {
        "kernel_size": list(w.kernel),
        "stride": list(w.stride),
        "padding": [list(side) for side in w.padding],
        "mode": w.mode,
        "center": list(w.center),
    }
    return {**args, "ceil_mode": w.ceil_mode} if pooling else args


def _conv(layer) -> dict:
    return {
        "in_channels": layer.in_channels,
        "out_channels": layer.out_channels,
        **_window(layer.window, False),
        "bias": "bias" in layer.params,
        "dilation": list(layer.window.dilation),
        "groups": layer.groups,
        "padding_mode": layer.padding_mode,
    }


def _norm(layer) -> dict:
    affine = bool(layer.params)
    return {"num_features": layer.num_features, "eps": layer.eps, "momentum": layer.momentum, "affine": affine}


def _linear(layer) -> dict:
    return {"in_features": layer.in_features, "out_features": layer.out_features, "bias": "bias" in layer.params}


# type -> (its arguments, whether its constructor takes dtype)
_LAYERS = {
    L.Conv2D: (_conv, True),
    L.Linear: (_linear, True),
    L.BatchNorm1D: (_norm, True),
    L.BatchNorm2D: (_norm, True),
    L.MaxPool2D: (lambda l: {**_window(l.window, True), "dilation": list(l.window.dilation)}, False),
    L.AvgPool2D: (lambda l: {**_window(l.window, True), "count_include_pad": l.count_include_pad}, False),
    L.Dropout: (lambda l: {"p": l.p}, False),
    L.LeakyReLU: (lambda l: {"negative_slope": l.negative_slope}, False),
    L.ELU: (lambda l: {"alpha": l.alpha}, False),
    **{cls: ((lambda l: {}), False) for cls in (L.ReLU, L.Sigmoid, L.Tanh, L.Softmax, L.Flatten, L.GlobalAvgPool2D)},
}
_BY_NAME = {cls.__name__: cls for cls in (*_LAYERS, Sequential, L.Residual)}


def describe_layer(layer, where: str = "model") -> dict:
    kind = type(layer)
    if kind is Sequential:
        return {"type": "Sequential", "layers": [describe_layer(x, f"{where}.{i}") for i, x in enumerate(layer)]}
    if kind is L.Residual:
        projection = None if layer.projection is None else describe_layer(layer.projection, f"{where}.projection")
        return {"type": "Residual", "body": describe_layer(layer.body, f"{where}.body"), "projection": projection}
    if kind not in _LAYERS:
        raise ValueError(
            f"{where}: a {kind.__name__} cannot be described for a file: only handgrad's own layers "
            f"({', '.join(sorted(_BY_NAME))}) can; save such a model's params and buffers yourself"
        )
    return {"type": kind.__name__, "args": _LAYERS[kind][0](layer)}


def describe(model, loss) -> dict:
    """The JSON-ready description of ``model`` (a Sequential) and its ``loss``."""
    if type(model) is not Sequential:
        raise ValueError(f"model: expected a handgrad.Sequential, got {type(model).__name__}")
    if type(loss) not in LOSSES.values():
        raise ValueError(f"loss: expected one of {', '.join(LOSSES)}, got {type(loss).__name__}")
    return {"layers": describe_layer(model)["layers"], "loss": type(loss).__name__, "reduction": loss.reduction}


def rebuild_layer(description, dtype, where: str = "model"):
    if not isinstance(description, dict) or description.get("type") not in _BY_NAME:
        expected = f"a layer {{'type': one of {sorted(_BY_NAME)}, ...}}"
        raise ValueError(f"{where}: expected {expected}, got {description!r:.80}")
    kind = _BY_NAME[description["type"]]
    if kind is Sequential:
        return Sequential([rebuild_layer(x, dtype, f"{where}.{i}") for i, x in enumerate(description["layers"])])
    if kind is L.Residual:
        projection = description["projection"]
        return L.Residual(
            rebuild_layer(description["body"], dtype, f"{where}.body"),
            None if projection is None else rebuild_layer(projection, dtype, f"{where}.projection"),
        )
    args = description.get("args")
    if not isinstance(args, dict):
        raise ValueError(f"{where}: a {kind.__name__} without its arguments")  # noqa: TRY004 - a file's contents
    if _LAYERS[kind][1]:
        args = {**args, "dtype": dtype}
        if kind in (L.Conv2D, L.Linear):
            args["rng"] = np.random.default_rng(0)  # weights that the file's replace
    elif kind is L.Dropout:
        args = {**args, "rng": np.random.default_rng(0)}
    try:
        return kind(**args)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: a {kind.__name__} cannot be built from {description['args']} ({error})") from None


def rebuild(description: dict, dtype):
    """``(model, loss)`` as :func:`describe` described them, with fresh weights of ``dtype``."""
    if not isinstance(description, dict) or set(description) != {"layers", "loss", "reduction"}:
        expected = "{'layers', 'loss', 'reduction'}"
        raise ValueError(f"model: expected {expected}, got {description!r:.80}")
    if description["loss"] not in LOSSES:
        raise ValueError(f"model: loss must be one of {sorted(LOSSES)}, got {description['loss']!r}")
    model = rebuild_layer({"type": "Sequential", "layers": description["layers"]}, dtype)
    try:
        loss = LOSSES[description["loss"]](description["reduction"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"model: loss {description['loss']} cannot be built ({error})") from None
    return model, loss
