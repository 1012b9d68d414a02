"""The fast tier's kernels against the loops and the formula tier: chunks, scratch reuse, memory orders, the
pooling's floor, and the element-wise and product helpers, on random geometries (float64, 1e-10 relative)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, distinct_values, random_window_config, unless_padding_only

import handgrad
from handgrad import functional as F
from handgrad import reference as R
from handgrad.fast import _scratch
from handgrad.fast import conv as FC
from handgrad.fast import pool as FP
from handgrad.fast._layout import to_nchw
from handgrad.fast._products import matmul
from handgrad.fast._ufuncs import at_least
from handgrad.fast.linear import linear_backward
from handgrad.fast.norm import batchnorm_backward, batchnorm_forward
from handgrad.shapes import Window

RTOL = 1e-10


def conv(x, w, b=None, stride=1, padding=0, mode="xcorr", center=None, dilation=1, groups=1, workspace=None):
    """The fast convolution with the formula tier's arguments."""
    window = Window.of(w.shape[2:], stride, padding, mode, center, "test", dilation)
    return FC.conv2d_forward(x, w, b, window, groups, workspace)


def pool(
    x,
    kernel,
    stride=None,
    padding=0,
    mode="xcorr",
    center=None,
    dilation=1,
    ceil_mode=False,
    *,
    winners=True,
    floor=None,
    workspace=None,
):
    """The fast max-pooling with the formula tier's arguments."""
    window = Window.pooling(kernel, stride, padding, mode, center, "test", dilation, ceil_mode)
    return FP.maxpool2d_forward(x, window, winners, floor, workspace)


