"""The training loop, top to bottom: data, model, optimiser, (resume), then epochs of steps, validation,
checkpoints and logs, and at the end the test set, once.

One ``numpy.random.Generator`` seeded with ``config.seed`` draws every random number of a run: the initial
weights, then each epoch's order of batches, each batch's augmentation and dropout's masks.  Its state is
saved with each checkpoint, so a resumed run draws the same batches as an uninterrupted one and ends with
bit-identical parameters (same machine, same thread count).  The validation images are drawn out of the
training images by a generator of their own, seeded with ``(VALIDATION_STREAM, seed)``: the same images for
every session of a run, whatever else the run draws.

Honest selection: after each epoch the model is scored on the validation images; the best epoch (the highest
validation accuracy, at equal accuracy the lower validation loss) is kept in ``best.safetensors``;
``early_stopping=N`` ends training after N epochs without a better one.  The test set is evaluated once, on
the chosen model, after the last epoch: it never chooses anything.

The same loop trains data-parallel on the K ranks of ``mpiexec -n K`` (a :mod:`handgrad.distributed` world;
one process is the world of one rank, where every collective is the identity): every rank draws the same
global batch order and augmentation from the run's generator and takes its share of each batch
(:func:`_batches`); one ``Allreduce`` averages the gradients and sums the step's loss and right answers
(:func:`_train_epoch`); rank 0 broadcasts the initial parameters, running statistics and generator state;
before each evaluation and checkpoint the running statistics are averaged over the ranks; every rank scores its
share of the validation and test images and the figures are summed (:func:`_evaluated`); rank 0 alone writes
the run folder, the logs and the progress.  Dropout draws its masks from the run's generator in one process, as
it always has, and from a stream of each rank's own (``distributed.stream(seed, epoch, rank)``) on K > 1 ranks.
Whatever fails on one rank, or on every rank at once, fails at an agreement point (``world.together()``, the
step's ``Allreduce``, the evaluation's sums) so that every rank stops there, rank 0 with the one message.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import distributed, presets, runs
from .checkpoint import non_finite
from .classifier import Classifier, model_arrays, model_dtype
from .data import DATASETS, Normalizer, batch_indices
from .data.augment import Augmentation
from .data.split import held_out_count, hold_out
from .describe import describe
from .evaluate import evaluate
from .fast.head import compile_with_loss
from .functional import smoothed_targets
from .logs import StepLog
from .losses import CrossEntropy, SoftmaxCrossEntropy
from .optim import make_optimizer, make_schedule

VALIDATION_STREAM = 1  # the validation split's generator is seeded with (VALIDATION_STREAM, seed)


class TrainingDiverged(RuntimeError):
    """The loss, a validation figure or a parameter stopped being finite; the last good checkpoint is left as it was."""


@dataclass
class FitResult:
    run_dir: Path | None
    history: runs.History  # every finished epoch's row (earlier sessions' included), the best epoch, the test figures
    classifier: Classifier  # the chosen model: the best validation epoch's, or the last one without validation data
    seconds: float  # of this session
    resumed_after: int = 0  # epochs finished before this session

    @property
    def metrics(self) -> list[dict]:
        return self.history.rows

    @property
    def test(self) -> dict | None:
        return self.history.test


def train(
    config: runs.TrainConfig,
    run_dir,
    *,
    resume=False,
    dataset=None,
    data_dir=None,
    progress=True,
    log=print,
    world=None,
):
    """``handgrad train``: the data and the preset ``config`` names, then training as :func:`fit` trains, into
    ``run_dir`` (or on with the run there, ``resume=True``).  ``dataset`` may be given already loaded (tests do).
    ``world``: the ranks to train on (by default :func:`handgrad.distributed.world`: those of ``mpiexec``, or this
    process alone).

    Everything that can be checked before training is checked before the run folder is created or changed.
    """
    run_dir = Path(run_dir)
    world = distributed.world() if world is None else world
    with world.together():  # a checkpoint that one rank cannot read stops every rank
        state = runs.open_run(run_dir, resume)
        if state is not None:
            config = runs.resumed_config(state.config, asdict(config))
            runs.check_epochs(state, config.epochs, run_dir)
        finished = state is not None and state.history.finished(config.epochs)
        if config.model is None and not finished:
            raise ValueError(f"{run_dir} was trained by handgrad.fit on a model of its own: resume it there")
    if finished:
        return _complete(world, run_dir, state)
    data = dataset
    for first in (True, False):  # rank 0 first: it may download a named dataset into the cache the others read
        with world.together():  # a file that one rank cannot read stops every rank
            if data is None and world.root == first:
                data = config.load_data(data_dir)
    with world.together():
        data.check()
        if config.dataset not in DATASETS and Path(config.dataset).is_dir():
            # a folder's image size and channels, written down so that `handgrad evaluate` reads the same images
            config = replace(config, image_size=list(data.input_shape[1:]), channels=data.input_shape[0])
        rng = np.random.default_rng(config.seed)
        model, loss = presets.build(
            config.model, rng, np.dtype(config.dtype), config.init, data.input_shape, len(data.classes)
        )
    return _run(model, loss, data, config, state, rng, run_dir, progress, log, world)


def fit(
    model,
    loss,
    data,
    /,
    config=None,
    *,
    rng=None,
    out=None,
    resume=False,
    progress=True,
    log=print,
    world=None,
    **options,
):
    """Train ``model`` with ``loss`` on ``data`` (a :class:`~handgrad.data.Dataset`); return a :class:`FitResult`.

    The settings come from ``config`` (a :class:`~handgrad.runs.TrainConfig`) or as keywords over the defaults
    (``presets.DEFAULTS``, with ``val_split=0.1`` and no early stopping; ``model="seed-cnn"`` and the like take
    that preset's own).  ``rng`` is the run's one
    generator: pass the one that drew the model's weights (by default one seeded with ``seed`` is made).  With
    ``out``, a folder, the checkpoints, ``best.safetensors`` and the logs are written there, and ``resume=True``
    continues the run in it (given the same model and data; only ``epochs`` may change).  Without ``out``
    nothing is written.  ``progress``: a progress bar on a terminal, otherwise a line every ``log_every`` steps.
    ``world``: the ranks to train on (by default :func:`handgrad.distributed.world`: every rank of
    ``mpiexec -n K``, each calling fit with the same arguments, or this process alone); a script run under
    ``mpiexec`` wraps its work in ``world.guard()``.

    A checkpoint is written only for a model whose parameters, running statistics and figures are all
    finite; otherwise :class:`TrainingDiverged` says where the last good checkpoint is.
    """
    run_dir = None if out is None else Path(out)
    world = distributed.world() if world is None else world
    with world.together():  # a checkpoint that one rank cannot read stops every rank
        if resume and run_dir is None:
            raise ValueError("fit: resume=True continues the run in a folder: give out")
        given = options if config is None else {**asdict(config), **options}
        state = None if run_dir is None else runs.open_run(run_dir, resume)
        if state is not None:
            config = runs.resumed_config(state.config, given)
            runs.check_epochs(state, config.epochs, run_dir)
        else:
            config = runs.TrainConfig(**({"model": None, "dataset": None} | given))
    if state is not None and state.history.finished(config.epochs):
        return _complete(world, run_dir, state)
    return _run(model, loss, data, config, state, rng, run_dir, progress, log, world)


def _run(model, loss, data, config, state, rng, run_dir, progress, log, world) -> FitResult:
    """:func:`fit` once its run is open: ``config`` its settings, ``state`` the checkpoint it continues (or None)."""
    log = log if world.root else _silent
    resumed_after = state.epoch if state is not None else 0  # the history grows as this session trains

    with world.together():  # every rank checks the same data and model; rank 0 alone writes
        rng = np.random.default_rng(config.seed) if rng is None else rng
        dtype = model_dtype(model)
        if run_dir is not None:
            describe(model, loss)  # a model that its checkpoints could not describe is refused before it trains

        # data: the validation images held out of the training images, the normaliser fitted on the rest
        data.check()
        train_x, train_y = data.train_images[: config.train_limit], data.train_labels[: config.train_limit]
        test_x, test_y = data.test_images[: config.test_limit], data.test_labels[: config.test_limit]
        held = held_out_count(config.val_split, len(train_x), "--val-split")
        kept, chosen = hold_out(len(train_x), held, np.random.default_rng([VALIDATION_STREAM, config.seed]))
        val_x, val_y, train_x, train_y = train_x[chosen], train_y[chosen], train_x[kept], train_y[kept]
        try:
            normalizer = Normalizer.fit(train_x, config.normalization)
        except ValueError as error:  # images of one grey level: say whose
            raise ValueError(f"{data.title}: {error}") from None
        augmentation = Augmentation.of(config.augment, data.input_shape[1:], data.flips)
        if config.tta == "flip" and not data.flips:
            raise ValueError(
                f"tta: flip mirrors images, and a mirror changes the class of the images of {data.title}: "
                "give --tta none"
            )
        about = {"normalizer": normalizer, "classes": data.classes, "input_shape": data.input_shape, "tta": config.tta}
        log(
            f"data: {data.title}, images {data.input_shape}: {len(train_x):,} to train on, {len(val_x):,} to "
            f"validate, {len(test_x):,} to test" + (f"; {augmentation.describe()}" if augmentation else "")
        )

        # model, optimiser, schedule
        # the fast tier runs the steps (a softmax layer and cross-entropy as the fused loss); the model keeps the
        # parameters
        compiled, objective = compile_with_loss(model, loss)
        if config.label_smoothing and not isinstance(objective, (CrossEntropy, SoftmaxCrossEntropy)):
            raise ValueError(f"label_smoothing applies only to cross-entropy losses; the loss is {loss!r}")
        optimizer = make_optimizer(config.optimizer, model.params, config.lr, config.momentum, config.weight_decay)
        schedule = make_schedule(config.schedule, config.lr, config.epochs, config.step_size, config.gamma)

        # a new run, or the continuation of one
        history, best = runs.History(), None
        if state is not None:
            runs.restore(state, model, optimizer, rng, where=str(run_dir))
            history, best = state.history, _best_weights(world, run_dir, state.history, model, loss, about)
            history.test = None  # tested again after the new last epoch
            if world.root:  # a crash after the last checkpoint may have cost metrics.jsonl a row
                runs.write_metrics(run_dir, history)
            log(f"resuming {run_dir} after epoch {history.epoch} of {config.epochs}")
        elif run_dir is not None and world.root:
            run_dir.mkdir(parents=True, exist_ok=True)
        if run_dir is not None and world.root:
            runs.write_config(run_dir, config)
        log(f"model: {config.model or type(model).__name__}, {config.optimizer} lr {config.lr:g} {config.schedule}")
        log(model.summary(data.input_shape))
        if objective is not loss:
            log(f"loss: {loss!r} after the Softmax layer, taken as {objective!r} on its logits (docs/fast.md)")
        if config.label_smoothing:
            log(f"label smoothing {config.label_smoothing:g}: the training loss is on smoothed targets")
        if config.tta != "none":
            log("test-time augmentation: validation and test average each image's and its mirror's probabilities")
        if world.size > 1:
            log(f"data-parallel on {world.size} ranks: each takes its share of every batch of {config.batch_size}")
        average = world.gradient_average(model.params, getattr(loss, "reduction", "mean"))
        bar = progress and world.root and sys.stderr.isatty()
        line = log if progress and not bar else None
        logs = StepLog(run_dir if world.root else None, config.log_every, optimizer.t, line)
    world.broadcast(model_arrays(model), rng)  # every rank starts from rank 0's parameters and generator

    def score(x, y):  # (mean loss, accuracy) of the model as it stands; a non-finite one is refused below
        with np.errstate(all="ignore"):
            return evaluate(compiled.eval(), objective, x, y, normalizer, dtype, config.tta)[:2]

    began = time.perf_counter()
    try:
        for epoch in range(history.epoch, config.epochs):
            optimizer.lr = schedule(epoch)
            if world.size > 1:  # each rank's dropout masks from its own stream (one process: the run's generator)
                world.dropout_streams(compiled, config.seed, epoch)
            steps = -(-len(train_x) // config.batch_size)
            last = (
                f"the last good checkpoint, after epoch {epoch}, is {run_dir / runs.CHECKPOINT}"
                if epoch and run_dir is not None
                else "no checkpoint was written"
            )
            logs.begin_epoch(epoch + 1, config.epochs, steps)
            batches = _batches(world, train_x, train_y, config.batch_size, rng, augmentation, normalizer, dtype)
            try:
                train_loss, train_accuracy, seconds = _train_epoch(
                    compiled,
                    objective,
                    optimizer,
                    average,
                    batches,
                    steps,
                    f"epoch {epoch + 1}/{config.epochs}",
                    bar,
                    logs,
                    config.label_smoothing,
                )
            except _NonFiniteLoss as bad:
                where = f" on rank {bad.rank} of {world.size}" if world.size > 1 else ""
                raise TrainingDiverged(
                    f"the loss became {bad.value} at epoch {epoch + 1}, step {bad.step} of {steps}{where}; {last}"
                ) from None
            world.average(model.buffers)  # the ranks' running statistics, before they are evaluated and saved
            row = {"epoch": epoch + 1, "lr": optimizer.lr, "train_loss": train_loss, "train_accuracy": train_accuracy}
            figures = dict(row)  # what must be finite before the epoch's checkpoint
            if held:
                val_loss, val_accuracy = _evaluated(world, score, val_x, val_y)
                row.update(val_loss=val_loss, val_accuracy=val_accuracy)
                figures.update(row)
            else:  # nothing held out: the model after the epoch's last update is checked on a batch it trained on
                probe_x, probe_y = train_x[: config.batch_size], train_y[: config.batch_size]
                probe_loss = _evaluated(world, score, probe_x, probe_y)[0]
                figures[f"loss after the last update, on {len(probe_x)} training images,"] = probe_loss
            compiled.train()
            row.update(train_seconds=seconds, images_per_second=len(train_x) / seconds)
            with world.together():  # every rank decides alike; rank 0 alone writes
                problem = _divergence(model, figures)
                if problem:
                    raise TrainingDiverged(f"after epoch {epoch + 1} {problem}; {last}")
                history.rows.append(row)
                improved = held and (history.best is None or _better(row, history.rows[history.best - 1]))
                if improved:
                    history.best, best = epoch + 1, {k: v.copy() for k, v in model_arrays(model).items()}
                patience = config.early_stopping
                if patience and epoch + 1 < config.epochs and epoch + 1 - history.best >= patience:
                    history.stopped = f"no better validation epoch in the {patience} after epoch {history.best}"
                if run_dir is not None and world.root:
                    runs.save_state(run_dir, model, loss, optimizer, config, rng, about, history)
                    if improved:
                        runs.save_best(run_dir, model, loss, about, history.best)
                    runs.write_metrics(run_dir, history)
            logs.scalars("epoch", {k: v for k, v in row.items() if k != "epoch"})
            log(_epoch_line(row, config.epochs, improved))
            if history.stopped:
                log(f"early stopping after epoch {epoch + 1}: {history.stopped}")
                break

        # the test set, once, on the chosen model
        classifier = _chosen(model, loss, about, best)
        test_loss, test_accuracy = _evaluated(world, classifier.evaluate, test_x, test_y)
        tested = history.best or history.epoch
        with world.together():
            if not np.isfinite(test_loss):
                raise TrainingDiverged(f"the test loss of the model of epoch {tested} is {test_loss}")
            figures = {"test_loss": test_loss, "test_accuracy": test_accuracy, "test_images": len(test_y)}
            history.test = {"epoch": tested, **figures}
            if run_dir is not None and world.root:
                runs.save_state(run_dir, model, loss, optimizer, config, rng, about, history)
                runs.write_metrics(run_dir, history)
        logs.scalars("test", {"loss": test_loss, "accuracy": test_accuracy})
    finally:
        logs.close()
    which = f"the best validation epoch, {tested}" if history.best else f"the last epoch, {tested}"
    log(f"test: loss {test_loss:.4f} accuracy {test_accuracy:.4f} on {len(test_y):,} images, the model of {which}")
    return FitResult(run_dir, history, classifier, time.perf_counter() - began, resumed_after)


def _silent(*args):
    """The log of every rank but rank 0."""


def _complete(world, run_dir: Path, state: runs.RunState) -> FitResult:
    """A run with no epoch left to train: its metrics made to agree with its checkpoint, its chosen model."""
    with world.together():
        if world.root:
            runs.write_metrics(run_dir, state.history)
        classifier = runs.load_run(run_dir)[0]
    return FitResult(run_dir, state.history, classifier, 0.0, state.epoch)


def _evaluated(world, score, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(mean loss, accuracy)`` over all of ``images``: each rank scores its share with ``score(images, labels)``
    (a rank whose share is empty scores nothing), and the ranks' figures, each weighted by its share of the
    images n_r / N, are summed.  With one process the weight is 1: the figures are ``score``'s own."""
    mine, right, error = world.shard(images), world.shard(labels), None
    figures = (0.0, 0.0)
    if len(mine):
        try:
            figures = tuple(len(mine) / len(images) * figure for figure in score(mine, right))
        except Exception as failure:  # noqa: BLE001 (whatever went wrong must reach the other ranks)
            error = failure
    value, accuracy = world.sum(figures, error)
    return float(value), float(accuracy)


def _better(row: dict, best: dict) -> bool:
    """A higher validation accuracy, or the same with a lower validation loss."""
    return (row["val_accuracy"], -row["val_loss"]) > (best["val_accuracy"], -best["val_loss"])


def _best_weights(world, run_dir: Path, history: runs.History, model, loss, about) -> dict | None:
    """The arrays of a resumed run's best epoch: the restored model's when it is the last (whose best file a crash
    may have missed: rank 0 writes it again), else those of best.safetensors."""
    if history.best is None:
        return None
    if history.best == history.epoch:
        if world.root:
            runs.save_best(run_dir, model, loss, about, history.best)
        return {k: v.copy() for k, v in model_arrays(model).items()}
    return model_arrays(runs.load_run(run_dir)[0].model)


def _chosen(model, loss, about: dict, best: dict | None) -> Classifier:
    """A copy of ``model`` holding the ``best`` arrays (its own without them), as a classifier."""
    twin = copy.deepcopy(model)
    if best is not None:
        for name, value in model_arrays(twin).items():
            np.copyto(value, best[name])
    return Classifier(twin, loss, **about)


def _epoch_line(row: dict, epochs: int, improved: bool) -> str:
    text = f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} accuracy {row['train_accuracy']:.4f}"
    if "val_loss" in row:
        text += f" | val loss {row['val_loss']:.4f} accuracy {row['val_accuracy']:.4f}"
        text += " (best)" if improved else ""
    return text + f" | {row['images_per_second']:.0f} images/s"


