"""A handgrad model as an ONNX file, for ONNX Runtime, TensorRT, OpenVINO, onnxruntime-web and the rest.

The graph is built node by node with the ``onnx`` package's helpers, opset :data:`OPSET` and IR version
:data:`IR_VERSION`, and every model is checked with ``onnx.checker.check_model(full_check=True)`` before it
is returned.  The batch axis is free (``N``); the other axes are those of ``input_shape``.  The graph
computes what ``model.predict`` computes (Dropout is the identity, batch normalisation takes its running
statistics; with ``tta="flip"`` on each image and its mirror, as a classifier's ``tta`` does), layer by layer,
on the identities the torch bridge uses (:mod:`handgrad.plain_window`): a
centre, a true convolution or a ``ceil_mode`` becomes padding or cropping of the input, then a plain window
with the flipped kernel.  docs/onnx.md lists the nodes of each layer.

The ``onnx`` package is optional; this module alone needs it: ``.venv/bin/pip install -e '.[onnx]'`` in the checkout.
"""

from __future__ import annotations

import json

import numpy as np

from ._extras import install_command

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "handgrad.onnx_export (and handgrad export) needs the onnx package, which handgrad does not install by "
        f"itself: {install_command('onnx')}"
    ) from None

from . import __version__, plain_window
from . import layers as L
from .checkpoint import atomic_write
from .evaluate import check_tta
from .fast.head import ends_in_softmax
from .model import Sequential

OPSET = 21  # the ONNX operator set: Pad's "wrap" mode (circular padding) needs 19
IR_VERSION = 10  # the file format version that goes with opset 21 (onnx 1.16)
BATCH = "N"  # the name of the free batch axis
INPUT, PIXELS, OUTPUT = "input", "pixels", "output"  # graph inputs (float images, or uint8 pixels) and output
ELEMENT_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}  # handgrad's names -> ONNX's
LAST = np.iinfo(np.int64).max  # a Slice end that keeps everything to the end


