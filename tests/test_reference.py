"""Oracle 1: every fast kernel against its loop transcription, float64, relative error under 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, distinct_values, random_window_config, unless_padding_only

from handgrad import functional as F
from handgrad import reference as R
from handgrad.functional.padding import PADDING_MODES

RTOL = 1e-10
CONFIGS = 400  # random geometries per windowed kernel


def _shapes(rng):
    return int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4))  # N, C, O


def test_conv2d_matches_loops(rng, record):
    for _ in range(CONFIGS):
        g = random_window_config(rng)
        n, c, o = _shapes(rng)
        bias = bool(rng.integers(0, 2))
        x = rng.standard_normal((n, c, *g["size"]))
        w = rng.standard_normal((o, c, *g["kernel"]))
        b = rng.standard_normal(o) if bias else None
        hyper = (g["stride"], g["padding"], g["mode"], g["center"])
        config = dict(g, N=n, C=c, O=o, bias=bias)

        y, cache = F.conv2d_forward(x, w, b, *hyper)
        errors = [assert_close(y, R.conv2d_forward(x, w, b, *hyper), RTOL, "y", config)]
        dy = rng.uniform(-1, 1, size=y.shape)
        dx, dw, db = F.conv2d_backward(dy, cache)
        rx, rw, rb = R.conv2d_backward(dy, x, w, *hyper, bias=bias)
        errors += [assert_close(dx, rx, RTOL, "dx", config), assert_close(dw, rw, RTOL, "dw", config)]
        literal = R.derivation.conv2d_backward(dy, x, w, *hyper)  # dilate, pad, correlate with rot180(W)
        errors += [assert_close(literal[0], rx, RTOL, "dx (derivation)", config)]
        errors += [assert_close(literal[1], rw, RTOL, "dw (derivation)", config)]
        if bias:
            errors.append(assert_close(db, rb, RTOL, "db", config))
        else:
            assert db is None and rb is None
        assert F.conv2d_backward(dy, cache, input_grad=False)[0] is None
        record("Conv2D", "reference", *errors)


def random_conv_options(rng):
    """Channels, groups and a padding mode: plain, grouped or depthwise, zero or filled padding."""
    kind = str(rng.choice(["plain", "grouped", "depthwise"]))
    groups = {"plain": 1, "grouped": 2, "depthwise": int(rng.integers(1, 4))}[kind]
    c = groups * (1 if kind == "depthwise" else int(rng.integers(1, 3)))
    o = groups * int(rng.integers(1, 3))
    return {"C": c, "O": o, "groups": groups, "padding_mode": str(rng.choice(PADDING_MODES))}


def test_conv2d_options_match_loops(rng, record):
    """Dilation, groups (depthwise too), padding modes, per-side, 'same' and 'valid' padding, with mode and centre."""
    checked = 0
    while checked < 250:
        g, opt = random_window_config(rng, options=True), random_conv_options(rng)
        n = int(rng.integers(1, 3))
        x = rng.standard_normal((n, opt["C"], *g["size"]))
        w = rng.standard_normal((opt["O"], opt["C"] // opt["groups"], *g["kernel"]))
        b = rng.standard_normal(opt["O"])
        hyper = (g["stride"], g["padding"], g["mode"], g["center"], g["dilation"], opt["groups"], opt["padding_mode"])
        config = {**g, **opt}
        try:
            y, cache = F.conv2d_forward(x, w, b, *hyper)
        except ValueError as error:  # reflect needs padding < size, circular <= size (as PyTorch)
            assert "padding_mode=" in str(error)
            continue
        checked += 1
        errors = [assert_close(y, R.conv2d_forward(x, w, b, *hyper), RTOL, "y", config)]
        dy = rng.uniform(-1, 1, size=y.shape)
        got = F.conv2d_backward(dy, cache)
        want = R.conv2d_backward(dy, x, w, *hyper[:4], True, *hyper[4:])
        errors += [assert_close(a, e, RTOL, name, config) for a, e, name in zip(got, want, ("dx", "dw", "db"))]
        if opt["groups"] == 1 and opt["padding_mode"] == "zeros":
            literal = R.derivation.conv2d_backward(dy, x, w, *hyper[:5])
            errors += [assert_close(literal[0], want[0], RTOL, "dx (derivation)", config)]
        record("Conv2D options", "reference", *errors)


@pytest.mark.parametrize("chunk_bytes", [1, 3000])  # one output row at a time; a few, the last chunk shorter
def test_conv2d_in_chunks_matches_loops(rng, monkeypatch, chunk_bytes):
    """Columns are built a few output rows at a time; the chunks change nothing."""
    from handgrad.functional import _scratch

    monkeypatch.setattr(_scratch, "CHUNK_BYTES", chunk_bytes)
    for _ in range(30):
        g = random_window_config(rng)
        x, w, b = (
            rng.standard_normal((3, 2, *g["size"])),
            rng.standard_normal((2, 2, *g["kernel"])),
            rng.standard_normal(2),
        )
        hyper = (g["stride"], g["padding"], g["mode"], g["center"])
        y, cache = F.conv2d_forward(x, w, b, *hyper, workspace={})
        assert [i for part in cache.chunks for i in range(part.start, part.stop)] == list(range(y.shape[2]))
        if chunk_bytes == 1:
            assert len(cache.chunks) == y.shape[2]
        assert_close(y, R.conv2d_forward(x, w, b, *hyper), RTOL, "y", g)
        dy = rng.uniform(-1, 1, size=y.shape)
        for got, want, name in zip(
            F.conv2d_backward(dy, cache), R.conv2d_backward(dy, x, w, *hyper), ("dx", "dw", "db")
        ):
            assert_close(got, want, RTOL, name, g)


def test_maxpool2d_matches_loops(rng, record):
    """The basic sweep, then dilation, per-side, 'same' and 'valid' padding and ceil_mode."""
    checked = 0
    while checked < CONFIGS:
        options = checked >= CONFIGS // 2
        g = random_window_config(rng, options=options)
        if options:
            g["ceil_mode"] = bool(rng.integers(0, 2))
        n, c, _ = _shapes(rng)
        x = distinct_values(rng, (n, c, *g["size"]))
        hyper = (
            g["kernel"],
            g["stride"],
            g["padding"],
            g["mode"],
            g["center"],
            g.get("dilation", 1),
            g.get("ceil_mode", False),
        )
        out = unless_padding_only(F.maxpool2d_forward, x, *hyper)
        if out is None:  # tested in test_errors
            continue
        y, cache = out
        checked += 1
        ry, rindices = R.maxpool2d_forward(x, *hyper)
        np.testing.assert_array_equal(cache.indices, rindices, err_msg=str(g))
        dy = rng.uniform(-1, 1, size=y.shape)
        dx, rx = F.maxpool2d_backward(dy, cache), R.maxpool2d_backward(dy, rindices, x.shape)
        record("MaxPool2D", "reference", assert_close(y, ry, RTOL, "y", g), assert_close(dx, rx, RTOL, "dx", g))
        y_only, lazy = F.maxpool2d_forward(x, *hyper, winners=False)  # evaluation mode: winners found on demand
        np.testing.assert_array_equal(y_only, y)
        np.testing.assert_array_equal(lazy.indices, rindices)
        np.testing.assert_array_equal(F.maxpool2d_backward(dy, lazy), dx)


def test_layers_reusing_their_scratch_memory_match_the_loops(rng):
    """Conv2D keeps scratch buffers from one call to the next: every call, whatever came before (another input,
    another batch size, evaluation mode), still gives the loops' answer, through a max-pooling between."""
    from handgrad.layers import Conv2D, MaxPool2D

    conv, pool = Conv2D(2, 3, 3, padding=1, dtype=np.float64, rng=rng), MaxPool2D(2)
    w, b = conv.params["weight"], conv.params["bias"]
    for n, training in [(3, True), (3, True), (1, True), (3, False), (3, True)]:
        x = distinct_values(rng, (n, 2, 6, 6))
        y = conv.forward(x)
        np.testing.assert_allclose(y, R.conv2d_forward(x, w, b, 1, 1), rtol=RTOL)
        pool.train(training)
        pooled = pool.forward(y)
        ry, indices = R.maxpool2d_forward(y, 2)
        np.testing.assert_array_equal(pooled, ry)
        np.testing.assert_array_equal(pool.indices, indices)
        dy = rng.uniform(-1, 1, size=pooled.shape)
        dx = conv.backward(pool.backward(dy))
        rx, _, _ = R.conv2d_backward(R.maxpool2d_backward(dy, indices, y.shape), x, w, 1, 1)
        np.testing.assert_allclose(dx, rx, rtol=RTOL)


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
    first, second = (F.conv2d_forward(x, w, b, workspace=workspace)[1] for x in xs)
    for cache, (rx, rw, _) in [(first, want[0]), (second, want[1]), (second, want[1]), (first, want[0])]:
        dx, dw, _ = F.conv2d_backward(dy, cache)
        np.testing.assert_allclose(dx, rx, rtol=RTOL)
        np.testing.assert_allclose(dw, rw, rtol=RTOL)

    conv = Conv2D(2, 3, 3, dtype=np.float64, rng=rng)
    conv.params["weight"][...], conv.params["bias"][...] = w, b
    conv.forward(xs[0])
    conv.predict(xs[1])
    np.testing.assert_allclose(conv.backward(dy), want[0][0], rtol=RTOL)
    np.testing.assert_allclose(conv.grads["weight"], want[0][1], rtol=RTOL)


