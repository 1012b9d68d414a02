"""Data-parallel training over MPI (handgrad.distributed): 2 ranks launched with mpiexec, against one process.

Each launch runs a scenario of distributed_ranks.py on every rank; the ranks write what they saw, and the
expectations here come from one process computing the same thing without handgrad.distributed.  A launch
that does not end within HANG_SECONDS fails as hung (no test times anything).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from distributed_ranks import BATCH, EPOCHS, LR, MOMENTUM, SAMPLES, SEED, dropout_model, tiny_problem
from helpers import rel_error

import handgrad
from handgrad import distributed, presets
from handgrad.optim import SGD

RANKS_SCRIPT = Path(__file__).with_name("distributed_ranks.py")
HANG_SECONDS = 120
RANKS = 2


def on_ranks(command: list[str], what: str) -> subprocess.CompletedProcess:
    """Run ``command`` on 2 ranks (``--oversubscribe``: a one-core machine runs them too); ``what`` names it."""
    line = distributed.mpiexec_command(RANKS, command, oversubscribe=True)
    try:
        return subprocess.run(line, capture_output=True, text=True, timeout=HANG_SECONDS, check=False)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"{what} on {RANKS} ranks was still running after {HANG_SECONDS} s: {hung.stderr!r}")


def launch(scenario: str, folder: Path) -> subprocess.CompletedProcess:
    """Run ``scenario`` of distributed_ranks.py on 2 ranks."""
    return on_ranks([sys.executable, str(RANKS_SCRIPT), scenario, str(folder)], scenario)


def ran(scenario: str, folder: Path) -> list[dict]:
    """Launch ``scenario``, check it ended well, and return what each rank wrote."""
    result = launch(scenario, folder)
    assert result.returncode == 0, f"{scenario} failed:\n{result.stdout}\n{result.stderr}"
    return [dict(np.load(folder / f"{scenario}-{rank}.npz")) for rank in range(RANKS)]


def one_process(code: str, **env) -> dict:
    """Run ``code`` (which prints JSON) in a fresh Python without any MPI launcher's variables."""
    clean = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES} | env
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# the world, alone and under mpiexec


def test_one_process_world_without_mpi():
    facts = one_process(
        "import json, sys; from handgrad import distributed as d; w = d.world(); "
        "print(json.dumps([type(w).__name__, w.rank, w.size, w.root, 'mpi4py' in sys.modules]))"
    )
    assert facts == ["World", 0, 1, True, False]


def test_launched_without_mpi4py_says_how_to_install():
    code = (
        "import json, sys; sys.modules['mpi4py'] = None; from handgrad import distributed as d\n"
        "try: d.world()\nexcept ImportError as e: print(json.dumps(str(e)))"
    )
    message = one_process(code, OMPI_COMM_WORLD_SIZE="2")
    assert ".venv/bin/pip install -e '.[mpi]' (in the handgrad checkout)" in message


def test_launch_command_without_mpi_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImportError, match=r"mpiexec is missing: \.venv/bin/pip install -e '\.\[mpi\]'"):
        distributed.mpiexec_command(2, ["true"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"mpi4py is missing: \.venv/bin/pip install -e '\.\[mpi\]'"):
        distributed.mpiexec_command(2, ["true"])


def test_launch_command():
    line = distributed.mpiexec_command(3, ["python", "x.py"], blas_threads=2)
    assert Path(line[0]).name == "mpiexec" and line[1:3] == ["-n", "3"] and line[-2:] == ["python", "x.py"]
    assert ("--allow-run-as-root" in line) == (os.geteuid() == 0)
    assert "OPENBLAS_NUM_THREADS=2" in line and "--bind-to" in line
    plain = distributed.mpiexec_command(3, ["python"])
    assert "--bind-to" not in plain and "--oversubscribe" not in plain and "OPENBLAS_NUM_THREADS=1" in plain
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="workers must be an int >= 1"):
            distributed.mpiexec_command(bad, ["python"])


