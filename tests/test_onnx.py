"""handgrad.onnx_export and ``handgrad export``: ONNX Runtime computes what ``model.predict`` computes, for every
preset, for random models over every layer and option, and for a model trained on Fashion-MNIST, whose
exported file classifies the whole test set from raw pixels exactly as handgrad does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import assert_close

import handgrad
from handgrad import Sequential, cli, plain_window, presets, runs
from handgrad import layers as L
from handgrad.data import Normalizer, load
from handgrad.evaluate import evaluate_run
from handgrad.functional.padding import PADDING_MODES
from handgrad.onnx_export import IR_VERSION, OPSET, export, to_onnx

RTOL = 1e-5  # float32, relative to the largest output
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "onnx_bench.py"


def run_onnx(proto, x):
    """The model's output in ONNX Runtime (CPU) for the one input ``x``."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def assert_same_as_predict(model, input_shape, rng, record=None, name="model", batch=3):
    proto = to_onnx(model, input_shape)
    assert (proto.opset_import[0].version, proto.ir_version) == (OPSET, IR_VERSION)
    onnx.checker.check_model(proto, full_check=True)
    x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
    error = assert_close(run_onnx(proto, x), model.predict(x), RTOL, name, model)
    if record is not None:
        record(name, "onnxruntime", error)
    return proto


def _layers(layer):
    """``layer`` and every layer inside it, containers included, depth first."""
    yield layer
    for _, child in getattr(layer, "named_children", list)():
        yield from _layers(child)


def _randomize_statistics(model, rng):
    """Batch normalisation with running statistics and affine parameters far from their initial values."""
    for layer in _layers(model):
        if isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)):
            n = layer.num_features
            layer.buffers["running_mean"][...] = rng.normal(0.0, 0.5, n)
            layer.buffers["running_var"][...] = rng.uniform(0.3, 3.0, n)
            if "weight" in layer.params:
                layer.params["weight"][...] = rng.uniform(0.5, 1.5, n)
                layer.params["bias"][...] = rng.normal(0.0, 0.5, n)


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_computes_what_predict_computes(name, record):
    rng = np.random.default_rng(3)
    model, _ = presets.build(name, rng)
    _randomize_statistics(model, rng)
    assert_same_as_predict(model.eval(), presets.INPUT_SHAPE, rng, record, f"preset {name}", batch=5)


# --- random models over every layer and option ---------------------------------------------------------------


def _activation(rng):
    return [
        L.ReLU(),
        L.LeakyReLU(float(rng.uniform(0.01, 0.3))),
        L.ELU(float(rng.uniform(0.5, 1.5))),
        L.Sigmoid(),
        L.Tanh(),
    ][rng.integers(5)]


def _padding(rng, stride):
    kind = rng.integers(5)
    if kind == 0:
        return int(rng.integers(0, 3))
    if kind == 1:
        return tuple(int(p) for p in rng.integers(0, 3, 2))
    if kind == 2:
        return tuple(tuple(int(p) for p in rng.integers(0, 4, 2)) for _ in range(2))  # per side
    return "same" if kind == 3 and stride == 1 else "valid"


def _window_options(rng):
    kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
    stride = int(rng.integers(1, 4))
    return {
        "kernel_size": kernel,
        "stride": stride,
        "padding": _padding(rng, stride),
        "mode": ["xcorr", "conv"][rng.integers(2)],
        "center": tuple(int(rng.integers(k)) for k in kernel),
    }


def _random_conv(rng, channels):
    out = int(rng.integers(1, 7))
    groups = rng.choice([g for g in (1, 2, 3) if channels % g == 0 and out % g == 0])
    return L.Conv2D(
        channels,
        out,
        **_window_options(rng),
        bias=bool(rng.random() < 0.7),
        dilation=tuple(int(d) for d in rng.integers(1, 3, 2)),
        groups=int(groups),
        padding_mode=PADDING_MODES[rng.integers(len(PADDING_MODES))],
        rng=rng,
    )