@pytest.mark.parametrize("order", ["NCHW", "CHWN"])
def test_maxpool2d_tiled_with_nan_and_ties_matches_loops(rng, order):
    """Tiling windows, on inputs in either memory order (a caller's array, or a layer's output with the batch
    innermost): the loops' answer, NaN and ties included."""
    for size, kernel in [((6, 6), 2), ((7, 5), 2), ((6, 9), 3), ((4, 6), (2, 3))]:
        x = rng.integers(-3, 3, size=(2, 5, *size)).astype(float)  # many ties
        x[0, 3, 1, 1] = x[1, 4, 0, 2] = np.nan
        if order == "CHWN":
            x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
        y, cache = F.maxpool2d_forward(x, kernel)
        ry, indices = R.maxpool2d_forward(np.nan_to_num(x, nan=np.inf), kernel)  # a NaN wins like +inf
        np.testing.assert_array_equal(np.isnan(y), np.isinf(ry))
        np.testing.assert_array_equal(y[~np.isnan(y)], ry[~np.isinf(ry)])
        np.testing.assert_array_equal(cache.indices, indices)


@pytest.mark.parametrize("chunk_bytes", [1, 1500])  # one channel at a time; a few, the last chunk shorter
@pytest.mark.parametrize("floor", [None, 0.0])
def test_maxpool2d_tiled_in_chunks_matches_loops(rng, monkeypatch, chunk_bytes, floor):
    """Tiling windows are pooled a few channels at a time; the chunks change nothing: output, indices (ties and
    a NaN included) and the gradient, with and without a floor."""
    from handgrad.functional import _scratch

    monkeypatch.setattr(_scratch, "CHUNK_BYTES", chunk_bytes)
    for size, kernel in [((6, 6), 2), ((7, 5), 2), ((6, 9), 3)]:
        x = rng.integers(-3, 3, size=(2, 7, *size)).astype(float)  # many ties
        x[1, 4, 0, 2] = np.nan
        assert len(_scratch.chunks(7, x[:, 0].nbytes)) > 2
        y, cache = F.maxpool2d_forward(x, kernel, floor=floor)
        pooled = x if floor is None else np.maximum(x, floor)
        ry, indices = R.maxpool2d_forward(np.nan_to_num(pooled, nan=np.inf), kernel)  # a NaN wins like +inf
        np.testing.assert_array_equal(np.isnan(y), np.isinf(ry))
        np.testing.assert_array_equal(y[~np.isnan(y)], ry[~np.isinf(ry)])
        np.testing.assert_array_equal(cache.indices, indices)
        dy = rng.standard_normal(y.shape)
        expected = R.maxpool2d_backward(dy, indices, x.shape)
        if floor is not None:
            expected = R.relu_backward(expected, x)
        np.testing.assert_array_equal(F.maxpool2d_backward(dy, cache), expected)


