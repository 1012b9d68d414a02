"""Bad input raises a clear error naming the argument, what was expected and what arrived;
forward and backward never modify their inputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from handgrad import Sequential
from handgrad import functional as F
from handgrad.layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh
from handgrad.losses import MSE, CrossEntropy, SoftmaxCrossEntropy

X = np.zeros((2, 3, 8, 8), dtype=np.float32)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Conv2D(3, 4, 3, stride=0), r"stride must be >= 1, got \(0, 0\)"),
        (lambda: Conv2D(3, 4, 3, stride=(1, -2)), r"stride must be >= 1, got \(1, -2\)"),
        (lambda: Conv2D(3, 4, 3, padding=-1), r"padding must be >= 0, got -1"),
        (lambda: Conv2D(3, 4, 3, center=(3, 0)), r"center must be a cell of the 3x3 kernel.*got \(3, 0\)"),
        (lambda: Conv2D(3, 4, (2, 3), center=(0, -1)), r"center must be a cell of the 2x3 kernel.*got \(0, -1\)"),
        (lambda: Conv2D(3, 4, 0), r"kernel_size must be >= 1, got \(0, 0\)"),
        (lambda: Conv2D(3, 4, (1, 2, 3)), r"kernel_size must be an int or a pair of ints, got \(1, 2, 3\)"),
        (lambda: Conv2D(3, 4, 2.5), r"kernel_size must be an int or a pair of ints, got 2.5"),
        (lambda: Conv2D(3, 4, 3, mode="convolution"), r"mode must be one of \('xcorr', 'conv'\), got 'convolution'"),
        (lambda: Conv2D(0, 4, 3), r"in_channels must be a positive int, got 0"),
        (lambda: Conv2D(3, 4, 3, dtype=np.int32), r"dtype must be a floating type, got int32"),
        (lambda: MaxPool2D(2, stride=0), r"MaxPool2D: stride must be >= 1"),
        (lambda: MaxPool2D(2, center=(2, 2)), r"MaxPool2D: center must be a cell"),
        (lambda: Linear(0, 3), r"Linear: in_features must be a positive int, got 0"),
        (lambda: MSE(reduction="avg"), r"reduction must be one of \('mean', 'sum'\), got 'avg'"),
        (lambda: Conv2D(4, 6, 3, groups=4), r"groups=4 must divide in_channels=4 and out_channels=6"),
        (lambda: Conv2D(3, 4, 3, stride=2, padding="same"), r"padding='same' needs stride 1"),
        (lambda: Conv2D(3, 4, 3, padding="full"), r"padding must be an int, a pair of ints, 'same' or 'valid'"),
        (lambda: Conv2D(3, 4, 3, padding_mode="mirror"), r"padding_mode must be one of \('zeros', 'reflect'"),
        (lambda: Conv2D(3, 4, 3, dilation=0), r"dilation must be >= 1, got \(0, 0\)"),
        (lambda: MaxPool2D(2, dilation=(1, -1)), r"MaxPool2D: dilation must be >= 1"),
    ],
)
def test_bad_hyper_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer, x, message",
    [
        (Conv2D(3, 4, 3), np.zeros((28, 28)), r"x must be \(N, C, H, W\), got shape \(28, 28\)"),
        (Conv2D(3, 4, 3), np.zeros((2, 1, 8, 8)), r"x must have C = 3 channels .* got x of shape \(2, 1, 8, 8\)"),
        (Conv2D(3, 4, 5), np.zeros((2, 3, 4, 8)), r"kernel_size \(5, 5\) is larger than the padded input \(4, 8\)"),
        (Conv2D(3, 4, 5, padding=1), np.zeros((2, 3, 2, 8)), r"larger than the padded input \(4, 10\)"),
        (
            Conv2D(3, 4, 3, dilation=3),
            np.zeros((2, 3, 6, 8)),
            r"kernel_size \(3, 3\) \(dilated to \(7, 7\)\) is larger",
        ),
        (
            Conv2D(3, 4, 3, padding=2, padding_mode="reflect"),
            np.zeros((1, 3, 2, 8)),
            r"padding_mode='reflect' needs padding < input size",
        ),
        (MaxPool2D(3), np.zeros((2, 8, 8)), r"x must be \(N, C, H, W\), got shape \(2, 8, 8\)"),
        (MaxPool2D(3), np.zeros((1, 1, 2, 2)), r"kernel_size \(3, 3\) is larger than the padded input \(2, 2\)"),
        (MaxPool2D(2, padding=1, center=(1, 1)), np.zeros((1, 1, 4, 4)), r"some windows hold only padding rows"),
        (MaxPool2D(2), np.zeros((1, 1, 4, 4), dtype=np.int64), r"x must be a floating-point array, got dtype int64"),
        (Linear(4, 3), np.zeros((2, 5)), r"x must have 4 features .* got x of shape \(2, 5\)"),
        (Linear(4, 3), np.zeros(4), r"x must be \(N, in_features\), got shape \(4,\)"),
        (Softmax(), np.zeros((2, 3, 4)), r"x must be \(N, K\), got shape \(2, 3, 4\)"),
        (Flatten(), np.zeros(3), r"x must be \(N, \.\.\.\) with at least 2 axes, got shape \(3,\)"),
        (ReLU(), np.array([["a"]]), r"x must be a floating-point array, got dtype <U1"),
    ],
)
def test_bad_input(layer, x, message):
    with pytest.raises(ValueError, match=message):
        layer.forward(x)


def test_a_layer_checks_its_input_at_every_call():
    """The layers' windows and output sizes are worked out once; a bad input is refused every time."""
    pool, small = MaxPool2D(3), np.zeros((1, 1, 2, 2), dtype=np.float32)
    for _ in range(2):
        with pytest.raises(ValueError, match=r"kernel_size \(3, 3\) is larger than the padded input \(2, 2\)"):
            pool.forward(small)
    assert pool.forward(np.zeros((1, 1, 3, 3), dtype=np.float32)).shape == (1, 1, 1, 1)