def _random_pool(rng):
    options = _window_options(rng)
    options["stride"] = None if rng.random() < 0.3 else options["stride"]
    if options["padding"] == "same":
        options["padding"] = 1
    if rng.random() < 0.5:
        return L.MaxPool2D(**options, dilation=int(rng.integers(1, 3)), ceil_mode=bool(rng.random() < 0.5))
    return L.AvgPool2D(**options, ceil_mode=bool(rng.random() < 0.5), count_include_pad=bool(rng.random() < 0.5))


def _residual(rng, channels):
    """A block that keeps the shape, or one with a strided 1x1 projection."""
    if rng.random() < 0.5:
        body = [L.Conv2D(channels, channels, 3, padding="same", center=(1, 1), mode="conv", rng=rng), _activation(rng)]
        return L.Residual(body + [L.BatchNorm2D(channels)])
    wider, stride = channels + 2, int(rng.integers(1, 3))
    body = [L.Conv2D(channels, wider, 3, stride=stride, padding=1, rng=rng), L.BatchNorm2D(wider), L.ReLU()]
    return L.Residual(body, projection=L.Conv2D(channels, wider, 1, stride=stride, bias=False, rng=rng))


# what may come next on an image of ``channels`` channels: convolutions twice as often as the rest
PROPOSALS = [
    _random_conv,
    _random_conv,
    lambda rng, channels: _random_pool(rng),
    _residual,
    lambda rng, channels: L.BatchNorm2D(channels, affine=bool(rng.random() < 0.7)),
    lambda rng, channels: _activation(rng),
]


def _fitting(rng, propose, x, tries=50):
    """A layer from ``propose(rng, channels)`` that takes ``x`` (handgrad refuses windows that hold only padding,
    kernels larger than the padded input, reflections longer than the input), and its output; None and ``x``
    if none of ``tries`` fits."""
    for _ in range(tries):
        layer = propose(rng, x.shape[1])
        try:
            return layer, layer.predict(x)
        except ValueError:
            continue
    return None, x


def _random_model(rng):
    """(model, one sample's shape): convolutions, poolings, batch normalisation, residual blocks and
    activations on a random image size, a nested Sequential, then a head of dense layers."""
    shape = (int(rng.integers(1, 4)), int(rng.integers(6, 15)), int(rng.integers(6, 15)))
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    layers = []
    for _ in range(int(rng.integers(1, 5))):
        layer, x = _fitting(rng, PROPOSALS[rng.integers(len(PROPOSALS))], x)
        if layer is not None:
            layers.append(layer)
        if rng.random() < 0.3:
            layers.append(L.Dropout(0.5))
    if len(layers) > 2 and rng.random() < 0.5:  # a nested Sequential
        k = int(rng.integers(1, len(layers) - 1))
        layers = layers[:k] + [Sequential(layers[k:])]
    hidden = int(rng.integers(3, 9))
    if rng.random() < 0.3:
        head = [L.GlobalAvgPool2D(), L.Linear(x.shape[1], hidden, rng=rng)]
    else:
        head = [L.Flatten(), L.Linear(int(np.prod(x.shape[1:])), hidden, rng=rng)]
    head += [L.BatchNorm1D(hidden), _activation(rng), L.Linear(hidden, 4, bias=bool(rng.random() < 0.7), rng=rng)]
    model = Sequential(layers + head + ([L.Softmax()] if rng.random() < 0.3 else []))
    _randomize_statistics(model, rng)
    return model.eval(), shape