def _divergence(model, figures: dict) -> str | None:
    """What is not finite after an epoch (the last update is taken after the last loss was checked), or None.
    ``figures`` maps what each figure is (a metrics key such as ``val_loss``, or words) to its value."""
    for kind, arrays in (("parameter", model.params), ("running statistic", model.buffers)):
        name = non_finite(arrays)
        if name is not None:
            return f"{kind} {name!r} holds NaN or infinite values"
    for name, value in figures.items():
        if not np.isfinite(value):
            return f"the {name.replace('_', ' ')} is {value}"
    return None


def _batches(world, images, labels, batch_size, rng, augmentation, normalizer, dtype):
    """This rank's share ``(x, y)`` of each of an epoch's batches: the order of the global batches and each global
    batch's augmentation are drawn from ``rng``, the same draws on every rank, then each rank takes its share."""
    for index in batch_indices(len(images), batch_size, rng):
        draws = None if augmentation is None else augmentation.draw(rng, len(index))
        mine = world.shard(index)
        pixels = images[mine] if draws is None else augmentation.apply(images[mine], *map(world.shard, draws))
        yield normalizer(pixels, dtype), labels[mine]


class _NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float, rank: int):
        super().__init__(step, value, rank)
        self.step, self.value, self.rank = step, value, rank


