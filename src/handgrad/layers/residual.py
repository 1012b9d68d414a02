"""The residual block: a layer whose input also skips past it."""

from __future__ import annotations

import numpy as np

from ..declarations import Skip
from ..model import Sequential


def check_paths(body: tuple, skip: tuple, projected: bool) -> None:
    """The body's output shape and the skip path's must be one, for their sum."""
    if body != skip:
        hint = "" if projected else "; give a projection that maps the input to the body's output shape"
        raise ValueError(f"Residual: the body gives shape {body} but the skip path {skip}{hint}")


class Residual:
    """``y = f(x) + x``, or ``y = f(x) + P(x)`` with a projection P (say a 1x1 Conv2D) where f changes the shape.

    The input reaches the output along two paths, and in the backward pass their gradients add (the chain
    rule with a branch)::

        dX = f'(x)^T dY + dY          or          dX = f'(x)^T dY + P'(x)^T dY

    ``body`` is a Sequential or a list of layers.  Parameters are named ``body.<i>.<name>`` and
    ``projection.<name>``; a Sequential may hold Residual blocks like any layer.
    """

    def __init__(self, body, projection=None):
        self.body = body if isinstance(body, Sequential) else Sequential(body)
        self.projection = projection
        for name, part in (("projection", projection),):
            if part is not None and not (
                callable(getattr(part, "forward", None)) and callable(getattr(part, "backward", None))
            ):
                raise TypeError(f"Residual: {name} must be a layer with forward and backward, got {part!r}")
        self._x_shape = None

    def declaration(self):
        return Skip(self.body, self.projection)

    def named_children(self):
        return [("body", self.body)] + ([("projection", self.projection)] if self.projection is not None else [])

    def _named(self, attribute: str) -> dict[str, np.ndarray]:
        return {f"{name}.{k}": v for name, part in self.named_children() for k, v in getattr(part, attribute).items()}

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self._named("params")

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self._named("grads")

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return self._named("buffers")

    @property
    def training(self) -> bool:
        return self.body.layers[0].training if self.body.layers else True

    def train(self, mode: bool = True):
        for _, part in self.named_children():
            part.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def state(self) -> list:
        return [part.state() for _, part in self.named_children()]

    def load_state(self, snapshot: list) -> None:
        for (_, part), part_state in zip(self.named_children(), snapshot):
            part.load_state(part_state)

    def _skip(self, x, forward):
        """The two paths' outputs, checked to have one shape."""
        fx = forward(self.body, x)
        sx = x if self.projection is None else forward(self.projection, x)
        check_paths(np.shape(fx), np.shape(sx), self.projection is not None)
        return fx + sx

    def forward(self, x) -> np.ndarray:
        self._x_shape = np.shape(x)
        return self._skip(x, lambda part, v: part.forward(v))

    __call__ = forward

    def predict(self, x) -> np.ndarray:
        return self._skip(x, lambda part, v: part.predict(v))

    def backward(self, dy, input_grad: bool = True):
        if self._x_shape is None:
            raise RuntimeError("Residual.backward called before forward: run forward(x) first")
        dx = self.body.backward(dy, input_grad)
        skip = dy if self.projection is None else self.projection.backward(dy, input_grad)
        return dx + skip if input_grad else None

    def output_shape(self, input_shape: tuple) -> tuple:
        return self.body.output_shape(input_shape)

    def flops(self, input_shape: tuple) -> int:
        """The body's, the projection's, and one addition per output element."""
        skip = 0 if self.projection is None else self.projection.flops(input_shape)
        return self.body.flops(input_shape) + skip + int(np.prod(self.output_shape(input_shape)))

    def __repr__(self) -> str:
        body = repr(self.body).replace("\n", "\n  ")
        return f"Residual(\n  body={body},\n  projection={self.projection!r}\n)"
