"""The steps a compiled model runs: one layer each, or several layers fused into one kernel.

Every step has the interface the plan drives (:mod:`.plan`)::

    forward(x, owned) -> y          predict(x, owned) -> y          backward(dy, owned, input_grad) -> dx
    output_owned(owned) -> bool     prediction_owned(owned) -> bool gradient_owned(owned) -> bool

``owned`` says whether the step may write over the array it is given: the plan passes True only for an array
that an earlier step of its own created for this pass and that nothing else holds (not the caller's input, not
an array some step keeps for its backward pass).  ``output_owned``, ``prediction_owned`` and ``gradient_owned``
tell the plan the same of what the step's last forward, predict and backward returned.  A step writes the parameter gradients of its layers into their ``grads``, so the
compiled model and its source are one model.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._checks import as_float_array, check_same_shape
from ..layers.residual import check_paths
from ..shapes import Window
from ._ufuncs import at_least
from .conv import conv2d_backward, conv2d_forward
from .conv_pool import conv2d_maxpool2d_backward, conv2d_maxpool2d_forward, fusable
from .linear import linear_backward
from .norm import batchnorm_backward, batchnorm_forward, folded
from .pool import maxpool2d_backward, maxpool2d_forward

# A clamp writes over its input from this size on.  A new array this large costs fresh pages from the operating
# system and a pass over memory that is not in cache; a smaller one is cheap to allocate.
IN_PLACE_BYTES = 4 << 20


def _writable(a) -> bool:
    """An array that a step may write its floating-point result into."""
    return isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.flags.writeable


def _set_grads(layer, dw, db) -> None:
    layer.grads = {"weight": dw} if db is None else {"weight": dw, "bias": db}


class Step:
    """A step that runs ``layers`` (the source layers, in order); ``kind`` says what it computes."""

    kind = "layer"

    def __init__(self, *layers):
        self.layers = layers
        self.cache = None

    def output_owned(self, owned: bool) -> bool:
        """Whether the last forward's output is a new array that nothing keeps (default: yes)."""
        return True

    def gradient_owned(self, owned: bool) -> bool:
        """Whether the last backward's result is a new array that nothing keeps (default: yes)."""
        return True

    def prediction_owned(self, owned: bool) -> bool:
        """``output_owned`` for the last ``predict``, which keeps nothing."""
        return self.output_owned(owned)

    def _cached(self):
        if self.cache is None:
            raise RuntimeError(f"{type(self.layers[0]).__name__}.backward called before forward: run forward(x) first")
        return self.cache

    def __repr__(self) -> str:
        return f"{self.kind}: " + ", ".join(repr(layer) for layer in self.layers)


class LayerStep(Step):
    """A layer the plan knows nothing about (or a layer with nothing to gain), run as itself.  What it returns may
    be anything it keeps, or the array it was given, so the plan writes over neither."""

    kind = "as itself"

    def forward(self, x, owned):
        return self.layers[0].forward(x)

    def predict(self, x, owned):
        return self.layers[0].predict(x)

    def backward(self, dy, owned, input_grad):
        return self.layers[0].backward(dy, input_grad)

    def output_owned(self, owned):
        return False

    def gradient_owned(self, owned):
        return False


class ConvolutionStep(Step):
    """A convolution in (C, H, W, N) memory with the scratch of :mod:`.conv`, from the plan's ``workspace``."""

    kind = "convolution"

    def __init__(self, conv, declared, workspace: dict):
        super().__init__(conv)
        self.declared, self.workspace = declared, workspace

    def _input(self, x):
        return F.filled(self.layers[0].as_input(x), self.declared.window, self.declared.padding_mode, "Conv2D")

    def forward(self, x, owned):
        params = self.layers[0].params
        xp, window = self._input(x)
        y, cache = conv2d_forward(
            xp, params["weight"], params.get("bias"), window, self.declared.groups, self.workspace
        )
        self.cache = (cache, np.shape(x)[2:])
        return y

    def predict(self, x, owned):
        params = self.layers[0].params
        return self.predict_with(x, params["weight"], params.get("bias"))

    def predict_with(self, x, weight, bias):
        """Inference with the given weight and bias, and temporaries of the call's own instead of the workspace:
        in inference, kept scratch would only add every layer's to the peak, and a forward pass's columns stay
        for its backward."""
        xp, window = self._input(x)
        return conv2d_forward(xp, weight, bias, window, self.declared.groups)[0]

    def backward(self, dy, owned, input_grad):
        cache, size = self._cached()
        dx, dw, db = conv2d_backward(dy, cache, input_grad)
        _set_grads(self.layers[0], dw, db)
        return F.filled_backward(dx, self.declared.window, self.declared.padding_mode, size)