def test_one_process_collectives_are_the_identity():
    world = distributed.World()
    indices = np.arange(5)
    assert np.array_equal(world.shard(indices), indices)
    arrays = {"w": np.arange(3.0)}
    world.broadcast(arrays)
    world.average(arrays)
    assert np.array_equal(arrays["w"], np.arange(3.0))
    grads = {"w": np.ones(3)}
    step = world.gradient_average(arrays)(grads, 5, 2.5, 3)
    assert step.grads is grads and (step.count, step.loss_sum, step.correct) == (5, 2.5, 3)
    assert np.array_equal(world.sum([1.0, 2.0]), [1.0, 2.0])
    world.agree()
    with pytest.raises(KeyError, match="mine"), world.guard():
        world.agree(KeyError("mine"))
    with world.together():
        pass
    with pytest.raises(KeyError, match="the block's"), world.together():
        raise KeyError("the block's")


def test_cores_are_those_this_process_may_run_on():
    assert 1 <= distributed.cores() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shards_cover_a_batch_in_order_with_sizes_one_apart(size):
    for n in range(13):  # batches smaller than the number of ranks included
        bounds = [distributed.shard_bounds(n, size, rank) for rank in range(size)]
        lengths = [stop - start for start, stop in bounds]
        assert [start for start, _ in bounds] == [0, *np.cumsum(lengths)[:-1].tolist()] and sum(lengths) == n
        assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True), (n, size, bounds)


def test_collectives_on_two_ranks(tmp_path):
    ranks = ran("collectives", tmp_path)
    root_rng = np.random.default_rng(100)  # rank 0's arrays and generator, drawn here as rank 0 drew them
    w, b = root_rng.standard_normal((3, 4)), root_rng.standard_normal(5).astype(np.float32)[::2]
    after = root_rng.standard_normal(3)
    for rank, seen in enumerate(ranks):
        assert (seen["rank"], seen["size"], seen["root"], seen["blas"]) == (rank, RANKS, rank == 0, "1")
        assert np.array_equal(seen["w"], w) and np.array_equal(seen["b"], b) and seen["b"].dtype == np.float32
        assert np.array_equal(seen["after"], after)
        assert np.array_equal(seen["sums"], [1.0 + 2.0, 0.0 + 10.0])
        assert np.array_equal(seen["mean"], np.full(4, 0.5, np.float32)) and seen["mean"].dtype == np.float32
        assert np.array_equal(seen["var"], np.arange(3.0) * 1.5)
    for n in range(7):
        together = np.concatenate([seen[f"shard{n}"] for seen in ranks])
        assert np.array_equal(together, np.arange(100, 100 + n)), n


def test_broadcast_refuses_different_models_on_every_rank(tmp_path):
    for seen in ran("mismatch", tmp_path):
        assert "rank 1's arrays differ from rank 0's" in str(seen["message"])


class StepFailed(Exception):
    """An error whose constructor takes other arguments than its message: it pickles, and does not unpickle."""

    def __init__(self, step, value):
        super().__init__(f"the loss became {value} at step {step}")


def test_an_error_that_cannot_be_rebuilt_arrives_as_its_text():
    rebuilt = distributed._unpack(distributed._pack(StepFailed(3, float("nan"))), 1, 2)
    assert isinstance(rebuilt, distributed.RankFailed)
    assert str(rebuilt) == "rank 1 of 2 failed: StepFailed: the loss became nan at step 3"
    again = distributed._unpack(distributed._pack(ValueError("bad file")), 1, 2)
    assert type(again) is ValueError and str(again) == "bad file"


# the same model as one process


