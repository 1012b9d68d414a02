"""Oracle 3: PyTorch (CPU, float64) agrees with every forward and gradient to 1e-9 relative."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
import torch_reference as T
from cases import CASES
from helpers import (
    assert_close,
    distinct_values,
    random_window_config,
    sweep_geometries,
    unless_padding_only,
)
from test_reference import random_conv_options

from handgrad import functional as F
from handgrad.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    MaxPool2D,
)
from handgrad.losses import MSE, CrossEntropy, SoftmaxCrossEntropy

RTOL = 1e-9
CONV_OPTIONS = ("stride", "padding", "mode", "center", "dilation", "groups", "padding_mode")
POOL_OPTIONS = ("kernel", "stride", "padding", "mode", "center", "dilation")
BATCHES = [(1, 1, 1), (3, 2, 3)]  # (N, C, O): batch and channels 1, and several
KERNELS = range(1, 6)


def check_conv(rng, g, n, c, o, bias, record):
    x = rng.standard_normal((n, c, *g["size"]))
    layer = Conv2D(c, o, g["kernel"], g["stride"], g["padding"], g["mode"], g["center"], bias, np.float64, rng=rng)
    y = layer.forward(x)
    dy = rng.uniform(-1, 1, size=y.shape)
    dx = layer.backward(dy)
    hyper = (g["stride"], g["padding"], g["mode"], g["center"])
    ty, (tdx, tdw, tdb) = T.grads(
        lambda *a: T.conv2d(*a, *hyper), dy, x, layer.params["weight"], layer.params.get("bias")
    )
    config = dict(g, N=n, C=c, O=o, bias=bias)
    errors = [assert_close(y, ty, RTOL, "y", config), assert_close(dx, tdx, RTOL, "dx", config)]
    errors.append(assert_close(layer.grads["weight"], tdw, RTOL, "dweight", config))
    if bias:
        errors.append(assert_close(layer.grads["bias"], tdb, RTOL, "dbias", config))
    record("Conv2D", "torch", *errors)


def check_pool(rng, g, n, c, record):
    x = distinct_values(rng, (n, c, *g["size"]))
    layer = MaxPool2D(g["kernel"], g["stride"], g["padding"], g["mode"], g["center"])
    y = unless_padding_only(layer.forward, x)
    if y is None:  # a window of padding only: PyTorch would return -inf there
        return
    dy = rng.uniform(-1, 1, size=y.shape)
    dx = layer.backward(dy)
    hyper = (g["kernel"], g["stride"], g["padding"], g["mode"], g["center"])
    ty, (tdx,) = T.grads(lambda a: T.maxpool2d(a, *hyper), dy, x)
    record("MaxPool2D", "torch", assert_close(y, ty, RTOL, "y", g), assert_close(dx, tdx, RTOL, "dx", g))


@pytest.mark.parametrize("kh", KERNELS)
def test_conv2d_sweep(rng, record, kh):
    """Kernel kh x (1..5), strides 1-3, padding 0-2, every centre cell, both modes, two batch shapes."""
    for g in sweep_geometries(kernels=KERNELS):
        if g["kernel"][0] == kh:
            for n, c, o in BATCHES:
                check_conv(rng, g, n, c, o, bias=True, record=record)


@pytest.mark.parametrize("kh", KERNELS)
def test_maxpool2d_sweep(rng, record, kh):
    for g in sweep_geometries(kernels=KERNELS):
        if g["kernel"][0] == kh:
            for n, c, _ in BATCHES:
                check_pool(rng, g, n, c, record=record)


def test_random_geometries(rng, record):
    """Non-square strides and paddings, other sizes, and no bias."""
    for i in range(300):
        g = random_window_config(rng)
        check_conv(rng, g, *BATCHES[i % 2], bias=bool(i % 3), record=record)
        check_pool(rng, g, *BATCHES[i % 2][:2], record=record)


def test_conv2d_options(rng, record):
    """Dilation, groups (depthwise too), padding modes, per-side, 'same' and 'valid' padding, with mode and centre."""
    checked = 0
    while checked < 500:
        g, opt = random_window_config(rng, options=True), random_conv_options(rng)
        n = int(rng.integers(1, 4))
        x = rng.standard_normal((n, opt["C"], *g["size"]))
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
            y = layer.forward(x)
        except ValueError as error:  # reflect needs padding < size, circular <= size, as in PyTorch
            assert "padding_mode=" in str(error)
            continue
        checked += 1
        dy = rng.uniform(-1, 1, size=y.shape)
        dx = layer.backward(dy)
        sides = layer.window.padding
        hyper = (g["stride"], sides, g["mode"], g["center"], g["dilation"], opt["groups"], opt["padding_mode"])
        torch_f = partial(T.conv2d, **dict(zip(CONV_OPTIONS, hyper)))
        ty, (tdx, tdw, tdb) = T.grads(torch_f, dy, x, layer.params["weight"], layer.params["bias"])
        config = {**g, **opt}
        record(
            "Conv2D options",
            "torch",
            assert_close(y, ty, RTOL, "y", config),
            assert_close(dx, tdx, RTOL, "dx", config),
            assert_close(layer.grads["weight"], tdw, RTOL, "dweight", config),
            assert_close(layer.grads["bias"], tdb, RTOL, "dbias", config),
        )


def test_maxpool2d_options(rng, record):
    """Dilation and per-side padding with any centre; ceil_mode where PyTorch's own padding expresses the window."""
    checked = 0
    while checked < 400:
        g = random_window_config(rng, options=True)
        plain = g["mode"] == "xcorr" and g["center"] == (0, 0) and isinstance(g["padding"], tuple)
        plain = plain and all(isinstance(p, int) and 2 * p <= k for p, k in zip(g["padding"], g["kernel"]))
        ceil_mode = plain and bool(rng.integers(0, 2))
        x = distinct_values(rng, (2, 3, *g["size"]))
        layer = MaxPool2D(
            g["kernel"], g["stride"], g["padding"], g["mode"], g["center"], dilation=g["dilation"], ceil_mode=ceil_mode
        )
        y = unless_padding_only(layer.forward, x)
        if y is None:  # tested in test_errors
            continue
        checked += 1
        dy = rng.uniform(-1, 1, size=y.shape)
        dx = layer.backward(dy)
        if ceil_mode:
            torch_f = partial(
                TF.max_pool2d,
                kernel_size=g["kernel"],
                stride=g["stride"],
                padding=g["padding"],
                dilation=g["dilation"],
                ceil_mode=True,
            )
        else:
            hyper = (g["kernel"], g["stride"], layer.window.padding, g["mode"], g["center"], g["dilation"])
            torch_f = partial(T.maxpool2d, **dict(zip(POOL_OPTIONS, hyper)))
        ty, (tdx,) = T.grads(torch_f, dy, x)
        config = {**g, "ceil_mode": ceil_mode}
        record(
            "MaxPool2D options",
            "torch",
            assert_close(y, ty, RTOL, "y", config),
            assert_close(dx, tdx, RTOL, "dx", config),
        )


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 3), (3, 2)])  # tiling windows, then overlapping ones
@pytest.mark.parametrize("training", [True, False])
def test_maxpool2d_nan_wins_its_window_as_in_pytorch(rng, kernel, stride, training):
    x = distinct_values(rng, (2, 3, 9, 9))
    x.flat[rng.choice(x.size, size=40, replace=False)] = np.nan  # windows with one NaN, several, or none
    layer = MaxPool2D(kernel, stride).train(training)
    y = layer.forward(x)
    ty, tindices = TF.max_pool2d(torch.from_numpy(x), kernel, stride, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())  # NaN where PyTorch has NaN
    np.testing.assert_array_equal(layer.indices, tindices.numpy())


