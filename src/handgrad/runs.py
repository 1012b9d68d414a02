"""A training run on disk: its configuration, its checkpoint and its metrics.

::

    runs/NAME/
      config.json               the TrainConfig, for people to read
      checkpoint.safetensors    weights, running statistics, optimiser state, epoch, configuration, RNG state,
                                and the metrics of every finished epoch
      metrics.jsonl             one JSON object per finished epoch, a copy of the checkpoint's metrics

The checkpoint is the one record of a run; metrics.jsonl is written from it, after it.  A process killed
between the two writes leaves metrics.jsonl one row short, and ``train(resume=True)`` writes it again from
the checkpoint before training on, so after any crash and resume the two agree.  ``handgrad plot`` draws
the curves from the checkpoint's rows, so a damaged metrics.jsonl never stops it either.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import checkpoint, presets
from .data import DATASETS, NORMALIZATIONS, Normalizer
from .init import INITIALIZERS
from .optim import OPTIMIZERS, SCHEDULES, check_gamma, check_momentum, check_rates

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
DTYPES = ("float32", "float64")
METRIC_COLUMNS = (
    "epoch", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "train_seconds", "images_per_second"
)  # fmt: skip
PREFIXES = ("model.", "buffers.", "optimizer.")  # the checkpoint's arrays: parameters, running statistics, optimiser


@dataclass
class TrainConfig:
    """Everything that determines a run; saved in its checkpoint so that ``--resume`` needs nothing else."""

    model: str = "seed-cnn"
    dataset: str = "fashion-mnist"
    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    step_size: int = 1
    gamma: float = 0.1
    seed: int = 0
    init: str | None = None  # None: the preset's own initialiser
    normalization: str = "standard"
    dtype: str = "float32"
    train_limit: int | None = None  # train on the first N training images only
    test_limit: int | None = None  # evaluate on the first N test images only

    def __post_init__(self):
        choices = {
            "model": tuple(presets.PRESETS),
            "dataset": tuple(DATASETS),
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "normalization": NORMALIZATIONS,
            "dtype": DTYPES,
            "init": (None, *INITIALIZERS),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("epochs", "batch_size", "step_size", "seed", "train_limit", "test_limit"):
            value, least = getattr(self, name), 0 if name == "seed" else 1
            if value is None and name.endswith("_limit"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        for name in ("lr", "momentum", "weight_decay", "gamma"):
            if not _is_number(getattr(self, name)):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}")
        check_rates(self.lr, self.weight_decay, "TrainConfig")
        check_momentum(self.momentum, "TrainConfig")
        check_gamma(self.gamma, "TrainConfig")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A configuration that names every field, and nothing else (a default never fills a gap)."""
        _check_keys(values, [f.name for f in fields(cls)], "config")
        return cls(**values)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_keys(value, keys, what: str) -> None:
    """``value`` must be a JSON object with exactly ``keys``."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object with keys {list(keys)}, got {type(value).__name__}")  # noqa: TRY004 - a file's contents
    missing, unknown = [k for k in keys if k not in value], sorted(set(value) - set(keys))
    if missing or unknown:
        raise ValueError(f"{what}: missing keys {missing}, unknown keys {unknown}")


@dataclass
class RunState:
    """What a checkpoint restores; :func:`load_state` checks every field of it."""

    config: TrainConfig
    epoch: int  # epochs finished
    tensors: dict
    meta: dict
    normalizer: Normalizer
    classes: list[str]
    metrics: list[dict]  # one row per finished epoch


def save_state(run_dir, model, optimizer, config, epoch, rng, normalizer, classes, metrics) -> Path:
    """Write the checkpoint of a run after ``epoch`` finished epochs (atomically), with their ``metrics`` rows."""
    opt_tensors, opt_meta = optimizer.state_dict()
    tensors = {
        **{f"model.{k}": v for k, v in model.params.items()},
        **{f"buffers.{k}": v for k, v in model.buffers.items()},
        **{f"optimizer.{k}": v for k, v in opt_tensors.items()},
    }
    meta = {
        "epoch": epoch,
        "config": asdict(config),
        "rng": rng.bit_generator.state,
        "optimizer": opt_meta,
        "normalizer": asdict(normalizer),
        "classes": list(classes),
        "metrics": list(metrics),
    }
    path = Path(run_dir) / CHECKPOINT
    checkpoint.save(path, tensors, meta)
    return path


def load_state(run_dir) -> RunState:
    """Read and check a run's checkpoint (``run_dir`` may also be the checkpoint file itself)."""
    path = Path(run_dir)
    path = path / CHECKPOINT if path.is_dir() else path
    tensors, meta = checkpoint.load(path)
    missing = [
        key for key in ("config", "epoch", "rng", "optimizer", "normalizer", "classes", "metrics") if key not in meta
    ]
    if missing:
        raise checkpoint.CheckpointError(f"{path}: metadata lacks {missing}")
    try:
        config, epoch = TrainConfig.from_dict(meta["config"]), meta["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= config.epochs:
            raise ValueError(f"epoch must be an int in [1, {config.epochs}], got {epoch!r}")
        _check_keys(meta["normalizer"], ["mean", "std"], "normalizer")
        normalizer = Normalizer(**meta["normalizer"])
        classes = meta["classes"]
        if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"classes must be a list of at least two names, got {classes!r}")
        metrics = _checked_metrics(meta["metrics"], epoch)
    except (TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(f"{path}: bad metadata ({error})") from None
    return RunState(config, epoch, tensors, meta, normalizer, classes, metrics)


def _checked_metrics(rows, epoch: int) -> list[dict]:
    """One row per epoch 1, 2, ..., ``epoch`` in order, each with the finite numbers of ``METRIC_COLUMNS``."""
    if not isinstance(rows, list) or len(rows) != epoch:
        raise ValueError(f"metrics must hold one row for each of epochs 1 to {epoch}, got {rows!r:.80}")
    for number, row in enumerate(rows, start=1):
        _check_keys(row, METRIC_COLUMNS, f"metrics row {number}")
        if row["epoch"] != number or not all(_is_number(v) and math.isfinite(v) for v in row.values()):
            raise ValueError(f"metrics row {number} must hold finite numbers for epoch {number}, got {row}")
    return rows


def restore(state: RunState, model, optimizer=None, rng=None, where="checkpoint") -> None:
    """Load weights (and optimiser and RNG state) into live objects; nothing changes unless all of it fits.

    Every check comes first: the arrays' prefixes, the parameters and running statistics against the model,
    the RNG state on a scratch generator of ``rng``'s kind, then the optimiser's state, which
    ``load_state_dict`` itself checks before it changes anything.  What follows cannot fail.
    """
    unknown = sorted(name for name in state.tensors if not name.startswith(PREFIXES))
    if unknown:
        raise checkpoint.CheckpointError(f"{where}: arrays {unknown} are none of {list(PREFIXES)}")
    params = checkpoint.strip_prefix(state.tensors, "model.")
    buffers = checkpoint.strip_prefix(state.tensors, "buffers.")
    checkpoint.check_params(model.params, params, where)
    checkpoint.check_params(model.buffers, buffers, f"{where} (running statistics)")
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
    checkpoint.copy_params(model.params, params, where)  # cannot fail once checked
    checkpoint.copy_params(model.buffers, buffers, where)
    if rng is not None:
        rng.bit_generator.state = state.meta["rng"]


def load_model(run_dir):
    """``(model, loss, state)`` of a finished or interrupted run, in evaluation mode, ready for inference."""
    state = load_state(run_dir)
    model, loss = presets.build(
        state.config.model, np.random.default_rng(0), np.dtype(state.config.dtype), state.config.init
    )
    outputs = model.output_shape((1, *presets.INPUT_SHAPE))[-1]
    if len(state.classes) != outputs:
        raise checkpoint.CheckpointError(
            f"{run_dir}: {len(state.classes)} class names for a model with {outputs} outputs"
        )
    restore(state, model, where=str(run_dir))
    return model.eval(), loss, state


def read_metrics(run_dir) -> list[dict]:
    """The rows of a run's metrics.jsonl ([] when there is none); a line that is not a JSON object is an error
    naming the file and the line (the checkpoint's own rows are in :func:`load_state`)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    lines = enumerate(path.read_text().splitlines(), start=1)
    return [checkpoint.json_object(line, f"{path}, line {number}") for number, line in lines if line.strip()]


def write_metrics(run_dir, rows: list[dict]) -> None:
    """metrics.jsonl: one strict-JSON object per row (NaN and infinities are refused, never written)."""
    text = "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows)
    checkpoint.atomic_write(Path(run_dir) / METRICS, text.encode())


def write_config(run_dir, config: TrainConfig) -> None:
    checkpoint.atomic_write(Path(run_dir) / CONFIG, (json.dumps(asdict(config), indent=2) + "\n").encode())
