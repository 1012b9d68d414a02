"""A training run on disk: its configuration, its checkpoints and its logs.

::

    runs/NAME/
      config.json               the TrainConfig, for people to read
      checkpoint.safetensors    the last epoch's weights, running statistics, optimiser state, epoch, configuration,
                                RNG state, and the history: the metrics of every finished epoch, the best
                                validation epoch, why training stopped early, the test figures
      best.safetensors          the model of the best validation epoch, a classifier's file (handgrad.load)
      metrics.jsonl             one JSON object per finished epoch (train_*, val_*), then one of the test set
                                (test_*), a copy of the checkpoint's history
      steps.csv                 every N steps: loss, accuracy, learning rate, images/s (see handgrad.logs)
      tensorboard/              the same as TensorBoard event files, when the tensorboard package is installed

The checkpoint is the one record of a run; metrics.jsonl is written from it, after it.  A process killed
between the two writes leaves metrics.jsonl one row short, and ``--resume`` writes it again from the
checkpoint before training on, so after any crash and resume the two agree.  best.safetensors is written
after the checkpoint that names its epoch: a crash between the two leaves an older best file, and then the
best epoch is the checkpoint's own, whose weights the checkpoint holds (:func:`load_run` takes them there,
``--resume`` writes the file again).  ``handgrad plot`` draws the curves from the checkpoint's rows.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import checkpoint, presets
from ._checks import is_int, is_number
from .classifier import Classifier, checked_weights, copy_weights, file_meta, from_file, model_arrays
from .data import NORMALIZATIONS, Normalizer
from .data import load as load_dataset
from .data.augment import KINDS as AUGMENTS
from .evaluate import TTAS
from .functional.losses import check_label_smoothing
from .init import INITIALIZERS
from .optim import OPTIMIZERS, SCHEDULES, check_gamma, check_momentum, check_rates

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
DTYPES = ("float32", "float64")
TRAIN_COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "train_seconds", "images_per_second")
VAL_COLUMNS = ("val_loss", "val_accuracy")
TEST_COLUMNS = ("epoch", "test_loss", "test_accuracy", "test_images")  # epoch: that of the model tested
PREFIXES = ("model.", "buffers.", "optimizer.")  # the checkpoint's arrays: parameters, running statistics, optimiser
TUNED = tuple(presets.DEFAULTS)  # the settings a preset chooses when the configuration leaves them None
ADDED = {"label_smoothing": 0.0, "tta": "none"}  # settings newer than some runs: what those runs trained with


def tuned_settings(model: str | None) -> dict:
    """The values of ``TUNED`` for a preset name, or the defaults alone for a model of fit's own (None)."""
    return presets.PRESETS[model].settings() if model is not None else presets.DEFAULTS


def option(name: str) -> str:
    """The command-line option of a setting: ``early_stopping`` is ``--early-stopping``."""
    return "--" + name.replace("_", "-")


