"""Checkpoints: an exact round trip, atomic writes that survive a crash (and leave no temporary file behind),
digests that catch any damaged byte, and tampered files refused without touching the model."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import one_line_error
from PIL import Image

from handgrad import checkpoint, cli, presets, runs
from handgrad.checkpoint import CheckpointError
from handgrad.data import Normalizer
from handgrad.losses import SoftmaxCrossEntropy
from handgrad.optim import make_optimizer

ROW = {**dict.fromkeys(runs.TRAIN_COLUMNS + runs.VAL_COLUMNS, 0.5), "epoch": 1}  # a metrics row


def _about(normalizer, classes, input_shape=(1, 28, 28)):
    return {"normalizer": normalizer, "classes": classes, "input_shape": input_shape}


def _run(tmp_path, seed=0, optimizer="momentum"):
    """A seed-cnn with optimiser state after one step, saved as epoch 1 of a run."""
    rng = np.random.default_rng(seed)
    model, loss = presets.build("seed-cnn", rng)
    opt = make_optimizer(optimizer, model.params, 0.01)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    loss.forward(model.forward(x), np.array([1, 2, 3, 4]))
    model.backward(loss.backward())
    opt.step(model.grads)
    config = runs.TrainConfig(optimizer=optimizer)
    classes = [str(i) for i in range(10)]
    about = _about(Normalizer(0.5, 0.25), classes)
    runs.save_state(tmp_path, model, loss, opt, config, rng, about, runs.History([ROW], best=1))
    return model, x


def _fresh_model():
    return presets.build("seed-cnn", np.random.default_rng(99))[0]


def test_round_trip_gives_bit_identical_predictions(tmp_path):
    model, x = _run(tmp_path)
    loaded, _, state = runs.load_model(tmp_path)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert state.epoch == 1 and state.config.optimizer == "momentum"
    assert state.normalizer == Normalizer(0.5, 0.25) and state.classes[3] == "3" and state.metrics == [ROW]
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


def _tampered(tmp_path, edit, optimizer="momentum"):
    """Re-save the checkpoint with ``edit(tensors, meta)`` applied."""
    _run(tmp_path, optimizer=optimizer)
    path = tmp_path / runs.CHECKPOINT
    tensors, meta = checkpoint.load(path)
    edit(tensors, meta)
    checkpoint.save(path, tensors, meta)
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
    about = _about(Normalizer(), ["a", "b", "c"], (1, 8, 8))
    history = runs.History([ROW], best=1)
    runs.save_state(tmp_path, model, SoftmaxCrossEntropy(), optimizer, runs.TrainConfig(), rng, about, history)
    state = runs.load_state(tmp_path)
    fresh = _residual_model(np.random.default_rng(1), np.float32)
    runs.restore(state, fresh)
    for key, value in model.buffers.items():
        np.testing.assert_array_equal(fresh.buffers[key], value)
    del state.tensors["buffers.1.body.1.running_var"]
    with pytest.raises(CheckpointError, match=r"running statistics.*missing \['1.body.1.running_var'\]"):
        runs.restore(state, _residual_model(np.random.default_rng(1), np.float32))


def _header(path):
    """The safetensors header of a file, as a dict, and where its arrays' bytes begin."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), 8 + length


def _edit_header(path, edit):
    """Rewrite a file's safetensors header with ``edit(header)`` applied, the arrays' bytes unchanged."""
    header, start = _header(path)
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + path.read_bytes()[start:])


def _forge(path, tensors, meta, document=None):
    """A file with correct digests written around ``save``'s own checks, as a bug or a hand edit could."""
    from safetensors.numpy import save_file

    if document is None:
        digests = {name: checkpoint.digest(value) for name, value in tensors.items()}
        document = json.dumps({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, **meta, "sha256": digests})
    header = {"handgrad": document, checkpoint.METADATA_DIGEST: hashlib.sha256(document.encode()).hexdigest()}
    save_file(tensors, str(path), metadata=header)


@pytest.mark.parametrize("name", ["model.0.weight", "model.9.bias", "optimizer.momentum.7.weight"])
def test_damaged_bytes_in_any_array_are_refused(tmp_path, capsys, name):
    _run(tmp_path)
    path = tmp_path / runs.CHECKPOINT
    header, start = _header(path)
    begin, end = header[name]["data_offsets"]
    middle = start + (begin + end) // 2 // 4 * 4
    data = bytearray(path.read_bytes())
    data[middle : middle + 8] = bytes(b ^ 0x55 for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"array '{name}' is damaged: its SHA-256 does not match"):
        runs.load_state(tmp_path)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
    for command in (["evaluate", str(tmp_path)], ["predict", str(tmp_path), str(tmp_path / "a.png")]):
        assert cli.main(command) == 1
        one_line_error(capsys, "is damaged")


