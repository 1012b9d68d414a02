"""Compiling a model: the steps that run it, chosen from what its layers declare about themselves.

The plan walks the model's layers in order (a nested Sequential's layers in place), reads each one's
``declaration()`` (:mod:`handgrad.declarations`) and picks a step (:mod:`.steps`):

===================================================  ============================================================
declared, in order                                   step
===================================================  ============================================================
Convolution of one input channel (one group, zero    one product over the pooling windows' cells
padding), [Clamp], MaxPooling                        (:class:`~.steps.ConvolutionPoolingStep`)
Clamp, MaxPooling                                    the clamp taken into the pooling (:class:`~.steps.PoolingStep`)
Convolution or Affine, BatchNormalization            the two, the normalisation folded into the layer's weights
                                                     in inference (:class:`~.steps.NormalizedStep`)
Convolution / MaxPooling / Clamp / Affine /          that layer's fast kernel
BatchNormalization / Flattening / Logistic /
InvertedDropout
Skip (Residual)                                      a plan for each path (:class:`~.steps.ResidualStep`)
anything else                                        the layer as itself (:class:`~.steps.LayerStep`)
===================================================  ============================================================

The plan also decides which arrays a step may write over (see :mod:`.steps`), from what each step says of what
it returns: it never scans what other objects keep.
"""

from __future__ import annotations

import numpy as np

from ..declarations import (
    Affine,
    BatchNormalization,
    Chain,
    Clamp,
    Convolution,
    Flattening,
    InvertedDropout,
    Logistic,
    MaxPooling,
    Skip,
)
from ..model import text_table
from . import steps as S

COMPUTE = ("forward", "backward", "predict", "_forward", "_backward")


def declared(layer):
    """The layer's declaration, if the class that declares it also computes it: a subclass that overrides how
    the layer computes (any of ``COMPUTE``) without declaring again gets None, and runs as itself."""
    owner = next((cls for cls in type(layer).__mro__ if "declaration" in vars(cls)), None)
    if owner is None or any(getattr(type(layer), name, None) is not getattr(owner, name, None) for name in COMPUTE):
        return None
    return layer.declaration()


def _leaves(layer, name: str):
    """``(name, layer, declaration)`` for the layer, or for each layer of a chain in place, depth first."""
    what = declared(layer)
    if isinstance(what, Chain):
        for i, inner in enumerate(what.layers):
            yield from _leaves(inner, f"{name}.{i}" if name else str(i))
    else:
        yield name or "0", layer, what


def _one_channel_convolution(layer, what) -> bool:
    """A convolution of one input channel, one group and zero padding: the one product over the pooling windows'
    cells pays there (its products are small beside the memory work it saves)."""
    weight = layer.params["weight"]
    return what.groups == 1 and what.padding_mode == "zeros" and weight.shape[1] == 1


def _steps(items, workspace: dict) -> list[tuple[list[str], S.Step]]:
    """The steps for ``(name, layer, declaration)`` items, each with the names of the layers it runs; their
    scratch memory comes from ``workspace``."""
    steps, i = [], 0
    kinds = [type(what) for _, _, what in items]
    while i < len(items):
        name, layer, what = items[i]
        following = kinds[i + 1 : i + 3]
        if isinstance(what, Convolution) and _one_channel_convolution(layer, what):
            taken = 3 if following == [Clamp, MaxPooling] else 2 if following[:1] == [MaxPooling] else 0
            if taken:
                pool = items[i + taken - 1][2]
                floor = items[i + 1][2].floor if taken == 3 else None
                rest = [item[1] for item in items[i + 1 : i + taken]]
                step = S.ConvolutionPoolingStep(
                    layer, *rest, declared=what, window=pool.window, workspace=workspace, floor=floor
                )
                steps.append(([item[0] for item in items[i : i + taken]], step))
                i += taken
                continue
        if isinstance(what, (Convolution, Affine)) and following[:1] == [BatchNormalization]:
            norm = S.BatchNormStep(items[i + 1][1], items[i + 1][2])
            producer = _single(layer, what, workspace)
            step = S.NormalizedStep(producer, norm, axis=0 if isinstance(what, Convolution) else 1)
            steps.append(([name, items[i + 1][0]], step))
            i += 2
            continue
        if isinstance(what, Clamp) and following[:1] == [MaxPooling]:
            pool_name, pool, pool_what = items[i + 1]
            step = S.PoolingStep(layer, pool, window=pool_what.window, workspace=workspace, floor=what.floor)
            steps.append(([name, pool_name], step))
            i += 2
            continue
        steps.append(([name], _single(layer, what, workspace)))
        i += 1
    return steps


