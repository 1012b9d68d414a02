"""What each rank runs in tests/test_distributed.py and tests/test_data_parallel.py:
``mpiexec -n K python distributed_ranks.py SCENARIO OUT``.

Each scenario writes what this rank saw to ``OUT/SCENARIO-RANK.npz``; the tests compare those files with what
one process computes.  The ``train_*`` scenarios run the command line (``handgrad train``) on every rank, with a
fault on one of them.  :func:`tiny_problem` is shared with the tests, so that both sides train the same model
on the same data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import handgrad
from handgrad import cli, distributed, runs
from handgrad.data import read_idx
from handgrad.layers import Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU
from handgrad.losses import SoftmaxCrossEntropy
from handgrad.optim import SGD

SEED = 7
SAMPLES, BATCH, EPOCHS = 37, 6, 43  # 7 steps an epoch, the last of one sample: 301 steps
LR, MOMENTUM = 0.05, 0.9
MNIST = Path(__file__).with_name("data") / "mnist"
DIGITS = "digits.npz"  # the data of the train_* scenarios, in their folder, and their run folder
RUN = "run"
# 70 digits: 9 to validate, 61 to train on in steps of 6, the last of one digit (rank 1's share empty)
TRAIN = ["--model", "seed-cnn", "--batch-size", "6", "--val-split", "9", "--epochs", "3", "--no-progress"]


def digits(path: Path, train: int = 70, test: int = 20, every: int = 1) -> Path:
    """An .npz file of real MNIST test digits: the first ``train`` to train on, the next ``test`` to test on;
    ``every``: every n-th row and column of their pixels only (images of 28/n x 28/n)."""
    x = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")[:, ::every, ::every]
    y = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    np.savez(path, x=x[:train], y=y[:train], x_test=x[train : train + test], y_test=y[train : train + test])
    return path


def tiny_problem():
    """A float64 CNN on 8x8 images of 4 classes, its loss, the images and labels; the same on every rank."""
    rng = np.random.default_rng(SEED)
    kw = {"dtype": np.float64, "rng": rng}
    model = handgrad.Sequential(
        [Conv2D(1, 3, 3, **kw), ReLU(), MaxPool2D(2), Flatten(), Linear(27, 4, **kw)]  # (3, 6, 6) -> (3, 3, 3)
    )
    x = rng.standard_normal((SAMPLES, 1, 8, 8))
    y = rng.integers(0, 4, size=SAMPLES)
    return model, SoftmaxCrossEntropy(), x, y


def dropout_model():
    """Dropout(0.5), Dropout(0.25) on the generator that drew the weights of the Linear(16, 32) before them."""
    rng = np.random.default_rng(SEED)
    return handgrad.Sequential([Linear(16, 32, rng=rng), Dropout(0.5, rng=rng), Dropout(0.25, rng=rng)]), rng


def data_parallel_sgd(world, out):
    """The data-parallel loop: every rank draws the global order, takes its slice, averages the gradients."""
    model, loss, x, y = tiny_problem()
    compiled = handgrad.compile(model)
    optimizer = SGD(model.params, LR, momentum=MOMENTUM)
    average = world.gradient_average(model.params)
    order_rng = np.random.default_rng(SEED + 1)
    counts = []
    for _ in range(EPOCHS):
        order = order_rng.permutation(SAMPLES)
        for start in range(0, SAMPLES, BATCH):
            mine = world.shard(order[start : start + BATCH])
            grads, loss_sum, correct = None, 0.0, 0
            if len(mine):
                out_ = compiled.forward(x[mine])
                loss_sum = loss.forward(out_, y[mine]) * len(mine)
                correct = int(np.sum(out_.argmax(axis=1) == y[mine]))
                compiled.backward(loss.backward(), input_grad=False)
                grads = model.grads
            step = average(grads, len(mine), loss_sum, correct)
            counts.append((len(mine), step.count, step.correct))
            optimizer.step(step.grads)
    np.savez(out, counts=np.array(counts), **model.params)


def collectives(world, out):
    """The world, slices, broadcast, sums and averages, with values that differ from rank to rank."""
    rng = np.random.default_rng(100 + world.rank)
    arrays = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(5).astype(np.float32)[::2]}  # strided
    world.broadcast(arrays, rng)
    after = rng.standard_normal(3)  # the same on every rank once the generator's state is rank 0's
    sums = world.sum([world.rank + 1.0, 10.0 * world.rank])
    stats = {"mean": np.full(4, float(world.rank), np.float32), "var": np.arange(3.0) * (world.rank + 1)}
    world.average(stats)
    world.average({})  # a model without running statistics
    shards = {f"shard{n}": world.shard(np.arange(100, 100 + n)) for n in range(7)}
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "")
    facts = {"rank": world.rank, "size": world.size, "root": world.root, "blas": blas}
    np.savez(out, after=after, sums=sums, **facts, **arrays, **stats, **shards)


def dropout(world, out):
    """The masks of two dropout layers in two epochs; as in fashion-cnn, they hold the weights' generator."""
    model, rng = dropout_model()
    compiled = handgrad.compile(model)
    x = np.ones((4, 16), np.float32)
    masks = {}
    for epoch in range(2):
        world.dropout_streams(compiled, SEED, epoch)
        masks[f"epoch{epoch}"] = compiled.forward(x) != 0
    weights_rng_after = rng.standard_normal(2)  # untouched by the masks
    np.savez(out, weights_rng_after=weights_rng_after, **masks)


