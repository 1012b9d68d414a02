"""Oracle 1: every formula-tier kernel against its loop transcription, float64, relative error under 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES
from helpers import assert_close, distinct_values, random_window_config, unless_padding_only

from handgrad import functional as F
from handgrad import reference as R
from handgrad.functional.padding import PADDING_MODES
from handgrad.layers import Conv2D

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
    """Dilation, groups (depthwise too), padding modes, per-side, 'same' and 'valid' padding, with mode and centre:
    the layer (a padding mode fills the padding, then the kernel) against the loops."""
    checked = 0
    while checked < 250:
        g, opt = random_window_config(rng, options=True), random_conv_options(rng)
        n = int(rng.integers(1, 3))
        x = rng.standard_normal((n, opt["C"], *g["size"]))
        hyper = (g["stride"], g["padding"], g["mode"], g["center"], g["dilation"], opt["groups"], opt["padding_mode"])
        layer = Conv2D(
            opt["C"],
            opt["O"],
            g["kernel"],
            *hyper[:4],
            dtype=np.float64,
            dilation=g["dilation"],
            groups=opt["groups"],
            padding_mode=opt["padding_mode"],
            rng=rng,
        )
        w, b = layer.params["weight"], layer.params["bias"]
        config = {**g, **opt}
        try:
            y = layer.forward(x)
        except ValueError as error:  # reflect needs padding < size, circular <= size (as PyTorch)
            assert "padding_mode=" in str(error)
            continue
        checked += 1
        errors = [assert_close(y, R.conv2d_forward(x, w, b, *hyper), RTOL, "y", config)]
        dy = rng.uniform(-1, 1, size=y.shape)
        got = (layer.backward(dy), layer.grads["weight"], layer.grads["bias"])
        want = R.conv2d_backward(dy, x, w, *hyper[:4], True, *hyper[4:])
        errors += [assert_close(a, e, RTOL, name, config) for a, e, name in zip(got, want, ("dx", "dw", "db"))]
        if opt["groups"] == 1 and opt["padding_mode"] == "zeros":
            literal = R.derivation.conv2d_backward(dy, x, w, *hyper[:5])
            errors += [assert_close(literal[0], want[0], RTOL, "dx (derivation)", config)]
        record("Conv2D options", "reference", *errors)


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


def test_maxpool2d_ties_go_to_the_first_input_cell():
    x = np.zeros((1, 1, 4, 4))
    for mode in ("xcorr", "conv"):
        for center in ((0, 0), (1, 1), (0, 1)):
            _, cache = F.maxpool2d_forward(x, 2, 2, 0, mode, center)
            _, indices = R.maxpool2d_forward(x, 2, 2, 0, mode, center)
            np.testing.assert_array_equal(cache.indices, indices)
    _, cache = F.maxpool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(cache.indices[0, 0], [[0, 2], [8, 10]])  # top-left cell of each window


@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer_matches_loops(rng, record, case):
    """Every row of the shared table: output, input gradient and parameter gradients against the loops."""
    for shape in case.shapes:
        layer, x = case.make(rng), case.input(rng, shape)
        y = layer.forward(x)
        dy = rng.uniform(-1, 1, size=y.shape)
        dx = layer.backward(dy)
        want_y, want_dx, want_grads = case.reference(x, layer, dy)
        errors = [assert_close(y, want_y, RTOL, "y", shape), assert_close(dx, want_dx, RTOL, "dx", shape)]
        assert layer.grads.keys() == want_grads.keys()
        errors += [assert_close(layer.grads[k], want_grads[k], RTOL, k, shape) for k in want_grads]
        record(case.name, "reference", *errors)


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
            "CrossEntropy",
            F.cross_entropy_forward,
            F.cross_entropy_backward,
            R.cross_entropy,
            probabilities,
            F.smoothed_targets(labels, k, 0.2, np.float64),
            R.smoothed_targets(labels, k, 0.2),
        ),
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
        (
            "SoftmaxCrossEntropy",
            F.softmax_cross_entropy_forward,
            F.softmax_cross_entropy_backward,
            R.softmax_cross_entropy,
            z,
            F.smoothed_targets(labels, k, 0.2, np.float64),
            R.smoothed_targets(labels, k, 0.2),
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


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
def test_smoothed_targets_match_loops(rng, label_smoothing):
    labels = rng.integers(0, 7, size=9)
    rows = F.smoothed_targets(labels, 7, label_smoothing, np.float64)
    assert_close(rows, R.smoothed_targets(labels, 7, label_smoothing), 1e-15, "smoothed targets")


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
