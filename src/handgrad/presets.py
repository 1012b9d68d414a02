"""Named models, each with the training settings it learns well with.  Each builder takes one seeded
``Generator`` for every weight, so a seed fixes the model.

``build(name, rng, dtype, init, input_shape, classes)`` returns ``(model, loss)``: a model that takes images of
``input_shape`` (C, H, W), by default (1, 28, 28) as in MNIST, and returns scores for ``classes`` classes (by
default 10).  The layer sizes in the docstrings are those of the default; the first layer takes C channels and
the first fully connected layer as many features as the images leave after the convolutions and poolings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .layers import BatchNorm1D, BatchNorm2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU, Sigmoid, Softmax
from .losses import CrossEntropy, SoftmaxCrossEntropy
from .model import Sequential

INPUT_SHAPE = (1, 28, 28)
CLASSES = 10


def _features(name: str, layers: list, input_shape) -> int:
    """How many features ``layers`` (ending in Flatten) leave of one image of ``input_shape``."""
    try:
        return Sequential(layers).output_shape((1, *input_shape))[-1]
    except ValueError as error:
        raise ValueError(f"model {name}: images of {input_shape} are too small for its layers ({error})") from None


def seed_cnn(rng, dtype=np.float32, init="default", input_shape=INPUT_SHAPE, classes=CLASSES):
    """The tutorials' architecture: conv, ReLU, max-pool, conv, ReLU, max-pool, flatten, FC, ReLU, FC.

    (1, 28, 28) -> conv 5x5, 8 maps (8, 24, 24) -> pool 2 (8, 12, 12) -> conv 5x5, 16 maps (16, 8, 8)
    -> pool 2 (16, 4, 4) -> 256 -> 128 -> 10, with softmax cross-entropy on the logits.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    features = [Conv2D(input_shape[0], 8, 5, **kw), ReLU(), MaxPool2D(2), Conv2D(8, 16, 5, **kw), ReLU(), MaxPool2D(2)]
    features.append(Flatten())
    n = _features("seed-cnn", features, input_shape)
    model = Sequential([*features, Linear(n, 128, **kw), ReLU(), Linear(128, classes, **kw)])
    return model, SoftmaxCrossEntropy()