def test_maxpool2d_workspace_holds_only_temporaries(rng):
    """A workspace lent from call to call (a layer's, in training) changes nothing: inputs of two sizes in
    turn, with and without a floor, give what calls without one give, and no result shares its memory."""
    workspace, kept = {}, []
    for size in [(6, 6), (8, 6), (6, 6)]:
        for floor in (None, 0.0):
            x = rng.integers(-3, 3, size=(2, 5, *size)).astype(float)  # many ties
            kept.append((x, floor, *F.maxpool2d_forward(x, 2, floor=floor, workspace=workspace)))
    assert workspace  # the temporaries stayed for the next call
    for x, floor, y, cache in kept:
        want_y, want = F.maxpool2d_forward(x, 2, floor=floor)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(cache.route, want.route)


@pytest.mark.parametrize("winners", [True, False])
def test_maxpool2d_with_a_floor_is_max_pooling_of_relu(rng, winners):
    """``floor=0`` pools ``max(X, 0)``: the loops' output and winners on ``relu(x)``, ties among the zeros going
    to the first cell, for tiling windows (the running maximum starts at the floor) and others (the input is
    clamped first); with ``winners=False`` the winners found later use the floor too."""
    for size, hyper in [((6, 6), (2,)), ((7, 5), (2,)), ((6, 6), (3, 1, 1)), ((5, 7), (2, 2, 0, "xcorr", (1, 1)))]:
        x = rng.integers(-3, 3, size=(2, 3, *size)).astype(float)  # many ties, zeros and windows with nothing positive
        y, cache = F.maxpool2d_forward(x, *hyper, winners=winners, floor=0.0)
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
        y, cache = F.maxpool2d_forward(x, *hyper, winners=winners, floor=0.0)
        dy = rng.standard_normal(y.shape)
        rectified = np.maximum(x, 0)  # relu(NaN) is NaN, as in PyTorch
        _, indices = R.maxpool2d_forward(np.nan_to_num(rectified, nan=np.inf), *hyper)  # a NaN wins like +inf
        expected = R.relu_backward(R.maxpool2d_backward(dy, indices, x.shape), x)
        assert (expected == 0).sum() > (R.maxpool2d_backward(dy, indices, x.shape) == 0).sum()  # ReLU's mask bites
        np.testing.assert_allclose(F.maxpool2d_backward(dy, cache), expected, rtol=1e-12, atol=0)  # sums in any order