def test_avgpool2d(rng, record):
    """The windows PyTorch's AvgPool2d expresses: origin centre, cross-correlation placement, padding at most
    half the window, with ceil_mode and count_include_pad.  (Other centres are checked by the loops and gradcheck.)"""
    checked = 0
    while checked < 400:
        g = random_window_config(rng)
        if any(2 * p > k for p, k in zip(g["padding"], g["kernel"])):
            continue
        ceil_mode, count_include_pad = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        layer = AvgPool2D(
            g["kernel"], g["stride"], g["padding"], ceil_mode=ceil_mode, count_include_pad=count_include_pad
        )
        x = rng.standard_normal((2, 3, *g["size"]))
        y = unless_padding_only(layer.forward, x)
        if y is None:  # tested in test_errors
            continue
        checked += 1
        dy = rng.uniform(-1, 1, size=y.shape)
        dx = layer.backward(dy)
        options = {"kernel_size": g["kernel"], "stride": g["stride"], "padding": g["padding"]}
        torch_f = partial(TF.avg_pool2d, **options, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        ty, (tdx,) = T.grads(torch_f, dy, x)
        config = {**g, "ceil_mode": ceil_mode, "count_include_pad": count_include_pad}
        record("AvgPool2D", "torch", assert_close(y, ty, RTOL, "y", config), assert_close(dx, tdx, RTOL, "dx", config))


def test_center_zero_cross_correlation_is_torch_conv2d(rng):
    """No identity in between: handgrad's default equals PyTorch's conv2d with symmetric padding."""
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    y, _ = F.conv2d_forward(x, w, b, stride=2, padding=1)
    expected = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1).numpy()
    assert_close(y, expected, RTOL)