def test_a_kernel_of_another_size_than_the_layers_window_is_refused():
    layer = Conv2D(3, 4, 3)
    layer.params["weight"] = np.zeros((4, 3, 5, 5), dtype=np.float32)
    with pytest.raises(
        ValueError, match=r"weight must have the window's \(3, 3\) kernel, got weight of shape \(4, 3, 5, 5\)"
    ):
        layer.forward(X)


LAYERS = [Conv2D(3, 2, 3, padding=1), MaxPool2D(2), ReLU(), Sigmoid(), Tanh(), Flatten()]


@pytest.mark.parametrize("layer", [*LAYERS, Linear(4, 2), Softmax()], ids=repr)
def test_backward_before_forward(layer):
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}\.backward called before forward"):
        layer.backward(np.zeros((2, 2)))


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_gradient_of_the_wrong_shape(layer):
    y = layer.forward(X)
    bad = np.zeros((y.shape[0] + 1, *y.shape[1:]), dtype=np.float32)
    with pytest.raises(
        ValueError, match=rf"dy must have shape {y.shape}, got {bad.shape}".replace("(", r"\(").replace(")", r"\)")
    ):
        layer.backward(bad)


def test_losses_reject_bad_targets():
    logits = np.zeros((3, 4))
    for loss in (CrossEntropy(), SoftmaxCrossEntropy()):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\] for 4 classes, got values from 0 to 4"):
            loss.forward(logits + 0.25, np.array([0, 4, 1]))
        with pytest.raises(ValueError, match=r"integer labels must have shape \(3,\), got \(2,\)"):
            loss.forward(logits + 0.25, np.array([0, 1]))
        with pytest.raises(ValueError, match=r"target rows must be non-negative and sum to 1"):
            loss.forward(logits + 0.25, np.full((3, 4), 0.5))
        with pytest.raises(
            ValueError, match=r"probability rows of shape \(3, 4\), got dtype float64 and shape \(3, 5\)"
        ):
            loss.forward(logits + 0.25, np.zeros((3, 5)))
        with pytest.raises(RuntimeError, match="backward called before forward"):
            type(loss)().backward()
    with pytest.raises(ValueError, match=r"target must have the prediction's shape \(3, 4\), got \(4, 3\)"):
        MSE().forward(logits, np.zeros((4, 3)))


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match="item 1 must be a layer"):
        Sequential([ReLU(), "relu"])


