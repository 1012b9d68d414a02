"""The fast tier against the formula tier: a compiled model gives the outputs, input gradients, parameter
gradients and running statistics of its source model's own layers, on every preset and on randomly built
models, and writes over no array anyone else holds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from cases import CASES
from helpers import assert_close, distinct_values, forget_gradients, random_window_config
from test_reference import random_conv_options

import handgrad
from handgrad import Sequential, presets
from handgrad.fast import steps as fast_steps
from handgrad.layers import (
    ELU,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    Linear,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
)

RTOL = 1e-10
NOISE = 1e-3  # of the largest gradient: a cancellation (a bias before batch normalisation) leaves rounding below it


def _run(model, x, dy, predict_x):
    """Output, input gradient, parameter gradients, buffers and a prediction, the generators put back after."""
    state = model.state()
    y = model.forward(x)
    dx = model.backward(dy)
    grads = {name: grad.copy() for name, grad in model.grads.items()}
    buffers = {name: value.copy() for name, value in model.buffers.items()}
    prediction = model.predict(predict_x)
    return state, (y, dx, grads, buffers, prediction)


def assert_same_model(source, x, rng, config=None, rtol=RTOL, training=True):
    """The compiled model against the source's own layers: forward, backward, grads, buffers and predict."""
    source.train(training)
    compiled = handgrad.compile(source)
    y = source.forward(x)
    dy = rng.uniform(-1, 1, size=y.shape)
    predict_x = 0.5 * x
    state, want = _run(source, x, dy, predict_x)
    source.load_state(state)  # buffers and dropout's generator as they were before the formula tier's pass
    forget_gradients(source)
    given = x.copy(), dy.copy(), predict_x.copy()
    _, got = _run(compiled, x, dy, predict_x)
    for kept, now in zip(given, (x, dy, predict_x)):  # the caller's arrays are never written over
        np.testing.assert_array_equal(now, kept)
    errors = [assert_close(got[0], want[0], rtol, "y", config), assert_close(got[1], want[1], rtol, "dx", config)]
    assert got[2].keys() == want[2].keys()
    # a gradient that is zero in exact arithmetic (the bias of a layer before batch normalisation) is rounding
    # noise: compared on a scale of the model's gradients
    floor = NOISE * max((float(np.max(np.abs(g), initial=0)) for g in want[2].values()), default=0)
    errors += [assert_close(got[2][k], want[2][k], rtol, k, config, floor=floor) for k in want[2]]
    errors += [assert_close(got[3][k], want[3][k], rtol, k, config) for k in want[3]]
    errors.append(assert_close(got[4], want[4], rtol, "predict", config))
    return errors


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_layer_of_the_table_compiled_is_its_formula_tier(rng, record, case):
    for shape in case.shapes:
        layer = case.make(rng)
        errors = assert_same_model(layer, case.input(rng, shape), rng, shape, training=layer.training)
        record(case.name, "compiled", *errors)


@pytest.mark.parametrize("name", list(presets.PRESETS))
@pytest.mark.parametrize("training", [True, False])
def test_every_preset_compiled_is_its_formula_tier(rng, record, name, training):
    model, _ = presets.build(name, rng, np.float64, None)
    x = rng.standard_normal((3, *presets.INPUT_SHAPE))
    record("presets", "formula tier", *assert_same_model(model, x, rng, name, training=training))


