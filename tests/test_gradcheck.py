"""Oracle 2: central differences in float64 for dX and every parameter gradient of every layer and loss."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES
from helpers import distinct_values, random_window_config, unless_padding_only
from test_reference import random_conv_options

import handgrad
from handgrad import gradcheck, gradcheck_loss
from handgrad.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    Linear,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from handgrad.losses import MSE, CrossEntropy, SoftmaxCrossEntropy

CONFIGS = 60


def assert_passes(result, config, record, layer):
    assert result, f"gradient check failed for {config}:\n{result}"
    record(layer, "gradcheck", *(check.max_rel_error for check in result.checks))


def test_conv2d(rng, record):
    for _ in range(CONFIGS):
        g = random_window_config(rng, max_kernel=4)
        c, o = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        bias = bool(rng.integers(0, 2))
        layer = Conv2D(c, o, g["kernel"], g["stride"], g["padding"], g["mode"], g["center"], bias, np.float64, rng=rng)
        x = rng.standard_normal((2, c, *g["size"]))
        result = gradcheck(layer, x, seed=int(rng.integers(1 << 30)))
        assert {check.name for check in result.checks} == ({"x", "weight", "bias"} if bias else {"x", "weight"})
        assert_passes(result, g, record, "Conv2D")


def test_maxpool2d(rng, record):
    checked = 0
    while checked < CONFIGS:
        g = random_window_config(rng, max_kernel=4)
        layer = MaxPool2D(g["kernel"], g["stride"], g["padding"], g["mode"], g["center"])
        x = distinct_values(rng, (2, 2, *g["size"]))  # ties are kinks: keep every value apart
        result = unless_padding_only(gradcheck, layer, x)
        if result is None:  # tested in test_errors
            continue
        checked += 1
        assert_passes(result, g, record, "MaxPool2D")


def test_conv2d_options(rng, record):
    """Dilation, groups, padding modes and per-side/'same'/'valid' padding."""
    checked = 0
    while checked < 40:
        g, opt = random_window_config(rng, max_kernel=3, options=True), random_conv_options(rng)
        try:
            layer = Conv2D(
                opt["C"],
                opt["O"],
                g["kernel"],
                g["stride"],
                g["padding"],
                g["mode"],
                g["center"],
                True,
                np.float64,
                dilation=g["dilation"],
                groups=opt["groups"],
                padding_mode=opt["padding_mode"],
                rng=rng,
            )
            result = gradcheck(layer, rng.standard_normal((2, opt["C"], *g["size"])), seed=int(rng.integers(1 << 30)))
        except ValueError as error:  # reflect needs padding < size, circular <= size
            assert "padding_mode=" in str(error)
            continue
        checked += 1
        assert_passes(result, {**g, **opt}, record, "Conv2D options")


def test_maxpool2d_options(rng, record):
    checked = 0
    while checked < 40:
        g = random_window_config(rng, max_kernel=3, options=True)
        ceil_mode = bool(rng.integers(0, 2))
        layer = MaxPool2D(
            g["kernel"], g["stride"], g["padding"], g["mode"], g["center"], dilation=g["dilation"], ceil_mode=ceil_mode
        )
        result = unless_padding_only(gradcheck, layer, distinct_values(rng, (2, 2, *g["size"])))
        if result is None:  # tested in test_errors
            continue
        checked += 1
        assert_passes(result, {**g, "ceil_mode": ceil_mode}, record, "MaxPool2D options")


def test_avgpool2d(rng, record):
    checked = 0
    while checked < 40:
        g = random_window_config(rng, max_kernel=3, options=checked % 2 == 1)
        layer = AvgPool2D(
            g["kernel"],
            g["stride"],
            g["padding"],
            g["mode"],
            g["center"],
            ceil_mode=bool(rng.integers(0, 2)),
            count_include_pad=bool(rng.integers(0, 2)),
        )
        result = unless_padding_only(gradcheck, layer, rng.standard_normal((2, 2, *g["size"])))
        if result is None:  # tested in test_errors
            continue
        checked += 1
        assert_passes(result, g, record, "AvgPool2D")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer(rng, record, case):
    """Every row of the shared table: dX and every parameter gradient against central differences."""
    for shape in case.shapes:
        layer = case.make(rng)
        result = gradcheck(layer, case.input(rng, shape), seed=int(rng.integers(1 << 30)))
        assert {check.name for check in result.checks} == {"x", *layer.params}
        assert_passes(result, shape, record, case.name)


def test_dropout(rng, record):
    """Its masks come from a generator that the check puts back before every forward pass."""
    layer = Dropout(0.4, rng=np.random.default_rng(3))
    before = layer.rng.bit_generator.state
    assert_passes(gradcheck(layer, rng.standard_normal((4, 6))), "p=0.4", record, "Dropout")
    assert layer.rng.bit_generator.state == before
    assert_passes(gradcheck(layer.eval(), rng.standard_normal((4, 6))), "eval", record, "Dropout")


@pytest.mark.parametrize("cls, shape", [(BatchNorm2D, (4, 3, 5, 5)), (BatchNorm1D, (8, 5))])
def test_batchnorm_in_both_modes_without_disturbing_its_statistics(rng, record, cls, shape):
    layer = cls(shape[1], momentum=0.3, dtype=np.float64)
    layer.params["weight"][:] = rng.standard_normal(shape[1])
    layer.params["bias"][:] = rng.standard_normal(shape[1])
    layer.forward(rng.standard_normal(shape))  # running statistics away from their start
    before = {k: v.copy() for k, v in layer.buffers.items()}
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        assert_passes(
            gradcheck(layer, 2 * rng.standard_normal(shape) + 1), f"{cls.__name__} {mode}", record, "BatchNorm"
        )
        for key, value in layer.buffers.items():
            np.testing.assert_array_equal(value, before[key], err_msg=f"{key} changed by a gradient check")
    affine_free = cls(shape[1], affine=False, dtype=np.float64)
    assert_passes(gradcheck(affine_free, rng.standard_normal(shape)), "no affine", record, "BatchNorm")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses(rng, record, reduction):
    n, k = 6, 5
    labels = rng.integers(0, k, size=n)
    soft = rng.dirichlet(np.ones(k), size=n)
    probabilities = rng.dirichlet(np.ones(k), size=n)
    logits = 3 * rng.standard_normal((n, k))
    cases = [
        (MSE(reduction), rng.standard_normal((n, k)), rng.standard_normal((n, k))),
        (MSE(reduction), rng.standard_normal((3, 2, 4, 4)), rng.standard_normal((3, 2, 4, 4))),
        (CrossEntropy(reduction), probabilities, labels),
        (CrossEntropy(reduction), probabilities, soft),
        (SoftmaxCrossEntropy(reduction), logits, labels),
        (SoftmaxCrossEntropy(reduction), logits, soft),
    ]
    for loss, prediction, target in cases:
        assert_passes(gradcheck_loss(loss, prediction, target), loss, record, type(loss).__name__)


def test_a_whole_model(rng, record):
    model = handgrad.Sequential(
        [
            Conv2D(1, 2, 3, padding=1, mode="conv", center=(1, 2), dtype=np.float64, rng=rng),
            Tanh(),
            MaxPool2D(2),
            Conv2D(2, 3, 2, stride=2, dtype=np.float64, rng=rng),
            Sigmoid(),
            Flatten(),
            Linear(3 * 2 * 2, 4, dtype=np.float64, rng=rng),
            Softmax(),
        ]
    )
    result = gradcheck(model, rng.standard_normal((2, 1, 8, 8)))
    assert_passes(result, model, record, "Sequential")
    assert {check.name for check in result.checks} == {"x", *model.params}


def test_residual_blocks(rng, record):
    from test_model import _residual_model

    model = _residual_model(rng)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        assert_passes(gradcheck(model, rng.standard_normal((2, 1, 6, 6))), mode, record, "Residual")


class _SigmoidWithWrongBackward(Sigmoid):
    def _backward(self, dy, y, input_grad):
        return dy * y, {}  # forgets the (1 - y) factor


class _LinearWithWrongWeightGradient(Linear):
    def _backward(self, dy, cache, input_grad):
        dx, grads = super()._backward(dy, cache, input_grad)
        grads["weight"] = grads["weight"] * 1.001  # off by 0.1 %
        return dx, grads


class _ConvForgettingTheFlip(Conv2D):
    def _backward(self, dy, cache, input_grad):
        dx, grads = super()._backward(dy, cache, input_grad)
        return dx, {**grads, "weight": grads["weight"][:, :, ::-1, ::-1]}  # true convolution's flip undone


def test_the_checker_catches_wrong_backward_passes(rng):
    x = rng.standard_normal((3, 4))
    result = gradcheck(_SigmoidWithWrongBackward(), x)
    assert not result and not result["x"].ok

    result = gradcheck(_LinearWithWrongWeightGradient(4, 2, dtype=np.float64, rng=rng), x)
    assert not result
    assert result["x"].ok and result["bias"].ok and not result["weight"].ok
    assert "FAIL" in str(result["weight"])

    conv = _ConvForgettingTheFlip(1, 1, 3, mode="conv", center=(1, 1), dtype=np.float64, rng=rng)
    result = gradcheck(conv, rng.standard_normal((1, 1, 5, 5)))
    assert result["x"].ok and not result["weight"].ok


def test_a_coarse_step_fails(rng):
    """The tolerance is tight enough to see the O(eps^2) error of a step of 0.1."""
    x = rng.standard_normal((3, 4))
    assert gradcheck(Sigmoid(), x)
    assert not gradcheck(Sigmoid(), x, eps=0.1)


def test_checker_leaves_layer_and_input_as_they_were(rng):
    layer = Linear(3, 2, dtype=np.float64, rng=rng)
    weight = layer.params["weight"].copy()
    x = rng.standard_normal((4, 3))
    x_before = x.copy()
    gradcheck(layer, x)
    np.testing.assert_array_equal(layer.params["weight"], weight)
    np.testing.assert_array_equal(x, x_before)
    dy = np.random.default_rng(0).uniform(-1, 1, size=(4, 2))
    np.testing.assert_array_equal(layer.grads["weight"], x.T @ dy)  # state of forward(x); backward(dy)


def test_checker_wants_float64(rng):
    with pytest.raises(ValueError, match="float64"):
        gradcheck(Linear(3, 2, rng=rng), rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match="float64"):
        gradcheck(ReLU(), rng.standard_normal((2, 3)).astype(np.float32))