class _Graph:
    """Nodes and initialisers in the making.  A node and its output are named after the layer that makes them
    (``"3.Conv"``, ``"4.body.0.Pad"``), and a parameter as in ``model.params`` (``"3.weight"``)."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        candidate, k = name, 1
        while candidate in self._names:
            k += 1
            candidate = f"{name}{k}"
        self._names.add(candidate)
        return candidate

    def constant(self, name: str, value, dtype=None) -> str:
        array = np.ascontiguousarray(np.asarray(value, dtype=self.dtype if dtype is None else dtype))
        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], where: str, **attributes) -> str:
        return self.nodes_of(op, inputs, 1, where, **attributes)[0]

    def nodes_of(self, op: str, inputs: list[str], count: int, where: str, **attributes) -> list[str]:
        """A node of ``count`` outputs (a Split's parts), named as the node and after it."""
        names = [self._unique(f"{where}{op}") for _ in range(count)]
        self.nodes.append(helper.make_node(op, inputs, names, name=names[0], **attributes))
        return names


def _flat(sides) -> list[int]:
    """``((top, bottom), (left, right))`` in ONNX's order for the two spatial axes: ``[top, left, bottom, right]``."""
    ((top, bottom), (left, right)) = sides
    return [top, left, bottom, right]


def _pad(g: _Graph, x: str, pads, where: str, mode="constant", value=0.0) -> str:
    """A Pad node on the spatial axes (2, 3), ``pads`` in ONNX's order; ``value`` fills in ``"constant"`` mode."""
    fill = g.constant(f"{where}value", value) if mode == "constant" else ""  # "": an input left out
    pads, axes = g.constant(f"{where}pads", pads, np.int64), g.constant(f"{where}axes", [2, 3], np.int64)
    return g.node("Pad", [x, pads, fill, axes], where, mode=mode)


def _crop(g: _Graph, x: str, crop, where: str) -> str:
    """A Slice node that removes ``-crop`` cells (``crop <= 0``, ONNX's order) from the spatial axes' ends."""
    starts = [-crop[0], -crop[1]]
    ends = [crop[2] if crop[2] else LAST, crop[3] if crop[3] else LAST]  # a negative end counts from the end
    inputs = [g.constant(f"{where}starts", starts, np.int64), g.constant(f"{where}ends", ends, np.int64)]
    return g.node("Slice", [x, *inputs, g.constant(f"{where}axes", [2, 3], np.int64)], where)


def _window_input(g: _Graph, x: str, sides, size, where: str, value=0.0, limit=None) -> tuple[str, list[int]]:
    """The input padded by ``sides`` (negative: cropped), as a plain window reads it: returns the tensor and
    the pads (``>= 0``, ONNX's order) left to the window's own ``pads`` attribute, which read as ``value``.

    Crops are a Slice first.  Where a crop reaches beyond the input (a centre far beyond a convolution's
    padding) or a pad reaches ``limit`` (ONNX Runtime wants a pooling's pads smaller than its window), the pads
    are an explicit Pad node first instead, filled with ``value``.
    """
    grow, crop = plain_window.grow_and_crop(_flat(sides))
    fits = all(n + crop[k] + crop[k + 2] > 0 for k, n in enumerate(size))
    small = limit is None or all(p < limit[k % 2] for k, p in enumerate(grow))
    if not (fits and small):
        x, grow = _pad(g, x, grow, where, value=value), [0, 0, 0, 0]
    return (_crop(g, x, crop, where) if any(crop) else x), list(grow)


def _own_padding(g: _Graph, x: str, window, sides, size, where: str, mode="constant"):
    """The window's own padding as a Pad node in ``mode``: returns the padded tensor, its size, and the sides
    that remain for the plain window (the centre's shift)."""
    x = _pad(g, x, _flat(window.padding), where, mode=mode)
    rest = tuple((a - p0, b - p1) for (a, b), (p0, p1) in zip(sides, window.padding))
    return x, window.padded(*size), rest


def _conv(g: _Graph, layer: L.Conv2D, x: str, shape, where: str) -> str:
    w, size, sides = layer.window, shape[2:], plain_window.reads(layer.window)
    if layer.padding_mode != "zeros":  # fill the padding as the mode says; reads beyond it count as zero
        x, size, sides = _own_padding(g, x, w, sides, size, where, PAD_MODES[layer.padding_mode])
    x, pads = _window_input(g, x, sides, size, where)
    inputs = [x, g.constant(f"{where}weight", plain_window.xcorr_weight(layer.params["weight"], w))]
    if "bias" in layer.params:
        inputs.append(g.constant(f"{where}bias", layer.params["bias"]))
    return g.node(
        "Conv",
        inputs,
        where,
        kernel_shape=w.kernel,
        strides=w.stride,
        dilations=w.dilation,
        group=layer.groups,
        pads=pads,
    )


def _maxpool(g: _Graph, layer: L.MaxPool2D, x: str, shape, where: str) -> str:
    w, size = layer.window, shape[2:]
    x, pads = _window_input(g, x, plain_window.reads(w, size), size, where, -np.inf, limit=w.kernel)
    return g.node("MaxPool", [x], where, kernel_shape=w.kernel, strides=w.stride, dilations=w.dilation, pads=pads)


def _avgpool(g: _Graph, layer: L.AvgPool2D, x: str, shape, where: str) -> str:
    """AveragePool counting only the cells of its input (``count_include_pad=0``): with ``count_include_pad``
    the padding's zeros are made cells of the input first, and the pads of the plain window (the centre's
    shift, ``ceil_mode``'s last window) count as neither, as in handgrad."""
    w, size = layer.window, shape[2:]
    sides = plain_window.reads(w, size)
    if layer.count_include_pad and any(map(any, w.padding)):
        x, size, sides = _own_padding(g, x, w, sides, size, where)
    x, pads = _window_input(g, x, sides, size, where)
    return g.node("AveragePool", [x], where, kernel_shape=w.kernel, strides=w.stride, pads=pads, count_include_pad=0)


def _linear(g: _Graph, layer: L.Linear, x: str, shape, where: str) -> str:
    """Gemm takes handgrad's ``(in, out)`` weight as it is: ``Y = X W + B``."""
    inputs = [x, g.constant(f"{where}weight", layer.params["weight"])]
    if "bias" in layer.params:
        inputs.append(g.constant(f"{where}bias", layer.params["bias"]))
    return g.node("Gemm", inputs, where)


def _batchnorm(g: _Graph, layer, x: str, shape, where: str) -> str:
    """BatchNormalization in inference mode with the running statistics (not folded into a neighbour)."""
    n = layer.num_features
    statistics = [layer.params.get("weight", np.ones(n)), layer.params.get("bias", np.zeros(n))]
    names = ["weight", "bias", "running_mean", "running_var"]
    values = statistics + [layer.buffers["running_mean"], layer.buffers["running_var"]]
    inputs = [g.constant(f"{where}{name}", value) for name, value in zip(names, values)]
    return g.node("BatchNormalization", [x, *inputs], where, epsilon=layer.eps)


_NODES = {
    L.Conv2D: _conv,
    L.MaxPool2D: _maxpool,
    L.AvgPool2D: _avgpool,
    L.GlobalAvgPool2D: lambda g, layer, x, shape, where: g.node(
        "Flatten", [g.node("GlobalAveragePool", [x], where)], where, axis=1
    ),
    L.Linear: _linear,
    L.BatchNorm2D: _batchnorm,
    L.BatchNorm1D: _batchnorm,
    L.Dropout: lambda g, layer, x, shape, where: x,  # the identity in inference
    L.ReLU: lambda g, layer, x, shape, where: g.node("Relu", [x], where),
    L.LeakyReLU: lambda g, layer, x, shape, where: g.node("LeakyRelu", [x], where, alpha=layer.negative_slope),
    L.ELU: lambda g, layer, x, shape, where: g.node("Elu", [x], where, alpha=layer.alpha),
    L.Sigmoid: lambda g, layer, x, shape, where: g.node("Sigmoid", [x], where),
    L.Tanh: lambda g, layer, x, shape, where: g.node("Tanh", [x], where),
    L.Softmax: lambda g, layer, x, shape, where: g.node("Softmax", [x], where, axis=1),
    L.Flatten: lambda g, layer, x, shape, where: g.node("Flatten", [x], where, axis=1),
}


def _emit(g: _Graph, layer, x: str, sample: np.ndarray, where: str) -> tuple[str, np.ndarray]:
    """The nodes of ``layer`` on tensor ``x``: returns its output tensor, and ``layer``'s handgrad output for
    ``sample``, one input of the shape ``x`` has (the layers check their input, and the windows need its size)."""
    name = f"layer {where.rstrip('.')}" if where else "the model"
    if isinstance(layer, Sequential):
        for i, part in enumerate(layer):
            x, sample = _emit(g, part, x, sample, f"{where}{i}.")
        return x, sample
    if isinstance(layer, L.Residual):
        body, out = _emit(g, layer.body, x, sample, f"{where}body.")
        skip, through = (
            (x, sample) if layer.projection is None else _emit(g, layer.projection, x, sample, f"{where}projection.")
        )
        if out.shape != through.shape:
            raise ValueError(
                f"to_onnx: {name} (Residual): the body gives shape {out.shape} but the skip path {through.shape}"
            )
        return g.node("Add", [body, skip], where), out + through
    if type(layer) not in _NODES:
        raise ValueError(f"to_onnx: {name} ({type(layer).__name__}) has no ONNX counterpart here")
    try:
        out = layer.predict(sample)
    except ValueError as error:
        raise ValueError(f"to_onnx: {name} ({type(layer).__name__}) does not take its input: {error}") from None
    return _NODES[type(layer)](g, layer, x, sample.shape, where), out


def _normalize(g: _Graph, normalizer, element_type: int, channels: int, where="normalize.") -> str:
    """handgrad's :class:`~handgrad.data.Normalizer` as nodes: uint8 (N, H, W) -> ``(x/255 - mean)/std`` as
    (N, 1, H, W), or (N, C, H, W) as it is for C > 1 channels, each step in the model's dtype as handgrad takes it."""
    x = g.node("Cast", [PIXELS], where, to=element_type)
    x = g.node("Div", [x, g.constant(f"{where}255", 255)], where)
    if (normalizer.mean, normalizer.std) != (0.0, 1.0):
        x = g.node("Sub", [x, g.constant(f"{where}mean", normalizer.mean)], where)
        x = g.node("Div", [x, g.constant(f"{where}std", normalizer.std)], where)
    if channels > 1:
        return x
    return g.node("Unsqueeze", [x, g.constant(f"{where}axes", [1], np.int64)], where)


def _with_mirrors(g: _Graph, x: str, where="tta.") -> str:
    """(N, ..., W) -> (2N, ..., W): the images, then each mirrored left to right, ``X'[..., j] = X[..., W-1-j]``
    (a Slice from the last column back to the first)."""
    first = np.iinfo(np.int64).min  # a backward Slice's end that keeps everything to the start
    arguments = (("start", -1), ("end", first), ("axis", -1), ("step", -1))
    start, end, axis, step = (g.constant(f"{where}{name}", [value], np.int64) for name, value in arguments)
    mirrored = g.node("Slice", [x, start, end, axis, step], where)
    return g.node("Concat", [x, mirrored], where, axis=0)


def _mirror_average(g: _Graph, y: str, logits: bool, where="tta.") -> str:
    """The model's outputs (2N, K) of :func:`_with_mirrors`'s batch -> (N, K) as :func:`handgrad.evaluate.outputs`
    gives them: for logits ``ln P = logaddexp(a, b) - ln 2`` with a and b the two halves' log-softmax, written
    ``max(a, b) + ln(1 + e^-|a - b|) - ln 2``; otherwise the mean of the two halves."""
    halves = g.nodes_of("Split", [y], 2, where, axis=0, num_outputs=2)
    if not logits:
        return g.node("Mul", [g.node("Add", halves, where), g.constant(f"{where}half", 0.5)], where)
    a, b = (g.node("LogSoftmax", [half], where, axis=1) for half in halves)
    gap = g.node("Exp", [g.node("Neg", [g.node("Abs", [g.node("Sub", [a, b], where)], where)], where)], where)
    softplus = g.node("Log", [g.node("Add", [g.constant(f"{where}one", 1.0), gap], where)], where)
    return g.node(
        "Sub",
        [g.node("Add", [g.node("Max", [a, b], where), softplus], where), g.constant(f"{where}ln2", np.log(2))],
        where,
    )


def _dtype(model) -> np.dtype:
    dtypes = {v.dtype for v in {**model.params, **model.buffers}.values()} or {np.dtype(np.float32)}
    if len(dtypes) != 1:
        raise ValueError(f"to_onnx: the model mixes parameter dtypes {sorted(map(str, dtypes))}")
    return dtypes.pop()


def to_onnx(model, input_shape, normalizer=None, classes=None, tta="none", logits=None) -> onnx.ModelProto:
    """The ONNX model that computes ``model.predict`` on a batch of inputs of one sample's ``input_shape``.

    Args:
        model: a Sequential (or any handgrad layer) of float32 or float64 parameters; its mode does not matter.
        input_shape: one sample's shape, ``(C, H, W)`` for images; the graph's input is ``(N, *input_shape)``
            and named ``"input"``.
        normalizer: a :class:`~handgrad.data.Normalizer`: the graph then takes uint8 pixels (N, H, W) for
            ``input_shape`` (1, H, W), (N, C, H, W) for (C, H, W), named ``"pixels"``, exactly as ``handgrad
            predict`` reads images.
        classes: the class names, one per output feature, kept in the model's ``metadata_props`` as
            ``"classes"`` (a JSON list).
        tta: ``"flip"`` runs each image and its mirror and averages them as a classifier's ``tta`` does
            (:func:`handgrad.evaluate.outputs`): ``logits`` says whether the model's outputs are logits (their
            probabilities averaged, given as ``ln P``) or are averaged as they are; by default they are logits
            unless the model ends in a Softmax.

    The output is named ``"output"``: the model's scores (logits, or probabilities for a model that ends in a
    Softmax).  A layer the exporter does not know raises ``ValueError`` naming it.
    """
    check_tta(tta, "to_onnx")
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in input_shape):
        raise ValueError(f"to_onnx: input_shape must be one sample's shape, such as (1, 28, 28), got {input_shape}")
    if normalizer is not None and len(input_shape) != 3:
        raise ValueError(f"to_onnx: a normalizer makes images (C, H, W) from pixels, got input_shape {input_shape}")
    dtype = _dtype(model)
    element_type, g = ELEMENT_TYPES[dtype], _Graph(dtype)
    if normalizer is None:
        x = INPUT
        given = helper.make_tensor_value_info(INPUT, element_type, [BATCH, *input_shape])
    else:
        x = _normalize(g, normalizer, element_type, input_shape[0])
        pixels = input_shape[1:] if input_shape[0] == 1 else input_shape
        given = helper.make_tensor_value_info(
            PIXELS, TensorProto.UINT8, [BATCH, *pixels], "uint8 pixels, as handgrad predict reads images"
        )
    if logits is None:
        logits = not ends_in_softmax(model)
    x = x if tta == "none" else _with_mirrors(g, x)
    y, sample = _emit(g, model, x, np.zeros((1, *input_shape), dtype=dtype), "")
    y = y if tta == "none" else _mirror_average(g, y, logits)
    shape = sample.shape
    if g.nodes and g.nodes[-1].output[0] == y:  # the last node's output is the graph's
        g.nodes[-1].output[0] = OUTPUT
    else:
        g.nodes.append(helper.make_node("Identity", [y], [OUTPUT], name=OUTPUT))
    if classes is not None and (len(shape) != 2 or len(classes) != shape[1]):
        raise ValueError(f"to_onnx: {len(classes)} class names for an output of shape {shape[1:]} per sample")
    graph = helper.make_graph(
        g.nodes,
        "handgrad",
        [given],
        [helper.make_tensor_value_info(OUTPUT, element_type, [BATCH, *shape[1:]])],
        g.initializers,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="handgrad",
        producer_version=__version__,
    )
    metadata = {} if classes is None else {"classes": json.dumps(list(classes))}
    if tta != "none":
        metadata["tta"] = tta
    if normalizer is not None:
        metadata["normalizer"] = json.dumps({"mean": normalizer.mean, "std": normalizer.std})
    helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, path, input_shape, normalizer=None, classes=None, tta="none", logits=None) -> onnx.ModelProto:
    """Write :func:`to_onnx`'s model to ``path`` (atomically: the file holds the old content or all the new)
    and return it."""
    proto = to_onnx(model, input_shape, normalizer, classes, tta, logits)
    atomic_write(path, proto.SerializeToString())
    return proto