def test_convolution_is_flipped_cross_correlation(rng):
    """conv(W, centre c) == xcorr(W[..., ::-1, ::-1], centre K-1-c), forward and every gradient."""
    x, w = rng.standard_normal((2, 2, 7, 7)), rng.standard_normal((3, 2, 3, 4))
    for center in [(0, 0), (1, 2), (2, 3)]:
        y, conv = F.conv2d_forward(x, w, None, 2, 1, "conv", center)
        flipped_center = (2 - center[0], 3 - center[1])
        y_flip, xcorr = F.conv2d_forward(x, w[:, :, ::-1, ::-1], None, 2, 1, "xcorr", flipped_center)
        assert_close(y, y_flip, 1e-14)
        dy = rng.standard_normal(y.shape)
        (dx, dw, _), (dx_flip, dw_flip, _) = F.conv2d_backward(dy, conv), F.conv2d_backward(dy, xcorr)
        assert_close(dx, dx_flip, 1e-14)
        assert_close(dw, dw_flip[:, :, ::-1, ::-1], 1e-14)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer(rng, record, case):
    """Every row of the shared table: output, input gradient and parameter gradients against PyTorch's."""
    for shape in case.shapes:
        layer, x = case.make(rng), case.input(rng, shape)
        y = layer.forward(x)
        dy = rng.uniform(-1, 1, size=y.shape)
        dx = layer.backward(dy)
        ty, (tdx, *tgrads) = T.grads(case.torch(layer), dy, x, *layer.params.values())
        errors = [assert_close(y, ty, RTOL, "y", shape), assert_close(dx, tdx, RTOL, "dx", shape)]
        errors += [assert_close(layer.grads[k], t, RTOL, k, shape) for k, t in zip(layer.params, tgrads)]
        record(case.name, "torch", *errors)


def test_dropout_has_pytorchs_semantics(rng, record):
    """Masks cannot be shared, so the law is compared: p drops, survivors scaled by 1/(1 - p), identity in eval."""
    ones = np.ones((1000, 1000))
    for p in (0.1, 0.5):
        ours = Dropout(p, rng=np.random.default_rng(0)).forward(ones)
        theirs = torch.nn.functional.dropout(torch.ones(1000, 1000, dtype=torch.float64), p).numpy()
        for y in (ours, theirs):
            assert set(np.unique(y)) == {0.0, 1 / (1 - p)}
            assert abs((y == 0).mean() - p) < 5 * np.sqrt(p * (1 - p) / y.size)
        record("Dropout", "torch", assert_close(ours.mean(), theirs.mean(), 1e-2))
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(Dropout(0.5).eval().forward(x), torch.nn.Dropout(0.5).eval()(torch.tensor(x)).numpy())


@pytest.mark.parametrize(
    "cls, torch_cls, shape",
    [(BatchNorm2D, torch.nn.BatchNorm2d, (4, 3, 5, 6)), (BatchNorm1D, torch.nn.BatchNorm1d, (7, 5))],
)
def test_batchnorm_in_both_modes_and_its_running_statistics(rng, record, cls, torch_cls, shape):
    layer = cls(shape[1], eps=1e-3, momentum=0.2, dtype=np.float64)
    module = torch_cls(shape[1], eps=1e-3, momentum=0.2).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(rng.standard_normal(shape[1])))
        module.bias.copy_(torch.tensor(rng.standard_normal(shape[1])))
    layer.params["weight"][:], layer.params["bias"][:] = module.weight.detach().numpy(), module.bias.detach().numpy()
    for step in range(4):  # training steps: outputs, gradients, and the running statistics after each
        x = 3 * rng.standard_normal(shape) + step
        y = layer.forward(x)
        dy = rng.uniform(-1, 1, size=y.shape)
        dx = layer.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        module.zero_grad()
        yt = module(xt)
        yt.backward(torch.tensor(dy))
        errors = [assert_close(y, yt.detach().numpy(), RTOL, "y"), assert_close(dx, xt.grad.numpy(), RTOL, "dx")]
        errors += [assert_close(layer.grads["weight"], module.weight.grad.numpy(), RTOL, "dgamma")]
        errors += [assert_close(layer.grads["bias"], module.bias.grad.numpy(), RTOL, "dbeta")]
        errors += [assert_close(layer.buffers["running_mean"], module.running_mean.numpy(), RTOL, "running mean")]
        errors += [assert_close(layer.buffers["running_var"], module.running_var.numpy(), RTOL, "running var")]
        record("BatchNorm", "torch", *errors)
    layer.eval()
    module.eval()
    x = rng.standard_normal(shape)
    y = layer.forward(x)
    dy = rng.uniform(-1, 1, size=y.shape)
    ty, (tdx,) = T.grads(module, dy, x)
    record(
        "BatchNorm",
        "torch",
        assert_close(y, ty, RTOL, "eval y"),
        assert_close(layer.backward(dy), tdx, RTOL, "eval dx"),
    )


