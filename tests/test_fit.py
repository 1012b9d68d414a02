"""handgrad.fit and handgrad train on data of one's own: honest selection (validation, best.safetensors, early
stopping, the test set once), augmentation, the logs, saving and loading a classifier, and real images."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from test_idx import MNIST
from test_own_data import colour_folder

import handgrad
from handgrad import cli, logs, presets, runs
from handgrad import train as training
from handgrad.classifier import Classifier
from handgrad.data import from_arrays, load, read_idx
from handgrad.data.augment import Augmentation
from handgrad.data.split import hold_out
from handgrad.train import fit, train


def _quiet(*args):
    pass


@pytest.fixture(scope="module")
def fashion():
    return load("fashion-mnist", allow_download=False)


def test_a_folder_of_real_digits_trains_to_90_percent_on_three_classes_with_the_defaults(tmp_path, capsys):
    images, labels = read_idx(MNIST / "t10k-images-idx3-ubyte.gz"), read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    root = tmp_path / "digits"
    for digit in (3, 5, 8):  # three digits of similar strokes
        (root / f"digit-{digit}").mkdir(parents=True)
        for k in np.flatnonzero(labels == digit)[:500]:
            Image.fromarray(images[k]).save(root / f"digit-{digit}" / f"{k}.png")
    run = tmp_path / "run"
    argv = ["train", "--model", "seed-cnn", "--dataset", str(root), "--epochs", "5", "--out", str(run)]
    assert cli.main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "images (1, 28, 28): 1,080 to train on, 120 to validate, 300 to test" in out
    test = runs.read_metrics(run)[-1]
    assert test["test_images"] == 300 and test["test_accuracy"] >= 0.9, test

    assert cli.main(["evaluate", str(run)]) == 0  # the same model on the same test images: the same figure
    assert f"accuracy {test['test_accuracy']:.4f} on 300 images" in capsys.readouterr().out
    assert cli.main(["predict", str(run), str(root / "digit-8")]) == 0
    answers = [line.split(": ")[1].split()[1] for line in capsys.readouterr().out.splitlines()]
    assert len(answers) == 500 and answers.count("digit-8") > 400


@pytest.mark.parametrize("model", ["seed-cnn", "lenet5", "fashion-cnn"])
def test_a_colour_folder_of_32x32_images_trains_with_the_presets_unchanged(tmp_path, capsys, model):
    root = colour_folder(tmp_path / "colours", per_class=6)
    run = tmp_path / "run"
    quick = ["--epochs", "2", "--val-split", "3", "--batch-size", "6", "--no-progress"]
    assert cli.main(["train", "--model", model, "--dataset", str(root), "--out", str(run), *quick]) == 0
    assert "(3, 32, 32)" in capsys.readouterr().out
    classifier = handgrad.load(run)
    assert classifier.input_shape == (3, 32, 32) and classifier.classes == ("blue", "green", "red")
    state = runs.load_state(run)
    assert state.config.image_size == [32, 32] and state.config.channels == 3 and state.config.dataset == str(root)
    assert cli.main(["predict", str(run), str(root / "red" / "0.jpg")]) == 0
    assert capsys.readouterr().out.startswith(f"{root / 'red' / '0.jpg'}: ")


def _scripted(monkeypatch, accuracies, losses):
    """Validation figures by epoch in place of the model's, to make the choice and the stop certain."""
    figures = iter(zip(losses, accuracies))

    def evaluate(model, loss, images, labels, normalizer, dtype, tta):
        value, accuracy = next(figures)
        return value, accuracy, None

    monkeypatch.setattr(training, "evaluate", evaluate)


