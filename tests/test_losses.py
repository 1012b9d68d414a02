"""Properties of the losses that the oracles do not state on their own."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import assert_close

from handgrad import Sequential
from handgrad import functional as F
from handgrad.layers import Linear, Sigmoid, Softmax
from handgrad.losses import MSE, CrossEntropy, SoftmaxCrossEntropy


def test_fused_softmax_cross_entropy_on_extreme_logits():
    loss = SoftmaxCrossEntropy()
    assert loss.forward(np.array([[1000.0, 800.0, 0.0]]), np.array([1])) == 200.0
    grad = loss.backward()
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad, [[1.0, -1.0, 0.0]])  # softmax is (1, e^-200, e^-1000) - onehot


def test_fused_gradient_is_softmax_minus_target_over_n(rng):
    z, labels = rng.standard_normal((4, 3)), np.array([2, 0, 1, 1])
    loss = SoftmaxCrossEntropy()
    loss.forward(z, labels)
    e = np.exp(z)
    assert_close(loss.backward(), (e / e.sum(1, keepdims=True) - np.eye(3)[labels]) / 4, 1e-14)


def test_jacobian_path_and_fused_path_give_the_same_gradient(rng):
    """Softmax layer + CrossEntropy (through the full Jacobian) == SoftmaxCrossEntropy (y - t)."""
    z = 2 * rng.standard_normal((6, 5))
    for target in (rng.integers(0, 5, size=6), rng.dirichlet(np.ones(5), size=6)):
        softmax, ce, fused = Softmax(), CrossEntropy(), SoftmaxCrossEntropy()
        loss = ce.forward(softmax.forward(z), target)
        dz = softmax.backward(ce.backward())
        assert_close(loss, fused.forward(z, target), 1e-14)
        assert_close(dz, fused.backward(), 1e-12)


def test_labels_and_onehot_rows_are_the_same_target(rng):
    z, labels = rng.standard_normal((5, 4)), rng.integers(0, 4, size=5)
    for loss in (SoftmaxCrossEntropy(), CrossEntropy()):
        prediction = z if isinstance(loss, SoftmaxCrossEntropy) else np.exp(z) / np.exp(z).sum(1, keepdims=True)
        a, da = loss.forward(prediction, labels), loss.backward()
        b, db = loss.forward(prediction, np.eye(4)[labels]), loss.backward()
        assert a == b
        np.testing.assert_array_equal(da, db)


def test_reductions(rng):
    y, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert_close(MSE().forward(y, t), np.mean((y - t) ** 2), 1e-14)
    assert_close(MSE("sum").forward(y, t), np.sum((y - t) ** 2), 1e-14)
    z, labels = rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])
    assert_close(SoftmaxCrossEntropy("sum").forward(z, labels), 4 * SoftmaxCrossEntropy().forward(z, labels), 1e-14)


def test_sigmoid_is_finite_and_silent_for_large_inputs():
    x = np.array([[-1000.0, -745.0, -50.0, 0.0, 50.0, 745.0, 1000.0]])
    for dtype in (np.float32, np.float64):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            layer = Sigmoid()
            y = layer.forward(x.astype(dtype))
            dx = layer.backward(np.ones_like(y))
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
        assert y[0, 0] == 0.0 and y[0, 3] == 0.5 and y[0, -1] == 1.0
        assert y.dtype == dtype


def test_float32_stays_float32(rng):
    model = Sequential([Linear(4, 3, rng=rng), Sigmoid(), Linear(3, 2, rng=rng)])
    y = model.forward(rng.standard_normal((5, 4)))  # float64 input is converted to the parameters' dtype
    assert y.dtype == np.float32
    loss = SoftmaxCrossEntropy()
    loss.forward(y, np.array([0, 1, 0, 1, 1]))
    dx = model.backward(loss.backward())
    assert dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.grads.values())


def test_softmax_layer_and_cross_entropy_stay_finite_and_silent_at_large_logits():
    """A true class whose probability underflows costs -ln tiny, not infinity, and its gradient stays finite."""
    z = np.array([[1e4, -1e4, 0.0], [0.0, 200.0, -200.0], [1.0, 2.0, 3.0], [-1e4, 1e4, 0.0]])
    labels = np.array([1, 2, 2, 1])  # rows 0 and 1: the true class is far behind; row 3: far ahead
    for dtype in (np.float32, np.float64):
        softmax, ce, fused = Softmax(), CrossEntropy(), SoftmaxCrossEntropy()
        with warnings.catch_warnings(), np.errstate(under="ignore"):  # exp(-2e4) underflowing to 0 is expected
            warnings.simplefilter("error")
            loss = ce.forward(softmax.forward(z.astype(dtype)), labels)
            dz = softmax.backward(ce.backward())
        # expected in float64 from the logits: -ln max(Y, tiny) = min(logsumexp(z) - z_t, -ln tiny)
        m = z.max(axis=1)
        lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
        per_row = np.minimum(lse - z[np.arange(4), labels], -np.log(np.finfo(dtype).tiny))
        assert_close(loss, per_row.mean(), 1e-6 if dtype == np.float32 else 1e-14)
        assert np.all(np.isfinite(dz)) and dz.dtype == dtype
        fused.forward(z.astype(dtype), labels)
        exact = fused.backward()
        assert_close(dz[2:], exact[2:], 1e-6)  # where nothing underflows, the Jacobian path is the fused one


def test_cross_entropy_of_probabilities_that_underflowed_to_zero_is_finite():
    for dtype in (np.float32, np.float64):
        tiny = np.finfo(dtype).tiny
        for reduction in ("mean", "sum"):
            loss = CrossEntropy(reduction)
            y = np.array([[1.0, 0.0], [0.5, 0.5], [1.0, tiny / 8]], dtype=dtype)  # 0 and a subnormal
            value = loss.forward(y, np.array([1, 0, 1]))
            dy = loss.backward()
            scale = 1 / 3 if reduction == "mean" else 1.0
            assert_close(value, scale * (2 * -np.log(tiny) + np.log(2)), 1e-6)
            assert np.all(np.isfinite(dy)) and dy.dtype == dtype
            assert_close(dy, scale * np.array([[0, -1 / tiny], [-2, 0], [0, -1 / tiny]]), 1e-6)


def test_label_smoothing_rows_sum_to_one_and_are_the_minimum_of_the_fused_loss(rng):
    """Smoothed rows are probabilities; logits whose softmax equals them have a zero gradient, and any other
    logits a higher loss (cross-entropy is smallest at softmax(Z) = T)."""
    labels = np.array([2, 0, 1, 1])
    rows = F.smoothed_targets(labels, 3, 0.3, np.float64)
    assert_close(rows.sum(axis=1), np.ones(4), 1e-15)
    assert_close(rows[np.arange(4), labels], np.full(4, 0.7 + 0.1), 1e-15)
    loss = SoftmaxCrossEntropy()
    best = loss.forward(np.log(rows), rows)
    assert_close(loss.backward(), np.zeros((4, 3)), 1e-15)
    for _ in range(5):
        assert loss.forward(np.log(rows) + 0.1 * rng.standard_normal((4, 3)), rows) > best


def test_label_smoothing_is_refused_outside_0_to_1():
    for bad in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="label_smoothing must be a number in \\[0, 1\\]"):
            F.smoothed_targets(np.array([0, 1]), 2, bad)
    with pytest.raises(ValueError, match="labels must lie in \\[0, 2\\]"):
        F.smoothed_targets(np.array([0, 3]), 3, 0.1)