def test_damaged_metadata_is_refused(tmp_path):
    _run(tmp_path)
    path = tmp_path / runs.CHECKPOINT
    data = path.read_bytes()
    path.write_bytes(data.replace(b'\\"optimizer\\": \\"momentum\\"', b'\\"optimizer\\": \\"momentun\\"', 1))
    assert path.read_bytes() != data
    with pytest.raises(CheckpointError, match="the metadata is damaged"):
        runs.load_state(tmp_path)


def test_non_finite_values_are_never_saved_and_refused_on_load(tmp_path, capsys):
    _run(tmp_path)
    path = tmp_path / runs.CHECKPOINT
    good = path.read_bytes()
    tensors, meta = checkpoint.load(path)
    tensors["model.0.weight"][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="refusing to save 'model.0.weight', which holds NaN or infinite values"):
        checkpoint.save(path, tensors, meta)
    assert path.read_bytes() == good
    _forge(path, tensors, meta)  # a NaN weight with correct digests
    with pytest.raises(CheckpointError, match="array 'model.0.weight' holds NaN or infinite values"):
        runs.load_state(tmp_path)
    assert cli.main(["evaluate", str(tmp_path)]) == 1
    one_line_error(capsys, "holds NaN or infinite values")
    assert cli.main(["train", "--resume", str(tmp_path), "--no-progress"]) == 1
    one_line_error(capsys, "holds NaN or infinite values")
    assert sorted(p.name for p in tmp_path.iterdir()) == [runs.CHECKPOINT]  # resume wrote nothing


def test_files_without_digests_are_refused(tmp_path):
    _run(tmp_path)
    path = tmp_path / runs.CHECKPOINT
    tensors, meta = checkpoint.load(path)
    from safetensors.numpy import save_file

    document = json.dumps({"format": checkpoint.FORMAT, "version": 1, **meta})
    save_file(tensors, str(path), metadata={"handgrad": document})
    with pytest.raises(CheckpointError, match="version 1, expected .* version 2 .*no digests"):
        runs.load_state(tmp_path)


@pytest.mark.parametrize(
    "dtype, shape",
    [("BF16", [20]), ("F8_E4M3", [40]), ("F16", [20]), ("I32", [10])],
)
def test_arrays_of_other_dtypes_are_refused(tmp_path, dtype, shape):
    _run(tmp_path)
    path = tmp_path / runs.CHECKPOINT
    _edit_header(path, lambda header: header["model.9.bias"].update(dtype=dtype, shape=shape))  # still 40 bytes
    with pytest.raises(CheckpointError, match=rf"arrays of dtype \{{'model.9.bias': '{dtype}'\}}, expected F32 or F64"):
        runs.load_state(tmp_path)