def test_random_models_compute_what_predict_computes(record):
    rng = np.random.default_rng(34)
    kinds = set()
    for i in range(60):
        model, shape = _random_model(rng)
        assert_same_as_predict(model, shape, rng, record, "random model")
        kinds |= {type(layer).__name__ for layer in _layers(model)}
        for layer in _layers(model):
            if isinstance(layer, (L.Conv2D, L.MaxPool2D, L.AvgPool2D)):
                kinds.add(f"{layer.window.mode}, centre {'off' if any(layer.window.center) else 'at'} the origin")
            if isinstance(layer, L.Conv2D):
                kinds |= {f"padding_mode {layer.padding_mode}", f"groups {layer.groups > 1}"}
            if isinstance(layer, (L.MaxPool2D, L.AvgPool2D)) and layer.window.ceil_mode:
                kinds.add(f"{type(layer).__name__} ceil_mode")
    expected = {
        "Conv2D",
        "MaxPool2D",
        "AvgPool2D",
        "BatchNorm2D",
        "BatchNorm1D",
        "Residual",
        "Dropout",
        "Softmax",
    }
    expected |= {f"padding_mode {m}" for m in PADDING_MODES} | {"groups True", "MaxPool2D ceil_mode"}
    expected |= {"xcorr, centre off the origin", "conv, centre off the origin", "AvgPool2D ceil_mode"}
    assert expected <= kinds, expected - kinds  # the sweep reaches every option


# --- each way a window maps, with the nodes it becomes -------------------------------------------------------

GEOMETRIES = [
    # (layer, one sample's shape, the nodes of the layer)
    (lambda rng: L.Conv2D(2, 3, 3, padding=1, rng=rng), (2, 6, 5), ["Conv"]),
    (lambda rng: L.Conv2D(2, 3, 3, padding=1, mode="conv", center=(1, 1), rng=rng), (2, 6, 5), ["Conv"]),
    (
        lambda rng: L.Conv2D(2, 3, (2, 3), padding=((0, 2), (1, 0)), center=(1, 2), rng=rng),
        (2, 6, 5),
        ["Slice", "Conv"],
    ),
    # a centre that reads only padding on one axis: the crop reaches beyond the input, so pad first
    (
        lambda rng: L.Conv2D(1, 2, 3, padding=((2, 0), (0, 0)), center=(2, 0), rng=rng),
        (1, 1, 3),
        ["Pad", "Slice", "Conv"],
    ),
    (
        lambda rng: L.Conv2D(2, 4, 3, padding=((4, 1), (2, 4)), padding_mode="circular", groups=2, rng=rng),
        (2, 4, 4),
        ["Pad", "Conv"],
    ),
    (
        lambda rng: L.Conv2D(
            2, 4, 3, padding="same", dilation=2, padding_mode="reflect", mode="conv", center=(0, 1), rng=rng
        ),
        (2, 6, 6),
        ["Pad", "Slice", "Conv"],
    ),
    (
        lambda rng: L.Conv2D(3, 3, 3, stride=2, padding=(1, 2), padding_mode="replicate", groups=3, rng=rng),
        (3, 7, 6),
        ["Pad", "Conv"],
    ),
    (lambda rng: L.MaxPool2D(3, stride=2, padding=1), (2, 7, 7), ["MaxPool"]),
    (lambda rng: L.MaxPool2D(2, ceil_mode=True), (2, 7, 7), ["MaxPool"]),
    (
        lambda rng: L.MaxPool2D(3, stride=2, padding=1, mode="conv", center=(1, 2), ceil_mode=True),
        (2, 8, 7),
        ["MaxPool"],
    ),
    # pads as large as the window, which ONNX Runtime's MaxPool does not take: a Pad with -inf first
    (lambda rng: L.MaxPool2D(2, stride=1, padding=2, dilation=3), (1, 5, 5), ["Pad", "MaxPool"]),
    (lambda rng: L.AvgPool2D(3, stride=2, padding=1), (2, 7, 7), ["Pad", "AveragePool"]),
    (lambda rng: L.AvgPool2D(3, stride=2, padding=1, count_include_pad=False), (2, 7, 7), ["AveragePool"]),
    (
        lambda rng: L.AvgPool2D(3, stride=2, padding=1, center=(1, 1), ceil_mode=True),
        (2, 8, 7),
        ["Pad", "Slice", "AveragePool"],
    ),
    (lambda rng: L.AvgPool2D(2, ceil_mode=True, count_include_pad=False), (2, 7, 7), ["AveragePool"]),
    (lambda rng: L.GlobalAvgPool2D(), (3, 4, 5), ["GlobalAveragePool", "Flatten"]),
    (lambda rng: L.Dropout(0.5), (3, 4), []),
]