@dataclass
class TrainConfig:
    """Everything that determines a run; saved in its checkpoint so that ``--resume`` needs nothing else.

    The settings of ``TUNED`` left None are the model's own (``presets.PRESETS[model].defaults`` over
    ``presets.DEFAULTS``); ``model=None`` is a model given to :func:`handgrad.fit` (the defaults alone),
    ``dataset=None`` data given to it.  ``val_split`` and ``test_split`` are a fraction in [0, 1) or a count.
    """

    model: str | None = "seed-cnn"
    dataset: str | None = "fashion-mnist"  # a name, a folder of class folders or an .npz file
    image_size: list[int] | None = None  # a folder's images resized to (H, W); None: the first image's size
    channels: int | None = None  # a folder's images as 1 (grey) or 3 (colour) channels; None: the first image's
    test_split: float | int | None = None  # held out of data without a test set (None: data.split.TEST_SPLIT)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    step_size: int = 1
    gamma: float = 0.1
    augment: str | None = None
    label_smoothing: float | None = None  # cross-entropy targets (1 - e) one-hot + e / K
    tta: str | None = None  # test-time augmentation of validation, test and predictions: "none" or "flip"
    val_split: float | int = 0.1
    early_stopping: int | None = None  # stop after this many epochs without a better validation epoch
    seed: int = 0
    init: str | None = None  # None: the preset's own initialiser
    normalization: str = "standard"
    dtype: str = "float32"
    train_limit: int | None = None  # train on the first N training images only (the validation split included)
    test_limit: int | None = None  # test on the first N test images only
    log_every: int = 100  # steps between rows of steps.csv and progress lines

    def load_data(self, data_dir=None):
        """The run's dataset (:func:`handgrad.data.load`) as the run reads it: its image size, channels and test
        split."""
        size = None if self.image_size is None else tuple(self.image_size)
        return load_dataset(self.dataset, data_dir, image_size=size, channels=self.channels, test_split=self.test_split)

    def __post_init__(self):
        if self.model is not None and self.model not in presets.PRESETS:
            raise ValueError(f"model must be one of {tuple(presets.PRESETS)} or None, got {self.model!r}")
        settings = tuned_settings(self.model)
        for name in TUNED:
            if getattr(self, name) is None:
                setattr(self, name, settings[name])
        if isinstance(self.image_size, tuple):
            self.image_size = list(self.image_size)
        choices = {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "normalization": NORMALIZATIONS,
            "dtype": DTYPES,
            "init": (None, *INITIALIZERS),
            "augment": AUGMENTS,
            "tta": TTAS,
            "channels": (None, 1, 3),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.dataset is not None and not isinstance(self.dataset, str):
            raise ValueError(f"dataset must be a name or a path, got {self.dataset!r}")
        optional = ("train_limit", "test_limit", "early_stopping")
        for name in ("epochs", "batch_size", "step_size", "seed", "log_every", *optional):
            value, least = getattr(self, name), 0 if name == "seed" else 1
            if value is None and name in optional:
                continue
            if not is_int(value) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        size = self.image_size
        if size is not None and not (
            isinstance(size, list) and len(size) == 2 and all(is_int(n) and n >= 1 for n in size)
        ):
            raise ValueError(f"image_size must be two counts [H, W], got {size!r}")
        for name in ("val_split", "test_split"):
            value = getattr(self, name)
            if not (value is None and name == "test_split") and not _is_split(value):
                raise ValueError(f"{name} must be a fraction in [0, 1) or a count >= 0, got {value!r}")
        check_label_smoothing(self.label_smoothing, "TrainConfig")
        if self.early_stopping is not None and not self.val_split:
            raise ValueError("early_stopping needs validation data: a val_split above 0")
        for name in ("lr", "momentum", "weight_decay", "gamma"):
            if not is_number(getattr(self, name)):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}")
        check_rates(self.lr, self.weight_decay, "TrainConfig")
        check_momentum(self.momentum, "TrainConfig")
        check_gamma(self.gamma, "TrainConfig")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A configuration that names every field, and nothing else (a default never fills a gap, except for the
        settings of ``ADDED``, which a run written before them did without)."""
        if isinstance(values, dict):
            values = {**ADDED, **values}
        _check_keys(values, [f.name for f in fields(cls)], "config")
        return cls(**values)


def _is_split(value) -> bool:
    return is_number(value) and (0 <= value < 1 if isinstance(value, float) else value >= 0)


def _check_keys(value, keys, what: str) -> None:
    """``value`` must be a JSON object with exactly ``keys``."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object with keys {list(keys)}, got {type(value).__name__}")  # noqa: TRY004 - a file's contents
    missing, unknown = [k for k in keys if k not in value], sorted(set(value) - set(keys))
    if missing or unknown:
        raise ValueError(f"{what}: missing keys {missing}, unknown keys {unknown}")


@dataclass
class History:
    """What a run has done: a row of metrics per finished epoch, the epoch of the best validation figures (None
    without validation data), why it stopped before its last epoch (None if it did not), and its test figures
    (None until the test set was evaluated, once, after the last epoch)."""

    rows: list[dict] = field(default_factory=list)
    best: int | None = None
    stopped: str | None = None
    test: dict | None = None

    @property
    def epoch(self) -> int:
        return len(self.rows)

    def finished(self, epochs: int) -> bool:
        return self.stopped is not None or self.epoch >= epochs

    def lines(self) -> list[dict]:
        """metrics.jsonl's rows: every epoch, then the test figures."""
        return self.rows + ([self.test] if self.test is not None else [])


@dataclass
class RunState:
    """What a checkpoint restores; :func:`load_state` checks every field of it.  ``classifier`` is the model of
    the last finished epoch, with its normaliser, class names and input shape."""

    config: TrainConfig
    history: History
    tensors: dict
    meta: dict
    classifier: Classifier

    @property
    def epoch(self) -> int:  # epochs finished
        return self.history.epoch

    @property
    def metrics(self) -> list[dict]:
        return self.history.rows

    @property
    def normalizer(self) -> Normalizer:
        return self.classifier.normalizer

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classifier.classes