def test_maxpool2d_ties_go_to_the_first_input_cell():
    x = np.zeros((1, 1, 4, 4))
    for mode in ("xcorr", "conv"):
        for center in ((0, 0), (1, 1), (0, 1)):
            _, cache = F.maxpool2d_forward(x, 2, 2, 0, mode, center)
            _, indices = R.maxpool2d_forward(x, 2, 2, 0, mode, center)
            np.testing.assert_array_equal(cache.indices, indices)
    _, cache = F.maxpool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(cache.indices[0, 0], [[0, 2], [8, 10]])  # top-left cell of each window


def test_at_least_is_numpys_maximum_in_every_memory_order(rng):
    """ReLU and the pooling floor take ``max(X, floor)`` with the floor as a small array over X's innermost
    axes in memory: the same values as ``np.maximum`` against the scalar (NaN, infinities and signed zeros
    included), the output in X's memory order, and ``out=x`` in place."""
    from handgrad.functional._layout import to_nchw
    from handgrad.functional._ufuncs import at_least

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
    from handgrad.functional._products import matmul

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


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("order", ["C", "F"])
def test_linear_matches_loops(rng, record, bias, order):
    """Inputs in either memory order (F: feature maps flattened with the batch innermost); dX comes back in
    the input's order."""
    for n, m, k in [(1, 1, 1), (1, 5, 3), (4, 7, 2), (6, 3, 8), (5, 4, 1), (3, 1, 4)]:  # ones: inner size 1
        x, w = np.asarray(rng.standard_normal((n, m)), order=order), rng.standard_normal((m, k))
        b = rng.standard_normal(k) if bias else None
        y, cache = F.linear_forward(x, w, b)
        errors = [assert_close(y, R.linear_forward(x, w, b), RTOL, "y", (n, m, k))]
        dy = rng.uniform(-1, 1, size=y.shape)
        for got, want, name in zip(F.linear_backward(dy, cache), R.linear_backward(dy, x, w, bias), ("dx", "dw", "db")):
            if want is None:
                assert got is None
            else:
                errors.append(assert_close(got, want, RTOL, name, (n, m, k)))
        dx = F.linear_backward(dy, cache)[0]
        assert dx.flags.c_contiguous if order == "C" else dx.flags.f_contiguous
        record("Linear", "reference", *errors)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "flatten"])