def test_batchnorm_edge_cases_stay_finite(rng):
    layer = BatchNorm2D(2, dtype=np.float64)
    x = rng.standard_normal((3, 2, 4, 4))
    x[:, 1] = 7.0  # a constant channel: variance 0
    y = layer.forward(x)
    assert np.all(np.isfinite(y)) and np.all(y[:, 1] == 0)
    assert np.all(np.isfinite(layer.backward(np.ones_like(y))))
    single = layer.eval().forward(x[:1])  # batch size 1 in evaluation mode
    assert np.all(np.isfinite(single))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1D(3).forward(np.zeros((1, 3)))


def _torch_cross_entropy_on_probabilities(y, t, reduction):
    loss = -(t * torch.log(y)).sum()
    return loss / y.shape[0] if reduction == "mean" else loss


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses(rng, record, reduction):
    n, k = 8, 5
    labels = rng.integers(0, k, size=n)
    onehot = np.eye(k)[labels]
    soft = rng.dirichlet(np.ones(k), size=n)
    logits = 3 * rng.standard_normal((n, k))
    probabilities = rng.dirichlet(np.ones(k), size=n)
    cases = [
        (
            MSE,
            rng.standard_normal((n, k)),
            rng.standard_normal((n, k)),
            lambda p, t: TF.mse_loss(p, t, reduction=reduction),
        ),
        (SoftmaxCrossEntropy, logits, labels, lambda p, t: TF.cross_entropy(p, t, reduction=reduction)),
        (SoftmaxCrossEntropy, logits, soft, lambda p, t: TF.cross_entropy(p, t, reduction=reduction)),
        (CrossEntropy, probabilities, labels, lambda p, t: TF.nll_loss(torch.log(p), t, reduction=reduction)),
        (CrossEntropy, probabilities, onehot, lambda p, t: _torch_cross_entropy_on_probabilities(p, t, reduction)),
        (CrossEntropy, probabilities, soft, lambda p, t: _torch_cross_entropy_on_probabilities(p, t, reduction)),
    ]
    for cls, prediction, target, torch_loss in cases:
        loss = cls(reduction)
        value = loss.forward(prediction, target)
        p = torch.tensor(prediction, requires_grad=True)
        expected = torch_loss(p, torch.tensor(target))
        expected.backward()
        name = f"{cls.__name__}({reduction})"
        record(
            cls.__name__,
            "torch",
            assert_close(value, expected.item(), RTOL, name),
            assert_close(loss.backward(), p.grad.numpy(), RTOL, name),
        )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("label_smoothing", [0.1, 0.4])
def test_label_smoothing(rng, record, reduction, label_smoothing):
    """The fused loss on smoothed rows is PyTorch's ``F.cross_entropy(..., label_smoothing=e)``: value and gradient."""
    n, k = 8, 5
    labels, logits = rng.integers(0, k, size=n), 3 * rng.standard_normal((n, k))
    loss = SoftmaxCrossEntropy(reduction)
    value = loss.forward(logits, F.smoothed_targets(labels, k, label_smoothing, np.float64))
    z = torch.tensor(logits, requires_grad=True)
    expected = TF.cross_entropy(z, torch.tensor(labels), reduction=reduction, label_smoothing=label_smoothing)
    expected.backward()
    record(
        "label smoothing",
        "torch",
        assert_close(value, expected.item(), RTOL, "loss"),
        assert_close(loss.backward(), z.grad.numpy(), RTOL, "gradient"),
    )
