"""handgrad compare: the same network in handgrad and PyTorch, trained in lockstep (a short version of the
200-step runs in the README)."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
from helpers import one_line_error
from PIL import Image

from handgrad import cli
from handgrad.compare import CompareConfig, compare
from handgrad.data import load
from handgrad.fast.steps import ClampStep


@pytest.fixture(scope="module")
def fashion():
    return load("fashion-mnist", allow_download=False)


def _quiet(*args):
    pass


@pytest.mark.parametrize(
    "model, optimizer, lr",
    [
        ("seed-cnn", "sgd", 0.01),
        ("habr-cnn", "momentum", 0.01),
        ("strided-conv", "adam", 1e-3),
        ("seed-cnn", "nesterov", 0.01),
    ],
)
def test_float64_trajectories_agree(fashion, model, optimizer, lr):
    config = CompareConfig(
        model=model, optimizer=optimizer, lr=lr, steps=20, batch_size=32, train_limit=300, weight_decay=1e-4
    )
    result = compare(config, dataset=fashion, log=_quiet)
    assert result.passed, result.verdict()
    worst = result.worst
    assert worst["loss_rel_diff"] <= 1e-10 and worst["param_rel_diff"] <= 1e-8 and worst["grad_rel_diff"] <= 1e-8
    losses = [row["loss_handgrad"] for row in result.rows]
    assert len(set(losses)) == len(losses)  # the batches differ step to step: a real trajectory


def test_float32_losses_agree_to_1e_4(fashion):
    config = CompareConfig(model="seed-cnn", optimizer="momentum", steps=20, dtype="float32", train_limit=300)
    result = compare(config, dataset=fashion, log=_quiet)
    assert result.passed, result.verdict()
    assert result.param_tolerance is None and result.worst["loss_rel_diff"] <= 1e-4


def test_a_wrong_backward_is_caught(fashion, monkeypatch):
    """The compiled model's ReLU (a clamp step) made to pass the gradient everywhere: the trajectories part."""
    monkeypatch.setattr(ClampStep, "backward", lambda self, dy, owned, input_grad: dy * 1.0)
    result = compare(CompareConfig(steps=5, train_limit=200), dataset=fashion, log=_quiet)
    assert not result.passed and result.verdict().startswith("FAIL: the trajectories part at step")


def test_command_line_writes_curves_and_a_verdict(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--model", "strided-conv", "--steps", "10", "--train-limit", "200", "--out", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "PASS: 10 steps, loss within 1e-10, parameters within 1e-08" in printed
    with open(out / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and float(rows[-1]["param_rel_diff"]) <= 1e-8
    image = Image.open(out / "compare.png")
    assert image.format == "PNG" and image.size == (800, 700)
    assert np.asarray(image).std() > 0  # something was drawn
    written = (out / "compare.csv").read_bytes()
    assert cli.main(args) == 1  # a second comparison into the same folder is refused, as train refuses
    one_line_error(capsys, f"{out} already holds a comparison (compare.csv): choose another --out")
    assert (out / "compare.csv").read_bytes() == written


def test_without_matplotlib_nothing_is_computed(tmp_path, capsys, monkeypatch):
    import handgrad.compare

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    monkeypatch.setattr(handgrad.compare, "compare", lambda *a, **k: pytest.fail("compare ran without matplotlib"))
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--steps", "1", "--out", str(out)]) == 1
    one_line_error(
        capsys, "handgrad compare needs matplotlib: .venv/bin/pip install -e '.[plot]' (in the handgrad checkout)"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"steps": 0}, "steps must be a positive int, got 0"),
        ({"train_limit": -5}, "train_limit must be a positive int, got -5"),
        ({"lr": float("inf")}, "lr must be a finite number > 0, got inf"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
    ],
)
def test_settings_are_checked_before_the_work(settings, message):
    with pytest.raises(ValueError, match=message):
        CompareConfig(**settings)