@pytest.mark.parametrize("case", range(len(GEOMETRIES)))
def test_each_window_becomes_the_nodes_the_docs_name(case, record):
    build, shape, nodes = GEOMETRIES[case]
    rng = np.random.default_rng(case)
    layer = build(rng)
    proto = assert_same_as_predict(Sequential([layer]), shape, rng, record, f"window {type(layer).__name__}")
    assert [node.op_type for node in proto.graph.node] == (nodes or ["Identity"])


def test_a_true_convolution_exports_its_flipped_kernel_and_a_plain_one_its_own():
    rng = np.random.default_rng(0)
    for mode, flip in (("conv", True), ("xcorr", False)):
        layer = L.Conv2D(2, 3, (2, 3), mode=mode, center=(1, 1), rng=rng)
        weights = {
            t.name: onnx.numpy_helper.to_array(t) for t in to_onnx(Sequential([layer]), (2, 5, 5)).graph.initializer
        }
        expected = layer.params["weight"][:, :, ::-1, ::-1] if flip else layer.params["weight"]
        np.testing.assert_array_equal(weights["0.weight"], expected)


def test_the_export_is_predict_whatever_the_mode_and_changes_nothing():
    """A model left in training mode exports its inference: dropout off, batch normalisation on its running
    statistics; exporting touches no parameter, buffer or random generator."""
    rng = np.random.default_rng(5)
    model, _ = presets.build("fashion-cnn", rng)
    _randomize_statistics(model, rng)
    before = {k: v.copy() for k, v in {**model.params, **model.buffers}.items()}
    dropout = model.layers[7].rng.bit_generator.state
    assert_same_as_predict(model.train(), presets.INPUT_SHAPE, np.random.default_rng(1))  # not dropout's generator
    assert model.layers[0].training and model.layers[7].rng.bit_generator.state == dropout
    for name, value in {**model.params, **model.buffers}.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_a_float64_model_exports_in_double():
    rng = np.random.default_rng(6)
    kw = {"dtype": np.float64, "rng": rng}
    model = Sequential(
        [L.Flatten(), L.Linear(12, 5, **kw), L.BatchNorm1D(5, dtype=np.float64), L.ReLU(), L.Linear(5, 3, **kw)]
    )
    _randomize_statistics(model, rng)
    proto = to_onnx(model.eval(), (3, 4))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = rng.standard_normal((4, 3, 4))
    y = run_onnx(proto, x)
    assert y.dtype == np.float64
    assert_close(y, model.predict(x), 1e-12, "float64", model)


def test_a_float64_run_exports_and_says_onnx_runtime_needs_float32(tmp_path, capsys):
    run, quick = tmp_path / "run", ["--epochs", "1", "--train-limit", "64", "--test-limit", "32", "--no-progress"]
    assert cli.main(["train", "--dtype", "float64", "--out", str(run), *quick]) == 0
    capsys.readouterr()
    assert cli.main(["export", str(run), str(tmp_path / "m.onnx")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("note: a float64 graph is valid ONNX, but ONNX Runtime's CPU kernels for Conv take")
    assert "train with --dtype float32" in err
    classifier = handgrad.load(run)  # without a convolution, ONNX Runtime runs it in double: no note
    mlp = Sequential([L.Flatten(), L.Linear(784, 10, dtype=np.float64)])
    handgrad.Classifier(mlp, classifier.loss, classifier.normalizer, classifier.classes, (1, 28, 28)).save(
        tmp_path / "mlp.safetensors"
    )
    assert cli.main(["export", str(tmp_path / "mlp.safetensors"), str(tmp_path / "mlp.onnx")]) == 0
    assert capsys.readouterr().err == ""
    run_onnx(onnx.load(tmp_path / "mlp.onnx"), np.zeros((2, 28, 28), np.uint8))  # runs in double


def test_the_normalizer_makes_the_graph_take_raw_pixels_and_the_classes_go_in_the_metadata(tmp_path):
    rng = np.random.default_rng(7)
    model, _ = presets.build("lenet5", rng)
    normalizer, classes = Normalizer(0.2860, 0.3530), [f"class {k}" for k in range(10)]
    proto = export(model, tmp_path / "m.onnx", presets.INPUT_SHAPE, normalizer, classes)
    assert onnx.load(tmp_path / "m.onnx") == proto
    given = proto.graph.input[0]
    assert given.name == "pixels" and given.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(metadata["classes"]) == classes
    assert json.loads(metadata["normalizer"]) == {"mean": 0.2860, "std": 0.3530}
    pixels = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {"pixels": pixels})[0], model.predict(normalizer(pixels)), RTOL, "pixels")
    unit = to_onnx(model, presets.INPUT_SHAPE, Normalizer())  # x / 255 alone: no Sub, no second Div
    assert [n.op_type for n in unit.graph.node][:3] == ["Cast", "Div", "Unsqueeze"]
    assert_close(run_onnx(unit, pixels), model.predict(Normalizer()(pixels)), RTOL, "unit pixels")


