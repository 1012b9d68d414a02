"""The fast tier's stride-1 convolution and the tiling max-pooling after it, taken as one product over the windows'
phases: held to the loops, to the fast kernels run separately, to a float64 numerical gradient and to PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
import torch_reference as T
from helpers import assert_close, off_kinks

import handgrad
from handgrad import Sequential, gradcheck
from handgrad import reference as R
from handgrad.fast import conv_pool
from handgrad.fast.conv import conv2d_backward, conv2d_forward
from handgrad.fast.conv_pool import conv2d_maxpool2d_backward, conv2d_maxpool2d_forward, fusable
from handgrad.fast.pool import maxpool2d_backward, maxpool2d_forward
from handgrad.layers import Conv2D, MaxPool2D, ReLU
from handgrad.shapes import Window

# (C, O, kernel, padding, mode, centre, pooling window, input size): odd sizes leave rows no window reads
GEOMETRIES = [
    (1, 8, 5, 0, "xcorr", None, 2, (12, 12)),
    (1, 4, 3, 1, "xcorr", None, 2, (9, 10)),
    (3, 4, 3, 1, "conv", (1, 2), 2, (9, 7)),
    (2, 3, (2, 3), ((1, 0), (2, 1)), "conv", (0, 1), (3, 2), (8, 9)),
    (2, 3, 4, "same", "xcorr", (2, 1), 2, (7, 8)),
    (1, 2, 1, 0, "xcorr", None, 3, (7, 6)),
    (1, 2, (1, 4), 0, "xcorr", None, (1, 2), (3, 9)),
]


def _windows(kernel, padding, mode, center, pool):
    return Window.of(kernel, 1, padding, mode, center, "test"), Window.pooling(pool)


def _separately(x, w, b, conv, pool, floor):
    """The convolution and the max-pooling (of max(Y, floor)) as the separate kernels compute them."""
    y, conv_cache = conv2d_forward(x, w, b, conv)
    p, pool_cache = maxpool2d_forward(y, pool, True, floor)
    return p, lambda dy: conv2d_backward(maxpool2d_backward(dy, pool_cache), conv_cache), pool_cache


@pytest.mark.parametrize("floor", [0.0, None])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_then_pool_as_one_product_matches_the_loops(rng, geometry, floor):
    """Output, winners and all three gradients against the loops of the convolution, ReLU and max-pooling."""
    c, o, kernel, padding, mode, center, pool, size = geometry
    conv, window = _windows(kernel, padding, mode, center, pool)
    x = rng.standard_normal((3, c, *size))
    w, b = rng.standard_normal((o, c, *conv.kernel)), rng.standard_normal(o)
    assert fusable(conv, window, size)
    p, cache = conv2d_maxpool2d_forward(x, w, b, conv, window, floor)
    assert cache.separate is None  # the one product ran

    hyper = (1, padding, mode, center)
    y = R.conv2d_forward(x, w, b, *hyper)
    rectified = y if floor is None else np.maximum(y, floor)
    want, indices = R.maxpool2d_forward(rectified, pool)
    dy = rng.standard_normal(want.shape)
    dy_conv = R.maxpool2d_backward(dy, indices, y.shape)
    if floor is not None:
        dy_conv = R.relu_backward(dy_conv, y)
    want_dx, want_dw, want_db = R.conv2d_backward(dy_conv, x, w, *hyper)

    dx, dw, db = conv2d_maxpool2d_backward(dy, cache)
    config = {"geometry": geometry, "floor": floor}
    assert_close(p, want, 1e-12, "P", config)
    np.testing.assert_array_equal(cache.pooling_cache().indices, indices)
    assert_close(dx, want_dx, 1e-12, "dx", config)
    assert_close(dw, want_dw, 1e-12, "dw", config)
    assert_close(db, want_db, 1e-12, "db", config)
    assert conv2d_maxpool2d_backward(dy, cache, input_grad=False)[0] is None


@pytest.mark.parametrize("geometry", GEOMETRIES[:4])
def test_ties_and_windows_with_nothing_positive_as_the_separate_layers(rng, geometry):
    """On integers (every sum exact, whatever its order) full of ties, zeros and windows with nothing positive,
    with and without a bias: the same maxima, winners (ties to the first cell) and gradients as the separate
    kernels, bit for bit."""
    c, o, kernel, padding, mode, center, pool, size = geometry
    conv, window = _windows(kernel, padding, mode, center, pool)
    x = rng.integers(-2, 3, size=(2, c, *size)).astype(float)
    w = rng.integers(-1, 2, size=(o, c, *conv.kernel)).astype(float)
    for b in (None, rng.integers(-1, 2, size=o).astype(float)):
        for floor in (0.0, None):
            want, backward, pool_cache = _separately(x, w, b, conv, window, floor)
            p, cache = conv2d_maxpool2d_forward(x, w, b, conv, window, floor)
            assert cache.separate is None
            np.testing.assert_array_equal(p, want)
            np.testing.assert_array_equal(cache.pooling_cache().indices, pool_cache.indices)
            dy = rng.integers(-3, 4, size=want.shape).astype(float)
            for got, expected in zip(conv2d_maxpool2d_backward(dy, cache), backward(dy)):
                np.testing.assert_array_equal(got, expected)
    assert (want <= 0).any()  # windows with nothing positive were there


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # 0 * inf in the separate layers, as expected
def test_values_that_are_not_finite_take_the_separate_layers(rng):
    """A zero weight of the widened kernel times an infinite input is NaN: an infinite or NaN input or weight,
    or an infinite gradient, gets the separate layers' results instead, NaN and infinities where they have them."""
    conv, window = _windows(3, 1, "xcorr", None, 2)
    x, w, b = rng.standard_normal((2, 1, 8, 8)), rng.standard_normal((3, 1, 3, 3)), rng.standard_normal(3)
    inf_x, nan_w = x.copy(), w.copy()
    inf_x[0, 0, 3, 4] = np.inf
    nan_w[1, 0, 0, 2] = np.nan
    for x_, w_ in ((inf_x, w), (x, nan_w), (-inf_x, w)):
        want, backward, _ = _separately(x_, w_, b, conv, window, 0.0)
        p, cache = conv2d_maxpool2d_forward(x_, w_, b, conv, window, 0.0)
        assert cache.separate is not None
        assert not np.isfinite(want).all() or not np.isfinite(backward(np.ones(want.shape))[0]).all()
        np.testing.assert_array_equal(p, want)
        dy = rng.standard_normal(want.shape)
        for got, expected in zip(conv2d_maxpool2d_backward(dy, cache), backward(dy)):
            np.testing.assert_array_equal(got, expected)
    want, backward, _ = _separately(x, w, b, conv, window, 0.0)
    p, cache = conv2d_maxpool2d_forward(x, w, b, conv, window, 0.0)
    for value in (np.inf, -np.inf, np.nan):
        dy = rng.standard_normal(want.shape)
        dy[1, 2, 0, 3] = value
        for got, expected in zip(conv2d_maxpool2d_backward(dy, cache), backward(dy)):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # 0 * inf, as in the separate layers
