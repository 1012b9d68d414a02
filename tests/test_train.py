"""The training loop and the command line on real images: fitting, exact resume, divergence, evaluate, predict."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image
from test_idx import MNIST, idx_bytes

from handgrad import cli, logs, runs
from handgrad.data import load
from handgrad.train import TrainingDiverged, train


@pytest.fixture(scope="module")
def fashion():
    return load("fashion-mnist", allow_download=False)


def _quiet(*args):
    pass


def test_seed_cnn_fits_256_real_images(tmp_path, fashion):
    config = runs.TrainConfig(epochs=25, batch_size=16, lr=2e-3, optimizer="adam", train_limit=256, test_limit=256)
    result = train(config, tmp_path, dataset=fashion, progress=False, log=_quiet)
    assert result.metrics[-1]["train_accuracy"] >= 0.95, result.metrics[-1]
    assert result.metrics[-1]["train_loss"] < result.metrics[0]["train_loss"]
    lines = runs.read_metrics(tmp_path)
    assert [row["epoch"] for row in lines[:-1]] == list(range(1, 26)) and lines[:-1] == result.metrics
    assert lines[-1] == result.test and set(lines[-1]) == {"epoch", "test_loss", "test_accuracy", "test_images"}
    assert lines[-1]["epoch"] == result.history.best and lines[-1]["test_images"] == 256


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, fashion):
    config = runs.TrainConfig(
        epochs=4,
        batch_size=50,
        lr=0.01,
        optimizer="nesterov",
        schedule="step",
        step_size=2,
        gamma=0.5,
        train_limit=300,
        test_limit=100,
        augment="crop+flip",
        log_every=3,
    )
    straight = train(config, tmp_path / "straight", dataset=fashion, progress=False, log=_quiet)
    two = runs.TrainConfig(**{**config.__dict__, "epochs": 2})
    train(two, tmp_path / "split", dataset=fashion, progress=False, log=_quiet)
    resumed = train(config, tmp_path / "split", resume=True, dataset=fashion, progress=False, log=_quiet)

    a, b = runs.load_state(tmp_path / "straight"), runs.load_state(tmp_path / "split")
    assert a.epoch == b.epoch == 4 and a.tensors.keys() == b.tensors.keys()
    for name in a.tensors:
        np.testing.assert_array_equal(a.tensors[name], b.tensors[name], err_msg=name)
    assert a.meta["rng"] == b.meta["rng"]
    untimed = [[{k: v for k, v in r.items() if "second" not in k} for r in run.metrics] for run in (resumed, straight)]
    assert untimed[0] == untimed[1] and resumed.test == straight.test
    steps = [[row[:5] for row in csv.reader((tmp_path / run / logs.STEPS).open())] for run in ("straight", "split")]
    assert steps[0] == steps[1] and len(steps[0]) == 1 + 4 * 6 // 3  # a header, then every third of 4 x 6 steps


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, fashion):
    # the step schedule multiplies the rate by 1e7 after the first epoch
    config = runs.TrainConfig(
        epochs=3, lr=0.05, schedule="step", step_size=1, gamma=1e7, train_limit=256, test_limit=64
    )
    with pytest.raises(
        TrainingDiverged,
        match=r"the loss became (nan|inf) at epoch 2, step \d+ of 4; the last good checkpoint, after epoch 1, is",
    ):
        train(config, tmp_path, dataset=fashion, progress=False, log=_quiet)
    state = runs.load_state(tmp_path)
    assert state.epoch == 1
    assert all(np.all(np.isfinite(v)) for v in state.tensors.values())
    assert [row["epoch"] for row in runs.read_metrics(tmp_path)] == [1]


def test_command_line_train_resume_evaluate_predict(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--train-limit", "512", "--test-limit", "200", "--no-progress", "--optimizer", "adam", "--lr", "0.002"]
    assert cli.main(["train", "--epochs", "1", "--out", str(run), *common]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1: train loss" in out and "test accuracy" in out and "Conv2D" in out

    assert cli.main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "done: seed-cnn on fashion-mnist, 2 epochs" in out and "complete" not in out
    rows = [json.loads(line) for line in (run / runs.METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in rows[:2]] == [1, 2] and rows[1]["val_accuracy"] > 0.5 and rows[2]["test_accuracy"] > 0.5

    assert cli.main(["train", "--resume", str(run), "--lr", "1"]) == 1
    assert "only --epochs may be given, not --lr" in capsys.readouterr().err
    assert cli.main(["train", "--epochs", "1", "--out", str(run), *common]) == 1
    assert "already holds a run" in capsys.readouterr().err

    assert cli.main(["evaluate", str(run), "--limit", "300"]) == 0
    report = capsys.readouterr().out
    assert "accuracy" in report and "Ankle boot" in report and "confusion matrix" in report

    images = load("fashion-mnist", allow_download=False).test_images[:3]
    Image.fromarray(images[0]).save(tmp_path / "one.png")
    (tmp_path / "three.idx").write_bytes(idx_bytes(images))
    assert cli.main(["predict", str(run), str(tmp_path / "one.png"), str(tmp_path / "three.idx")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith(str(tmp_path / "one.png") + ": ")
    assert lines[0].split(": ")[1] == lines[1].split(": ")[1]  # the PNG and the IDX copy of one image agree
    assert cli.main(["predict", str(run), str(MNIST / "t10k-labels-idx1-ubyte.gz")]) == 1
    assert "expected uint8 images of 28x28" in capsys.readouterr().err


def test_command_line_errors_are_one_clear_line(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "nothing")]) == 1
    assert "no checkpoint file there" in capsys.readouterr().err
    assert cli.main(["train", "--epochs", "0", "--out", str(tmp_path / "r")]) == 1
    assert "epochs must be an int >= 1, got 0" in capsys.readouterr().err


def _strict_rows(path):
    """metrics.jsonl parsed as strict JSON (a bare NaN or Infinity is an error)."""

    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("val_split", [0.1, 0])
def test_a_model_diverged_in_its_last_update_or_its_test_loss_is_never_saved(tmp_path, fashion, val_split):
    # one step per epoch at lr 1e6: each epoch's loss is checked before its only update, so the damage
    # shows only in the parameters or in the model's loss after it (on validation images, else on training ones)
    config = runs.TrainConfig(epochs=3, lr=1e6, batch_size=64, train_limit=64, test_limit=64, val_split=val_split)
    with pytest.raises(TrainingDiverged, match=r"after epoch (\d) .*; the last good checkpoint, after epoch") as error:
        train(config, tmp_path, dataset=fashion, progress=False, log=_quiet)
    state = runs.load_state(tmp_path)
    assert f"after epoch {state.epoch + 1} " in str(error.value)
    assert all(np.all(np.isfinite(v)) for v in state.tensors.values())
    model = runs.load_model(tmp_path)[0]
    assert np.all(np.isfinite(model.predict(state.normalizer(fashion.test_images[:64]))))
    assert [row["epoch"] for row in _strict_rows(tmp_path / runs.METRICS)] == list(range(1, state.epoch + 1))
    assert all(np.isfinite(row.get("val_loss", 0.0)) for row in state.metrics)


@pytest.mark.parametrize("crash_at", [1, 2])
def test_the_checkpoint_and_the_metrics_agree_after_a_crash_between_them(tmp_path, fashion, monkeypatch, crash_at):
    config = runs.TrainConfig(epochs=3, batch_size=32, lr=0.01, train_limit=64, test_limit=32)
    write_metrics, calls = runs.write_metrics, []

    def dies_after_the_checkpoint(run_dir, history):
        calls.append(history.epoch)
        if history.epoch == crash_at:
            raise KeyboardInterrupt  # the process dies after the checkpoint of epoch crash_at, before metrics.jsonl
        write_metrics(run_dir, history)

    with monkeypatch.context() as patch:
        patch.setattr(runs, "write_metrics", dies_after_the_checkpoint)
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path, dataset=fashion, progress=False, log=_quiet)
    assert runs.load_state(tmp_path).epoch == crash_at
    assert [row["epoch"] for row in runs.read_metrics(tmp_path)] == list(range(1, crash_at))  # one row short
    result = train(config, tmp_path, resume=True, dataset=fashion, progress=False, log=_quiet)
    rows = runs.read_metrics(tmp_path)
    assert [row["epoch"] for row in rows[:-1]] == [1, 2, 3] and rows[:-1] == result.metrics
    assert rows == runs.load_state(tmp_path).history.lines() and rows[-1] == result.test


def test_a_damaged_metrics_file_stops_neither_resume_nor_plot(tmp_path, fashion):
    config = runs.TrainConfig(epochs=2, batch_size=32, lr=0.01, train_limit=64, test_limit=32)
    train(runs.TrainConfig(**{**config.__dict__, "epochs": 1}), tmp_path, dataset=fashion, progress=False, log=_quiet)
    path = tmp_path / runs.METRICS
    path.write_text(path.read_text()[:-20])  # a truncated last line
    with pytest.raises(ValueError, match=rf"{path}, line 2: expected a JSON object"):
        runs.read_metrics(tmp_path)
    assert cli.main(["plot", str(tmp_path), "--limit", "50"]) == 0
    train(config, tmp_path, resume=True, dataset=fashion, progress=False, log=_quiet)
    assert [row["epoch"] for row in runs.read_metrics(tmp_path)][:2] == [1, 2]


def test_a_dataset_with_fewer_labels_than_images_is_refused_before_the_run_starts(tmp_path, fashion):
    broken = dataclasses.replace(fashion, train_labels=fashion.train_labels[:-1])
    config = runs.TrainConfig(epochs=1, train_limit=64, test_limit=32)
    with pytest.raises(ValueError, match=r"train_labels must be integers \(60000,\), one per image, got uint8 \(59999"):
        train(config, tmp_path / "run", dataset=broken, progress=False, log=_quiet)
    assert not (tmp_path / "run").exists()
    wrong = dataclasses.replace(fashion, test_labels=fashion.test_labels + 5)
    with pytest.raises(ValueError, match=r"test_labels must lie in \[0, 9\], got values from 5 to 14"):
        train(config, tmp_path / "run", dataset=wrong, progress=False, log=_quiet)
    assert not (tmp_path / "run").exists()
