"""The training loop, top to bottom: data, model, optimiser, (resume), then epochs of steps, evaluation,
checkpoint and metrics.

One ``numpy.random.Generator`` seeded with ``config.seed`` draws every random number of a run: the
initial weights, then each epoch's shuffling.  Its state is saved with each checkpoint, so a resumed run
draws the same batches as an uninterrupted one and ends with bit-identical parameters (same machine,
same thread count).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import presets, runs
from .checkpoint import non_finite
from .data import Normalizer, batch_indices
from .data import load as load_dataset
from .evaluate import evaluate
from .fast import compile as compile_model
from .optim import make_optimizer, make_schedule


class TrainingDiverged(RuntimeError):
    """The loss, the test loss or a parameter stopped being finite; the last good checkpoint is left as it was."""


@dataclass
class RunResult:
    run_dir: Path
    epochs: int
    metrics: list[dict]  # every finished epoch's row, those of earlier sessions included
    seconds: float
    resumed_after: int = 0  # epochs finished before this session


def train(config: runs.TrainConfig, run_dir, *, resume=False, dataset=None, data_dir=None, progress=True, log=print):
    """Train ``config`` into ``run_dir`` (or continue it with ``resume=True``) and return a :class:`RunResult`.

    ``dataset`` may be given already loaded (tests do); otherwise it is looked up by name.  Everything that
    can be checked before training is checked before the run folder is created or changed.  A checkpoint
    is written only for a model whose parameters, running statistics, training loss and test loss are all
    finite; otherwise :class:`TrainingDiverged` says where the last good checkpoint is.
    """
    run_dir = Path(run_dir)
    dtype = np.dtype(config.dtype)

    if run_dir.exists() and not run_dir.is_dir():
        advice = "--resume takes a run's folder" if resume else "choose another --out"
        raise ValueError(f"{run_dir} is a file, not a run folder: {advice}")
    if not resume and (run_dir / runs.CHECKPOINT).exists():
        raise FileExistsError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
    if resume:
        state = runs.load_state(run_dir)
        if config.epochs < state.epoch:
            raise ValueError(f"--epochs {config.epochs} is fewer than the {state.epoch} epochs {run_dir} has finished")
        if state.epoch == config.epochs:  # nothing to train; the metrics are made to agree with the checkpoint
            runs.write_metrics(run_dir, state.metrics)
            return RunResult(run_dir, config.epochs, state.metrics, 0.0, state.epoch)

    # data
    data = dataset if dataset is not None else load_dataset(config.dataset, data_dir)
    data.check()
    train_x, train_y = data.train_images[: config.train_limit], data.train_labels[: config.train_limit]
    test_x, test_y = data.test_images[: config.test_limit], data.test_labels[: config.test_limit]
    normalizer = Normalizer.fit(train_x, config.normalization)
    log(f"data: {data.title} from {data.source}: {len(train_x):,} training and {len(test_x):,} test images")

    # model, loss, optimiser, schedule: every random number from one generator
    rng = np.random.default_rng(config.seed)
    model, loss = presets.build(config.model, rng, dtype, config.init)
    compiled = compile_model(model)  # the fast tier runs the steps; the model keeps the parameters
    optimizer = make_optimizer(config.optimizer, model.params, config.lr, config.momentum, config.weight_decay)
    schedule = make_schedule(config.schedule, config.lr, config.epochs, config.step_size, config.gamma)

    # a new run, or the continuation of one
    start, history = 0, []
    if resume:
        runs.restore(state, model, optimizer, rng, where=str(run_dir))
        start, history = state.epoch, list(state.metrics)
        runs.write_metrics(run_dir, history)  # a crash after the last checkpoint may have cost metrics.jsonl a row
        log(f"resuming {run_dir} after epoch {start} of {config.epochs}")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_config(run_dir, config)
    log(f"model: {config.model}\n{model.summary(presets.INPUT_SHAPE)}")

    began = time.perf_counter()
    for epoch in range(start, config.epochs):
        optimizer.lr = schedule(epoch)
        batches = (
            (normalizer(train_x[index], dtype), train_y[index])
            for index in batch_indices(len(train_x), config.batch_size, rng)
        )
        steps = -(-len(train_x) // config.batch_size)
        last = (
            f"the last good checkpoint, after epoch {epoch}, is {run_dir / runs.CHECKPOINT}"
            if epoch
            else "no checkpoint was written"
        )
        try:
            train_loss, train_accuracy, train_seconds = _train_epoch(
                compiled, loss, optimizer, batches, steps, f"epoch {epoch + 1}/{config.epochs}", progress
            )
        except _NonFiniteLoss as bad:
            raise TrainingDiverged(
                f"the loss became {bad.value} at epoch {epoch + 1}, step {bad.step} of {steps}; {last}"
            ) from None

        test_loss, test_accuracy, _ = evaluate(compiled.eval(), loss, test_x, test_y, normalizer, dtype)
        compiled.train()
        problem = _divergence(model, train_loss, test_loss)
        if problem:
            raise TrainingDiverged(f"after epoch {epoch + 1} {problem}; {last}")
        row = {
            "epoch": epoch + 1,
            "lr": optimizer.lr,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "train_seconds": train_seconds,
            "images_per_second": len(train_x) / train_seconds,
        }
        history.append(row)
        runs.save_state(run_dir, model, optimizer, config, epoch + 1, rng, normalizer, data.classes, history)
        runs.write_metrics(run_dir, history)
        log(
            f"epoch {epoch + 1}/{config.epochs}: train loss {row['train_loss']:.4f} accuracy {row['train_accuracy']:.4f} | "
            f"test loss {test_loss:.4f} accuracy {test_accuracy:.4f} | {row['images_per_second']:.0f} images/s"
        )
    return RunResult(run_dir, config.epochs, history, time.perf_counter() - began, start)


def _divergence(model, train_loss: float, test_loss: float) -> str | None:
    """What is not finite after an epoch (the last update is taken after the last loss was checked), or None."""
    for kind, arrays in (("parameter", model.params), ("running statistic", model.buffers)):
        name = non_finite(arrays)
        if name is not None:
            return f"{kind} {name!r} holds NaN or infinite values"
    for kind, value in (("training loss", train_loss), ("test loss", test_loss)):
        if not np.isfinite(value):
            return f"the {kind} is {value}"
    return None


class _NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float):
        self.step, self.value = step, value


def _train_epoch(model, loss, optimizer, batches, steps, description, progress):
    """One pass over ``batches`` of (x, y): forward, loss, backward, update.

    Returns (mean loss, accuracy, seconds); raises ``_NonFiniteLoss`` before updating on a NaN or infinite loss.
    """
    from tqdm import tqdm

    began, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
    bar = tqdm(batches, total=steps, desc=description, disable=None if progress else True)
    for step, (x, y) in enumerate(bar, start=1):
        out = model.forward(x)
        value = loss.forward(out, y)
        if not np.isfinite(value):
            raise _NonFiniteLoss(step, value)
        model.backward(loss.backward(), input_grad=False)  # the images need no gradient
        optimizer.step(model.grads)

        seen += len(y)
        correct += int(np.sum(out.argmax(axis=1) == y))
        loss_sum += value * len(y)
        rate = seen / (time.perf_counter() - began)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", img_s=f"{rate:.0f}", refresh=False)
    return loss_sum / seen, correct / seen, time.perf_counter() - began