@pytest.mark.parametrize("geometry", GEOMETRIES[:2])
def test_an_infinite_input_anywhere_takes_the_separate_layers(rng, geometry):
    """Wherever an infinite input sits (read by a zero of the widened kernel, by output cells no window reads, or
    by neither), and for an infinite bias: the separate layers' output and gradients, bit for bit."""
    c, o, kernel, padding, mode, center, pool, size = geometry
    conv, window = _windows(kernel, padding, mode, center, pool)
    x, w, b = rng.standard_normal((2, c, *size)), rng.standard_normal((o, c, *conv.kernel)), rng.standard_normal(o)
    cases = []
    for cell in np.ndindex(*size):
        for value in (np.inf, -np.inf):
            x_ = x.copy()
            x_[1, 0, cell[0], cell[1]] = value
            cases.append((x_, b))
    infinite_bias = b.copy()
    infinite_bias[1] = -np.inf
    for x_, b_ in cases + [(x, infinite_bias)]:
        want, backward, _ = _separately(x_, w, b_, conv, window, 0.0)
        p, cache = conv2d_maxpool2d_forward(x_, w, b_, conv, window, 0.0)
        assert cache.separate is not None
        np.testing.assert_array_equal(p, want)
        dy = rng.standard_normal(want.shape)
        for got, expected in zip(conv2d_maxpool2d_backward(dy, cache), backward(dy)):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_an_infinite_gradient_without_dx_stays_in_the_one_product(rng, monkeypatch):
    """Without dX the gradients of W and B sum the separate layers' products, an infinite dP too: the one product
    gives their NaN and infinities in the same places."""
    conv, window = _windows(3, 1, "xcorr", None, 2)
    x, w, b = rng.standard_normal((2, 1, 9, 10)), rng.standard_normal((3, 1, 3, 3)), rng.standard_normal(3)
    want, backward, _ = _separately(x, w, b, conv, window, 0.0)
    _, cache = conv2d_maxpool2d_forward(x, w, b, conv, window, 0.0)
    dy = rng.standard_normal(want.shape)
    dy[1, 2, 0, 3], dy[0, 1, 2, 2] = np.inf, -np.inf
    monkeypatch.setattr(conv_pool, "_separately", None)  # the separate layers may not be called
    dx, dw, db = conv2d_maxpool2d_backward(dy, cache, input_grad=False)
    _, want_dw, want_db = backward(dy)
    assert dx is None and not np.isfinite(want_dw).all() and not np.isfinite(want_db).all()
    np.testing.assert_allclose(dw, want_dw, rtol=1e-12, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(db, want_db, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_backward_rebuilds_the_columns_another_call_wrote_over(rng):
    """The columns stay in the workspace for the backward pass only while no other call has written it."""
    conv, window = _windows(5, 0, "xcorr", None, 2)
    w, b = rng.standard_normal((4, 1, 5, 5)), rng.standard_normal(4)
    first, second = rng.standard_normal((2, 2, 1, 12, 12))
    workspace = {}
    _, cache = conv2d_maxpool2d_forward(first, w, b, conv, window, 0.0, workspace)
    dy = rng.standard_normal((2, 4, 4, 4))
    want = conv2d_maxpool2d_backward(dy, conv2d_maxpool2d_forward(first, w, b, conv, window, 0.0)[1])
    conv2d_maxpool2d_forward(second, w, b, conv, window, 0.0, workspace)
    for got, expected in zip(conv2d_maxpool2d_backward(dy, cache), want):
        np.testing.assert_array_equal(got, expected)
    assert workspace


@pytest.mark.parametrize(
    ("conv_options", "pool_options", "size"),
    [
        ({"stride": 2}, {"kernel_size": 2}, (12, 12)),
        ({"dilation": 2}, {"kernel_size": 2}, (12, 12)),
        ({}, {"kernel_size": 2, "stride": 1}, (12, 12)),
        ({}, {"kernel_size": 2, "padding": 1}, (12, 12)),
        ({}, {"kernel_size": 2, "ceil_mode": True}, (11, 11)),
        ({}, {"kernel_size": 2, "dilation": 2}, (12, 12)),
        ({}, {"kernel_size": 11}, (12, 12)),  # the window is larger than the output
    ],
)
def test_geometries_that_are_not_one_product_are_refused(rng, conv_options, pool_options, size):
    conv = Window.of(3, where="test", **conv_options)
    pool = Window.pooling(where="test", **pool_options)
    assert not fusable(conv, pool, size)
    with pytest.raises(ValueError, match="do not run as one product"):
        conv2d_maxpool2d_forward(rng.standard_normal((1, 1, *size)), np.ones((2, 1, 3, 3)), None, conv, pool)
    assert not fusable(Window.of(3), Window.pooling(2), (12, 12), groups=2)
    assert not fusable(Window.of(3, padding=1), Window.pooling(2), (12, 12), padding_mode="reflect")


def _block(rng, relu=True, **conv_options):
    layers = [Conv2D(1, 3, 3, dtype=np.float64, rng=rng, **conv_options), MaxPool2D(2)]
    return Sequential(layers[:1] + [ReLU()] * relu + layers[1:])


@pytest.mark.parametrize(
    "options", [{"relu": True, "padding": 1}, {"relu": False, "mode": "conv", "center": (1, 0)}, {"relu": True}]
)
def test_the_model_takes_the_one_product_with_the_numerical_gradient(rng, options):
    """A model's convolution of one input channel takes the pooling in (and the ReLU): its gradients pass the
    float64 central differences."""
    model = handgrad.compile(_block(rng, **options))
    x = off_kinks(rng, (2, 1, 8, 9))
    result = gradcheck(model, x)
    assert not model.steps[0][1].separately  # the one product ran
    assert result, f"gradient check failed for {options}:\n{result}"
    assert {check.name for check in result.checks} == {"x", "0.weight", "0.bias"}


@pytest.mark.parametrize("relu", [True, False])
def test_the_one_product_agrees_with_pytorch(rng, relu):
    """The output and the gradients of x, W and B against PyTorch's conv2d, relu and max_pool2d (float64)."""
    block = _block(rng, relu, padding=1)
    model = handgrad.compile(block)
    x = rng.standard_normal((3, 1, 10, 9))
    y = model.forward(x)
    assert not model.steps[0][1].separately  # the one product ran
    dy = rng.uniform(-1, 1, size=y.shape)
    dx = model.backward(dy)

    def torch_block(x, w, b):
        h = TF.conv2d(x, w, b, padding=1)
        return TF.max_pool2d(TF.relu(h) if relu else h, 2)

    conv = block[0]
    ty, (tdx, tdw, tdb) = T.grads(torch_block, dy, x, conv.params["weight"], conv.params["bias"])
    assert_close(y, ty, 1e-9, "y")
    assert_close(dx, tdx, 1e-9, "dx")
    assert_close(conv.grads["weight"], tdw, 1e-9, "dw")
    assert_close(conv.grads["bias"], tdb, 1e-9, "db")
    if not relu:  # the winners, as PyTorch's max_pool2d gives them
        h = TF.conv2d(*(torch.tensor(a) for a in (x, conv.params["weight"], conv.params["bias"])), padding=1)
        indices = model.steps[0][1].cache.pooling_cache().indices
        np.testing.assert_array_equal(indices, TF.max_pool2d(h, 2, return_indices=True)[1].numpy())


def test_a_kernel_that_does_not_fit_is_explained(rng):
    conv, pool = _windows(3, 0, "xcorr", None, 2)
    with pytest.raises(ValueError, match=r"w must be \(O, 2, 3, 3\) .* got \(4, 1, 3, 3\)"):
        conv2d_maxpool2d_forward(rng.standard_normal((1, 2, 8, 8)), np.ones((4, 1, 3, 3)), None, conv, pool)