def _random_layers(rng, channels, size, depth):
    """Layers for an input of ``channels`` maps of ``size``, and the channels and size they leave."""
    layers = []
    kw = {"dtype": np.float64, "rng": rng}
    for _ in range(depth):
        kind = rng.choice(["conv", "conv", "relu", "pool", "avgpool", "bn", "dropout", "residual", "act"])
        if kind == "conv":
            g, opt = random_window_config(rng, max_kernel=3, options=True), random_conv_options(rng)
            groups = opt["groups"] if channels % opt["groups"] == 0 else 1
            out = groups * int(rng.integers(1, 3))
            try:
                layer = Conv2D(
                    channels,
                    out,
                    g["kernel"],
                    g["stride"],
                    g["padding"],
                    g["mode"],
                    g["center"],
                    **kw,
                    dilation=g["dilation"],
                    groups=groups,
                    padding_mode=opt["padding_mode"],
                )
                new = layer.output_shape((1, channels, *size))[2:]
                if min(new) < 1:
                    continue
                layer.forward(np.zeros((1, channels, *size)))  # refused padding for this size: try again
            except ValueError:
                continue
            layers.append(layer)
            channels, size = out, new
        elif kind == "relu":
            layers.append(ReLU())
        elif kind == "act":
            layers.append([Sigmoid, Tanh, ELU][int(rng.integers(3))]())
        elif kind in ("pool", "avgpool"):
            cls = MaxPool2D if kind == "pool" else AvgPool2D
            tiling = rng.random() < 0.5
            g = {"kernel": 2, "stride": None, "padding": 0, "mode": "xcorr", "center": None}
            if not tiling:
                g = random_window_config(rng, max_kernel=3)
            try:
                layer = cls(g["kernel"], g["stride"], g["padding"], g["mode"], g["center"])
                new = layer.output_shape((1, channels, *size))[2:]
            except ValueError:
                continue
            if min(new) < 1:
                continue
            layers.append(layer)
            size = new
        elif kind == "bn":
            layer = BatchNorm2D(channels, affine=bool(rng.integers(2)), momentum=0.3, dtype=np.float64)
            layer.buffers["running_mean"][:] = rng.standard_normal(channels)
            layer.buffers["running_var"][:] = rng.uniform(0.5, 2, channels)
            layers.append(layer)
        elif kind == "dropout":
            layers.append(Dropout(0.3, rng=np.random.default_rng(int(rng.integers(1 << 30)))))
        elif kind == "residual":
            body = [Conv2D(channels, channels, 3, padding=1, **kw), BatchNorm2D(channels, dtype=np.float64), ReLU()]
            projection = None
            if rng.random() < 0.5:
                body.append(Conv2D(channels, channels + 1, 3, padding=1, **kw))
                projection = Conv2D(channels, channels + 1, 1, **kw)
                channels += 1
            layers.append(Residual(body, projection))
    return layers, channels, size


