"""The stateful side of a layer: parameters, their gradients and the cache between forward and backward."""

from __future__ import annotations

import copy

import numpy as np


class Layer:
    """A layer computes ``y = forward(x)`` and, for the last forward, ``dx = backward(dy)``.

    Parameters live in ``params`` (name -> ndarray, updated in place by optimisers) and the gradients
    of the last backward in ``grads`` (same names).  Subclasses implement ``_forward(x) -> (y, cache)``
    and ``_backward(dy, cache, input_grad) -> (dx, grads)`` by calling :mod:`handgrad.functional`.
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}  # state that is not trained (BatchNorm's running statistics)
        self.training = True
        self._cache = None

    def state(self) -> dict:
        """A copy of what a forward pass may change besides the cache: the buffers, and the state of the
        layer's random generator if it has one (Dropout).  ``load_state`` puts it back."""
        snapshot = {name: value.copy() for name, value in self.buffers.items()}
        if getattr(self, "rng", None) is not None:
            snapshot["rng"] = copy.deepcopy(self.rng.bit_generator.state)
        return snapshot

    def load_state(self, snapshot: dict) -> None:
        for name, value in snapshot.items():
            if name == "rng":
                self.rng.bit_generator.state = copy.deepcopy(value)
            else:
                np.copyto(self.buffers[name], value)

    def train(self, mode: bool = True):
        """Training mode (the default) or, with ``mode=False``, evaluation mode; returns the layer."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode: layers that behave differently when training switch (batch normalisation uses its
        running statistics, dropout passes its input on).  Backward still works."""
        return self.train(False)

    def declaration(self):
        """What this layer computes, for :func:`handgrad.compile` (one of :mod:`handgrad.declarations`), or None: the
        compiled model then runs the layer as it is."""
        return

    def forward(self, x) -> np.ndarray:
        y, self._cache = self._forward(x)
        return y

    def backward(self, dy, input_grad: bool = True) -> np.ndarray | None:
        """``dx`` for the last forward, and the parameter gradients in ``grads``.

        ``input_grad=False`` says that only the parameter gradients are wanted (the first layer of a model,
        whose input is data): dX is not computed and None is returned.
        """
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: run forward(x) first")
        if not input_grad and not self.params:
            self.grads = {}
            return None
        dx, self.grads = self._backward(dy, self._cache, input_grad)
        return dx

    __call__ = forward

    def predict(self, x) -> np.ndarray:
        """``forward`` for inference: nothing is kept for a backward pass (PyTorch's ``inference_mode``)."""
        return self._forward(x)[0]

    def output_shape(self, input_shape: tuple) -> tuple:
        """The shape ``forward`` returns for an input of ``input_shape`` (element-wise layers keep it)."""
        return tuple(input_shape)

    def flops(self, input_shape: tuple) -> int:
        """Floating-point operations of one forward pass: one per output element unless a layer says otherwise."""
        return int(np.prod(self.output_shape(input_shape)))

    def _forward(self, x):
        raise NotImplementedError

    def _backward(self, dy, cache, input_grad):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ""


class ParamLayer(Layer):
    """A layer with parameters of one floating dtype; its input is converted to that dtype."""

    def __init__(self, dtype) -> None:
        super().__init__()
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"{type(self).__name__}: dtype must be a floating type, got {self.dtype}")

    def as_input(self, x) -> np.ndarray:
        """``x`` in the parameters' dtype (images of integers are converted, float64 to float32 if need be)."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise ValueError(f"{type(self).__name__}: x must be a numeric array, got dtype {x.dtype}")
        return x.astype(self.dtype, copy=False)