def save_state(run_dir, model, loss, optimizer, config, rng, data_meta: dict, history: History) -> Path:
    """Write the checkpoint of a run (atomically) after ``history.epoch`` finished epochs.

    ``data_meta`` holds the classifier's other metadata: ``normalizer``, ``classes``, ``input_shape`` and ``tta``.
    """
    opt_tensors, opt_meta = optimizer.state_dict()
    tensors = {**model_arrays(model), **{f"optimizer.{k}": v for k, v in opt_tensors.items()}}
    meta = {
        **file_meta(model, loss, **data_meta),
        "epoch": history.epoch,
        "config": asdict(config),
        "rng": rng.bit_generator.state,
        "optimizer": opt_meta,
        "history": asdict(history),
    }
    path = Path(run_dir) / CHECKPOINT
    checkpoint.save(path, tensors, meta)
    checkpoint.remove_stale_temporaries(Path(run_dir) / BEST)  # best.safetensors is written only when it improves
    return path


def save_best(run_dir, model, loss, data_meta: dict, epoch: int) -> Path:
    """Write best.safetensors: the classifier of ``epoch``, the best validation epoch (see :func:`save_state`)."""
    meta = file_meta(model, loss, **data_meta)
    path = Path(run_dir) / BEST
    checkpoint.save(path, model_arrays(model), {**meta, "epoch": epoch})
    return path