@pytest.mark.parametrize("training", [True, False])
def test_random_models_compiled_are_their_formula_tier(rng, record, training):
    """Convolutions of every option (centres, modes, strides, dilation, groups, padding modes), ReLU before
    tiling and other max-poolings, average pooling, batch normalisation, dropout, residual blocks with and
    without projections, nested Sequentials, then a head."""
    for _ in range(40):
        c, size = int(rng.integers(1, 4)), tuple(int(s) for s in rng.integers(6, 11, size=2))
        layers, channels, out = _random_layers(rng, c, size, int(rng.integers(2, 7)))
        if rng.random() < 0.3:
            layers = [Sequential(layers[: len(layers) // 2])] + layers[len(layers) // 2 :]
        head = [Flatten(), Linear(channels * out[0] * out[1], 5, dtype=np.float64, rng=rng)]
        if rng.random() < 0.5:
            head += [BatchNorm1D(5, dtype=np.float64), ReLU(), Linear(5, 3, dtype=np.float64, rng=rng)]
        if rng.random() < 0.3:
            head = [GlobalAvgPool2D(), Linear(channels, 3, dtype=np.float64, rng=rng)]
        model = Sequential(layers + head)
        x = distinct_values(rng, (3, c, *size), spacing=0.01)
        record("random models", "formula tier", *assert_same_model(model, x, rng, repr(model), training=training))


@pytest.mark.parametrize("training", [True, False])
def test_relu_taken_into_max_pooling_gives_exactly_the_layers_results(rng, training):
    """On integer inputs full of ties, zeros and windows with nothing positive (after ReLU all their cells are 0
    and the first one wins; no gradient flows), and with a NaN: the same output and gradients (the convolutions
    sum in other orders; a winner taken elsewhere would change a gradient by a whole term).  The second pooling
    (ceil_mode, a window past the input) does not tile."""
    kw = {"dtype": np.float64, "rng": rng}
    layers = [ReLU(), MaxPool2D(2), Conv2D(2, 3, 3, padding=1, **kw), ReLU(), MaxPool2D(2, ceil_mode=True)]
    model = Sequential(layers + [Flatten(), Linear(27, 4, **kw)]).train(training)
    x = rng.integers(-3, 3, size=(2, 2, 10, 10)).astype(np.float64)
    x[1, 0, 4, 5] = np.nan
    dy = rng.standard_normal((2, 4))
    assert (x.reshape(2, 2, 5, 2, 5, 2).max(axis=(3, 5)) <= 0).sum() >= 5  # windows with nothing positive
    y, dx = model.forward(x), model.backward(dy)
    grads = {name: grad.copy() for name, grad in model.grads.items()}

    compiled = handgrad.compile(model)
    assert [step.kind for _, step in compiled.steps[:2]] == ["clamp taken into max-pooling", "convolution"]
    np.testing.assert_allclose(compiled.forward(x), y, rtol=1e-12)
    np.testing.assert_allclose(compiled.backward(dy), dx, rtol=1e-12)
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, grads[name], rtol=1e-12)
    np.testing.assert_allclose(compiled.predict(x), y, rtol=1e-12)


def test_the_plan_names_what_it_fused(rng):
    model, _ = presets.build("seed-cnn", rng, np.float32, None)
    compiled = handgrad.compile(model)
    text = repr(compiled)
    assert "(0-2): convolution, clamp, max-pooling as one product: Conv2D(1, 8" in text
    assert "(4-5): clamp taken into max-pooling: ReLU(), MaxPool2D(" in text
    table = compiled.summary(presets.INPUT_SHAPE)
    assert "0-2     convolution, clamp, max-pooling as one product  (8, 12, 12)" in table
    assert table.splitlines()[-1].split()[-2:] == model.summary(presets.INPUT_SHAPE).splitlines()[-1].split()[-2:]


def test_compiled_and_source_are_one_model(rng):
    model, loss = presets.build("fashion-cnn", rng, np.float32, None)
    compiled = handgrad.compile(model)
    assert compiled.params.keys() == model.params.keys()
    assert all(compiled.params[k] is model.params[k] for k in model.params)
    loss.forward(compiled.forward(rng.standard_normal((4, 1, 28, 28)).astype(np.float32)), np.arange(4))
    compiled.backward(loss.backward())
    assert compiled.grads.keys() == model.params.keys()
    assert compiled.eval() is compiled and not model[1].training
    assert compiled.buffers.keys() == model.buffers.keys()


class _Clamp6(ReLU):
    """A subclass that computes something else (min(max(x, 0), 6)) without declaring it."""

    def _forward(self, x):
        y, positive = super()._forward(x)
        return np.minimum(y, 6), positive & (y < 6)


class _NamedReLU(ReLU):
    """A subclass that changes nothing of how it computes."""

    def __init__(self, name):
        super().__init__()
        self.name = name


def test_a_subclass_that_computes_otherwise_runs_as_itself(rng):
    model = Sequential([Conv2D(1, 2, 3, dtype=np.float64, rng=rng), _Clamp6(), MaxPool2D(2), _NamedReLU("r")])
    compiled = handgrad.compile(model)
    assert [step.kind for _, step in compiled.steps] == ["convolution", "as itself", "max-pooling", "clamp"]
    x = 10 * rng.standard_normal((2, 1, 8, 8))
    assert_same_model(model, x, rng)
    assert (model.forward(x) == 6).any()


@dataclass
class _UnitCache:
    y: np.ndarray  # the output, which the backward pass reads at every entry
    norm: np.ndarray


class _Unit(Layer):
    """Each row scaled to unit length, ``y = x / |x|``, keeping its output in a dataclass:
    ``dx = (dy - y (y . dy)) / |x|``, which reads the kept output at every entry, those a ReLU after it zeroes
    included."""

    def _forward(self, x):
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        y = x / norm
        return y, _UnitCache(y, norm)

    def _backward(self, dy, cache, input_grad):
        return (dy - cache.y * np.sum(cache.y * dy, axis=1, keepdims=True)) / cache.norm, {}


def test_an_array_a_layer_keeps_is_never_written_over(rng, monkeypatch):
    """The in-place hazard: a layer keeps its output in a cache of its own kind, and a ReLU follows.  Writing the
    ReLU over that output would zero the kept entries below 0, and the layer's gradient reads them; neither tier
    does, whatever the size floor."""
    monkeypatch.setattr(fast_steps, "IN_PLACE_BYTES", 0)
    model = Sequential(
        [Linear(4, 6, dtype=np.float64, rng=rng), _Unit(), ReLU(), Linear(6, 2, rng=rng, dtype=np.float64)]
    )
    x = rng.standard_normal((5, 4))
    dy = rng.standard_normal((5, 2))
    w0, b0, w3 = model[0].params["weight"], model[0].params["bias"], model[3].params["weight"]
    h = x @ w0 + b0
    norm = np.linalg.norm(h, axis=1, keepdims=True)
    u = h / norm
    assert (u < 0).any()
    g = (dy @ w3.T) * (u > 0)
    expected_dx = ((g - u * np.sum(u * g, axis=1, keepdims=True)) / norm) @ w0.T

    for run in (model, handgrad.compile(model)):
        run.forward(x)
        np.testing.assert_allclose(model[1]._cache.y, u, rtol=1e-12)
        np.testing.assert_allclose(run.backward(dy), expected_dx, rtol=1e-12)


def test_in_place_steps_write_over_temporaries_only(rng, monkeypatch):
    """With the size floor at 0 the compiled model writes ReLU over every array its plan owns: the same outputs and
    gradients as the formula tier, the caller's x and dy untouched, and never over an array a step keeps (the
    output of a batch normalisation without affine parameters, its X_hat, passed on by an evaluation-mode
    Dropout) nor a residual block's input, which both its paths read."""
    monkeypatch.setattr(fast_steps, "IN_PLACE_BYTES", 0)
    kw = {"dtype": np.float64, "rng": rng}
    layers = [ReLU(), Conv2D(2, 3, 3, padding=1, **kw), BatchNorm2D(3, affine=False, dtype=np.float64)]
    layers += [Dropout(0.5).eval(), ReLU()]
    layers += [Conv2D(3, 3, 3, padding=1, **kw), ReLU()]
    layers += [Residual([ReLU(), Conv2D(3, 3, 3, padding=1, **kw), ReLU()]), ReLU(), MaxPool2D(2), Flatten()]
    layers += [Linear(12, 4, **kw), ReLU()]
    model = Sequential(layers)
    assert_same_model(model, rng.standard_normal((2, 2, 4, 4)), rng)


def test_predict_keeps_nothing(rng):
    """Inference changes no step's cache or scratch: a backward pass after it is that of the last forward."""
    model, _ = presets.build("seed-cnn", rng, np.float64, None)
    compiled = handgrad.compile(model)
    x = rng.standard_normal((3, 1, 28, 28))
    y = compiled.forward(x)
    caches = [step.cache for _, step in compiled.steps]
    scratch = [dict(getattr(step, "workspace", {})) for _, step in compiled.steps]
    np.testing.assert_allclose(compiled.predict(2 * x), model.predict(2 * x), rtol=1e-12)
    compiled.predict(x[:2])  # a batch of another size would have added scratch of its own
    assert all(a is b for a, b in zip(caches, [step.cache for _, step in compiled.steps]))
    after = [getattr(step, "workspace", {}) for _, step in compiled.steps]
    assert all(a.keys() == b.keys() and all(a[k] is b[k] for k in a) for a, b in zip(scratch, after))
    np.testing.assert_array_equal(compiled.predict(x), compiled.forward(x))
    np.testing.assert_allclose(compiled.forward(x), y, rtol=0)


def test_backward_before_forward_is_explained(rng):
    compiled = handgrad.compile(Sequential([Conv2D(1, 2, 3, rng=rng), ReLU()]))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        compiled.backward(np.zeros((1, 2, 3, 3), dtype=np.float32))


def test_the_steps_share_one_workspace(rng):
    """Every convolution of a compiled model takes its scratch from the model's one workspace: one buffer of each
    kind, as large as the largest request; a convolution whose columns another wrote over in between builds them
    again for its backward pass, so the results stay the formula tier's."""
    kw = {"dtype": np.float64, "rng": rng}
    model = Sequential(
        [Conv2D(2, 3, 3, padding=1, **kw), ReLU(), Conv2D(3, 4, 3, padding=1, **kw), ReLU(), Conv2D(4, 2, 3, **kw)]
    )
    assert_same_model(model, rng.standard_normal((2, 2, 7, 7)), rng)
    compiled = handgrad.compile(model)
    compiled.forward(rng.standard_normal((2, 2, 7, 7)))
    buffers = [key for key in compiled.workspace if isinstance(key, tuple)]
    assert len(buffers) == len(set(buffers)) and ("columns", np.dtype(np.float64)) in buffers
    assert all(step.workspace is compiled.workspace for _, step in compiled.steps if hasattr(step, "workspace"))


@pytest.mark.parametrize("first", ["flatten", "relu", "residual", "preset"])
def test_without_the_inputs_gradient_every_parameter_gradient_is_the_same(rng, first):
    """``backward(dy, input_grad=False)``: None for the input, and the parameter gradients of the formula tier,
    whatever parameter-free steps come first (they need not run at all)."""
    kw = {"dtype": np.float64, "rng": rng}
    if first == "preset":
        model = presets.build("fashion-cnn", rng, np.float64, None)[0]
    else:
        head = {
            "flatten": [Flatten()],
            "relu": [ReLU(), MaxPool2D(2), Flatten()],
            "residual": [Residual([Conv2D(1, 1, 3, padding=1, **kw)]), Flatten()],
        }[first]
        model = Sequential(head + [Linear(16 if first == "relu" else 64, 3, **kw), Sigmoid(), Linear(3, 2, **kw)])
    x = rng.standard_normal((4, 1, 28, 28) if first == "preset" else (4, 1, 8, 8))
    state = model.state()
    y = model.forward(x)
    dy = rng.uniform(-1, 1, size=y.shape)
    assert model.backward(dy, input_grad=False) is None
    want = {k: v.copy() for k, v in model.grads.items()}
    model.load_state(state)
    forget_gradients(model)
    compiled = handgrad.compile(model)
    compiled.forward(x)
    assert compiled.backward(dy, input_grad=False) is None
    assert compiled.grads.keys() == want.keys()
    for name, grad in want.items():
        assert_close(compiled.grads[name], grad, RTOL, name, floor=NOISE * max(np.abs(g).max() for g in want.values()))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, RTOL), (np.float32, 1e-5)])