def test_activation_matches_loops(rng, record, name):
    forward, backward = getattr(F, f"{name}_forward"), getattr(F, f"{name}_backward")
    ref_forward, ref_backward = getattr(R, f"{name}_forward"), getattr(R, f"{name}_backward")
    shapes = [(1, 1), (3, 4), (2, 10)] if name == "softmax" else [(1, 1), (3, 4), (2, 3, 4, 5)]
    for shape in shapes:
        x = 3 * rng.standard_normal(shape)
        y, cache = forward(x)
        dy = rng.uniform(-1, 1, size=y.shape)
        reference_cache = x.shape if name == "flatten" else x  # the loops start from the input
        errors = (
            assert_close(y, ref_forward(x), RTOL, "y", shape),
            assert_close(backward(dy, cache), ref_backward(dy, reference_cache), RTOL, "dx", shape),
        )
        record(name.capitalize().replace("Relu", "ReLU"), "reference", *errors)


def test_softmax_jacobian_matches_loops(rng):
    x = rng.standard_normal((3, 5))
    y, _ = F.softmax_forward(x)
    assert_close(F.softmax_jacobian(y), R.softmax_jacobian(x), RTOL, "jacobian")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses_match_loops(rng, record, reduction):
    n, k = 5, 4
    labels = rng.integers(0, k, size=n)
    onehot = np.eye(k)[labels]
    soft = rng.dirichlet(np.ones(k), size=n)
    z = 3 * rng.standard_normal((n, k))
    probabilities, _ = F.softmax_forward(z)
    y = rng.standard_normal((n, k))

    cases = [
        ("MSE", F.mse_forward, F.mse_backward, R.mse, y, rng.standard_normal((n, k)), None),
        (
            "CrossEntropy",
            F.cross_entropy_forward,
            F.cross_entropy_backward,
            R.cross_entropy,
            probabilities,
            labels,
            onehot,
        ),
        ("CrossEntropy", F.cross_entropy_forward, F.cross_entropy_backward, R.cross_entropy, probabilities, soft, soft),
        (
            "SoftmaxCrossEntropy",
            F.softmax_cross_entropy_forward,
            F.softmax_cross_entropy_backward,
            R.softmax_cross_entropy,
            z,
            labels,
            onehot,
        ),
        (
            "SoftmaxCrossEntropy",
            F.softmax_cross_entropy_forward,
            F.softmax_cross_entropy_backward,
            R.softmax_cross_entropy,
            z,
            soft,
            soft,
        ),
    ]
    for name, forward, backward, reference, pred, target, rows in cases:
        loss, cache = forward(pred, target, reduction)
        ref_loss, ref_grad = reference(pred, target if rows is None else rows, reduction)
        record(
            name,
            "reference",
            assert_close(loss, ref_loss, RTOL, f"{name} loss"),
            assert_close(backward(cache), ref_grad, RTOL, f"{name} gradient"),
        )


