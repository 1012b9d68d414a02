"""Test-time augmentation (``tta="flip"``): each image and its mirror, their class probabilities averaged, the same
in validation, the test figures, ``Classifier`` (saved with it), ``handgrad evaluate`` and the exported ONNX file."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

import handgrad
from handgrad import checkpoint, cli, presets, runs
from handgrad.classifier import Classifier
from handgrad.data import Normalizer, from_arrays
from handgrad.data.split import hold_out
from handgrad.evaluate import outputs
from handgrad.losses import SoftmaxCrossEntropy
from handgrad.train import VALIDATION_STREAM, fit


def _quiet(*args):
    pass


def _classifier(name, rng, tta, shape=(1, 28, 28)):
    model, loss = presets.build(name, rng, input_shape=shape, classes=4)
    return Classifier(model, loss, Normalizer(0.3, 0.2), list("abcd"), shape, tta)


@pytest.mark.parametrize("name", ["seed-cnn", "habr-cnn"])  # logits, and a model that ends in a softmax
def test_flip_averages_the_probabilities_of_each_image_and_its_mirror(rng, name):
    x = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 4, 7)
    plain, flip = (
        _classifier(name, np.random.default_rng(1), "none"),
        _classifier(name, np.random.default_rng(1), "flip"),
    )
    p = (plain.probabilities(x) + plain.probabilities(x[..., ::-1].copy())) / 2  # X'[i, j] = X[i, W-1-j]
    assert_close(flip.probabilities(x), p, 1e-6, "probabilities")
    assert not np.allclose(p, plain.probabilities(x), atol=1e-3)  # the mirror changed something
    loss, accuracy = flip.evaluate(x, labels)
    assert_close(loss, -np.mean(np.log(p[np.arange(7), labels])), 1e-6, "loss")
    assert accuracy == np.mean(p.argmax(axis=1) == labels)


def test_flip_of_logits_is_ln_p_and_finite_even_where_p_underflows():
    class Fixed:  # logits (2N, K): each image's, then its mirror's
        def predict(self, x):
            rows = [[0.0, 200.0], [300.0, 0.0], [0.0, 200.0], [0.0, 0.0], [0.0, 0.0], [0.0, 200.0]]
            return np.array(rows, np.float32)

    images = np.zeros((3, 1, 1), np.uint8)
    out = outputs(Fixed(), SoftmaxCrossEntropy(), images, Normalizer(0.0, 1.0), np.float32, "flip")
    # image 0: P = ((e^-200, 1) + (1/2, 1/2)) / 2, ln P[0] = ln(1/4 + e^-200/2); image 2: both (e^-200, 1), so
    # P[0] = e^-200, which float32 cannot hold: ln P[0] = -200 all the same (a log of the mean would be -inf)
    expected = [[np.log(0.25), np.log(0.75)], [np.log(0.75), np.log(0.25)], [-200.0, 0.0]]
    assert_close(out, np.array(expected), 1e-6, "ln P")
    with pytest.raises(ValueError, match="tta must be one of \\('none', 'flip'\\), got 'mirror'"):
        outputs(Fixed(), SoftmaxCrossEntropy(), images, Normalizer(0.0, 1.0), np.float32, "mirror")


def test_the_onnx_export_of_a_flip_classifier_is_its_probabilities_with_logits_or_a_softmax_layer(rng):
    ort = pytest.importorskip("onnxruntime")
    from handgrad.onnx_export import to_onnx

    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    for name in ("seed-cnn", "habr-cnn"):  # habr-cnn ends in a Softmax: its probabilities are averaged as they are
        c = _classifier(name, np.random.default_rng(1), "flip")
        proto = to_onnx(c.model, c.input_shape, c.normalizer, c.classes, "flip")  # logits from the model's last layer
        out = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"pixels": x}
        )[0]
        p = out if name == "habr-cnn" else np.exp(out)
        assert_close(p, c.probabilities(x), 1e-5, name)


def test_a_run_with_flip_validates_and_tests_as_its_saved_classifier_predicts(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), np.arange(60) % 3
    data = from_arrays(x[:48], y[:48], x[48:], y[48:])
    model, loss = presets.build("seed-cnn", rng, classes=3)
    settings = {"epochs": 2, "batch_size": 8, "val_split": 12, "tta": "flip", "progress": False, "log": _quiet}
    result = fit(model, loss, data, rng=rng, out=tmp_path / "run", **settings)
    chosen = handgrad.load(tmp_path / "run")
    assert chosen.tta == "flip" and runs.load_state(tmp_path / "run").config.tta == "flip"
    assert chosen.evaluate(x[48:], y[48:]) == (result.test["test_loss"], result.test["test_accuracy"])
    last = runs.load_state(tmp_path / "run").classifier  # the model of the last epoch, scored on validation
    _, held = hold_out(48, 12, np.random.default_rng([VALIDATION_STREAM, 0]))
    row = result.history.rows[-1]
    assert_close(last.evaluate(x[held], y[held]), (row["val_loss"], row["val_accuracy"]), 1e-12, "validation")
    plain = Classifier(chosen.model, chosen.loss, chosen.normalizer, chosen.classes, chosen.input_shape)
    assert plain.evaluate(x[48:], y[48:])[0] != result.test["test_loss"]  # the figures are flip's, not the plain

    path = chosen.save(tmp_path / "model.safetensors")
    assert handgrad.load(path).tta == "flip"
    assert cli.main(["export", str(path), str(tmp_path / "model.onnx")]) == 0
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"pixels": x[48:]})[0]
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    assert_close(probabilities / probabilities.sum(1, keepdims=True), chosen.probabilities(x[48:]), 1e-5, "onnx")


def test_a_classifier_file_from_before_tta_reads_as_none_and_digits_are_not_mirrored(tmp_path, rng):
    flip = _classifier("seed-cnn", rng, "flip")
    path = flip.save(tmp_path / "model.safetensors")
    tensors, meta = checkpoint.load(path)
    del meta["tta"]
    checkpoint.save(tmp_path / "old.safetensors", tensors, meta)
    assert handgrad.load(tmp_path / "old.safetensors").tta == "none"
    with pytest.raises(ValueError, match="Classifier: tta must be one of"):
        _classifier("seed-cnn", rng, "mirror")

    digits = from_arrays(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20) % 2)
    digits.flips = False  # as MNIST's: a mirrored digit is another symbol
    model, loss = presets.build("seed-cnn", rng, classes=2)
    with pytest.raises(
        ValueError, match="tta: flip mirrors images, and a mirror changes the class of the images of arrays"
    ):
        fit(model, loss, digits, epochs=1, tta="flip", progress=False, log=_quiet)
    with pytest.raises(ValueError, match="tta must be one of"):
        runs.TrainConfig(tta="mirror")


def test_handgrad_train_tta_flip_and_evaluate_give_the_same_figures(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), np.arange(60) % 3
    np.savez(tmp_path / "data.npz", x=x[:48], y=y[:48], x_test=x[48:], y_test=y[48:])
    run = tmp_path / "run"
    quick = ["--epochs", "1", "--batch-size", "8", "--val-split", "12", "--no-progress"]
    assert cli.main(["train", "--dataset", str(tmp_path / "data.npz"), "--tta", "flip", "--out", str(run), *quick]) == 0
    assert "test-time augmentation" in capsys.readouterr().out
    test = runs.read_metrics(run)[-1]
    assert cli.main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "each image with its mirror (tta flip)" in out and f"loss {test['test_loss']:.4f}" in out
    assert f"accuracy {test['test_accuracy']:.4f} on 12 images" in out


def test_a_run_from_before_tta_resumes_without_it_and_a_setting_given_otherwise_is_refused():
    saved = runs.TrainConfig(model="fashion-best").__dict__
    del saved["tta"], saved["label_smoothing"]  # a fashion-best run written before these settings
    old = runs.TrainConfig.from_dict(saved)
    assert (old.tta, old.label_smoothing) == ("none", 0.0)
    given = runs.TrainConfig(model="fashion-best", epochs=20).__dict__  # the preset's tta, flip, as train() gives it
    resumed = runs.resumed_config(old, given)
    assert (resumed.tta, resumed.epochs) == ("none", 20)
    with pytest.raises(ValueError, match="only --epochs may be given, not --label-smoothing"):
        runs.resumed_config(old, {**given, "label_smoothing": 0.1})
