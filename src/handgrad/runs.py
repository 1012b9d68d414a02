"""A training run on disk: its configuration, its checkpoint and its metrics.

::

    runs/NAME/
      config.json               the TrainConfig, for people to read
      checkpoint.safetensors    weights, running statistics, optimiser state, epoch, configuration, RNG state
      metrics.jsonl             one JSON object per finished epoch
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import checkpoint, presets
from .data import Normalizer

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
DTYPES = ("float32", "float64")


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
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown configuration keys {sorted(unknown)}")
        return cls(**values)


@dataclass
class RunState:
    """What a checkpoint restores."""

    config: TrainConfig
    epoch: int  # epochs finished
    tensors: dict
    meta: dict

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer(**self.meta["normalizer"])

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]


def save_state(run_dir, model, optimizer, config, epoch, rng, normalizer, classes) -> Path:
    """Write the checkpoint of a run after ``epoch`` finished epochs (atomically)."""
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
    }
    path = Path(run_dir) / CHECKPOINT
    checkpoint.save(path, tensors, meta)
    return path


def load_state(run_dir) -> RunState:
    """Read and check a run's checkpoint (``run_dir`` may also be the checkpoint file itself)."""
    path = Path(run_dir)
    path = path / CHECKPOINT if path.is_dir() else path
    tensors, meta = checkpoint.load(path)
    missing = [key for key in ("config", "epoch", "rng", "optimizer", "normalizer", "classes") if key not in meta]
    if missing:
        raise checkpoint.CheckpointError(f"{path}: metadata lacks {missing}")
    try:
        config, epoch = TrainConfig.from_dict(meta["config"]), int(meta["epoch"])
    except (TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(f"{path}: bad configuration in metadata ({error})") from None
    return RunState(config, epoch, tensors, meta)


def restore(state: RunState, model, optimizer=None, rng=None, where="checkpoint") -> None:
    """Load weights (and optimiser and RNG state) into live objects; nothing changes unless all of it fits."""
    params = checkpoint.strip_prefix(state.tensors, "model.")
    buffers = checkpoint.strip_prefix(state.tensors, "buffers.")
    checkpoint.check_params(model.params, params, where)
    checkpoint.check_params(model.buffers, buffers, f"{where} (running statistics)")
    if optimizer is not None:
        try:  # checks everything before it changes anything
            optimizer.load_state_dict(checkpoint.strip_prefix(state.tensors, "optimizer."), state.meta["optimizer"])
        except (ValueError, KeyError) as error:
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
    restore(state, model, where=str(run_dir))
    return model.eval(), loss, state


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(run_dir, rows: list[dict]) -> None:
    checkpoint.atomic_write(Path(run_dir) / METRICS, "".join(json.dumps(row) + "\n" for row in rows).encode())


def write_config(run_dir, config: TrainConfig) -> None:
    checkpoint.atomic_write(Path(run_dir) / CONFIG, (json.dumps(asdict(config), indent=2) + "\n").encode())