def test_avgpool2d_matches_loops(rng, record):
    """Any centre and mode, per-side and 'same'/'valid' padding, ceil_mode, padding counted or not."""
    checked = 0
    while checked < 150:
        g = random_window_config(rng, max_kernel=4, options=checked % 2 == 1)
        hyper = (
            g["kernel"],
            g["stride"],
            g["padding"],
            g["mode"],
            g["center"],
            bool(rng.integers(0, 2)),
            bool(rng.integers(0, 2)),
        )
        x = rng.standard_normal((2, 2, *g["size"]))
        out = unless_padding_only(F.avgpool2d_forward, x, *hyper)
        if out is None:  # tested in test_errors
            continue
        y, cache = out
        checked += 1
        ry, _ = R.avgpool2d_forward(x, *hyper)
        dy = rng.uniform(-1, 1, size=y.shape)
        dx, rx = F.avgpool2d_backward(dy, cache), R.avgpool2d_backward(dy, x.shape, *hyper)
        record("AvgPool2D", "reference", assert_close(y, ry, RTOL, "y", g), assert_close(dx, rx, RTOL, "dx", g))


def test_global_avgpool2d_matches_loops(rng, record):
    for shape in [(1, 1, 1, 1), (2, 3, 4, 5)]:
        x = rng.standard_normal(shape)
        y, cache = F.global_avgpool2d_forward(x)
        dy = rng.uniform(-1, 1, size=y.shape)
        errors = (
            assert_close(y, R.global_avgpool2d_forward(x), RTOL),
            assert_close(F.global_avgpool2d_backward(dy, cache), R.global_avgpool2d_backward(dy, shape), RTOL),
        )
        record("GlobalAvgPool2D", "reference", *errors)


@pytest.mark.parametrize("name, options", [("leaky_relu", 0.2), ("elu", 1.5)])
def test_leaky_relu_and_elu_match_loops(rng, record, name, options):
    forward, backward = getattr(F, f"{name}_forward"), getattr(F, f"{name}_backward")
    for shape in [(1, 1), (3, 4), (2, 3, 4, 5)]:
        x = 3 * rng.standard_normal(shape)
        y, cache = forward(x, options)
        dy = rng.uniform(-1, 1, size=y.shape)
        ref_forward, ref_backward = getattr(R, f"{name}_forward"), getattr(R, f"{name}_backward")
        errors = (
            assert_close(y, ref_forward(x, options), RTOL),
            assert_close(backward(dy, cache), ref_backward(dy, x, options), RTOL),
        )
        record({"leaky_relu": "LeakyReLU", "elu": "ELU"}[name], "reference", *errors)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_dropout_matches_loops(rng, record, p):
    x = rng.standard_normal((4, 3, 5))
    y, mask = F.dropout_forward(x, p, np.random.default_rng(7))
    keep = (mask > 0).astype(float) if p < 1 else np.zeros(x.shape)
    dy = rng.uniform(-1, 1, size=x.shape)
    errors = (
        assert_close(y, R.dropout_forward(x, keep, p), RTOL),
        assert_close(F.dropout_backward(dy, mask), R.dropout_backward(dy, keep, p), RTOL),
    )
    record("Dropout", "reference", *errors)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5), (3, 2, 1, 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_matches_loops(rng, record, shape, affine):
    c = shape[1]
    x = 2 * rng.standard_normal(shape) + 1
    gamma, beta = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    running = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    for training in (True, False):
        y, cache, (mean, var) = F.batchnorm_forward(x, gamma, beta, *running, training, 0.2, 1e-5)
        ry, rmean, rvar = R.batchnorm_forward(x, gamma, beta, *running, training, 0.2, 1e-5)
        dy = rng.uniform(-1, 1, size=shape)
        got = F.batchnorm_backward(dy, cache)
        want = R.batchnorm_backward(dy, x, gamma, *running, training, 1e-5)
        errors = [assert_close(y, ry, RTOL, "y"), assert_close(mean, rmean, RTOL), assert_close(var, rvar, RTOL)]
        errors += [
            assert_close(a, b, RTOL, n) for a, b, n in zip(got, want, ("dx", "dgamma", "dbeta")) if b is not None
        ]
        record("BatchNorm", "reference", *errors)