class PoolingStep(Step):
    """Max-pooling in (C, H, W, N) memory, and with a clamp before it, the clamp taken in: the pooling of
    ``max(X, floor)`` (:func:`.pool.maxpool2d_forward`), so the clamp's pass never runs.  In evaluation mode the
    forward pass takes only the maxima; the winners are found if a backward pass asks."""

    def __init__(self, *layers, window: Window, workspace: dict, floor=None):
        super().__init__(*layers)
        self.window, self.floor, self.workspace = window, floor, workspace
        self.kind = "max-pooling" if floor is None else "clamp taken into max-pooling"

    def forward(self, x, owned):
        training = self.layers[-1].training
        y, self.cache = maxpool2d_forward(x, self.window, training, self.floor, self.workspace if training else None)
        return y

    def predict(self, x, owned):
        return maxpool2d_forward(x, self.window, False, self.floor)[0]

    def backward(self, dy, owned, input_grad):
        for layer in self.layers:
            layer.grads = {}
        return maxpool2d_backward(dy, self._cached())


class ConvolutionPoolingStep(Step):
    """A convolution of one input channel, an optional clamp, and a max-pooling whose windows tile the convolution's
    output, as one product over the pooling windows' cells (:mod:`.conv_pool`): its products are small beside the
    memory work of its columns and of the pooling, which that product shrinks.  Where the geometry of an input
    does not allow it, and in inference (which takes only the maxima), the convolution and the pooling run as the
    steps they would be on their own."""

    def __init__(self, conv, *rest, declared, window: Window, workspace: dict, floor=None):
        super().__init__(conv, *rest)
        self.conv = ConvolutionStep(conv, declared, workspace)
        self.pool = PoolingStep(*rest, window=window, workspace=workspace, floor=floor)
        self.declared, self.window, self.floor, self.workspace = declared, window, floor, workspace
        self.kind = "convolution, " + ("clamp, " if floor is not None else "") + "max-pooling as one product"
        self.separately = False  # the last forward ran the two steps

    def _fusable(self, x) -> bool:
        return np.ndim(x) == 4 and fusable(self.declared.window, self.window, tuple(np.shape(x)[2:]))

    def forward(self, x, owned):
        self.separately = not self._fusable(x)
        if self.separately:
            return self.pool.forward(self.conv.forward(x, owned), True)
        conv = self.layers[0]
        x, weight, bias = conv.as_input(x), conv.params["weight"], conv.params.get("bias")
        y, self.cache = conv2d_maxpool2d_forward(
            x, weight, bias, self.declared.window, self.window, self.floor, self.workspace
        )
        return y

    def predict(self, x, owned):
        return self.pool.predict(self.conv.predict(x, owned), True)

    def backward(self, dy, owned, input_grad):
        if self.separately:
            return self.conv.backward(self.pool.backward(dy, True, True), True, input_grad)
        dx, dw, db = conv2d_maxpool2d_backward(dy, self._cached(), input_grad)
        _set_grads(self.layers[0], dw, db)
        for layer in self.layers[1:]:
            layer.grads = {}
        return dx


class ClampStep(Step):
    """``max(X, floor)`` (ReLU), written over its input when the plan owns it and it is large, and its gradient
    written over dY when the plan owns that."""

    kind = "clamp"

    def __init__(self, layer, floor):
        super().__init__(layer)
        self.floor = floor

    def forward(self, x, owned):
        x = np.asarray(x)
        in_place = owned and x.nbytes >= IN_PLACE_BYTES and _writable(x)
        y = at_least(as_float_array(x, "x", "relu"), self.floor, out=x if in_place else None)
        self.cache = y > self.floor  # [X > floor], read off Y: the same cells, NaN included
        return y

    def predict(self, x, owned):
        x = as_float_array(x, "x", "relu")
        return at_least(x, self.floor, out=x if owned and _writable(x) else None)

    def backward(self, dy, owned, input_grad):
        self.layers[0].grads = {}
        positive = self._cached()
        dy = as_float_array(dy, "dy", "relu_backward")
        check_same_shape(dy, positive.shape, "dy", "relu_backward")
        return np.multiply(dy, positive, out=dy if owned and _writable(dy) else None)


class AffineStep(Step):
    """``Y = X W + B``, with dX in X's memory order (:func:`.linear.linear_backward`)."""

    kind = "affine"

    def forward(self, x, owned):
        layer = self.layers[0]
        y, self.cache = F.linear_forward(layer.as_input(x), layer.params["weight"], layer.params.get("bias"))
        return y

    def predict(self, x, owned):
        return self.predict_with(x, self.layers[0].params["weight"], self.layers[0].params.get("bias"))

    def predict_with(self, x, weight, bias):
        return F.linear_forward(self.layers[0].as_input(x), weight, bias)[0]

    def backward(self, dy, owned, input_grad):
        dx, dw, db = linear_backward(dy, self._cached(), input_grad)
        _set_grads(self.layers[0], dw, db)
        return dx


