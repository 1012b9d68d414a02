"""Checkpoints: an exact round trip, atomic writes that survive a crash, and tampered files refused
without touching the model."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from handgrad import checkpoint, presets, runs
from handgrad.checkpoint import CheckpointError
from handgrad.data import Normalizer
from handgrad.optim import make_optimizer


def _run(tmp_path, seed=0):
    """A seed-cnn with momentum state after one step, saved as epoch 1 of a run."""
    rng = np.random.default_rng(seed)
    model, loss = presets.build("seed-cnn", rng)
    optimizer = make_optimizer("momentum", model.params, 0.01)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    loss.forward(model.forward(x), np.array([1, 2, 3, 4]))
    model.backward(loss.backward())
    optimizer.step(model.grads)
    config = runs.TrainConfig(optimizer="momentum")
    runs.save_state(tmp_path, model, optimizer, config, 1, rng, Normalizer(0.5, 0.25), [str(i) for i in range(10)])
    return model, x


def _fresh_model():
    return presets.build("seed-cnn", np.random.default_rng(99))[0]


def test_round_trip_gives_bit_identical_predictions(tmp_path):
    model, x = _run(tmp_path)
    loaded, _, state = runs.load_model(tmp_path)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert state.epoch == 1 and state.config.optimizer == "momentum"
    assert state.normalizer == Normalizer(0.5, 0.25) and state.classes[3] == "3"
    for name, value in model.params.items():
        assert loaded.params[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.params[name], value)


def test_optimizer_and_rng_state_come_back(tmp_path):
    model, _ = _run(tmp_path)
    state = runs.load_state(tmp_path)
    fresh = _fresh_model()
    optimizer = make_optimizer("momentum", fresh.params, 0.01)
    rng = np.random.default_rng(12345)
    runs.restore(state, fresh, optimizer, rng)
    assert optimizer.t == 1 and set(optimizer.buffers["momentum"]) == set(model.params)
    assert rng.bit_generator.state == state.meta["rng"]


def _assert_untouched(model, before):
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, before[name])


def _tampered(tmp_path, edit):
    """Re-save the checkpoint with ``edit(tensors, meta)`` applied."""
    _run(tmp_path)
    path = tmp_path / runs.CHECKPOINT
    tensors, meta = checkpoint.load(path)
    edit(tensors, meta)
    checkpoint.save(path, tensors, {k: v for k, v in meta.items() if k not in ("format", "version")})
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t, m: t.update({"model.0.weight": np.zeros((8, 1, 3, 3), np.float32)}),
            r"'0.weight' is float32\[8, 1, 3, 3\], the model expects float32\[8, 1, 5, 5\]",
        ),
        (lambda t, m: t.update({"model.0.weight": t["model.0.weight"].astype(np.float64)}), r"'0.weight' is float64"),
        (lambda t, m: t.pop("model.9.bias"), r"missing \['9.bias'\], unexpected \[\]"),
        (
            lambda t, m: t.update({"model.10.weight": np.zeros(3, np.float32)}),
            r"missing \[\], unexpected \['10.weight'\]",
        ),
        (
            lambda t, m: t.update({"optimizer.momentum.0.weight": np.zeros(3, np.float32)}),
            r"'momentum.0.weight' has shape \(3,\)",
        ),
    ],
    ids=["wrong shape", "wrong dtype", "missing key", "extra key", "bad optimiser state"],
)
def test_mismatched_checkpoints_leave_the_model_untouched(tmp_path, edit, message):
    path = _tampered(tmp_path, edit)
    model = _fresh_model()
    optimizer = make_optimizer("momentum", model.params, 0.01)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(CheckpointError, match=message):
        runs.restore(runs.load_state(path), model, optimizer)
    _assert_untouched(model, before)
    assert optimizer.t == 0 and not optimizer.buffers["momentum"]


def test_truncated_checkpoint(tmp_path):
    _run(tmp_path)
    path = tmp_path / runs.CHECKPOINT
    data = path.read_bytes()
    for size in (0, 7, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
            runs.load_model(tmp_path)


def test_pickles_are_refused_and_never_unpickled(tmp_path):
    class Bomb:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / runs.CHECKPOINT
    path.write_bytes(pickle.dumps({"model.0.weight": Bomb()}))
    with pytest.raises(CheckpointError, match="handgrad never unpickles files"):
        runs.load_model(tmp_path)
    np.savez(tmp_path / "c.npz", w=np.array([object()], dtype=object))
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        runs.load_state(tmp_path / "c.npz")
    assert not (tmp_path / "pwned").exists()


def test_foreign_safetensors_and_bad_metadata(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="a safetensors file without handgrad's metadata"):
        runs.load_state(tmp_path / "plain.safetensors")
    path = _tampered(tmp_path, lambda t, m: m.pop("rng"))
    with pytest.raises(CheckpointError, match=r"metadata lacks \['rng'\]"):
        runs.load_state(path)
    with pytest.raises(CheckpointError, match="no checkpoint file there"):
        runs.load_state(tmp_path / "nowhere")


def test_a_crash_during_a_save_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    model, x = _run(tmp_path)
    path = tmp_path / runs.CHECKPOINT
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    for stage in ("fsync", "replace"):
        with monkeypatch.context() as patch:
            patch.setattr(checkpoint.os, stage, crash)
            with pytest.raises(OSError, match="disk full"):
                _run(tmp_path, seed=1)
        assert path.read_bytes() == good
        assert sorted(p.name for p in tmp_path.iterdir()) == [runs.CHECKPOINT]  # no temporary file left
    np.testing.assert_array_equal(runs.load_model(tmp_path)[0].forward(x), model.forward(x))


def test_running_statistics_are_saved_and_restored(tmp_path):
    from test_model import _residual_model

    from handgrad import Sequential  # noqa: F401  (the model type)

    rng = np.random.default_rng(0)
    model = _residual_model(rng, np.float32)
    model.forward(rng.standard_normal((4, 1, 8, 8)).astype(np.float32))  # move the running statistics
    optimizer = make_optimizer("sgd", model.params, 0.01)
    runs.save_state(tmp_path, model, optimizer, runs.TrainConfig(), 1, rng, Normalizer(), ["a", "b", "c"])
    state = runs.load_state(tmp_path)
    fresh = _residual_model(np.random.default_rng(1), np.float32)
    runs.restore(state, fresh)
    for key, value in model.buffers.items():
        np.testing.assert_array_equal(fresh.buffers[key], value)
    del state.tensors["buffers.1.body.1.running_var"]
    with pytest.raises(CheckpointError, match=r"running statistics.*missing \['1.body.1.running_var'\]"):
        runs.restore(state, _residual_model(np.random.default_rng(1), np.float32))