def test_the_best_validation_epoch_is_kept_training_stops_early_and_the_test_set_is_used_once(
    tmp_path, fashion, monkeypatch
):
    config = runs.TrainConfig(epochs=8, schedule="constant", train_limit=200, test_limit=100, early_stopping=2)
    tests = []
    evaluate = Classifier.evaluate
    monkeypatch.setattr(Classifier, "evaluate", lambda self, *a: tests.append(1) or evaluate(self, *a))
    with monkeypatch.context() as patch:
        # epoch 2 is best; epoch 4 ties its accuracy with a higher loss, so it is not better; 2 epochs later: stop
        _scripted(patch, [0.5, 0.7, 0.6, 0.7, 0.9], [1.0, 0.8, 0.9, 0.85, 0.1])
        result = train(config, tmp_path / "a", dataset=fashion, progress=False, log=_quiet)
    history = result.history
    assert history.epoch == 4 and history.best == 2
    assert "no better validation epoch in the 2 after epoch 2" in history.stopped
    assert tests == [1] and result.test["epoch"] == 2 and result.test["test_images"] == 100
    assert [row["val_accuracy"] for row in history.rows] == [0.5, 0.7, 0.6, 0.7]

    with monkeypatch.context() as patch:
        _scripted(patch, [0.5, 0.7], [1.0, 0.8])
        two = runs.TrainConfig(**{**config.__dict__, "epochs": 2})
        train(two, tmp_path / "b", dataset=fashion, progress=False, log=_quiet)
    best, straight = handgrad.load(tmp_path / "a" / runs.BEST), runs.load_state(tmp_path / "b").classifier
    for name, value in straight.model.params.items():  # the best file holds epoch 2's weights
        np.testing.assert_array_equal(best.model.params[name], value, err_msg=name)
    chosen = handgrad.load(tmp_path / "a")
    np.testing.assert_array_equal(chosen.model.params["0.weight"], best.model.params["0.weight"])
    x, y = fashion.test_images[:100], fashion.test_labels[:100]
    assert chosen.evaluate(x, y) == (result.test["test_loss"], result.test["test_accuracy"])

    again = train(config, tmp_path / "a", resume=True, dataset=fashion, progress=False, log=_quiet)
    assert again.resumed_after == 4 and again.history.stopped == history.stopped  # stopped early: complete


def test_augmentation_is_the_formula_drawn_from_the_generator_without_flips_for_digits(rng):
    images = rng.integers(0, 256, (5, 3, 6, 7), dtype=np.uint8)
    augmentation = Augmentation.of("crop+flip", (6, 7), False)
    assert augmentation.padding == 1 and augmentation.flips  # an eighth of 7, rounded
    offsets, flips = augmentation.draw(np.random.default_rng(3), 5)
    out = augmentation.apply(images, offsets, flips)
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for n, ((a, b), flip) in enumerate(zip(offsets, flips)):
        for i in range(6):
            for j in range(7):
                column = b + 6 - j if flip else b + j
                np.testing.assert_array_equal(out[n, :, i, j], padded[n, :, a + i, column])
    assert flips.any() and not flips.all()
    np.testing.assert_array_equal(augmentation(images, np.random.default_rng(3)), out)  # drawn from the generator
    assert not Augmentation.of("auto", (28, 28), False).flips and Augmentation.of("auto", (28, 28), True).flips
    assert Augmentation.of("none", (28, 28), True) is None and Augmentation.of("crop", (28, 28), True).padding == 4
    mirrors = Augmentation.of("flip", (6, 7), True)  # flips alone: every image itself or its mirror image
    mirrored = mirrors.draw(np.random.default_rng(4), 5)[1]
    assert mirrors.describe() == "horizontal flips" and mirrored.any() and not mirrored.all()
    for n, image in enumerate(mirrors.apply(images, np.zeros((5, 2), int), mirrored)):
        np.testing.assert_array_equal(image, images[n, :, :, ::-1] if mirrored[n] else images[n])
    grey = augmentation.apply(images[:, 0], offsets, flips)
    np.testing.assert_array_equal(grey, out[:, 0])
    assert load("mnist-t10k", MNIST, allow_download=False).flips is False


