"""The softmax + cross-entropy fusion of the training loop (handgrad.fast.head): the same loss as a softmax layer
with cross-entropy, and the gradient (Y - T) / N where the unfused pair loses the true class's."""

from __future__ import annotations

import numpy as np
import pytest

from handgrad import Sequential, fit
from handgrad.data import from_arrays
from handgrad.fast.head import fused_head
from handgrad.layers import Flatten, Linear, ReLU, Softmax
from handgrad.losses import MSE, CrossEntropy, SoftmaxCrossEntropy


def _head(rng, last):
    return Sequential([Linear(4, 3, rng=rng), ReLU(), Linear(3, 3, rng=rng), last])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_softmax_layer_and_cross_entropy_train_as_the_fused_loss_on_the_same_layers(rng, reduction):
    model = _head(rng, Softmax())
    trained, loss = fused_head(model, CrossEntropy(reduction))
    assert type(loss) is SoftmaxCrossEntropy and loss.reduction == reduction
    assert trained.layers == model.layers[:-1]  # the model's own layers: training one trains the other


class _OwnSoftmax(Softmax):
    """A softmax of one's own: it may compute something else, so it is not fused."""


class _OwnCrossEntropy(CrossEntropy):
    """The same for a loss."""


@pytest.mark.parametrize(
    "last, loss",
    [
        (_OwnSoftmax, CrossEntropy),
        (Softmax, MSE),
        (lambda: Linear(3, 3), SoftmaxCrossEntropy),
        (Softmax, _OwnCrossEntropy),
    ],
    ids=["own softmax", "mse", "logits already", "own loss"],
)
def test_anything_else_is_trained_as_it_is(rng, last, loss):
    model, loss = _head(rng, last()), loss()
    assert fused_head(model, loss) == (model, loss)


def test_the_fused_gradient_is_y_minus_t_where_the_pair_loses_the_true_class(rng):
    """Float32 logits 100 apart: the true class's probability falls below the smallest normal number, and the
    pair's gradient with respect to the logits is lost (under 1e-5 where it is -1/N); the fused form gives
    (Y - T) / N."""
    logits = np.array([[100.0, 0.0, -5.0], [0.5, 0.2, 0.1]], dtype=np.float32)
    labels = np.array([1, 0])
    softmax, pair = Softmax(), CrossEntropy()
    pair.forward(softmax.forward(logits), labels)
    unfused = softmax.backward(pair.backward())
    fused = SoftmaxCrossEntropy()
    exact_loss = fused.forward(logits, labels)
    dz = fused.backward()
    y = np.exp(logits - logits.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dz, (y - np.eye(3)[labels]) / 2, rtol=1e-6, atol=1e-7)
    assert np.abs(unfused[0]).max() < 1e-5 and dz[0, 1] == pytest.approx(-0.5)  # what the fusion restores
    np.testing.assert_allclose(unfused[1], dz[1], rtol=1e-5)  # where nothing underflows, the two agree
    z = logits.astype(np.float64)
    assert exact_loss == pytest.approx(np.mean(np.logaddexp.reduce(z, axis=1) - z[[0, 1], labels]), rel=1e-6)


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
    result = fit(
        model, CrossEntropy(), from_arrays(x, y), rng=rng, epochs=1, batch_size=16, progress=False, log=lambda *a: None
    )
    assert result.metrics[0]["train_loss"] > 300  # the exact -ln p, not the floored 87.3 of the unfused pair
    assert model[1].params["bias"][1] > before[1]  # the true class was pulled up
