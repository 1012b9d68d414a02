"""What a layer declares about the mathematics it computes, for :func:`handgrad.compile` to plan with.

A layer's ``declaration()`` returns one of these (or None).  The fast tier (:mod:`handgrad.fast`) chooses its
kernels and fusions from them alone, never from a layer's type; a layer that declares nothing runs as itself.
A subclass that changes how a layer computes (overrides ``forward``, ``backward``, ``predict``, ``_forward`` or
``_backward``) without declaring again declares nothing: the fast tier cannot know what it computes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .shapes import Window


@dataclass(frozen=True)
class Convolution:
    """``Y = conv2d(Xp, weight, bias)`` over the window (:func:`handgrad.functional.conv2d_forward`), where the
    padding of Xp is filled as ``padding_mode`` says."""

    window: Window
    groups: int
    padding_mode: str


@dataclass(frozen=True)
class MaxPooling:
    """``Y = max`` over each window, ties to the first cell (:func:`handgrad.functional.maxpool2d_forward`)."""

    window: Window


@dataclass(frozen=True)
class Clamp:
    """``Y = max(X, floor)`` element by element, the derivative ``[X > floor]`` (ReLU: floor 0).

    It is non-decreasing, so it commutes with a maximum: max-pooling ``max(X, floor)`` is ``max(max-pooling X,
    floor)``, with the same winners."""

    floor: float


@dataclass(frozen=True)
class Logistic:
    """``Y = 1 / (1 + e^-X)`` element by element, the derivative ``Y (1 - Y)`` (Sigmoid)."""


@dataclass(frozen=True)
class NormalizedExponential:
    """``Y[n, k] = e^{X[n, k]} / sum_j e^{X[n, j]}`` over the features of (N, K) input (Softmax): the
    probabilities whose cross-entropy the training loop takes fused on the logits (:mod:`handgrad.fast.head`)."""


@dataclass(frozen=True)
class InvertedDropout:
    """In training ``Y = X * [U >= p] / (1 - p)`` with U drawn uniform in [0, 1) as float32 from the layer's
    ``rng``, one value per element in C order (:func:`handgrad.functional.dropout_forward`); in evaluation the
    identity."""

    p: float


@dataclass(frozen=True)
class Affine:
    """``Y = X W + B`` over the features of (N, in) input (:func:`handgrad.functional.linear_forward`)."""


@dataclass(frozen=True)
class BatchNormalization:
    """Per-channel batch normalisation (:func:`handgrad.functional.batchnorm_forward`): batch statistics and a
    running update in training, the running statistics in evaluation."""

    eps: float
    momentum: float


@dataclass(frozen=True)
class Flattening:
    """``(N, d1, d2, ...) -> (N, d1*d2*...)``, row-major: a view of its input, and its gradient a view of dY."""


@dataclass(frozen=True)
class Chain:
    """Layers applied one after the other (:class:`handgrad.Sequential`)."""

    layers: tuple


@dataclass(frozen=True)
class Skip:
    """``Y = body(X) + X``, or ``body(X) + projection(X)`` (:class:`handgrad.layers.Residual`)."""

    body: object
    projection: object | None