def test_steps_csv_tensorboard_and_progress_lines_every_n_steps_and_after_a_resume(tmp_path, fashion):
    pytest.importorskip("tensorboard", reason="the test extra installs tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = runs.TrainConfig(epochs=2, batch_size=30, train_limit=200, test_limit=50, log_every=2)
    lines = []
    train(runs.TrainConfig(**{**config.__dict__, "epochs": 1}), tmp_path, dataset=fashion, log=lines.append)
    progress = [line for line in lines if " step " in line]
    assert progress[0].startswith("epoch 1/1 step 2/6: loss ") and progress[0].endswith(" images/s")
    assert len(progress) == 3  # steps 2, 4, 6 (no bar: the output is not a terminal)
    with open(tmp_path / logs.STEPS, "a") as f:
        f.write("8,2,1.0,0.5,0.01,100\n")  # a row of a session killed after the checkpoint
    train(config, tmp_path, resume=True, dataset=fashion, progress=False, log=_quiet)
    with open(tmp_path / logs.STEPS) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12] and [r["epoch"] for r in rows] == list("111222")
    assert all(0 < float(r["lr"]) <= config.lr and float(r["images_per_second"]) > 0 for r in rows)

    events = EventAccumulator(str(tmp_path / logs.TENSORBOARD))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [2, 4, 6, 8, 10, 12]  # the killed session's step 8 purged
    np.testing.assert_allclose([e.value for e in loss], [float(r["loss"]) for r in rows], rtol=1e-6)
    assert [e.step for e in events.Scalars("epoch/val_accuracy")] == [6, 12]
    assert events.Scalars("test/accuracy")[-1].value == pytest.approx(runs.read_metrics(tmp_path)[-1]["test_accuracy"])


def test_a_classifier_saves_and_loads_whole_from_one_file(tmp_path, rng):
    with pytest.raises(ValueError, match=r"model seed-cnn: images of \(3, 12, 12\) are too small for its layers"):
        presets.build("seed-cnn", rng, input_shape=(3, 12, 12), classes=2)
    x = rng.integers(0, 256, (40, 3, 16, 16), dtype=np.uint8)
    y = (x[:, 0].mean(axis=(1, 2)) > 127).astype(np.int64)
    data = from_arrays(x, y, classes=["dark", "light"])
    model, loss = presets.build("seed-cnn", rng, input_shape=data.input_shape, classes=2)
    result = fit(model, loss, data, rng=rng, epochs=2, batch_size=8, progress=False, log=_quiet)
    assert not list(tmp_path.iterdir())  # without out, nothing is written
    path = result.classifier.save(tmp_path / "model.safetensors")
    same = handgrad.load(path)
    assert same.classes == ("dark", "light") and same.input_shape == (3, 16, 16)
    assert same.normalizer == result.classifier.normalizer
    expected = result.classifier.probabilities(data.test_images)
    np.testing.assert_array_equal(same.probabilities(data.test_images), expected)
    assert cli.main(["export", str(path), str(tmp_path / "m.onnx")]) == 0
    with pytest.raises(ValueError, match=r"Classifier: images must be uint8 pixels \(N, 3, 16, 16\), got uint8"):
        same.predict(x[:, 0])

    class Mine(handgrad.layers.ReLU):  # a layer of one's own: its arguments do not say what it computes
        pass

    model.layers[1] = Mine()
    with pytest.raises(ValueError, match=r"model.1: a Mine cannot be described for a file"):
        fit(model, loss, data, rng=rng, epochs=1, out=tmp_path / "run", progress=False, log=_quiet)
    assert not (tmp_path / "run").exists()