class _Doubling(L.Layer):
    def _forward(self, x):
        return 2 * x, None


class _MyReLU(L.ReLU):
    pass


@pytest.mark.parametrize(
    "model, shape, message",
    [
        (Sequential([L.Flatten(), _Doubling()]), (4,), r"to_onnx: layer 1 \(_Doubling\) has no ONNX counterpart"),
        (Sequential([L.Residual([_MyReLU()])]), (4,), r"layer 0\.body\.0 \(_MyReLU\) has no ONNX counterpart"),
        (_Doubling(), (4,), r"to_onnx: the model \(_Doubling\) has no ONNX counterpart"),
        (
            Sequential([L.Conv2D(3, 2, 3)]),
            (1, 8, 8),
            r"layer 0 \(Conv2D\) does not take its input: conv2d: x must have C = 3 channels",
        ),
        (
            Sequential([L.Conv2D(1, 2, 3, padding=4, padding_mode="reflect")]),
            (1, 4, 4),
            r"layer 0 \(Conv2D\) does not take its input: .*padding_mode='reflect' needs padding < input size",
        ),
        (
            Sequential([Sequential([L.Residual([L.Conv2D(1, 2, 3, padding=1)])])]),
            (1, 5, 5),
            r"layer 0\.0 \(Residual\): the body gives shape \(1, 2, 5, 5\) but the skip path \(1, 1, 5, 5\)",
        ),
        (
            Sequential([L.ReLU()]),
            (0, 4),
            r"input_shape must be one sample's shape, such as \(1, 28, 28\), got \(0, 4\)",
        ),
        (
            Sequential([L.Conv2D(1, 2, 3), L.Conv2D(2, 2, 3, dtype=np.float64)]),
            (1, 8, 8),
            r"mixes parameter dtypes \['float32', 'float64'\]",
        ),
    ],
)
def test_what_cannot_be_exported_is_refused_naming_it(model, shape, message):
    with pytest.raises(ValueError, match=message):
        to_onnx(model, shape)


def test_a_ceil_mode_window_needs_the_input_size_to_be_made_plain():
    with pytest.raises(ValueError, match="reads: a window with ceil_mode needs the input size"):
        plain_window.reads(L.MaxPool2D(2, ceil_mode=True).window)
    assert plain_window.reads(L.MaxPool2D(2, ceil_mode=True).window, (7, 7)) == ((0, 1), (0, 1))


def test_normalizer_and_classes_must_fit_the_model(rng):
    model = Sequential([L.Conv2D(3, 2, 3), L.Flatten(), L.Linear(2 * 6 * 6, 4)])
    with pytest.raises(ValueError, match=r"a normalizer makes images \(C, H, W\) from pixels, got input_shape"):
        to_onnx(model, (8, 8), Normalizer())
    colour = to_onnx(model, (3, 8, 8), Normalizer(0.5, 0.25))  # colour pixels (N, 3, 8, 8): no channel to add
    pixels = rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)
    assert_close(run_onnx(colour, pixels), model.predict(Normalizer(0.5, 0.25)(pixels)), RTOL, "colour pixels")
    with pytest.raises(ValueError, match=r"3 class names for an output of shape \(4,\) per sample"):
        to_onnx(model, (3, 8, 8), classes=["a", "b", "c"])


