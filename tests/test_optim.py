"""Optimisers and schedules against torch.optim: the same gradients in, the same parameters out (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_close

from handgrad.optim import SGD, Adam, make_optimizer, make_schedule

SHAPES = {"0.weight": (3, 2, 3, 3), "0.bias": (3,), "1.weight": (4, 5)}
STEPS = 6

CASES = [
    ("sgd", {}, lambda p: torch.optim.SGD(p, lr=0.1)),
    ("sgd", {"weight_decay": 0.01}, lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01)),
    ("momentum", {"momentum": 0.9}, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    (
        "nesterov",
        {"momentum": 0.8, "weight_decay": 0.02},
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.02),
    ),
    ("adam", {}, lambda p: torch.optim.Adam(p, lr=0.1)),
    ("adam", {"weight_decay": 0.05}, lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=0.05)),
]


@pytest.mark.parametrize("name, options, torch_optimizer", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_matches_torch_optim(rng, name, options, torch_optimizer):
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ours = make_optimizer(name, params, lr=0.1, **options)
    theirs = torch_optimizer(list(tensors.values()))
    for step in range(STEPS):
        grads = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
        ours.step(grads)
        for k, g in grads.items():
            tensors[k].grad = torch.tensor(g)
        theirs.step()
        for k, value in params.items():
            assert_close(value, tensors[k].detach().numpy(), 1e-12, k, f"{name} step {step + 1}")


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_state_saves_and_restores_exactly(rng, name):
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(4)]
    straight = make_optimizer(name, {k: v.copy() for k, v in params.items()}, lr=0.05)
    for g in grads:
        straight.step(g)

    first = make_optimizer(name, {k: v.copy() for k, v in params.items()}, lr=0.05)
    for g in grads[:2]:
        first.step(g)
    tensors, meta = first.state_dict()
    second = make_optimizer(name, {k: v.copy() for k, v in first.params.items()}, lr=0.05)
    second.load_state_dict({k: v.copy() for k, v in tensors.items()}, meta)
    for g in grads[2:]:
        second.step(g)
    for k in params:
        np.testing.assert_array_equal(second.params[k], straight.params[k])


def test_bad_state_changes_nothing(rng):
    params = {"w": rng.standard_normal((2, 2))}
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    optimizer.step({"w": np.ones((2, 2))})
    tensors, meta = optimizer.state_dict()
    with pytest.raises(ValueError, match=r"'momentum.w' has shape \(3,\), expected \(2, 2\)"):
        optimizer.load_state_dict({"momentum.w": np.zeros(3)}, meta)
    with pytest.raises(ValueError, match=r"missing buffers \['momentum.w'\], unexpected \['velocity.w'\]"):
        optimizer.load_state_dict({"velocity.w": np.zeros((2, 2))}, meta)
    with pytest.raises(ValueError, match=r"after 1 steps of SGD: missing buffers \['momentum.w'\], unexpected \[\]"):
        optimizer.load_state_dict({}, meta)  # momentum would restart at zero: the resumed run would differ
    for bad in ({"t": -1}, {"t": 1.5}, {"lr": float("inf")}, {"lr": "0.1"}):
        with pytest.raises(ValueError, match="step count t must be an int >= 0|lr must be a"):
            optimizer.load_state_dict(tensors, {**meta, **bad})
    with pytest.raises(ValueError, match="optimiser state is for 'Adam', not 'SGD'"):
        optimizer.load_state_dict(tensors, {**meta, "type": "Adam"})
    np.testing.assert_array_equal(optimizer.buffers["momentum"]["w"], np.ones((2, 2)))
    assert optimizer.t == 1


def test_bad_hyper_parameters_and_missing_gradients(rng):
    params = {"w": rng.standard_normal(2)}
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got 0"):
        SGD(params, lr=0)
    for lr in (float("inf"), float("nan"), float("1e400")):
        with pytest.raises(ValueError, match=f"lr must be a finite number > 0, got {lr}"):
            make_optimizer("adam", params, lr)
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0, got inf"):
        SGD(params, lr=0.1, weight_decay=float("inf"))
    for gamma in (-1.0, 0.0, float("inf")):
        with pytest.raises(ValueError, match=f"gamma must be a finite number > 0, got {gamma}"):
            make_schedule("step", 0.1, 5, 1, gamma)
    with pytest.raises(ValueError, match="nesterov needs a momentum > 0"):
        SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas must lie in \[0, 1\)"):
        Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"no gradient for \['w'\]; run backward first"):
        SGD(params, lr=0.1).step({})
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", params, 0.1)


def test_float32_parameters_stay_float32(rng):
    params = {"w": rng.standard_normal((3, 3)).astype(np.float32)}
    for name in ("sgd", "momentum", "adam"):
        optimizer = make_optimizer(name, params, lr=0.01, weight_decay=0.1)
        optimizer.step({"w": np.ones((3, 3), dtype=np.float32)})
        assert params["w"].dtype == np.float32
        assert all(b.dtype == np.float32 for slot in optimizer.buffers.values() for b in slot.values())


def _torch_lrs(make_scheduler, epochs):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(
    "name, options, make_scheduler",
    [
        ("constant", {}, lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1.0)),
        ("step", {"step_size": 3, "gamma": 0.5}, lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        ("cosine", {}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10)),
    ],
)
def test_schedules_match_torch(name, options, make_scheduler):
    schedule = make_schedule(name, 0.1, epochs=10, **options)
    assert_close([schedule(e) for e in range(10)], _torch_lrs(make_scheduler, 10), 1e-12, name)