def load_state(run_dir, read=None) -> RunState:
    """Read and check a run's checkpoint (``run_dir`` may also be the checkpoint file itself); ``read``: the
    file's ``(tensors, meta)`` when the caller has read it already."""
    path = Path(run_dir)
    path = path / CHECKPOINT if path.is_dir() else path
    tensors, meta = checkpoint.load(path) if read is None else read
    missing = [key for key in ("config", "epoch", "rng", "optimizer", "history") if key not in meta]
    if "model" in meta and set(missing) >= {"config", "rng", "optimizer", "history"}:  # a classifier's file
        raise checkpoint.CheckpointError(
            f"{path} is a saved model, not a run's checkpoint: give the run's folder (predict and export take "
            f"this file)"
        )
    if missing:
        raise checkpoint.CheckpointError(f"{path}: metadata lacks {missing} (a checkpoint of an older handgrad?)")
    unknown = sorted(name for name in tensors if not name.startswith(PREFIXES))
    if unknown:
        raise checkpoint.CheckpointError(f"{path}: arrays {unknown} are none of {list(PREFIXES)}")
    try:
        config, epoch = TrainConfig.from_dict(meta["config"]), meta["epoch"]
        if not is_int(epoch) or not 1 <= epoch <= config.epochs:
            raise ValueError(f"epoch must be an int in [1, {config.epochs}], got {epoch!r}")
        history = _checked_history(meta["history"], epoch, config)
    except (TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(f"{path}: bad metadata ({error})") from None
    return RunState(config, history, tensors, meta, from_file(tensors, meta, path))


def _checked_history(value, epoch: int, config: TrainConfig) -> History:
    """A history of ``epoch`` rows, each with the finite numbers of its columns, and fields that fit them."""
    _check_keys(value, [f.name for f in fields(History)], "history")
    rows, best, stopped, test = value["rows"], value["best"], value["stopped"], value["test"]
    if not isinstance(rows, list) or len(rows) != epoch:
        raise ValueError(f"metrics must hold one row for each of epochs 1 to {epoch}, got {rows!r:.80}")
    columns = TRAIN_COLUMNS + (VAL_COLUMNS if config.val_split else ())
    for number, row in enumerate(rows, start=1):
        _check_row(row, columns, f"metrics row {number}")
        if row["epoch"] != number:
            raise ValueError(f"metrics row {number} is for epoch {row['epoch']}")
    if (best is None) != (not config.val_split) or not (best is None or (is_int(best) and 1 <= best <= epoch)):
        raise ValueError(f"best must be an epoch from 1 to {epoch} (None without validation data), got {best!r}")
    if stopped is not None and not isinstance(stopped, str):
        raise ValueError(f"stopped must be a reason or None, got {stopped!r}")
    if test is not None:
        _check_row(test, TEST_COLUMNS, "the test figures")
    return History(rows, best, stopped, test)


def _check_row(row, columns, what: str) -> None:
    _check_keys(row, columns, what)
    if not all(is_number(v) and math.isfinite(v) for v in row.values()):
        raise ValueError(f"{what} must hold finite numbers, got {row}")


def open_run(run_dir, resume: bool) -> RunState | None:
    """Check a run's folder before any work: a new run needs one without a checkpoint, a resumed one its
    checkpoint (returned)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        advice = "--resume takes a run's folder" if resume else "choose another --out"
        raise ValueError(f"{run_dir} is a file, not a run folder: {advice}")
    if not resume:
        if (run_dir / CHECKPOINT).exists():
            raise FileExistsError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
        above = next(folder for folder in run_dir.absolute().parents if folder.exists())
        if not run_dir.exists() and not (above.is_dir() and os.access(above, os.W_OK | os.X_OK)):
            why = "is a file" if not above.is_dir() else "cannot be written (permission denied)"
            raise ValueError(f"{run_dir} cannot be made a run folder: {above} {why}; choose another --out")
        return None
    return load_state(run_dir)


def check_epochs(state: RunState, epochs: int, run_dir) -> None:
    if epochs < state.epoch:
        raise ValueError(f"--epochs {epochs} is fewer than the {state.epoch} epochs {run_dir} has finished")


def resumed_config(config: TrainConfig, given: dict) -> TrainConfig:
    """A run's own configuration with ``given`` settings, of which only ``epochs`` may differ.  A setting of
    ``ADDED`` given at its preset's value is the preset's, not the caller's: a run from before it keeps its own."""
    preset = tuned_settings(config.model)
    changed = sorted(
        name
        for name, value in given.items()
        if name != "epochs" and value != getattr(config, name) and not (name in ADDED and value == preset[name])
    )
    if changed:
        flags = ", ".join(option(name) for name in changed)
        raise ValueError(
            f"--resume continues a run with its own configuration; only --epochs may be given, not {flags}"
        )
    return TrainConfig(**{**asdict(config), **{name: given[name] for name in given if name == "epochs"}})


def restore(state: RunState, model, optimizer=None, rng=None, where="checkpoint") -> None:
    """Load weights (and optimiser and RNG state) into live objects; nothing changes unless all of it fits.

    Every check comes first: the parameters and running statistics against the model, the RNG state on a
    scratch generator of ``rng``'s kind, then the optimiser's state, which ``load_state_dict`` itself checks
    before it changes anything.  What follows cannot fail.
    """
    weights = checked_weights(model, state.tensors, where)
    if rng is not None:
        try:
            type(rng.bit_generator)().state = state.meta["rng"]
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            raise checkpoint.CheckpointError(
                f"{where}: the RNG state does not fit a {type(rng.bit_generator).__name__} generator ({error!r})"
            ) from None
    if optimizer is not None:
        try:
            optimizer.load_state_dict(checkpoint.strip_prefix(state.tensors, "optimizer."), state.meta["optimizer"])
        except (ValueError, KeyError, TypeError) as error:
            raise checkpoint.CheckpointError(f"{where}: {error}") from None
    copy_weights(model, weights, where)  # cannot fail once checked
    if rng is not None:
        rng.bit_generator.state = state.meta["rng"]


def load_run(run_dir, read=None) -> tuple[Classifier, RunState]:
    """``(classifier, state)`` of a run: the model it chose (that of the best validation epoch, or of the last
    epoch without validation data), in evaluation mode, and the checkpoint's state; ``read`` as for
    :func:`load_state`."""
    run_dir = Path(run_dir)
    run_dir = run_dir.parent if run_dir.name == CHECKPOINT and run_dir.is_file() else run_dir
    state = load_state(run_dir, read)
    best = state.history.best
    if best is None or best == state.epoch:  # the checkpoint holds the chosen weights
        return state.classifier, state
    tensors, meta = checkpoint.load(run_dir / BEST)
    if meta.get("epoch") != best:
        raise checkpoint.CheckpointError(
            f"{run_dir / BEST} holds the model of epoch {meta.get('epoch')!r}, the checkpoint's best epoch is {best}"
        )
    return from_file(tensors, meta, run_dir / BEST), state


def load_model(run_dir):
    """``(model, loss, state)``: :func:`load_run`'s chosen model, in evaluation mode, ready for inference."""
    classifier, state = load_run(run_dir)
    return classifier.model, classifier.loss, state


def read_metrics(run_dir) -> list[dict]:
    """The rows of a run's metrics.jsonl ([] when there is none); a line that is not a JSON object is an error
    naming the file and the line (the checkpoint's own rows are in :func:`load_state`)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    lines = enumerate(path.read_text().splitlines(), start=1)
    return [checkpoint.json_object(line, f"{path}, line {number}") for number, line in lines if line.strip()]


def write_metrics(run_dir, history: History) -> None:
    """metrics.jsonl: one strict-JSON object per row (NaN and infinities are refused, never written)."""
    text = "".join(json.dumps(row, allow_nan=False) + "\n" for row in history.lines())
    checkpoint.atomic_write(Path(run_dir) / METRICS, text.encode())


def write_config(run_dir, config: TrainConfig) -> None:
    checkpoint.atomic_write(Path(run_dir) / CONFIG, (json.dumps(asdict(config), indent=2) + "\n").encode())