def test_label_smoothing_trains_on_smoothed_targets_and_scores_on_the_labels(tmp_path):
    """With label_smoothing=1 every target is the uniform row, whatever the labels: two runs on the same images
    with other labels end with the same weights (and without smoothing they do not).  The test figures are on
    the labels, as the saved classifier gives them."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (48, 28, 28), dtype=np.uint8), np.arange(48) % 3
    other = (y + 1) % 3  # the same images, every label changed

    def weights(labels, label_smoothing):
        model, loss = presets.build("seed-cnn", np.random.default_rng(1), classes=3)
        settings = {"epochs": 2, "batch_size": 8, "val_split": 0, "label_smoothing": label_smoothing}
        fit(model, loss, from_arrays(x, labels), rng=np.random.default_rng(2), progress=False, log=_quiet, **settings)
        return np.concatenate([p.ravel() for p in model.params.values()])

    np.testing.assert_array_equal(weights(y, 1.0), weights(other, 1.0))
    assert not np.array_equal(weights(y, 0.0), weights(other, 0.0))
    assert not np.array_equal(weights(y, 0.1), weights(y, 0.0))

    model, loss = presets.build("seed-cnn", np.random.default_rng(1), classes=3)
    settings = {"epochs": 1, "val_split": 12, "label_smoothing": 0.3, "progress": False, "log": _quiet}
    result = fit(model, loss, from_arrays(x, y, x[:12], y[:12]), out=tmp_path / "run", **settings)
    last = runs.load_state(tmp_path / "run").classifier  # the plain loss of the labels, as validation gave it
    _, held = hold_out(48, 12, np.random.default_rng([training.VALIDATION_STREAM, 0]))
    row = result.history.rows[-1]
    np.testing.assert_allclose(last.evaluate(x[held], y[held]), (row["val_loss"], row["val_accuracy"]), 1e-12)
    assert runs.load_state(tmp_path / "run").config.label_smoothing == 0.3
    with pytest.raises(ValueError, match="label_smoothing must be a number in \\[0, 1\\], got 2"):
        runs.TrainConfig(label_smoothing=2)
    with pytest.raises(ValueError, match="label_smoothing applies only to cross-entropy losses; the loss is MSE"):
        fit(model, handgrad.losses.MSE(), from_arrays(x, y), epochs=1, label_smoothing=0.1, progress=False, log=_quiet)
    saved = runs.TrainConfig().__dict__
    del saved["label_smoothing"]  # a run written before the setting trained without it
    assert runs.TrainConfig.from_dict(saved).label_smoothing == 0


def test_each_preset_has_its_own_defaults_and_train_help_shows_them(capsys):
    assert runs.TrainConfig(model="seed-cnn").optimizer == "momentum" and runs.TrainConfig().schedule == "cosine"
    best = runs.TrainConfig(model="fashion-best")
    assert (best.augment, best.optimizer, best.lr, best.weight_decay, best.epochs, best.tta) == (
        "flip",
        "nesterov",
        0.05,
        5e-4,
        15,
        "flip",
    )
    assert runs.TrainConfig(model="fashion-best", lr=0.1).lr == 0.1  # given settings win

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 1, 28, 28), dtype=np.uint8), np.arange(40) % 2
    model, loss = presets.build("seed-cnn", rng, input_shape=(1, 28, 28), classes=2)
    quiet = {"epochs": 1, "progress": False, "log": _quiet}
    assert fit(model, loss, from_arrays(x, y), rng=rng, **quiet).history.rows[0]["lr"] == 0.02  # a model's own
    preset = fit(model, loss, from_arrays(x, y), rng=rng, model="seed-cnn", **quiet)  # the preset's, by name
    assert preset.history.rows[0]["lr"] == runs.TrainConfig(model="seed-cnn").lr == 0.05
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "each model's defaults:" in help_text and "fashion-best" in help_text


def test_seed_cnn_with_its_defaults_reaches_98_percent_on_the_mnist_test_digits(tmp_path):
    digits = load("mnist-t10k", MNIST, allow_download=False)
    result = train(runs.TrainConfig(dataset="mnist-t10k"), tmp_path, dataset=digits, progress=False, log=_quiet)
    assert result.history.epoch == 10 and result.test["test_images"] == 2000
    assert result.test["test_accuracy"] >= 0.98, result.test