def test_handgrad_works_without_onnx_and_the_exporter_says_how_to_get_it():
    code = (
        "import sys\n"
        "sys.modules['onnx'] = None  # as if the onnx package were not installed\n"
        "from handgrad import cli\n"
        "print(cli.main(['export', 'nowhere', 'model.onnx']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"
    assert (
        "needs the onnx package" in result.stderr
        and ".venv/bin/pip install -e '.[onnx]' (in the handgrad checkout)" in result.stderr
    )
    assert "Traceback" not in result.stderr


# --- the command line, on a model trained on Fashion-MNIST -----------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """seed-cnn after 200 steps of 32 images of Fashion-MNIST."""
    run = tmp_path_factory.mktemp("onnx") / "run"
    options = ["--train-limit", "6400", "--batch-size", "32", "--test-limit", "500", "--optimizer", "adam"]
    assert cli.main(["train", "--epochs", "1", "--lr", "0.002", "--out", str(run), "--no-progress", *options]) == 0
    return run


def test_the_exported_trained_model_classifies_the_fashion_test_set_from_raw_pixels_as_handgrad_does(
    trained_run, tmp_path, capsys
):
    capsys.readouterr()
    path = tmp_path / "seed.onnx"
    assert cli.main(["export", str(trained_run), str(path)]) == 0
    out = capsys.readouterr().out
    assert f"opset {OPSET}, IR version {IR_VERSION}" in out and "input 'pixels': uint8 pixels (N, 28, 28)" in out
    assert "output 'output': logits" in out

    test = load("fashion-mnist", allow_download=False)
    handgrad = evaluate_run(trained_run)  # the whole test set, as handgrad evaluate does
    assert len(handgrad.predictions) == 10_000 and np.mean(handgrad.predictions == test.test_labels) > 0.7
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"pixels": test.test_images})[0]
    np.testing.assert_array_equal(logits.argmax(axis=1), handgrad.predictions)

    model, _, state = runs.load_model(trained_run)
    assert_close(logits[:500], model.predict(state.normalizer(test.test_images[:500])), RTOL, "logits")
    metadata = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(metadata["classes"]) == list(state.classes) and "Ankle boot" in state.classes


def test_export_refuses_to_overwrite_without_force_and_names_what_is_wrong(trained_run, tmp_path, capsys):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"keep me")
    assert cli.main(["export", str(trained_run), str(path)]) == 1
    assert f"{path} exists; give --force to replace it" in capsys.readouterr().err
    assert path.read_bytes() == b"keep me"
    assert cli.main(["export", str(trained_run), str(path), "--force"]) == 0
    onnx.checker.check_model(onnx.load(path), full_check=True)

    assert cli.main(["export", str(tmp_path / "no-run"), str(tmp_path / "new.onnx")]) == 1
    assert "no checkpoint file there" in capsys.readouterr().err
    assert not (tmp_path / "new.onnx").exists()
    assert cli.main(["export", str(trained_run), str(tmp_path / "absent" / "m.onnx")]) == 1
    assert f"the directory {tmp_path / 'absent'} does not exist" in capsys.readouterr().err
    assert cli.main(["export", str(trained_run), str(tmp_path), "--force"]) == 1
    assert f"{tmp_path} is a directory; expected the .onnx file to write" in capsys.readouterr().err


def test_the_benchmark_runs_and_reports_every_model_and_batch():
    result = subprocess.run(
        [sys.executable, str(BENCH), "--blocks", "1", "--block-seconds", "0.01"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(tuple(f"| {m}, " for m in presets.PRESETS))]
    assert len(rows) == 2 * len(presets.PRESETS), result.stdout
    for row in rows:
        ours, onnx_runtime, pytorch, *ratios = (float(cell.replace(",", "")) for cell in row.split("|")[2:7])
        assert min(ours, onnx_runtime, pytorch) > 0, row
        assert abs(ratios[0] - ours / onnx_runtime) < 0.01 + 0.01 * ratios[0], row