def test_checks_survive_python_optimise_flag():
    """Validation is not built on assert, which ``python -O`` removes."""
    code = (
        "import numpy as np\n"
        "from handgrad.layers import Conv2D\n"
        "for make in (lambda: Conv2D(1, 1, 3, stride=0), lambda: Conv2D(1, 1, 3).forward(np.zeros((5, 5)))):\n"
        "    try:\n"
        "        make()\n"
        "    except ValueError:\n"
        "        continue\n"
        "    raise SystemExit('no error raised')\n"
    )
    subprocess.run([sys.executable, "-O", "-c", code], check=True)


def _all_layers(rng):
    conv = Conv2D(3, 2, 3, stride=2, padding=1, mode="conv", center=(1, 2), dtype=np.float64, rng=rng)
    return [
        (conv, rng.standard_normal((2, 3, 7, 7))),
        (MaxPool2D(3, stride=2, padding=1, center=(1, 1)), rng.standard_normal((2, 3, 7, 7))),
        (Linear(5, 3, dtype=np.float64, rng=rng), rng.standard_normal((4, 5))),
        (ReLU(), rng.standard_normal((2, 3, 4))),
        (Sigmoid(), rng.standard_normal((2, 3, 4))),
        (Tanh(), rng.standard_normal((2, 3, 4))),
        (Softmax(), rng.standard_normal((3, 5))),
        (Flatten(), rng.standard_normal((2, 3, 4))),
    ]


def test_forward_and_backward_never_modify_their_inputs(rng):
    for layer, x in _all_layers(rng):
        params = {k: v.copy() for k, v in layer.params.items()}
        x_before = x.copy()
        y = layer.forward(x)
        y_before = y.copy()
        dy = rng.standard_normal(y.shape)
        dy_before = dy.copy()
        layer.backward(dy)
        layer.backward(dy)  # twice: a pure backward gives the same result again
        np.testing.assert_array_equal(x, x_before, err_msg=repr(layer))
        np.testing.assert_array_equal(dy, dy_before, err_msg=repr(layer))
        np.testing.assert_array_equal(y, y_before, err_msg=repr(layer))
        for k, v in layer.params.items():
            np.testing.assert_array_equal(v, params[k], err_msg=f"{layer!r} {k}")


def test_backward_is_repeatable(rng):
    for layer, x in _all_layers(rng):
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape)
        first = layer.backward(dy).copy()
        grads = {k: v.copy() for k, v in layer.grads.items()}
        np.testing.assert_array_equal(layer.backward(dy), first, err_msg=repr(layer))
        for k, v in layer.grads.items():
            np.testing.assert_array_equal(v, grads[k])


def test_losses_never_modify_their_inputs(rng):
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 2, 1, 1])
    probabilities, _ = F.softmax_forward(logits)
    for loss, prediction, target in [
        (SoftmaxCrossEntropy(), logits, labels),
        (CrossEntropy(), probabilities, labels),
        (MSE(), logits, rng.standard_normal((4, 3))),
    ]:
        before = prediction.copy(), np.array(target, copy=True)
        loss.forward(prediction, target)
        grad = loss.backward()
        expected = grad.copy()
        grad += 1  # the caller may write into the gradient it got
        np.testing.assert_array_equal(loss.backward(), expected)
        np.testing.assert_array_equal(prediction, before[0])
        np.testing.assert_array_equal(target, before[1])