def _train_epoch(model, loss, optimizer, average, batches, steps, description, bar, logs, label_smoothing=0.0):
    """One pass over this rank's shares ``(x, y)`` of the batches: forward, loss (on targets smoothed by
    ``label_smoothing``: :func:`~handgrad.functional.smoothed_targets`), backward, then the gradient
    over the whole batch (``average``, a :class:`~handgrad.distributed.GradientAverage`, on every rank) and the
    update; each step counted in ``logs``.  A rank whose share is empty computes nothing and contributes nothing.

    Returns (mean loss, accuracy, seconds) over the whole batches; raises ``_NonFiniteLoss`` on every rank
    before the update when the loss of any rank's share is NaN or infinite.
    """
    from tqdm import tqdm

    began, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
    progress = tqdm(batches, total=steps, desc=description, disable=not bar)
    for step, (x, y) in enumerate(progress, start=1):
        grads, share_loss, right, error = None, 0.0, 0, None
        if len(y):
            try:
                out = model.forward(x)
                targets = smoothed_targets(y, out.shape[1], label_smoothing, out.dtype) if label_smoothing else y
                value = loss.forward(out, targets)
                if not np.isfinite(value):
                    raise _NonFiniteLoss(step, value, average.world.rank)
                model.backward(loss.backward(), input_grad=False)  # the images need no gradient
                grads, share_loss, right = model.grads, value * len(y), int(np.sum(out.argmax(axis=1) == y))
            except Exception as failure:  # noqa: BLE001 (whatever went wrong must reach the other ranks)
                error = failure
        batch = average(grads, len(y), share_loss, right, error)  # the whole batch's gradient, loss and answers
        optimizer.step(batch.grads)

        seen, correct, loss_sum = seen + batch.count, correct + batch.correct, loss_sum + batch.loss_sum
        logs.add(batch.loss_sum, batch.correct, batch.count, optimizer.lr)
        rate = seen / (time.perf_counter() - began)
        figures = {"loss": f"{loss_sum / seen:.4f}", "acc": f"{correct / seen:.4f}", "img_s": f"{rate:.0f}"}
        progress.set_postfix(figures, refresh=False)
    return loss_sum / seen, correct / seen, time.perf_counter() - began
