"""The softmax + cross-entropy fusion (handgrad.fast.head): a model that ends in a softmax, with cross-entropy,
runs as the layers before it with the fused loss on their logits, in fit and in a Classifier: the same loss,
exact where the pair's is floored, and the gradient (Y - T) / N where the pair loses the true class's."""

from __future__ import annotations

import numpy as np
import pytest

from handgrad import Classifier, Sequential, fit
from handgrad.data import Normalizer, from_arrays
from handgrad.fast.head import fused_head
from handgrad.layers import Flatten, Linear, ReLU, Softmax
from handgrad.losses import MSE, CrossEntropy, SoftmaxCrossEntropy


def _head(rng, last):
    return Sequential([Linear(4, 3, rng=rng), ReLU(), Linear(3, 3, rng=rng), last])


class _NamedSoftmax(Softmax):
    """A subclass that computes what Softmax does: it declares the same, and is fused."""


class _TemperedSoftmax(Softmax):
    """A subclass that computes something else: it declares nothing, and is not fused."""

    def _forward(self, x):
        return super()._forward(x / 2)


class _OwnCrossEntropy(CrossEntropy):
    """A loss of one's own."""


@pytest.mark.parametrize("last", [Softmax, _NamedSoftmax])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_softmax_and_cross_entropy_run_as_the_fused_loss_on_the_same_layers(rng, last, reduction):
    model = _head(rng, last())
    run, loss = fused_head(model, CrossEntropy(reduction))
    assert type(loss) is SoftmaxCrossEntropy and loss.reduction == reduction
    assert run.layers == model.layers[:-1]  # the model's own layers: training one trains the other


@pytest.mark.parametrize(
    "last, loss",
    [
        (_TemperedSoftmax, CrossEntropy),
        (Softmax, MSE),
        (lambda: Linear(3, 3), SoftmaxCrossEntropy),
        (Softmax, _OwnCrossEntropy),
    ],
    ids=["softmax computing otherwise", "mse", "logits already", "own loss"],
)
def test_anything_else_runs_as_it_is(rng, last, loss):
    model, loss = _head(rng, last()), loss()
    assert fused_head(model, loss) == (model, loss)


def _identity_then_softmax():
    """Z = X W + b with W = I, b = 0, then a softmax: the gradient with respect to X is that of the logits."""
    affine = Linear(3, 3, dtype=np.float32)
    affine.params["weight"][...] = np.eye(3)
    affine.params["bias"][...] = 0
    return Sequential([affine, Softmax()])


def test_the_fused_gradient_is_y_minus_t_where_the_pair_loses_the_true_class():
    """Float32 logits 100 apart: the true class's probability falls below the smallest normal number.  Through
    the model and its pair, the gradient of the logits is lost (under 1e-5 where it is -1/N); through what
    fused_head gives, it is (Y - T) / N, and the loss is exact, not floored."""
    logits = np.array([[100.0, 0.0, -5.0], [0.5, 0.2, 0.1]], dtype=np.float32)
    labels = np.array([1, 0])
    model, pair = _identity_then_softmax(), CrossEntropy()
    floored = pair.forward(model.forward(logits), labels)
    unfused = model.backward(pair.backward())
    run, fused = fused_head(model, pair)
    exact = fused.forward(run.forward(logits), labels)
    dz = run.backward(fused.backward())

    y = np.exp(logits - logits.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dz, (y - np.eye(3)[labels]) / 2, rtol=1e-6, atol=1e-7)
    assert np.abs(unfused[0]).max() < 1e-5 and dz[0, 1] == pytest.approx(-0.5)  # what the fusion restores
    np.testing.assert_allclose(unfused[1], dz[1], rtol=1e-5)  # where nothing underflows, the two agree
    z = logits.astype(np.float64)
    assert exact == pytest.approx(np.mean(np.logaddexp.reduce(z, axis=1) - z[[0, 1], labels]), rel=1e-6)
    assert floored < exact - 5  # the pair's loss at -ln tiny


def test_a_classifier_scores_with_the_exact_loss_and_gives_the_softmax_probabilities():
    model = Sequential([Flatten(), _identity_then_softmax()[0], Softmax()])
    model[1].params["bias"][...] = [0, 200, 0]  # sure of class 1 by a gap of 200
    pixels = np.array([[[0, 255, 0]], [[255, 0, 255]]], dtype=np.uint8)  # (2, 1, 3): one row of three pixels
    classifier = Classifier(model, CrossEntropy(), Normalizer(), ["a", "b", "c"], (1, 1, 3))
    loss, accuracy = classifier.evaluate(pixels, np.array([0, 1]))
    assert loss == pytest.approx((201 + np.log1p(2 * np.exp(-201.0))) / 2, rel=1e-6) and accuracy == 0.5
    probabilities = classifier.probabilities(pixels)
    np.testing.assert_allclose(probabilities, model.predict(pixels.astype(np.float32) / 255), rtol=1e-6)


def test_fit_learns_from_samples_the_unfused_pair_cannot(rng):
    """A model sure of the wrong class by a logit gap of 400 on most samples: the unfused pair's gradient is 0 for
    all of them (the parameters would not move); fit trains the fused loss, whose exact value it reports."""
    x = rng.integers(0, 256, (64, 2, 2), dtype=np.uint8)
    y = np.ones(64, dtype=np.int64)
    y[:8] = 0
    model = Sequential([Flatten(), Linear(4, 2, rng=rng), Softmax()])
    model[1].params["weight"][...] = 0
    model[1].params["bias"][...] = [200, -200]
    before = model[1].params["bias"].copy()
    quiet = {"epochs": 1, "batch_size": 16, "progress": False, "log": lambda *a: None}
    result = fit(model, CrossEntropy(), from_arrays(x, y), rng=rng, **quiet)
    assert result.metrics[0]["train_loss"] > 300  # the exact -ln p, not the floored 87.3 of the unfused pair
    assert model[1].params["bias"][1] > before[1]  # the true class was pulled up
