"""handgrad train on 2 ranks (mpiexec), through the real command line and handgrad.fit: the parameters of one
process, resume, a failing rank, and ``--workers``.

The data are real MNIST digits in a small .npz file (distributed_ranks.digits); the one-process runs that the
2-rank runs are held to run in a fresh Python with one BLAS thread, as each rank does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from distributed_ranks import DIGITS, RUN, digits
from helpers import rel_error
from test_distributed import HANG_SECONDS, RANKS, launch, on_ranks

from handgrad import cli, distributed, presets, runs
from handgrad.data import batch_indices
from handgrad.data.augment import Augmentation

HANDGRAD = [sys.executable, "-m", "handgrad"]
ONE_PROCESS = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
ONE_PROCESS["OPENBLAS_NUM_THREADS"] = "1"


def one_process(*argv: str) -> str:
    """``handgrad argv`` in one process, as a user runs it; its output."""
    done = subprocess.run(
        [*HANDGRAD, *argv], capture_output=True, text=True, env=ONE_PROCESS, timeout=HANG_SECONDS, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def two_ranks(*argv: str) -> str:
    """``mpiexec -n 2 handgrad argv``; its output."""
    done = on_ranks([*HANDGRAD, *argv], "handgrad " + " ".join(argv))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return digits(tmp_path_factory.mktemp("digits") / DIGITS)


# float64, no batch normalisation or dropout: 28 epochs of 11 steps of 6 digits (the last of one), with crops
EQUAL = ["--model", "seed-cnn", "--dtype", "float64", "--batch-size", "6", "--val-split", "9", "--augment", "crop"]
EQUAL += ["--lr", "0.01", "--schedule", "constant", "--log-every", "20", "--no-progress"]


def _close(run: Path, other: Path, tolerance: float) -> None:
    a, b = runs.load_state(run), runs.load_state(other)
    for name in a.tensors:
        error = rel_error(a.tensors[name], b.tensors[name])
        assert error <= tolerance, f"{name}: relative error {error:.3g} between {run.name} and {other.name}"
    for mine, theirs in zip(a.history.lines(), b.history.lines()):
        assert mine.keys() == theirs.keys()
        for key in mine.keys() - {"train_seconds", "images_per_second"}:
            assert mine[key] == pytest.approx(theirs[key], rel=tolerance, abs=tolerance), (key, mine, theirs)


def test_two_ranks_train_the_parameters_of_one_process_and_a_resume_may_change_the_ranks(tmp_path, data):
    options = [*EQUAL, "--dataset", str(data)]
    one_process("train", *options, "--epochs", "28", "--out", str(tmp_path / "one"))
    printed = two_ranks("train", *options, "--epochs", "28", "--out", str(tmp_path / "two"))
    _close(tmp_path / "one", tmp_path / "two", 1e-10)
    state = runs.load_state(tmp_path / "two")
    assert state.history.best is not None and state.history.rows[-1]["train_loss"] < 2.0  # it learns: not all dead
    steps = 28 * 11
    rows = (tmp_path / "two" / "steps.csv").read_text().splitlines()
    assert steps > 300 and len(rows) == 1 + steps // 20  # rank 0 alone writes: each row once
    assert printed.count("epoch 28/28:") == 1 and printed.count("\ndone: ") == 1 and "on 2 ranks" in printed

    # half the run on 2 ranks, the rest on 1: the same trajectory up to the order of the sums
    two_ranks("train", *options, "--epochs", "14", "--out", str(tmp_path / "half"))
    one_process("train", "--resume", str(tmp_path / "half"), "--epochs", "28")
    _close(tmp_path / "one", tmp_path / "half", 1e-10)


def test_resume_of_a_two_rank_run_with_batch_norm_dropout_and_flips_is_bit_identical(tmp_path):
    # 36 digits of 14x14 to train on in steps of 8, the last of 4 (2 a rank: batch normalisation needs 2
    # samples); 2 to validate, one on each rank, with the running statistics averaged over the ranks; one to
    # test: rank 1's share is empty, and skipped
    data = digits(tmp_path / DIGITS, train=38, test=1, every=2)
    options = ["--model", "fashion-cnn", "--dataset", str(data), "--batch-size", "8", "--augment", "crop+flip"]
    options += ["--val-split", "2", "--schedule", "step", "--step-size", "2", "--gamma", "0.5"]
    options += ["--log-every", "3", "--no-progress"]
    two_ranks("train", *options, "--epochs", "4", "--out", str(tmp_path / "straight"))
    two_ranks("train", *options, "--epochs", "2", "--out", str(tmp_path / "split"))
    two_ranks("train", "--resume", str(tmp_path / "split"), "--epochs", "4", "--no-progress")

    a, b = runs.load_state(tmp_path / "straight"), runs.load_state(tmp_path / "split")
    assert a.epoch == b.epoch == 4 and a.tensors.keys() == b.tensors.keys()
    for name in a.tensors:
        np.testing.assert_array_equal(a.tensors[name], b.tensors[name], err_msg=name)
    assert a.meta["rng"] == b.meta["rng"] and a.history.test == b.history.test
    untimed = [[{k: v for k, v in r.items() if "second" not in k} for r in run.history.rows] for run in (a, b)]
    assert untimed[0] == untimed[1]
    steps = [(tmp_path / run / "steps.csv").read_text().splitlines() for run in ("straight", "split")]
    steps = [[row.split(",")[:5] for row in rows] for rows in steps]
    assert steps[0] == steps[1]

    # on 2 ranks the run's generator draws the weights, then each epoch's order and crops, never a dropout mask
    rng = np.random.default_rng(a.config.seed)
    presets.build("fashion-cnn", rng, input_shape=(1, 14, 14))
    crops = Augmentation.of("crop+flip", (14, 14), True)
    for _ in range(4):
        for batch in batch_indices(36, 8, rng):
            crops.draw(rng, len(batch))
    assert a.meta["rng"] == rng.bit_generator.state


def _failed(scenario: str, folder: Path, data: Path) -> str:
    shutil.copy(data, folder / DIGITS)
    result = launch(scenario, folder)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output and "MPI_ABORT" not in output, output
    return output


def test_a_nan_loss_on_one_rank_stops_every_rank_with_one_message_and_keeps_the_checkpoint(tmp_path, data):
    output = _failed("train_nan_on_rank_1", tmp_path, data)
    checkpoint = tmp_path / RUN / runs.CHECKPOINT
    message = (
        "handgrad: training stopped: the loss became nan at epoch 2, step 3 of 11 on rank 1 of 2; "
        f"the last good checkpoint, after epoch 1, is {checkpoint}"
    )
    assert output.count(message) == 1 and output.count("handgrad:") == 1, output
    state = runs.load_state(tmp_path / RUN)  # whole: its digests check
    assert state.epoch == 1 and len(runs.read_metrics(tmp_path / RUN)) == 1


def test_a_bad_file_on_one_rank_stops_every_rank_before_anything_is_written(tmp_path, data):
    (tmp_path / "damaged.npz").write_bytes(data.read_bytes()[:1000])
    output = _failed("train_bad_file_on_rank_1", tmp_path, data)
    message = f"handgrad: error: {tmp_path / 'damaged.npz'}: expected an .npz file"
    assert output.count(message) == 1 and output.count("handgrad:") == 1, output
    assert not (tmp_path / RUN).exists()


def test_a_failed_write_on_rank_0_stops_every_rank_and_keeps_the_checkpoint(tmp_path, data):
    output = _failed("train_write_fails_on_rank_0", tmp_path, data)
    assert output.count("handgrad: error: [Errno 28] No space left on device") == 1, output
    assert runs.load_state(tmp_path / RUN).epoch == 1


def test_workers_trains_on_k_ranks_end_to_end(tmp_path, data, capsys):
    run = tmp_path / "run"
    argv = ["train", "--workers", str(RANKS), "--model", "seed-cnn", "--dataset", str(data), "--epochs", "1"]
    done = subprocess.run(
        [*HANDGRAD, *argv, "--out", str(run)],
        capture_output=True,
        text=True,
        env=ONE_PROCESS,
        timeout=HANG_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mpiexec" in done.stdout.splitlines()[0] and " -n 2 " in done.stdout.splitlines()[0]
    assert done.stdout.count("\ndone: seed-cnn") == 1 and "data-parallel on 2 ranks" in done.stdout
    test = runs.read_metrics(run)[-1]
    assert test["test_images"] == 20 and (run / runs.BEST).is_file()
    assert cli.main(["evaluate", str(run)]) == 0  # the test figures summed over the ranks are one process's
    assert f"accuracy {test['test_accuracy']:.4f} on 20 images" in capsys.readouterr().out


def test_workers_without_mpi_says_how_to_install(tmp_path, monkeypatch, capsys, data):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    argv = ["train", "--workers", "2", "--dataset", str(data), "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 1
    assert "mpi4py is missing: .venv/bin/pip install -e '.[mpi]' (in the handgrad checkout)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")  # already a rank of mpiexec
    assert cli.main(argv) == 1
    assert "--workers starts mpiexec itself" in capsys.readouterr().err


class _Started:
    """In place of subprocess.Popen: the command it was given, and a launch that ends at once, well."""

    def __init__(self, started: list, command: list[str]):
        started.append(command)

    def __enter__(self):
        return self

    def __exit__(self, *error):
        return False

    def wait(self) -> int:
        return 0


def test_workers_starts_mpiexec_with_the_blas_threads_asked_for_and_oversubscribes_past_the_cores(
    tmp_path, monkeypatch, capsys, data
):
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda command: _Started(started, command))
    monkeypatch.setattr(distributed, "cores", lambda: 2)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    argv = ["train", "--workers", "3", "--dataset", str(data), "--out", str(tmp_path / "run"), "--lr", "0.1"]
    assert cli.main(argv) == 0
    command = started.pop()
    assert command[command.index("-n") + 1] == "3" and "--oversubscribe" in command
    assert "OPENBLAS_NUM_THREADS=2" in command and "--bind-to" in command  # 2 threads a rank: not bound to a core
    assert command[command.index(sys.executable) :] == [*HANDGRAD, *cli._rank_arguments(cli._parser().parse_args(argv))]
    assert "3 ranks on 2 cores" in capsys.readouterr().err
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    assert cli.main([*argv[:2], "2", *argv[3:]]) == 0
    command = started.pop()
    assert "OPENBLAS_NUM_THREADS=1" in command and "--oversubscribe" not in command and "--bind-to" not in command
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "all")
    assert cli.main(argv) == 1 and not started
    assert "OPENBLAS_NUM_THREADS must be a count >= 1 (BLAS threads a rank), got 'all'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_each_rank_of_workers_is_given_the_options_of_the_command(tmp_path):
    parser = cli._parser()
    argv = ["train", "--workers", "3", "--dataset", str(tmp_path / "my data.npz"), "--image-size", "32x30"]
    argv += ["--lr", "0.1", "--weight-decay", "-0.0", "--augment", "--val-split", "5", "--out", str(tmp_path / "o")]
    argv += ["--data-dir", str(tmp_path), "--no-progress", "--seed", "3", "--test-split", "0.25"]
    args = parser.parse_args(argv)
    again = parser.parse_args(cli._rank_arguments(args))
    assert again.workers is None and vars(again) == {**vars(args), "workers": None}
    assert set(cli.RANK_OPTIONS) | {"command", "workers", "no_progress"} == set(vars(args))  # none forgotten
    assert isinstance(again.image_size, list) and isinstance(again.out, Path)
