"""``Sequential``: layers applied in order, gradients propagated in reverse order."""

from __future__ import annotations

import functools

import numpy as np


def named_leaves(layer, prefix: str = ""):
    """``(name, layer)`` for every layer that is not a container, depth first: ``"3"``, ``"4.body.0"``...

    Containers (Sequential, Residual) say what they hold through ``named_children()``.
    """
    children = getattr(layer, "named_children", None)
    if children is None:
        yield prefix.rstrip("."), layer
        return
    for name, child in children():
        yield from named_leaves(child, f"{prefix}{name}.")


# Outputs written over their input from this size on.  A new array this large costs fresh pages from the
# operating system and a pass over memory that is not in cache; a smaller one is cheap to allocate, cheaper
# than checking that its input is free.
IN_PLACE_BYTES = 4 << 20


def _arrays(value):
    """Every array in a cache: the value itself, or those in its tuples, lists and dicts, however nested."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _arrays(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _arrays(item)


def _held(x, given, layers) -> bool:
    """Whether ``x`` shares memory with the caller's input or with what ``layers`` keep for backward."""
    if np.may_share_memory(x, given):
        return True
    caches = (getattr(leaf, "_cache", None) for layer in layers for _, leaf in named_leaves(layer))
    return any(np.may_share_memory(x, kept) for cache in caches for kept in _arrays(cache))


@functools.cache
def _fused_types() -> tuple[type, type, type]:
    """The classes Conv2D, ReLU and MaxPool2D, imported on first use: layers.residual imports this module."""
    from .layers import Conv2D, MaxPool2D, ReLU

    return Conv2D, ReLU, MaxPool2D


def _conv_then_pool(layers, shape) -> int:
    """How many of ``layers`` run as one product: 3 for a convolution, a ReLU and a max-pooling, 2 for a
    convolution and a max-pooling, where the convolution says it pays (``Conv2D.pools_in_one_product``: one
    input channel, stride 1, pooling windows that tile its output); else 0.

    The convolution's ``forward_pooled`` then computes the pooled output directly, the ReLU as the pooling's
    floor of 0 (see :func:`_relu_then_pool`), and its backward pass is the gradient of the whole; the ReLU and
    pooling layers do not run."""
    conv, relu, pool = _fused_types()
    if not layers or type(layers[0]) is not conv:
        return 0
    taken = 3 if len(layers) == 3 and type(layers[1]) is relu else 2
    if len(layers) < taken or type(layers[taken - 1]) is not pool:
        return 0
    return taken if layers[0].pools_in_one_product(layers[taken - 1], shape) else 0


def _relu_then_pool(layers, shape) -> bool:
    """Whether ``layers`` are a ReLU and then a max-pooling whose windows tile an input of ``shape``.

    Such a pair runs as one layer, the pooling with a floor of 0 (``forward_rectified``): the maxima of
    ``relu(x)`` without forming it, since ``max_w relu(x) = max(max_w x, 0)`` (ReLU is non-decreasing), with
    the winners of max-pooling ``relu(x)``, ties included.  Its backward pass is the chain rule of the two:
    each window's dY goes to its winner x* times ``relu'(x*) = [x* > 0]``, which is ``[Y > 0]``.  The ReLU
    layer itself does not run.  Windows that tile are where this pays: the pooling reads x as it is.
    """
    _, relu, pool = _fused_types()
    return (
        len(layers) == 2
        and type(layers[0]) is relu
        and type(layers[1]) is pool
        and len(shape) == 4
        and layers[1].windows_tile(shape)
    )