def _single(layer, what, workspace: dict) -> S.Step:
    """The step of one layer on its own."""
    if isinstance(what, Convolution):
        return S.ConvolutionStep(layer, what, workspace)
    if isinstance(what, MaxPooling):
        return S.PoolingStep(layer, window=what.window, workspace=workspace)
    if isinstance(what, Clamp):
        return S.ClampStep(layer, what.floor)
    if isinstance(what, Affine):
        return S.AffineStep(layer)
    if isinstance(what, BatchNormalization):
        return S.BatchNormStep(layer, what)
    if isinstance(what, Flattening):
        return S.FlattenStep(layer)
    if isinstance(what, Logistic):
        return S.LogisticStep(layer)
    if isinstance(what, InvertedDropout):
        return S.DropoutStep(layer)
    if isinstance(what, Skip):
        projection = None if what.projection is None else CompiledModel(what.projection, workspace)
        return S.ResidualStep(layer, CompiledModel(what.body, workspace), projection)
    return S.LayerStep(layer)


class CompiledModel:
    """A model and the plan of steps that runs it: the same parameters, gradients, buffers and names as the model
    (``compiled.params is`` the model's arrays), the same results as the model's own ``forward``, ``backward`` and
    ``predict`` (to rounding), computed faster.  Build it with :func:`handgrad.compile`."""

    def __init__(self, model, workspace: dict | None = None):
        self.model = model
        self.workspace = {} if workspace is None else workspace  # the scratch memory every step shares
        self.steps = _steps(list(_leaves(model, "")), self.workspace)
        # the first step with parameters: without the model input's gradient, none is wanted before it
        trained = [k for k, (_, step) in enumerate(self.steps) if any(layer.params for layer in step.layers)]
        self.first_trained = trained[0] if trained else len(self.steps)

    def forward(self, x) -> np.ndarray:
        return self.run_forward(x, owned=False)[0]

    __call__ = forward

    def predict(self, x) -> np.ndarray:
        """The output for inference, keeping nothing for a backward pass."""
        return self.run_predict(x, owned=False)[0]

    def backward(self, dy, input_grad: bool = True) -> np.ndarray | None:
        """Back through every step; the layers' ``grads`` hold the parameter gradients.  ``input_grad=False``
        skips the gradient of the model's input."""
        return self.run_backward(dy, input_grad, owned=False)[0]

    def run_forward(self, x, owned: bool):
        """``forward``, where ``owned`` says whether the plan may write over ``x`` (never the caller's); returns
        the output and whether the plan owns it."""
        for _, step in self.steps:
            x = step.forward(x, owned)
            owned = step.output_owned(owned)
        return x, owned

    def run_predict(self, x, owned: bool):
        for _, step in self.steps:
            x = step.predict(x, owned)
            owned = step.prediction_owned(owned)
        return x, owned

    def run_backward(self, dy, input_grad: bool, owned: bool):
        """``backward``; without ``input_grad`` the steps before the first with parameters do not run, and the
        first step with parameters computes no gradient of its input."""
        for k in reversed(range(0 if input_grad else self.first_trained, len(self.steps))):
            step = self.steps[k][1]
            dy = step.backward(dy, owned, input_grad or k > self.first_trained)
            owned = step.gradient_owned(owned)
        return (dy, owned) if input_grad else (None, False)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.model.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.model.grads

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return self.model.buffers

    def state(self):
        return self.model.state()

    def load_state(self, snapshot) -> None:
        self.model.load_state(snapshot)

    def train(self, mode: bool = True):
        self.model.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def output_shape(self, input_shape: tuple) -> tuple:
        return self.model.output_shape(input_shape)

    def flops(self, input_shape: tuple) -> int:
        return self.model.flops(input_shape)

    def summary(self, input_shape: tuple) -> str:
        """A table of the steps for one sample of ``input_shape``: the layers each runs, what it computes (each
        fused step named), its output shape, parameters and forward FLOPs."""
        shape = (1, *input_shape)
        rows = [
            ("step", "layers", "runs as", "output shape", "params", "FLOPs"),
            ("", "input", "", str(input_shape), "", ""),
        ]
        total_params = total_flops = 0
        for k, (names, step) in enumerate(self.steps):
            flops = params = 0
            for layer in step.layers:
                flops, shape = flops + layer.flops(shape), layer.output_shape(shape)
                params += sum(int(p.size) for p in layer.params.values())
            total_params, total_flops = total_params + params, total_flops + flops
            rows.append((str(k), _span(names), step.kind, str(shape[1:]), f"{params:,}", f"{flops:,}"))
        rows.append(("", "total", "", "", f"{total_params:,}", f"{total_flops:,}"))
        return text_table(rows, "<<<<>>")

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({_span(names)}): " + repr(step).replace("\n", "\n  ") for names, step in self.steps)
        return f"CompiledModel({inner}\n)"


def _span(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}-{names[-1]}"


def compile(model) -> CompiledModel:
    """The model compiled into a plan of fast steps (:class:`CompiledModel`): the same mathematics as the model's
    own ``forward``, ``backward`` and ``predict``, with the fast tier's layouts, fused kernels and reused buffers.
    ``model`` is a :class:`~handgrad.Sequential` or a single layer; its parameters stay its own."""
    return CompiledModel(model)