@pytest.mark.parametrize("batch", [1, 64])  # 64: both folded (54 and 288 weights, 3,072 and 384 outputs)
def test_batch_normalisation_folded_or_run_in_inference(rng, batch, dtype, rtol):
    """Inference folds the running statistics into the layer before where its weights are fewer than its outputs
    (many samples), and runs the normalisation after it otherwise (few samples); the formula tier's predictions
    either way, in the model's dtype, for an affine and a convolution."""
    kw = {"dtype": dtype, "rng": rng}
    model = Sequential(
        [Conv2D(2, 3, 3, padding=1, **kw), BatchNorm2D(3, dtype=dtype), ReLU(), Flatten()]
        + [Linear(48, 6, **kw), BatchNorm1D(6, dtype=dtype)]  # last: its folded output is the model's
    )
    for layer in (model[1], model[5]):
        layer.buffers["running_mean"][:] = rng.standard_normal(layer.num_features)
        layer.buffers["running_var"][:] = rng.uniform(0.5, 2, layer.num_features)
        layer.params["weight"][:], layer.params["bias"][:] = rng.standard_normal((2, layer.num_features))
    x = rng.standard_normal((batch, 2, 4, 4)).astype(dtype)
    got = handgrad.compile(model).predict(x)
    assert got.dtype == dtype
    assert_close(got, model.predict(x), rtol, "predict", batch)


@pytest.mark.parametrize(
    "layers",
    [
        lambda kw: [Conv2D(2, 3, 3, padding=1, **kw), Residual([Sigmoid(), Conv2D(3, 3, 3, padding=1, **kw)])],
        lambda kw: [Conv2D(2, 3, 3, padding=1, **kw), Sigmoid(), Sigmoid(), Conv2D(3, 2, 3, **kw)],
    ],
    ids=["a residual block's input, which its skip path reads", "a sigmoid's output, which its backward reads"],
)
def test_no_step_writes_over_an_array_read_later(rng, monkeypatch, layers):
    """With the size floor at 0 every step that can write in place does where the plan lets it; steps whose
    outputs are not 0 or positive (a sigmoid after a convolution, a convolution after a sigmoid) would show
    it."""
    monkeypatch.setattr(fast_steps, "IN_PLACE_BYTES", 0)
    model = Sequential([*layers({"dtype": np.float64, "rng": rng}), Flatten()])
    assert_same_model(model, rng.standard_normal((2, 2, 5, 5)), rng)