class Sequential:
    """A chain of layers with the layer interface: ``forward``, ``backward``, ``params``, ``grads``.

    ``params`` and ``grads`` are flat views named ``"<index>.<name>"`` (``"0.weight"``) whose arrays are
    the layers' own, so updating a parameter in place updates the layer.
    """

    def __init__(self, layers):
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not (callable(getattr(layer, "forward", None)) and callable(getattr(layer, "backward", None))):
                raise TypeError(f"Sequential: item {i} must be a layer with forward and backward, got {layer!r}")
        self._order = None  # the layers the last forward ran, in order (not a ReLU that a pooling took in)

    def forward(self, x) -> np.ndarray:
        """Every layer in order, but for a ReLU directly before a max-pooling whose windows tile its input: the
        pooling takes the ReLU in (see :func:`_relu_then_pool`), and a convolution of one input channel takes
        the pooling after it in, and the ReLU between (see :func:`_conv_then_pool`); backward follows suit.

        Layers that can (ReLU) write a large output over their input when nothing else holds it: not the
        caller's ``x`` nor a view of it, and no array a layer that ran before keeps for its backward pass (a
        batch normalisation without affine parameters returns the X_hat it keeps, a Dropout in evaluation mode
        passes its input on as it is)."""
        given, self._order, i = x, [], 0
        while i < len(self.layers):
            taken = _conv_then_pool(self.layers[i : i + 3], np.shape(x))
            if taken:
                x = self.layers[i].forward_pooled(x, self.layers[i + taken - 1], 0.0 if taken == 3 else None)
                self._order.append(i)
                i += taken
                continue
            if _relu_then_pool(self.layers[i : i + 2], np.shape(x)):
                x = self.layers[i + 1].forward_rectified(x)
                self._order.append(i + 1)
                i += 2
                continue
            layer, large = self.layers[i], getattr(x, "nbytes", 0) >= IN_PLACE_BYTES
            if (
                hasattr(layer, "forward_in_place")
                and large
                and not _held(x, given, [self.layers[j] for j in self._order])
            ):
                x = layer.forward_in_place(x)
            else:
                x = layer.forward(x)
            self._order.append(i)
            i += 1
        return x

    __call__ = forward

    def predict(self, x) -> np.ndarray:
        """The output for inference, keeping nothing for a backward pass (the layers' caches are untouched).
        A ReLU before a max-pooling is taken in by it, as in ``forward``; a convolution runs on its own (taking the
        pooling in, as ``forward`` does, did not pay in inference).

        Layers that can (ReLU) write their output over the previous layer's, which nothing else holds; never
        over the caller's ``x`` or a view of it (what Flatten or an evaluation-mode Dropout pass on).
        """
        given, i = x, 0
        while i < len(self.layers):
            if _relu_then_pool(self.layers[i : i + 2], np.shape(x)):
                x = self.layers[i + 1].predict_rectified(x)
                i += 2
                continue
            layer = self.layers[i]
            in_place = hasattr(layer, "predict_in_place") and not np.may_share_memory(x, given)
            x = layer.predict_in_place(x) if in_place else layer.predict(x)
            i += 1
        return x

    def backward(self, dy, input_grad: bool = True) -> np.ndarray | None:
        """Back through every layer, in the reverse of the order the last forward ran them;
        ``input_grad=False`` skips the gradient of the model's input (data).

        Layers that can (ReLU) write their gradient over the one they receive unless it is the caller's ``dy``
        or a view of it.  Every other gradient is a temporary of this pass: a layer's backward returns a new
        array, or a view of the gradient it was given (Flatten).
        """
        given = dy
        order = self._order if self._order is not None else range(len(self.layers))  # no forward yet: layers say so
        for k in reversed(range(len(order))):
            layer, wanted = self.layers[order[k]], input_grad or k > 0
            if hasattr(layer, "backward_in_place") and not np.may_share_memory(dy, given):
                dy = layer.backward_in_place(dy, wanted)
            else:
                dy = layer.backward(dy, wanted)
        return dy

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """Untrained state (BatchNorm's running statistics), named like ``params``."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.buffers.items()}

    def state(self) -> list:
        """Every layer's ``state()``: buffers and random generators, to put back with ``load_state``."""
        return [layer.state() for layer in self.layers]

    def load_state(self, snapshot: list) -> None:
        for layer, layer_state in zip(self.layers, snapshot):
            layer.load_state(layer_state)

    def train(self, mode: bool = True):
        """Put every layer in training mode (``mode=True``) or evaluation mode; returns the model."""
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def output_shape(self, input_shape: tuple) -> tuple:
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def flops(self, input_shape: tuple) -> int:
        total = 0
        for layer in self.layers:
            total += layer.flops(input_shape)
            input_shape = layer.output_shape(input_shape)
        return total

    def summary(self, input_shape: tuple) -> str:
        """A table of each layer's output shape, parameter count and forward FLOPs for one sample.

        ``input_shape`` is one sample's shape, e.g. ``(1, 28, 28)``.  Shapes are inferred without running
        the model.  FLOPs count a multiply-add as two and one operation per output element of an
        element-wise layer.
        """
        shape = (1, *input_shape)
        rows = [("#", "layer", "output shape", "params", "FLOPs"), ("", "input", str(input_shape), "", "")]
        total_params = total_flops = 0
        for i, layer in enumerate(self.layers):
            flops, shape = layer.flops(shape), layer.output_shape(shape)
            params = sum(int(p.size) for p in layer.params.values())
            total_params, total_flops = total_params + params, total_flops + flops
            rows.append((str(i), type(layer).__name__, str(shape[1:]), f"{params:,}", f"{flops:,}"))
        rows.append(("", "total", "", f"{total_params:,}", f"{total_flops:,}"))
        widths = [max(len(row[k]) for row in rows) for k in range(5)]
        align = ("<", "<", "<", ">", ">")
        return "\n".join("  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip() for row in rows)

    def named_children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
