"""``Sequential``: layers applied in order, gradients propagated in reverse order."""

from __future__ import annotations

import numpy as np

from .declarations import Chain


def text_table(rows: list, align: str | None = None) -> str:
    """``rows`` of strings as lines, columns two spaces apart, trailing spaces stripped; ``align`` holds one
    ``"<"`` (left) or ``">"`` (right) per column (default: all left)."""
    align = align or "<" * len(rows[0])
    widths = [max(len(row[k]) for row in rows) for k in range(len(align))]
    return "\n".join("  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip() for row in rows)


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

    def declaration(self):
        return Chain(tuple(self.layers))

    def forward(self, x) -> np.ndarray:
        """Every layer in order: ``x = layer.forward(x)``."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def predict(self, x) -> np.ndarray:
        """The output for inference, keeping nothing for a backward pass (the layers' caches are untouched)."""
        for layer in self.layers:
            x = layer.predict(x)
        return x

    def backward(self, dy, input_grad: bool = True) -> np.ndarray | None:
        """Back through every layer in reverse order, the chain rule ``dy = layer.backward(dy)``; each layer fills
        its ``grads``.  ``input_grad=False`` skips the gradient of the model's input (data)."""
        for k in reversed(range(len(self.layers))):
            dy = self.layers[k].backward(dy, input_grad or k > 0)
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
        return text_table(rows, "<<<>>")

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
