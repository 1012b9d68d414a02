"""The command line under careless use: every mistake is one line on stderr naming the option or file, what
was expected and what was found, a non-zero exit status, no traceback, and nothing on disk changed."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import one_line_error
from PIL import Image

from handgrad import cli, runs, train
from handgrad.data import load
from handgrad.train import fit

QUICK = ["--train-limit", "64", "--test-limit", "32", "--batch-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished one-epoch run."""
    path = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main(["train", "--epochs", "1", "--out", str(path), *QUICK]) == 0
    return path


def _usage_error(capsys, argv, *fragments):
    """argparse's refusal: exit status 2 and one line."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    return one_line_error(capsys, *fragments)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["--lr", "1e400"], "lr must be a finite number > 0, got inf"),
        (["--lr", "nan"], "lr must be a finite number > 0, got nan"),
        (["--weight-decay", "inf"], "--weight-decay must be a finite number >= 0, got inf"),
        (["--schedule", "step", "--gamma", "-1"], "--gamma must be a finite number > 0, got -1.0"),
        (["--schedule", "step", "--gamma", "0"], "gamma must be a finite number > 0, got 0.0"),
        (["--optimizer", "momentum", "--momentum", "5"], "--momentum must be in [0, 1), got 5.0"),
        (
            ["--optimizer", "sgd", "--momentum", "0.5"],
            "--momentum applies to --optimizer momentum or nesterov, not sgd",
        ),
        (
            ["--val-split", "0", "--early-stopping", "2"],
            "--early-stopping needs validation data: a --val-split above 0",
        ),
        (["--early-stopping", "0"], "--early-stopping must be an int >= 1, got 0"),
        (["--log-every", "0"], "--log-every must be an int >= 1, got 0"),
        (["--val-split", "64"], "--val-split 64 holds out 64 of 64 images, leaving none to train on"),
        (["--dataset", "nowhere"], "dataset '"),
        (["--image-size", "32x32"], "--image-size: for a folder of images or an .npz file, not fashion-mnist"),
        (["--optimizer", "adam", "--momentum", "0.5"], "--momentum applies to --optimizer momentum or nesterov"),
        (["--gamma", "0.5"], "--gamma applies to --schedule step, not cosine: drop --gamma or give --schedule step"),
        (["--schedule", "constant", "--step-size", "2"], "--step-size applies to --schedule step, not constant"),
    ],
)
def test_bad_training_settings_are_refused_before_anything_starts(tmp_path, capsys, options, message):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *options, *QUICK]) == 1
    one_line_error(capsys, message)
    assert not out.exists()


def test_a_missing_or_empty_data_dir_is_an_error(tmp_path, capsys, run):
    (tmp_path / "empty").mkdir()
    for data_dir, found in ((tmp_path / "nowhere", "found no folder"), (tmp_path / "empty", "found none")):
        out = tmp_path / "new"
        assert cli.main(["train", "--out", str(out), "--data-dir", str(data_dir), *QUICK]) == 1
        one_line_error(capsys, f"--data-dir {data_dir}: expected ", found)
        assert not out.exists()
        assert cli.main(["evaluate", str(run), "--data-dir", str(data_dir)]) == 1
        one_line_error(capsys, f"--data-dir {data_dir}: expected ")


def test_an_out_that_is_a_file_is_refused_before_the_data_loads(tmp_path, capsys, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("# mine\n")
    monkeypatch.setattr(runs, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))
    assert cli.main(["train", "--out", str(readme), *QUICK]) == 1
    one_line_error(capsys, f"{readme} is a file, not a run folder: choose another --out")
    assert readme.read_text() == "# mine\n"
    inside = readme / "runs" / "one"  # a folder that cannot be made: a file is in its way
    assert cli.main(["train", "--out", str(inside), *QUICK]) == 1
    one_line_error(capsys, f"{inside} cannot be made a run folder: {readme} is a file; choose another --out")
    monkeypatch.setattr(runs.os, "access", lambda path, mode: False)  # as a folder of someone else's (root may)
    assert cli.main(["train", "--out", str(tmp_path / "new" / "run"), *QUICK]) == 1
    one_line_error(capsys, f"cannot be made a run folder: {tmp_path} cannot be written (permission denied)")
    assert not (tmp_path / "new").exists()


def test_resume_accepts_the_checkpoint_file_and_refuses_other_files(tmp_path, capsys, run):
    copy = tmp_path / "run"
    copy.mkdir()
    for name in (runs.CHECKPOINT, runs.METRICS):
        (copy / name).write_bytes((run / name).read_bytes())
    assert cli.main(["train", "--resume", str(copy / runs.CHECKPOINT), "--epochs", "2", "--no-progress"]) == 0
    assert runs.load_state(copy).epoch == 2 and (copy / runs.CONFIG).is_file()
    capsys.readouterr()
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert cli.main(["train", "--resume", str(other), "--no-progress"]) == 1
    one_line_error(capsys, str(other))
    assert other.read_text() == "x"
    best = run / runs.BEST  # a saved model: predict and export take it, evaluate and --resume need the run
    for command in (["train", "--resume", str(best), "--epochs", "3"], ["evaluate", str(best)]):
        assert cli.main(command) == 1
        one_line_error(capsys, f"{best} is a saved model, not a run's checkpoint: give the run's folder")


def test_interrupts_say_what_was_saved(tmp_path, capsys, monkeypatch, run):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "_train_epoch", interrupted)
    out = tmp_path / "new"
    assert cli.main(["train", "--out", str(out), *QUICK]) == 130
    one_line_error(capsys, f"interrupted; no checkpoint was written in {out}: nothing to resume")
    assert cli.main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 130
    one_line_error(capsys, f"the checkpoint after epoch 1 is intact: continue with handgrad train --resume {run}")


def test_resuming_a_finished_run_says_it_is_complete(capsys, monkeypatch, run):
    monkeypatch.setattr(runs, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))
    before = (run / runs.CHECKPOINT).read_bytes()
    assert cli.main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{run}: complete, all 1 epochs done; to train further, raise --epochs" in out and "done (" not in out
    assert (run / runs.CHECKPOINT).read_bytes() == before


@pytest.mark.parametrize(
    "options, message",
    [
        (["--val-split", "1.5"], "argument --val-split: expected a fraction in [0, 1) such as 0.1 or a count"),
        (["--test-split", "-3"], "argument --test-split: expected a fraction in [0, 1)"),
        (["--image-size", "32"], "argument --image-size: expected a size HxW such as 32x32, got '32'"),
        (["--channels", "2"], "argument --channels: invalid choice: 2"),
        (["--augment", "rotate"], "argument --augment: invalid choice: 'rotate'"),
    ],
)
def test_data_and_selection_options_are_checked_by_the_parser(capsys, tmp_path, options, message):
    _usage_error(capsys, ["train", "--out", str(tmp_path / "r"), *options], message)
    assert not (tmp_path / "r").exists()


def test_a_run_of_handgrad_fit_is_not_resumed_by_the_command_line(tmp_path, capsys):
    from handgrad import presets
    from handgrad.data import from_arrays

    rng = np.random.default_rng(0)
    data = from_arrays(rng.integers(0, 256, (30, 16, 16), dtype=np.uint8), np.arange(30) % 2)
    model, loss = presets.build("seed-cnn", rng, input_shape=(1, 16, 16), classes=2)
    fit(model, loss, data, rng=rng, epochs=1, out=tmp_path / "mine", progress=False, log=lambda *a: None)
    assert cli.main(["train", "--resume", str(tmp_path / "mine"), "--epochs", "2"]) == 1
    one_line_error(capsys, "was trained by handgrad.fit on a model of its own: resume it there")


@pytest.mark.parametrize("limit", ["0", "-5", "x"])
def test_evaluate_and_plot_limits_must_be_positive(capsys, run, limit):
    for command in ("evaluate", "plot"):
        _usage_error(capsys, [command, str(run), "--limit", limit], "argument --limit: expected an integer >= 1")


@pytest.mark.parametrize(
    "options, message",
    [
        (["conv", "--input", "0"], "argument --input: expected a size like 3x3 or 3, each value from 1 to 16, got '0'"),
        (["conv", "--input", "-3"], "argument --input: expected a size"),
        (["conv", "--input", "1000x1000"], "each value from 1 to 16, got '1000x1000'"),
        (["softmax", "--input", "17"], "got '17'"),
        (["conv", "--kernel", "0x2"], "argument --kernel"),
        (["conv", "--stride", "0"], "argument --stride: expected S or h,w, each value from 1 to 16, got '0'"),
        (["conv", "--padding", "-1"], "argument --padding: expected P or h,w, each value from 0 to 16"),
        (["linear", "--output", "0"], "argument --output: expected an integer from 1 to 16, got '0'"),
    ],
)
def test_explain_sizes_are_small_positive_numbers(capsys, options, message):
    _usage_error(capsys, ["explain", *options], message)


def test_predict_reads_folders_and_refuses_bad_files_in_one_line(tmp_path, capsys, run):
    fashion = load("fashion-mnist", allow_download=False)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(fashion.test_images[i]).save(folder / f"{i}.png")
    assert cli.main(["predict", str(run), str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(folder / f"{i}.png") for i in range(3)]

    (tmp_path / "photo.png").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(64))
    (tmp_path / "cut.png").write_bytes((folder / "0.png").read_bytes()[:100])
    for bad in ("photo.png", "cut.png"):
        assert cli.main(["predict", str(run), str(tmp_path / bad)]) == 1
        one_line_error(capsys, str(tmp_path / bad), "expected")

    Image.fromarray(255 - fashion.test_images[0]).save(tmp_path / "light.png")
    assert cli.main(["predict", str(run), str(tmp_path / "light.png")]) == 0
    assert "try with --invert" in capsys.readouterr().err
