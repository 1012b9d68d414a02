"""An empty batch (N = 0), one documented behaviour: every layer, in both tiers, passes it on as an empty array of
the shape ``output_shape`` gives (forward, backward and predict), but for batch normalisation in training, which
refuses any batch with fewer than two values per channel; every loss refuses it with a ValueError, since there is
nothing to average.  A classifier gives no probabilities for no images, and refuses to evaluate them."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES

import handgrad
from handgrad import presets
from handgrad.data.batches import Normalizer
from handgrad.layers import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from handgrad.losses import MSE, CrossEntropy, SoftmaxCrossEntropy

WINDOWED = [
    Conv2D(2, 3, 3, dtype=np.float64),
    Conv2D(2, 2, 3, padding=1, mode="conv", center=(2, 1), padding_mode="reflect", groups=2, dtype=np.float64),
    Conv2D(2, 3, 3, stride=2, dilation=2, dtype=np.float64),
    MaxPool2D(2),
    MaxPool2D(3, stride=1, padding=1, center=(1, 1)),
    AvgPool2D(2, ceil_mode=True),
    GlobalAvgPool2D(),
]


def _passes_an_empty_batch(model, input_shape):
    for tier in (model, handgrad.compile(model)):
        x = np.zeros((0, *input_shape))
        y = tier.forward(x)
        assert y.shape == model.output_shape(x.shape) and y.shape[0] == 0, repr(model)
        assert tier.backward(np.zeros(y.shape)).shape == x.shape
        assert tier.predict(x).shape == y.shape


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_layer_of_the_table(rng, case):
    layer = case.make(rng)
    if case.name == "BatchNorm" and layer.training:
        for tier in (layer, handgrad.compile(layer)):
            with pytest.raises(ValueError, match="training needs more than one value per channel"):
                tier.forward(np.zeros((0, *case.shapes[-1][1:])))
    else:
        _passes_an_empty_batch(layer, case.shapes[-1][1:])


@pytest.mark.parametrize("layer", WINDOWED, ids=repr)
def test_windowed_layers(layer):
    _passes_an_empty_batch(layer, (2, 7, 7))


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_in_both_modes(rng, name):
    model, _ = presets.build(name, rng, np.float64, None)
    _passes_an_empty_batch(model.eval(), presets.INPUT_SHAPE)
    model.train()
    if not any(type(layer).__name__.startswith("BatchNorm") for layer in model):  # too small for a variance
        _passes_an_empty_batch(model, presets.INPUT_SHAPE)


@pytest.mark.parametrize(
    "loss, prediction, target",
    [
        (MSE(), np.zeros((0, 3)), np.zeros((0, 3))),
        (CrossEntropy(), np.zeros((0, 3)), np.zeros(0, dtype=int)),
        (SoftmaxCrossEntropy("sum"), np.zeros((0, 3)), np.zeros(0, dtype=int)),
    ],
    ids=repr,
)
def test_every_loss_refuses_it(loss, prediction, target):
    with pytest.raises(ValueError, match=r"the batch is empty \(prediction of shape \(0, 3\)\): a loss needs a sample"):
        loss.forward(prediction, target)


def test_a_classifier_gives_no_probabilities_for_no_images_and_will_not_average_them(rng):
    model, loss = presets.build("seed-cnn", rng)
    pixels = rng.integers(0, 256, (8, 28, 28), dtype=np.uint8)
    classifier = handgrad.Classifier(
        model, loss, Normalizer.fit(pixels, "standard"), [str(k) for k in range(10)], (1, 28, 28)
    )
    none = pixels[:0]
    assert classifier.probabilities(none).shape == (0, 10) and classifier.predict(none).shape == (0,)
    with pytest.raises(ValueError, match=r"evaluate: no images; the mean loss and accuracy of an empty set"):
        classifier.evaluate(none, np.zeros(0, dtype=int))