def lenet5(rng, dtype=np.float32, init="default", input_shape=INPUT_SHAPE, classes=CLASSES):
    """LeNet-5's layout (LeCun et al. 1998) with ReLU and max-pooling, as it is usually trained today.

    (1, 28, 28) -> conv 5x5 padding 2, 6 maps (6, 28, 28) -> pool 2 (6, 14, 14) -> conv 5x5, 16 maps
    (16, 10, 10) -> pool 2 (16, 5, 5) -> 400 -> 120 -> 84 -> 10, with softmax cross-entropy.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    features = [Conv2D(input_shape[0], 6, 5, padding=2, **kw), ReLU(), MaxPool2D(2), Conv2D(6, 16, 5, **kw), ReLU()]
    features += [MaxPool2D(2), Flatten()]
    n = _features("lenet5", features, input_shape)
    head = [Linear(n, 120, **kw), ReLU(), Linear(120, 84, **kw), ReLU(), Linear(84, classes, **kw)]
    return Sequential(features + head), SoftmaxCrossEntropy()


def habr_cnn(rng, dtype=np.float32, init="default", input_shape=INPUT_SHAPE, classes=CLASSES):
    """The tutorial's original network, with its centre elements and its softmax layer.

    (1, 28, 28) -> conv 2x2 stride 2, 5 maps, cross-correlation, centre (0, 0) (5, 14, 14) -> ReLU
    -> max-pool 2x2 (5, 7, 7) -> conv 3x3 stride 1, 20 maps, centre (1, 1), padding 1 (20, 7, 7) -> sigmoid
    -> flatten 980 -> FC 2000 -> sigmoid -> FC 10 -> softmax, and cross-entropy on its probabilities (the layer's
    backward is the softmax's Jacobian; training takes the pair as the fused loss: handgrad.fast.head).

    Padding: the first convolution and the pooling tile 28 -> 14 -> 7 exactly without padding.  The 3x3
    convolution gets padding 1 so that its 7x7 maps keep the size of its input (the output size does not
    depend on the centre); with centre (1, 1) output cell i then reads padded rows i-1 .. i+1, that is
    input rows i-2 .. i.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    features = [
        Conv2D(input_shape[0], 5, 2, stride=2, mode="xcorr", center=(0, 0), **kw),
        ReLU(),
        MaxPool2D(2),
        Conv2D(5, 20, 3, stride=1, padding=1, center=(1, 1), **kw),
        Sigmoid(),
        Flatten(),
    ]
    n = _features("habr-cnn", features, input_shape)
    head = [Linear(n, 2000, **kw), Sigmoid(), Linear(2000, classes, **kw), Softmax()]
    return Sequential(features + head), CrossEntropy()


def strided_conv(rng, dtype=np.float32, init="default", input_shape=INPUT_SHAPE, classes=CLASSES):
    """True convolutions with stride 2 and centres off the origin, where every index convention shows.

    (1, 28, 28) -> conv (true) 3x3 stride 2 padding 1, 8 maps, centre (0, 0) (8, 14, 14) -> ReLU
    -> conv (true) 3x3 stride 2 padding 1, 16 maps, centre (2, 1) (16, 7, 7) -> ReLU
    -> max-pool (true-convolution placement) 3x3 stride 2 padding 1, centre (1, 1) (16, 4, 4)
    -> flatten 256 -> FC 10, with softmax cross-entropy.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    features = [
        Conv2D(input_shape[0], 8, 3, stride=2, padding=1, mode="conv", center=(0, 0), **kw),
        ReLU(),
        Conv2D(8, 16, 3, stride=2, padding=1, mode="conv", center=(2, 1), **kw),
        ReLU(),
        MaxPool2D(3, stride=2, padding=1, mode="conv", center=(1, 1)),
        Flatten(),
    ]
    n = _features("strided-conv", features, input_shape)
    return Sequential([*features, Linear(n, classes, **kw)]), SoftmaxCrossEntropy()


def fashion_cnn(rng, dtype=np.float32, init="he", input_shape=INPUT_SHAPE, classes=CLASSES, dropout=(0.25, 0.25, 0.5)):
    """Two convolution blocks with batch normalisation and dropout, for Fashion-MNIST.

    (1, 28, 28) -> conv 3x3 padding 1, 32 maps, BN, ReLU -> conv 3x3 padding 1, 32 maps, BN, ReLU
    -> max-pool 2 (32, 14, 14) -> dropout 0.25 -> conv 3x3 padding 1, 64 maps, BN, ReLU -> max-pool 2
    (64, 7, 7) -> dropout 0.25 -> 3136 -> 256, BN, ReLU, dropout 0.5 -> 10, with softmax cross-entropy.
    The convolutions before batch normalisation have no bias (it would be subtracted away).  Dropout
    draws its masks from the same generator as the weights; ``dropout`` gives its three probabilities.
    """
    kw = {"dtype": dtype, "init": init, "rng": rng}
    features = [
        Conv2D(input_shape[0], 32, 3, padding=1, bias=False, **kw),
        BatchNorm2D(32, dtype=dtype),
        ReLU(),
        Conv2D(32, 32, 3, padding=1, bias=False, **kw),
        BatchNorm2D(32, dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Dropout(dropout[0], rng=rng),
        Conv2D(32, 64, 3, padding=1, bias=False, **kw),
        BatchNorm2D(64, dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Dropout(dropout[1], rng=rng),
        Flatten(),
    ]
    n = _features("fashion-cnn", features, input_shape)
    head = [
        Linear(n, 256, bias=False, **kw),
        BatchNorm1D(256, dtype=dtype),
        ReLU(),
        Dropout(dropout[2], rng=rng),
        Linear(256, classes, **kw),
    ]
    return Sequential(features + head), SoftmaxCrossEntropy()


def fashion_best(rng, dtype=np.float32, init="he", input_shape=INPUT_SHAPE, classes=CLASSES):
    """fashion-cnn with lighter dropout (0.1, 0.1, 0.3), for training on mirrored images, which regularises too."""
    return fashion_cnn(rng, dtype, init, input_shape, classes, dropout=(0.1, 0.1, 0.3))


# What a model trains with when the command line does not say: each preset's own, over these.  Chosen on
# validation figures (10 epochs on mnist-t10k's training digits, a tenth held out, seed 0): see the README.
DEFAULTS = {
    "epochs": 10,
    "batch_size": 64,
    "optimizer": "momentum",
    "lr": 0.02,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "augment": "none",
    "label_smoothing": 0.0,
    "tta": "none",
}


@dataclass(frozen=True)
class Preset:
    build: object
    description: str
    defaults: dict = field(default_factory=dict)  # the training settings it differs in from DEFAULTS

    def settings(self) -> dict:
        return {**DEFAULTS, **self.defaults}


_BATCH_NORM = {"lr": 0.05, "weight_decay": 5e-4}  # batch normalisation takes a higher rate; decay keeps weights small

PRESETS = {
    "seed-cnn": Preset(seed_cnn, "the tutorials' CNN: 2 x (conv 5x5, ReLU, max-pool), 256-128-10", {"lr": 0.05}),
    "lenet5": Preset(lenet5, "LeNet-5 layout with ReLU and max-pooling"),
    "habr-cnn": Preset(
        habr_cnn,
        "the tutorial's original network: centres, sigmoids, a softmax layer",
        {"optimizer": "adam", "lr": 0.002},  # its sigmoids learn slowly with SGD
    ),
    "strided-conv": Preset(strided_conv, "true convolutions with stride 2 and off-origin centres"),
    "fashion-cnn": Preset(
        fashion_cnn, "conv blocks with batch normalisation and dropout, for Fashion-MNIST", _BATCH_NORM
    ),
    "fashion-best": Preset(
        fashion_best,
        "fashion-cnn with lighter dropout, trained longer on mirrored images, scoring each image with its mirror",
        {**_BATCH_NORM, "optimizer": "nesterov", "augment": "flip", "epochs": 15, "tta": "flip"},
    ),
}


def build(name: str, rng: np.random.Generator, dtype=np.float32, init=None, input_shape=INPUT_SHAPE, classes=CLASSES):
    """``(model, loss)`` for a preset name, for images of ``input_shape`` (C, H, W) and ``classes`` classes;
    ``init=None`` takes the preset's own initialiser."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(PRESETS)}")
    build = PRESETS[name].build
    if init is None:
        return build(rng, dtype, input_shape=input_shape, classes=classes)
    return build(rng, dtype, init, input_shape, classes)