@pytest.mark.parametrize("document", ["[1, 2]", '"text"', "3", "{"])
def test_metadata_that_is_not_a_json_object_is_refused(tmp_path, document):
    _run(tmp_path)
    tensors, _ = checkpoint.load(tmp_path / runs.CHECKPOINT)
    _forge(tmp_path / runs.CHECKPOINT, tensors, {}, document)
    with pytest.raises(CheckpointError, match="the metadata: expected a JSON object, found"):
        runs.load_state(tmp_path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t, m: m.update(classes=["a", "b"]), r"2 class names for a model whose output is \(10,\)"),
        (lambda t, m: m.update(classes="0123456789"), r"classes must be a list"),
        (lambda t, m: m.update(normalizer={"mean": 0.5, "std": 0.0}), r"std must be > 0, got 0.0"),
        (lambda t, m: m.update(normalizer={"mean": None, "std": 1.0}), r"mean must be a finite number"),
        (lambda t, m: m.update(epoch=11), r"epoch must be an int in \[1, 10\], got 11"),
        (lambda t, m: m["history"].update(rows=[]), r"metrics must hold one row for each of epochs 1 to 1, got \[\]"),
        (lambda t, m: m["history"]["rows"][0].pop("val_loss"), r"metrics row 1: missing keys \['val_loss'\]"),
        (lambda t, m: m["history"]["rows"][0].update(lr="fast"), r"metrics row 1 must hold finite numbers"),
        (lambda t, m: m["history"].update(best=None), r"best must be an epoch from 1 to 1"),
        (lambda t, m: m["history"].update(test={"epoch": 1}), r"the test figures: missing keys \['test_loss'"),
        (lambda t, m: m["normalizer"].pop("std"), r"normalizer must be \{'mean', 'std'\}, got"),
        (lambda t, m: m["model"]["layers"][0].update(type="Conv3D"), r"model.0: expected a layer"),
        (lambda t, m: m.update(input_shape=[1, 28]), r"input_shape must be three counts"),
        (lambda t, m: m["config"].pop("lr"), r"config: missing keys \['lr'\]"),
        (lambda t, m: m["config"].update(momentum="0.9"), r"momentum must be a number, got '0.9'"),
        (lambda t, m: m["config"].update(lr=-1.0), r"lr must be a finite number > 0, got -1.0"),
        (lambda t, m: m["config"].update(model="resnet"), r"model must be one of .*got 'resnet'"),
        (lambda t, m: m.update(config=[1]), r"bad metadata"),
    ],
    ids=[
        "few classes",
        "classes a string",
        "std 0",
        "mean null",
        "epoch",
        "metrics",
        "metrics key",
        "metrics value",
        "best",
        "test",
        "normalizer key",
        "layer",
        "input shape",
        "config key",
        "config type",
        "lr",
        "model",
        "config",
    ],
)
def test_metadata_is_checked_before_use(tmp_path, capsys, edit, message):
    path = _tampered(tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        runs.load_model(path)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
    assert cli.main(["predict", str(path), str(tmp_path / "a.png")]) == 1
    one_line_error(capsys)


def test_an_rng_state_of_another_generator_changes_nothing(tmp_path):
    other = np.random.MT19937(0).state
    other["state"]["key"] = other["state"]["key"].tolist()  # as JSON holds it
    path = _tampered(tmp_path, lambda t, m: m.update(rng=other))
    model = _fresh_model()
    optimizer = make_optimizer("momentum", model.params, 0.01)
    rng = np.random.default_rng(5)
    before, rng_before = {k: v.copy() for k, v in model.params.items()}, rng.bit_generator.state
    with pytest.raises(CheckpointError, match="the RNG state does not fit a PCG64 generator"):
        runs.restore(runs.load_state(path), model, optimizer, rng)
    _assert_untouched(model, before)
    assert optimizer.t == 0 and not optimizer.buffers["momentum"] and rng.bit_generator.state == rng_before


@pytest.mark.parametrize(
    "optimizer, edit, message",
    [
        ("momentum", lambda t: t.pop("optimizer.momentum.0.weight"), r"missing buffers \['momentum.0.weight'\]"),
        ("adam", lambda t: t.pop("optimizer.v.9.bias"), r"missing buffers \['v.9.bias'\], unexpected \[\]"),
        ("sgd", lambda t: t.update({"optimizer.momentum.0.bias": np.zeros(8, np.float32)}), r"unexpected \['mom"),
        ("momentum", lambda t: t.update({"extra.w": np.zeros(2, np.float32)}), r"arrays \['extra.w'\] are none of"),
    ],
    ids=["momentum buffer missing", "adam v missing", "sgd with a buffer", "unknown prefix"],
)
def test_resume_is_exact_or_refused(tmp_path, optimizer, edit, message):
    path = _tampered(tmp_path, lambda t, m: edit(t), optimizer)
    model = _fresh_model()
    opt = make_optimizer(optimizer, model.params, 0.01)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(CheckpointError, match=message):
        runs.restore(runs.load_state(path), model, opt, np.random.default_rng())
    _assert_untouched(model, before)
    assert opt.t == 0


KILLED_SAVE = """
import sys, time
import numpy as np
from handgrad import checkpoint

def stall(fd):  # the temporary file is written: signal the test, then wait to be killed
    open(sys.argv[2], "w").close()
    time.sleep(60)

checkpoint.os.fsync = stall
checkpoint.save(sys.argv[1], {"w": np.ones(1000, np.float32)}, {})
"""


def test_temporary_files_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    path, ready = tmp_path / runs.CHECKPOINT, tmp_path / "ready"
    process = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path), str(ready)])
    try:
        for _ in range(600):
            if ready.exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), "the saving process never reached fsync"
    finally:
        process.kill()  # SIGKILL: no finally clause runs in it
        process.wait()
    stale = tmp_path / f".{runs.CHECKPOINT}.{process.pid}.tmp"
    assert stale.exists()
    alive = tmp_path / f".{runs.CHECKPOINT}.{os.getppid()}.tmp"  # a process that still runs keeps its file
    alive.write_bytes(b"")
    impossible = tmp_path / f".{runs.CHECKPOINT}.{2**70}.tmp"
    impossible.write_bytes(b"")
    stale_best = tmp_path / f".{runs.BEST}.{process.pid}.tmp"  # best.safetensors is not written at every epoch
    stale_best.write_bytes(b"")
    _run(tmp_path)
    assert not stale.exists() and not impossible.exists() and alive.exists() and not stale_best.exists()
    assert runs.load_state(tmp_path).epoch == 1