class BatchNormStep(Step):
    """Batch normalisation on one row per channel of (C, H, W, N) memory, in fewer passes (:mod:`.norm`)."""

    kind = "batch normalisation"

    def __init__(self, layer, declared):
        super().__init__(layer)
        self.declared = declared

    def _run(self, x, training):
        layer = self.layers[0]
        params, buffers = layer.params, layer.buffers
        return batchnorm_forward(
            layer.check_input(x),
            params.get("weight"),
            params.get("bias"),
            buffers["running_mean"],
            buffers["running_var"],
            training,
            self.declared.momentum,
            self.declared.eps,
        )

    def forward(self, x, owned):
        training = self.layers[0].training
        y, self.cache, running = self._run(x, training)
        if training:  # in place, so that references to the buffers stay valid
            np.copyto(self.layers[0].buffers["running_mean"], running[0])
            np.copyto(self.layers[0].buffers["running_var"], running[1])
        return y

    def predict(self, x, owned):
        return self._run(x, False)[0]

    def backward(self, dy, owned, input_grad):
        dx, dgamma, dbeta = batchnorm_backward(dy, self._cached())
        self.layers[0].grads = {} if dgamma is None else {"weight": dgamma, "bias": dbeta}
        return dx

    def folded(self, weight, bias, axis):
        """``weight`` and ``bias`` of the layer before, with this normalisation's evaluation mode taken in."""
        layer = self.layers[0]
        params, buffers = layer.params, layer.buffers
        return folded(
            weight,
            bias,
            params.get("weight"),
            params.get("bias"),
            buffers["running_mean"],
            buffers["running_var"],
            self.declared.eps,
            axis,
        )


class NormalizedStep(Step):
    """A convolution or an affine layer and the batch normalisation after it.  Training runs the two steps.  In
    inference the normalisation is a fixed affine map per output feature, taken into the layer's weights and bias
    (:func:`.norm.folded`) so that only the layer runs, where the weights are fewer than the outputs (a batch of
    images); where they are more (an affine layer on a few samples), folding them would cost more than the
    normalisation's pass over the outputs, which then runs."""

    def __init__(self, producer: Step, norm: BatchNormStep, axis: int):
        super().__init__(*producer.layers, *norm.layers)
        self.producer, self.norm, self.axis = producer, norm, axis
        self.kind = f"{producer.kind} with its batch normalisation folded in for inference"

    def forward(self, x, owned):
        return self.norm.forward(self.producer.forward(x, owned), True)

    def backward(self, dy, owned, input_grad):
        return self.producer.backward(self.norm.backward(dy, owned, True), True, input_grad)

    def predict(self, x, owned):
        layer = self.layers[0]
        outputs = math.prod(layer.output_shape(np.shape(x)))
        if layer.params["weight"].size > outputs:
            return self.norm.predict(self.producer.predict(x, owned), True)
        weight, bias = self.norm.folded(layer.params["weight"], layer.params.get("bias"), self.axis)
        return self.producer.predict_with(x, weight, bias)

    def output_owned(self, owned):
        return self.norm.output_owned(True)


class LogisticStep(Step):
    """``Y = 1 / (1 + e^-X)`` computed in one buffer (four passes), written over X when the plan owns it, and
    ``dX = dY Y (1 - Y)`` over dY.  An e^-X that overflows is infinite and gives Y = 0, its limit."""

    kind = "logistic"

    def _sigmoid(self, x, owned):
        x = as_float_array(x, "x", "sigmoid")
        y = np.negative(x, out=x if owned and _writable(x) else None)
        with np.errstate(over="ignore"):
            np.exp(y, out=y)
        y += 1
        return np.reciprocal(y, out=y)

    def forward(self, x, owned):
        self.cache = self._sigmoid(x, owned)
        return self.cache

    def predict(self, x, owned):
        return self._sigmoid(x, owned)

    def backward(self, dy, owned, input_grad):
        self.layers[0].grads = {}
        y = self._cached()
        dy = as_float_array(dy, "dy", "sigmoid_backward")
        check_same_shape(dy, y.shape, "dy", "sigmoid_backward")
        slope = np.subtract(1, y)
        slope *= y  # Y (1 - Y)
        return np.multiply(dy, slope, out=dy if owned and _writable(dy) else slope)

    def output_owned(self, owned):
        return False  # the backward pass reads Y

    def prediction_owned(self, owned):
        return True


