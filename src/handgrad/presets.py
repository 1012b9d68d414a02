"""Named models.  Each builder takes one seeded ``Generator`` for every weight, so a seed fixes the model.

``build(name, rng, dtype, init)`` returns ``(model, loss)``; the models take (N, 1, 28, 28) images
and return scores for 10 classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import BatchNorm1D, BatchNorm2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU, Sigmoid, Softmax
from .losses import CrossEntropy, SoftmaxCrossEntropy
from .model import Sequential

INPUT_SHAPE = (1, 28, 28)


def seed_cnn(rng, dtype=np.float32, init="default"):
    """The tutorials' architecture: conv, ReLU, max-pool, conv, ReLU, max-pool, flatten, FC, ReLU, FC.

    (1, 28, 28) -> conv 5x5, 8 maps (8, 24, 24) -> pool 2 (8, 12, 12) -> conv 5x5, 16 maps (16, 8, 8)
    -> pool 2 (16, 4, 4) -> 256 -> 128 -> 10, with softmax cross-entropy on the logits.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    model = Sequential(
        [
            Conv2D(1, 8, 5, **kw),
            ReLU(),
            MaxPool2D(2),
            Conv2D(8, 16, 5, **kw),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Linear(256, 128, **kw),
            ReLU(),
            Linear(128, 10, **kw),
        ]
    )
    return model, SoftmaxCrossEntropy()


def lenet5(rng, dtype=np.float32, init="default"):
    """LeNet-5's layout (LeCun et al. 1998) with ReLU and max-pooling, as it is usually trained today.

    (1, 28, 28) -> conv 5x5 padding 2, 6 maps (6, 28, 28) -> pool 2 (6, 14, 14) -> conv 5x5, 16 maps
    (16, 10, 10) -> pool 2 (16, 5, 5) -> 400 -> 120 -> 84 -> 10, with softmax cross-entropy.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    model = Sequential(
        [
            Conv2D(1, 6, 5, padding=2, **kw),
            ReLU(),
            MaxPool2D(2),
            Conv2D(6, 16, 5, **kw),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Linear(400, 120, **kw),
            ReLU(),
            Linear(120, 84, **kw),
            ReLU(),
            Linear(84, 10, **kw),
        ]
    )
    return model, SoftmaxCrossEntropy()


def habr_cnn(rng, dtype=np.float32, init="default"):
    """The tutorial's original network, with its centre elements and its softmax Jacobian.

    (1, 28, 28) -> conv 2x2 stride 2, 5 maps, cross-correlation, centre (0, 0) (5, 14, 14) -> ReLU
    -> max-pool 2x2 (5, 7, 7) -> conv 3x3 stride 1, 20 maps, centre (1, 1), padding 1 (20, 7, 7) -> sigmoid
    -> flatten 980 -> FC 2000 -> sigmoid -> FC 10 -> softmax, and cross-entropy through the softmax Jacobian.

    Padding: the first convolution and the pooling tile 28 -> 14 -> 7 exactly without padding.  The 3x3
    convolution gets padding 1 so that its 7x7 maps keep the size of its input (the output size does not
    depend on the centre); with centre (1, 1) output cell i then reads padded rows i-1 .. i+1, that is
    input rows i-2 .. i.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    model = Sequential(
        [
            Conv2D(1, 5, 2, stride=2, mode="xcorr", center=(0, 0), **kw),
            ReLU(),
            MaxPool2D(2),
            Conv2D(5, 20, 3, stride=1, padding=1, center=(1, 1), **kw),
            Sigmoid(),
            Flatten(),
            Linear(980, 2000, **kw),
            Sigmoid(),
            Linear(2000, 10, **kw),
            Softmax(),
        ]
    )
    return model, CrossEntropy()


def strided_conv(rng, dtype=np.float32, init="default"):
    """True convolutions with stride 2 and centres off the origin, where every index convention shows.

    (1, 28, 28) -> conv (true) 3x3 stride 2 padding 1, 8 maps, centre (0, 0) (8, 14, 14) -> ReLU
    -> conv (true) 3x3 stride 2 padding 1, 16 maps, centre (2, 1) (16, 7, 7) -> ReLU
    -> max-pool (true-convolution placement) 3x3 stride 2 padding 1, centre (1, 1) (16, 4, 4)
    -> flatten 256 -> FC 10, with softmax cross-entropy.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    model = Sequential(
        [
            Conv2D(1, 8, 3, stride=2, padding=1, mode="conv", center=(0, 0), **kw),
            ReLU(),
            Conv2D(8, 16, 3, stride=2, padding=1, mode="conv", center=(2, 1), **kw),
            ReLU(),
            MaxPool2D(3, stride=2, padding=1, mode="conv", center=(1, 1)),
            Flatten(),
            Linear(256, 10, **kw),
        ]
    )
    return model, SoftmaxCrossEntropy()


def fashion_cnn(rng, dtype=np.float32, init="he"):
    """Two convolution blocks with batch normalisation and dropout, for Fashion-MNIST.

    (1, 28, 28) -> conv 3x3 padding 1, 32 maps, BN, ReLU -> conv 3x3 padding 1, 32 maps, BN, ReLU
    -> max-pool 2 (32, 14, 14) -> dropout 0.25 -> conv 3x3 padding 1, 64 maps, BN, ReLU -> max-pool 2
    (64, 7, 7) -> dropout 0.25 -> 3136 -> 256, BN, ReLU, dropout 0.5 -> 10, with softmax cross-entropy.
    The convolutions before batch normalisation have no bias (it would be subtracted away).  Dropout
    draws its masks from the same generator as the weights.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    model = Sequential(
        [
            Conv2D(1, 32, 3, padding=1, bias=False, **kw),
            BatchNorm2D(32, dtype=dtype),
            ReLU(),
            Conv2D(32, 32, 3, padding=1, bias=False, **kw),
            BatchNorm2D(32, dtype=dtype),
            ReLU(),
            MaxPool2D(2),
            Dropout(0.25, rng=rng),
            Conv2D(32, 64, 3, padding=1, bias=False, **kw),
            BatchNorm2D(64, dtype=dtype),
            ReLU(),
            MaxPool2D(2),
            Dropout(0.25, rng=rng),
            Flatten(),
            Linear(3136, 256, bias=False, **kw),
            BatchNorm1D(256, dtype=dtype),
            ReLU(),
            Dropout(0.5, rng=rng),
            Linear(256, 10, **kw),
        ]
    )
    return model, SoftmaxCrossEntropy()


@dataclass(frozen=True)
class Preset:
    build: object
    description: str


PRESETS = {
    "seed-cnn": Preset(seed_cnn, "the tutorials' CNN: 2 x (conv 5x5, ReLU, max-pool), 256-128-10"),
    "lenet5": Preset(lenet5, "LeNet-5 layout with ReLU and max-pooling"),
    "habr-cnn": Preset(habr_cnn, "the tutorial's original network: centres, sigmoids, softmax Jacobian"),
    "strided-conv": Preset(strided_conv, "true convolutions with stride 2 and off-origin centres"),
    "fashion-cnn": Preset(fashion_cnn, "conv blocks with batch normalisation and dropout, for Fashion-MNIST"),
}


def build(name: str, rng: np.random.Generator, dtype=np.float32, init=None):
    """``(model, loss)`` for a preset name; ``init=None`` takes the preset's own initialiser."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(PRESETS)}")
    build = PRESETS[name].build
    return build(rng, dtype) if init is None else build(rng, dtype, init)