def test_convolution_matches_the_formula_tier(rng, record):
    """Random geometries (dilation, per-side, 'same' and 'valid' padding, mode, centre, groups), inputs in either
    memory order: output and all three gradients."""
    from test_reference import random_conv_options

    for k in range(300):
        g, opt = random_window_config(rng, options=k % 2 == 1), random_conv_options(rng)
        n = int(rng.integers(1, 4))
        x = rng.standard_normal((n, opt["C"], *g["size"]))
        if k % 3 == 0:  # (C, H, W, N) memory, as the layers pass it on
            x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
        w = rng.standard_normal((opt["O"], opt["C"] // opt["groups"], *g["kernel"]))
        b = rng.standard_normal(opt["O"]) if k % 4 else None
        hyper = (g["stride"], g["padding"], g["mode"], g["center"], g.get("dilation", 1), opt["groups"])
        y, cache = conv(x, w, b, *hyper, workspace={})
        want_y, want_cache = F.conv2d_forward(x, w, b, *hyper)
        dy = rng.uniform(-1, 1, size=y.shape)
        config = {**g, **opt, "bias": b is not None}
        errors = [assert_close(y, want_y, RTOL, "y", config)]
        for got, want, name in zip(
            FC.conv2d_backward(dy, cache), F.conv2d_backward(dy, want_cache), ("dx", "dw", "db")
        ):
            if want is None:
                assert got is None
            else:
                errors.append(assert_close(got, want, RTOL, name, config))
        assert FC.conv2d_backward(dy, cache, input_grad=False)[0] is None
        record("Conv2D", "fast", *errors)


def test_max_pooling_matches_the_formula_tier(rng, record):
    """Random geometries with dilation, padding, centres and ceil_mode, tracked winners or found on demand."""
    checked = 0
    while checked < 300:
        g = random_window_config(rng, options=checked % 2 == 1)
        hyper = (g["kernel"], g["stride"], g["padding"], g["mode"], g["center"], g.get("dilation", 1), checked % 3 == 0)
        x = distinct_values(rng, (2, 3, *g["size"]))
        formula = unless_padding_only(F.maxpool2d_forward, x, *hyper)
        if formula is None:
            continue
        checked += 1
        want_y, want_cache = formula
        dy = rng.uniform(-1, 1, size=want_y.shape)
        want_dx = F.maxpool2d_backward(dy, want_cache)
        for winners in (True, False):
            y, cache = pool(x, *hyper, winners=winners, workspace={})
            np.testing.assert_array_equal(y, want_y, err_msg=str(g))
            np.testing.assert_array_equal(cache.indices, want_cache.indices, err_msg=str(g))
            record("MaxPool2D", "fast", assert_close(FP.maxpool2d_backward(dy, cache), want_dx, RTOL, "dx", g))


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5), (3, 2, 1, 1)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_normalisation_per_channel_row_matches_the_formula_tier(rng, shape, training, affine):
    x = 2 * rng.standard_normal(shape) + 1
    if len(shape) == 4:  # (C, H, W, N) memory, as the layers pass it on
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    c = shape[1]
    gamma, beta = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    running = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    y, cache, stats = batchnorm_forward(x, gamma, beta, *running, training, 0.2, 1e-5)
    want_y, want_cache, want_stats = F.batchnorm_forward(x, gamma, beta, *running, training, 0.2, 1e-5)
    assert_close(y, want_y, RTOL, "y")
    for got, want in zip(stats, want_stats):
        assert_close(got, want, RTOL, "running statistics")
    dy = rng.uniform(-1, 1, size=shape)
    for got, want in zip(batchnorm_backward(dy, cache), F.batchnorm_backward(dy, want_cache)):
        if want is None:
            assert got is None
        else:
            assert_close(got, want, RTOL, "gradient")


@pytest.mark.parametrize("order", ["C", "F"])
def test_affine_backward_returns_dx_in_the_inputs_memory_order(rng, order):
    for n, m, k in [(1, 1, 1), (1, 5, 3), (4, 7, 2), (5, 4, 1), (3, 1, 4)]:  # ones: inner size 1
        x, w, b = (
            np.asarray(rng.standard_normal((n, m)), order=order),
            rng.standard_normal((m, k)),
            rng.standard_normal(k),
        )
        _, cache = F.linear_forward(x, w, b)
        dy = rng.uniform(-1, 1, size=(n, k))
        for got, want in zip(linear_backward(dy, cache), F.linear_backward(dy, cache)):
            assert_close(got, want, RTOL)
        dx = linear_backward(dy, cache)[0]
        assert dx.flags.c_contiguous if order == "C" else dx.flags.f_contiguous


@pytest.mark.parametrize("chunk_bytes", [1, 3000])  # one output row at a time; a few, the last chunk shorter
def test_conv2d_in_chunks_matches_loops(rng, monkeypatch, chunk_bytes):
    """Columns too large to keep whole are built a few output rows at a time; the chunks change nothing."""
    monkeypatch.setattr(_scratch, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(_scratch, "KEEP_BYTES", 0)
    for _ in range(30):
        g = random_window_config(rng)
        x, w, b = (
            rng.standard_normal((3, 2, *g["size"])),
            rng.standard_normal((2, 2, *g["kernel"])),
            rng.standard_normal(2),
        )
        hyper = (g["stride"], g["padding"], g["mode"], g["center"])
        y, cache = conv(x, w, b, *hyper, workspace={})
        assert [i for part in cache.chunks for i in range(part.start, part.stop)] == list(range(y.shape[2]))
        if chunk_bytes == 1:
            assert len(cache.chunks) == y.shape[2]
        assert_close(y, R.conv2d_forward(x, w, b, *hyper), RTOL, "y", g)
        dy = rng.uniform(-1, 1, size=y.shape)
        for got, want, name in zip(
            FC.conv2d_backward(dy, cache), R.conv2d_backward(dy, x, w, *hyper), ("dx", "dw", "db")
        ):
            assert_close(got, want, RTOL, name, g)


def test_steps_reusing_their_scratch_memory_match_the_loops(rng):
    """A compiled convolution and max-pooling keep scratch buffers from one call to the next: every call, whatever
    came before (another input, another batch size, evaluation mode), still gives the loops' answer."""
    from handgrad.layers import Conv2D, MaxPool2D

    model = handgrad.Sequential([Conv2D(2, 3, 3, padding=1, dtype=np.float64, rng=rng), MaxPool2D(2)])
    compiled = handgrad.compile(model)
    w, b = model[0].params["weight"], model[0].params["bias"]
    for n, training in [(3, True), (3, True), (1, True), (3, False), (3, True)]:
        x = distinct_values(rng, (n, 2, 6, 6))
        compiled.train(training)
        pooled = compiled.forward(x)
        y = R.conv2d_forward(x, w, b, 1, 1)
        ry, indices = R.maxpool2d_forward(y, 2)
        np.testing.assert_allclose(pooled, ry, rtol=RTOL)
        dy = rng.uniform(-1, 1, size=pooled.shape)
        dx = compiled.backward(dy)
        rx, rw, _ = R.conv2d_backward(R.maxpool2d_backward(dy, indices, y.shape), x, w, 1, 1)
        np.testing.assert_allclose(dx, rx, rtol=RTOL)
        np.testing.assert_allclose(model[0].grads["weight"], rw, rtol=RTOL)


def test_conv2d_backward_uses_the_forward_columns_only_while_they_are_there(rng):
    """A forward whose columns fit in one chunk leaves them in the workspace for its backward.  Any call on the
    same workspace in between (another forward, an inference pass, a backward) writes over them, and the
    backward must then build them again: every backward below gets the loops' answer for its own input."""
    from handgrad.layers import Conv2D

    w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    xs = [distinct_values(rng, (2, 2, 6, 6)) for _ in range(2)]
    dy = rng.uniform(-1, 1, size=(2, 3, 4, 4))
    want = [R.conv2d_backward(dy, x, w, 1, 0) for x in xs]
    workspace = {}
    first, second = (conv(x, w, b, workspace=workspace)[1] for x in xs)
    for cache, (rx, rw, _) in [(first, want[0]), (second, want[1]), (second, want[1]), (first, want[0])]:
        dx, dw, _ = FC.conv2d_backward(dy, cache)
        np.testing.assert_allclose(dx, rx, rtol=RTOL)
        np.testing.assert_allclose(dw, rw, rtol=RTOL)

    layer = Conv2D(2, 3, 3, dtype=np.float64, rng=rng)
    layer.params["weight"][...], layer.params["bias"][...] = w, b
    compiled = handgrad.compile(layer)
    compiled.forward(xs[0])
    compiled.predict(xs[1])
    np.testing.assert_allclose(compiled.backward(dy), want[0][0], rtol=RTOL)
    np.testing.assert_allclose(layer.grads["weight"], want[0][1], rtol=RTOL)


@pytest.mark.parametrize("order", ["NCHW", "CHWN"])
def test_maxpool2d_tiled_with_nan_and_ties_matches_loops(rng, order):
    """Tiling windows, on inputs in either memory order (a caller's array, or a layer's output with the batch
    innermost): the loops' answer, NaN and ties included."""
    for size, kernel in [((6, 6), 2), ((7, 5), 2), ((6, 9), 3), ((4, 6), (2, 3))]:
        x = rng.integers(-3, 3, size=(2, 5, *size)).astype(float)  # many ties
        x[0, 3, 1, 1] = x[1, 4, 0, 2] = np.nan
        if order == "CHWN":
            x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
        y, cache = pool(x, kernel)
        ry, indices = R.maxpool2d_forward(np.nan_to_num(x, nan=np.inf), kernel)  # a NaN wins like +inf
        np.testing.assert_array_equal(np.isnan(y), np.isinf(ry))
        np.testing.assert_array_equal(y[~np.isnan(y)], ry[~np.isinf(ry)])
        np.testing.assert_array_equal(cache.indices, indices)


@pytest.mark.parametrize("chunk_bytes", [1, 1500])  # one channel at a time; a few, the last chunk shorter
@pytest.mark.parametrize("floor", [None, 0.0])
def test_maxpool2d_tiled_in_chunks_matches_loops(rng, monkeypatch, chunk_bytes, floor):
    """Tiling windows are pooled a few channels at a time; the chunks change nothing: output, indices (ties and
    a NaN included) and the gradient, with and without a floor."""
    monkeypatch.setattr(_scratch, "CHUNK_BYTES", chunk_bytes)
    for size, kernel in [((6, 6), 2), ((7, 5), 2), ((6, 9), 3)]:
        x = rng.integers(-3, 3, size=(2, 7, *size)).astype(float)  # many ties
        x[1, 4, 0, 2] = np.nan
        assert len(_scratch.chunks(7, x[:, 0].nbytes)) > 2
        y, cache = pool(x, kernel, floor=floor)
        pooled = x if floor is None else np.maximum(x, floor)
        ry, indices = R.maxpool2d_forward(np.nan_to_num(pooled, nan=np.inf), kernel)  # a NaN wins like +inf
        np.testing.assert_array_equal(np.isnan(y), np.isinf(ry))
        np.testing.assert_array_equal(y[~np.isnan(y)], ry[~np.isinf(ry)])
        np.testing.assert_array_equal(cache.indices, indices)
        dy = rng.standard_normal(y.shape)
        expected = R.maxpool2d_backward(dy, indices, x.shape)
        if floor is not None:
            expected = R.relu_backward(expected, x)
        np.testing.assert_array_equal(FP.maxpool2d_backward(dy, cache), expected)


def test_maxpool2d_workspace_holds_only_temporaries(rng):
    """A workspace lent from call to call (a layer's, in training) changes nothing: inputs of two sizes in
    turn, with and without a floor, give what calls without one give, and no result shares its memory."""
    workspace, kept = {}, []
    for size in [(6, 6), (8, 6), (6, 6)]:
        for floor in (None, 0.0):
            x = rng.integers(-3, 3, size=(2, 5, *size)).astype(float)  # many ties
            kept.append((x, floor, *pool(x, 2, floor=floor, workspace=workspace)))
    assert workspace  # the temporaries stayed for the next call
    for x, floor, y, cache in kept:
        want_y, want = pool(x, 2, floor=floor)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(cache.route, want.route)


@pytest.mark.parametrize("winners", [True, False])
def test_maxpool2d_with_a_floor_is_max_pooling_of_relu(rng, winners):
    """``floor=0`` pools ``max(X, 0)``: the loops' output and winners on ``relu(x)``, ties among the zeros going
    to the first cell, for tiling windows (the running maximum starts at the floor) and others (the input is
    clamped first); with ``winners=False`` the winners found later use the floor too."""
    for size, hyper in [((6, 6), (2,)), ((7, 5), (2,)), ((6, 6), (3, 1, 1)), ((5, 7), (2, 2, 0, "xcorr", (1, 1)))]:
        x = rng.integers(-3, 3, size=(2, 3, *size)).astype(float)  # many ties, zeros and windows with nothing positive
        y, cache = pool(x, *hyper, winners=winners, floor=0.0)
        ry, indices = R.maxpool2d_forward(np.maximum(x, 0), *hyper)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(cache.indices, indices)


@pytest.mark.parametrize("winners", [True, False])
def test_maxpool2d_with_a_floor_has_the_gradient_of_max_pooling_after_relu(rng, winners):
    """The backward pass of ``floor=0`` is the chain rule of the loops' ReLU and max-pooling: each window's dY to
    its winner, times ``[x > 0]`` there, so windows with nothing positive and windows a NaN won pass nothing on;
    for tiling windows and others, overlapping ones included."""
    for size, hyper in [((6, 6), (2,)), ((7, 5), (2,)), ((6, 6), (3, 1, 1)), ((5, 7), (2, 2, 0, "xcorr", (1, 1)))]:
        x = rng.integers(-3, 3, size=(2, 3, *size)).astype(float)  # many ties, zeros and windows with nothing positive
        x[1, 2, 1, 1] = np.nan
        y, cache = pool(x, *hyper, winners=winners, floor=0.0)
        dy = rng.standard_normal(y.shape)
        rectified = np.maximum(x, 0)  # relu(NaN) is NaN, as in PyTorch
        _, indices = R.maxpool2d_forward(np.nan_to_num(rectified, nan=np.inf), *hyper)  # a NaN wins like +inf
        expected = R.relu_backward(R.maxpool2d_backward(dy, indices, x.shape), x)
        assert (expected == 0).sum() > (R.maxpool2d_backward(dy, indices, x.shape) == 0).sum()  # ReLU's mask bites
        np.testing.assert_allclose(FP.maxpool2d_backward(dy, cache), expected, rtol=1e-12, atol=0)  # sums in any order


def test_at_least_is_numpys_maximum_in_every_memory_order(rng):
    """ReLU and the pooling floor take ``max(X, floor)`` with the floor as a small array over X's innermost
    axes in memory: the same values as ``np.maximum`` against the scalar (NaN, infinities and signed zeros
    included), the output in X's memory order, and ``out=x`` in place."""
    chwn = rng.standard_normal((3, 5, 6, 70))
    chwn[0, 1, 2, :3] = [np.nan, -np.inf, -0.0]
    wide = rng.standard_normal((2, 3, 40, 80))  # innermost axes over FLOOR_CELLS: the floor stops at one axis
    arrays = [to_nchw(chwn), chwn, np.asfortranarray(chwn), chwn[:, ::2, ::-1], wide, rng.standard_normal(7)]
    arrays += [np.array(-2.0), np.zeros((0, 3)), np.ones((4, 1, 1)), chwn.astype(np.float32)]
    for x in arrays:
        for floor in (0.0, -0.5, -0.0, np.float32(-0.5)):  # the signed zeros: each its own floor
            y = at_least(x, floor)
            np.testing.assert_array_equal(y, np.maximum(x, floor))
            np.testing.assert_array_equal(np.signbit(y), np.signbit(np.maximum(x, floor)))
            assert y.dtype == x.dtype and y.strides == np.maximum(x, floor).strides
        np.testing.assert_array_equal(at_least(x, np.array(0.25)), np.maximum(x, 0.25))  # a 0-d array floor
    x = to_nchw(chwn).copy(order="K")
    want = np.maximum(x, 0.0)
    assert np.shares_memory(at_least(x, 0.0, out=x), x)
    np.testing.assert_array_equal(x, want)


def test_matmul_is_numpys_matmul_for_every_inner_size(rng):
    """The layers' matrix product takes an inner size of 1 as a broadcast multiply: the same values as
    ``np.matmul`` (infinities and NaN included), the same shape, C order, and ``out`` written."""
    for m, k, n in [(5, 1, 7), (1, 1, 1), (6, 1, 1), (1, 1, 4), (5, 3, 7), (2, 8, 1)]:
        for dtype in (np.float64, np.float32):
            a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
            a[0, 0], b[0, -1] = np.inf, 0.0  # inf * 0 = NaN either way
            for a_, b_ in [(a, b), (np.asfortranarray(a), np.asfortranarray(b)), (b.T.copy().T, a.T.copy().T)]:
                if a_.shape[1] != b_.shape[0]:
                    continue
                with np.errstate(invalid="ignore"):
                    want, got, out = np.matmul(a_, b_), matmul(a_, b_), np.empty((m, n), dtype)
                    assert matmul(a_, b_, out=out) is out
                np.testing.assert_array_equal(got, want)
                np.testing.assert_array_equal(out, want)
                assert got.dtype == want.dtype and got.flags.c_contiguous


def test_columns_that_fit_are_built_whole_and_kept_for_the_backward_pass(rng, monkeypatch):
    """Up to KEEP_BYTES a convolution's columns are one piece, which its backward pass reads again; above it they
    come in chunks of CHUNK_BYTES and the backward pass builds them again.  Either way, the loops' gradients."""
    x, w, b = rng.standard_normal((4, 2, 9, 9)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    dy = rng.uniform(-1, 1, size=(4, 3, 7, 7))
    want = R.conv2d_backward(dy, x, w, 1, 0)
    columns = 2 * 9 * 7 * 7 * 4 * 8  # bytes: C*kH*kW rows of H_out*W_out*N float64 values
    for keep, pieces in [(columns, 1), (columns - 1, None)]:
        monkeypatch.setattr(_scratch, "KEEP_BYTES", keep)
        monkeypatch.setattr(_scratch, "CHUNK_BYTES", columns // 3)
        cache = conv(x, w, b, workspace={})[1]
        assert (len(cache.chunks) == 1 and cache.columns is not None) if pieces else len(cache.chunks) > 1
        for got, expected in zip(FC.conv2d_backward(dy, cache), want):
            assert_close(got, expected, RTOL)