class DropoutStep(Step):
    """Inverted dropout with the formula tier's masks (the same draws from the layer's generator): Y = X * M * s
    with ``M = [U >= p]`` and ``s = 1 / (1 - p)``; in evaluation mode the identity.  U comes in the C order of X's
    shape, as the formula tier draws it; the mask is laid out in X's memory order once (a transposing copy of a
    byte per value), so that both passes multiply arrays of one order."""

    kind = "dropout"

    def forward(self, x, owned):
        layer = self.layers[0]
        x = as_float_array(x, "x", "dropout")
        if not layer.training:
            self.cache = None
            return x
        self.cache = keep = _in_memory_order_of(x, F.dropout_keep(x.shape, layer.p, layer.rng))
        y = np.multiply(x, keep, out=x if owned and _writable(x) else None)
        y *= x.dtype.type(F.dropout_scale(layer.p))
        return y

    def predict(self, x, owned):
        return as_float_array(x, "x", "dropout")

    def backward(self, dy, owned, input_grad):
        layer = self.layers[0]
        layer.grads = {}
        dy = as_float_array(dy, "dy", "dropout_backward")
        if self.cache is None:  # evaluation mode
            return dy if owned else dy.copy()
        check_same_shape(dy, self.cache.shape, "dy", "dropout_backward")
        dx = np.multiply(dy, self.cache, out=dy if owned and _writable(dy) else None)
        dx *= dx.dtype.type(F.dropout_scale(layer.p))
        return dx

    def output_owned(self, owned):
        return True if self.layers[0].training else owned

    def prediction_owned(self, owned):
        return owned


def _in_memory_order_of(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``a`` (of x's shape, any order) copied into x's memory order: axes from the largest stride to the smallest."""
    order = sorted(range(x.ndim), key=lambda axis: -abs(x.strides[axis]))
    if order == sorted(range(a.ndim), key=lambda axis: -abs(a.strides[axis])):
        return a
    laid = np.empty([x.shape[axis] for axis in order], dtype=a.dtype)
    np.copyto(laid, a.transpose(order))
    return laid.transpose(np.argsort(order))


class FlattenStep(Step):
    """(N, C, H, W) -> (N, C*H*W): a view of its input (for (C, H, W, N) memory, the transpose of a C-order
    matrix), and its gradient a view of dY; what the plan owns stays owned."""

    kind = "flatten"

    def forward(self, x, owned):
        self.cache = np.shape(x)
        return F.flatten_forward(x)[0]

    def predict(self, x, owned):
        return F.flatten_forward(x)[0]

    def backward(self, dy, owned, input_grad):
        self.layers[0].grads = {}
        return F.flatten_backward(dy, self._cached())

    def output_owned(self, owned):
        return owned

    def gradient_owned(self, owned):
        return owned


class ResidualStep(Step):
    """``body(X) + X`` or ``body(X) + projection(X)``, each path a compiled plan of its own; X and dY go to both
    paths, so neither may write over them, and the sum is written over the body's result when its plan owns it."""

    kind = "residual"

    def __init__(self, block, body, projection):
        super().__init__(block)
        self.body, self.projection = body, projection

    def _paths(self, x, run):
        fx, fx_owned = run(self.body, x)
        sx = x if self.projection is None else run(self.projection, x)[0]
        check_paths(np.shape(fx), np.shape(sx), self.projection is not None)
        return _sum(fx, fx_owned, sx)

    def forward(self, x, owned):
        self.cache = np.shape(x)
        return self._paths(x, lambda plan, v: plan.run_forward(v, owned=False))

    def predict(self, x, owned):
        return self._paths(x, lambda plan, v: plan.run_predict(v, owned=False))

    def backward(self, dy, owned, input_grad):
        self._cached()
        dx, dx_owned = self.body.run_backward(dy, input_grad, owned=False)
        if not input_grad:
            if self.projection is not None:
                self.projection.run_backward(dy, input_grad, owned=False)
            return None
        skip = dy if self.projection is None else self.projection.run_backward(dy, input_grad, owned=False)[0]
        return _sum(dx, dx_owned, skip)

    def __repr__(self) -> str:
        body = repr(self.body).replace("\n", "\n  ")
        projection = "" if self.projection is None else "\n  projection: " + repr(self.projection).replace("\n", "\n  ")
        return f"residual:\n  body: {body}{projection}"


def _sum(a, a_owned: bool, b):
    """``a + b``, written over ``a`` when the plan owns it and it can hold the sum."""
    in_place = a_owned and _writable(a) and a.dtype == np.result_type(a, b) and a.shape == np.shape(b)
    return np.add(a, b, out=a if in_place else None)