def train_one_process(halves_unweighted: bool = False) -> dict[str, np.ndarray]:
    """The one-process SGD loop over the same global batches; ``halves_unweighted`` instead averages the mean
    gradients of the two ranks' slices with equal weights (the mistake the weighting avoids)."""
    model, loss, x, y = tiny_problem()
    compiled = handgrad.compile(model)
    optimizer = SGD(model.params, LR, momentum=MOMENTUM)
    order_rng = np.random.default_rng(SEED + 1)
    for _ in range(EPOCHS):
        order = order_rng.permutation(SAMPLES)
        for start in range(0, SAMPLES, BATCH):
            batch = order[start : start + BATCH]
            parts = [batch[: (len(batch) + 1) // 2], batch[(len(batch) + 1) // 2 :]] if halves_unweighted else [batch]
            grads = {}
            for part in (p for p in parts if len(p)):
                loss.forward(compiled.forward(x[part]), y[part])
                compiled.backward(loss.backward(), input_grad=False)
                for name, g in model.grads.items():
                    grads[name] = grads.get(name, 0) + g / len(parts)
            optimizer.step(grads)
    return model.params


def test_two_ranks_train_the_parameters_of_one_process(tmp_path):
    ranks = ran("data_parallel_sgd", tmp_path)
    expected = train_one_process()
    for name in expected:
        assert np.array_equal(ranks[0][name], ranks[1][name]), name  # identical updates on every rank
        error = rel_error(ranks[0][name], expected[name])
        assert error <= 1e-10, f"{name}: relative error {error:.3g} after {len(ranks[0]['counts'])} steps"
    per_epoch = -(-SAMPLES // BATCH)
    assert len(ranks[0]["counts"]) == EPOCHS * per_epoch > 300
    last = SAMPLES % BATCH  # each epoch's last batch has 1 sample: rank 1's slice is empty
    assert np.array_equal(ranks[1]["counts"][per_epoch - 1 :: per_epoch, :2], [[0, last]] * EPOCHS)


def test_the_equality_check_sees_unweighted_averaging():
    """Averaging the slices' mean gradients without weights differs from the one process far beyond 1e-10."""
    right, wrong = train_one_process(), train_one_process(halves_unweighted=True)
    assert max(rel_error(wrong[name], right[name]) for name in right) > 1e-6


# dropout streams


def test_dropout_streams_differ_per_rank_and_epoch_and_are_reproducible(tmp_path):
    ranks = ran("dropout", tmp_path)
    for rank, seen in enumerate(ranks):
        for epoch in range(2):
            # the documented derivation, written out: SeedSequence(seed, spawn_key=("drop", epoch, rank))
            model, _ = dropout_model()
            stream = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(0x64726F70, epoch, rank)))
            model[1].rng = model[2].rng = stream
            expected = model.forward(np.ones((4, 16), np.float32)) != 0
            assert np.array_equal(seen[f"epoch{epoch}"], expected), (rank, epoch)
        _, weights_rng = dropout_model()
        assert np.array_equal(seen["weights_rng_after"], weights_rng.standard_normal(2))  # no mask drawn from it
    assert not np.array_equal(ranks[0]["epoch0"], ranks[1]["epoch0"])
    assert not np.array_equal(ranks[0]["epoch0"], ranks[0]["epoch1"])


# failures


def test_a_failing_step_stops_every_rank_with_one_message(tmp_path):
    result = launch("fail_in_step", tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("a bad file on rank 1") == 1, output
    assert "handgrad: error: " in output and "MPI_ABORT" not in output, output


def test_a_rank_failing_alone_ends_every_rank(tmp_path):
    result = launch("fail_alone", tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("handgrad: rank 1 of 2 failed: ZeroDivisionError") == 1, output


# the benchmark (its figures are not tested: benchmarks are not tests)


def test_benchmark_runs_and_prints_its_tables():
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed_bench.py"
    quick = ["--models", "seed-cnn", "--rounds", "1", "--steps", "1", "--allreduces", "3"]
    result = subprocess.run(
        [sys.executable, str(bench), *quick], capture_output=True, text=True, timeout=HANG_SECONDS, check=False
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ")]
    rates = next(row for row in rows if row[0].strip() == "seed-cnn, 64")
    ours1, ours2, theirs, *ratios = (float(cell.replace(",", "")) for cell in rates[1:])
    assert min(ours1, ours2, theirs) > 0 and abs(ratios[0] - ours2 / ours1) < 0.01 + 0.01 * ratios[0]
    model, _ = presets.build("seed-cnn", np.random.default_rng(0))
    values = sum(p.size for p in model.params.values()) + 4  # the gradient and a step's 4 numbers
    assert any(row[0].strip() == "seed-cnn" and row[1].strip() == f"{values:,}" for row in rows)
    assert [row[0].strip() for row in rows if row[0].strip().isdigit()] == ["2", "4", "8", "16", "32", "64"]