def mismatch(world, out):
    """Rank 1 builds another model: the broadcast refuses on every rank."""
    arrays = {"w": np.zeros((3, 4) if world.rank == 0 else (4, 3))}
    try:
        world.broadcast(arrays)
    except ValueError as error:
        np.savez(out, message=str(error))


def fail_in_step(world, out):
    """Rank 1's step fails; rank 0 reports it once, as the command line does, and ends with status 1."""
    model, loss, x, y = tiny_problem()
    average = world.gradient_average(model.params)
    try:
        with world.guard():
            for step in range(3):
                error = None
                try:
                    if world.rank == 1 and step == 2:
                        raise ValueError(f"{out}: a bad file on rank 1")
                    loss.forward(model.forward(x), y)
                    model.backward(loss.backward())
                except ValueError as failure:
                    error = failure
                average(model.grads, len(x), 0.0, 0, error)
    except ValueError as error:
        print(f"handgrad: error: {error}", file=sys.stderr)
        sys.exit(1)


def fail_alone(world, out):
    """Rank 1 fails outside any agreement while rank 0 waits in one: the guard ends both."""
    with world.guard():
        if world.rank == 1:
            raise ZeroDivisionError(f"{out}: rank 1 divided by zero")
        world.agree()


def _train(folder: Path, dataset: str = DIGITS):
    """``handgrad train`` on this rank, as mpiexec runs it, on the digits in ``folder``; ends with its status."""
    sys.exit(cli.main(["train", *TRAIN, "--dataset", str(folder / dataset), "--out", str(folder / RUN)]))


def train_nan_on_rank_1(world, out):
    """Rank 1's loss is NaN the 14th time it is computed: epoch 1 takes 10 training steps with a share for
    rank 1 and one validation batch, so this is epoch 2, step 3."""
    if world.rank == 1:
        forward, calls = SoftmaxCrossEntropy.forward, []

        def poisoned(self, prediction, target):
            calls.append(len(target))
            value = forward(self, prediction, target)
            return float("nan") if len(calls) == 14 else value

        SoftmaxCrossEntropy.forward = poisoned
    _train(out.parent)


def train_bad_file_on_rank_1(world, out):
    """Rank 1 is given a damaged copy of the data (a machine of several with a bad copy)."""
    _train(out.parent, DIGITS if world.root else "damaged.npz")


def train_write_fails_on_rank_0(world, out):
    """Rank 0's disk is full when it writes the checkpoint of epoch 2."""
    if world.root:
        save, calls = runs.save_state, []

        def full(run_dir, *args):
            calls.append(run_dir)
            if len(calls) == 2:
                raise OSError(28, "No space left on device", str(Path(run_dir) / runs.CHECKPOINT))
            return save(run_dir, *args)

        runs.save_state = full
    _train(out.parent)


SCENARIOS = {
    f.__name__: f
    for f in (data_parallel_sgd, collectives, dropout, mismatch, fail_in_step, fail_alone)
    + (train_nan_on_rank_1, train_bad_file_on_rank_1, train_write_fails_on_rank_0)
}

if __name__ == "__main__":
    name, folder = sys.argv[1], Path(sys.argv[2])
    world = distributed.world()
    SCENARIOS[name](world, folder / f"{name}-{world.rank}.npz")
