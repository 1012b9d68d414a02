"""keep_freed_memory: glibc's thresholds raised once, the user's own settings left alone, and, on glibc,
training steps that stop taking fresh pages from the operating system."""

from __future__ import annotations

import subprocess
import sys

import pytest

from handgrad import allocator, cli

TUNING = ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


class FakeMallopt:
    def __init__(self):
        self.calls = []

    def __call__(self, parameter, value):
        self.calls.append((parameter, value))
        return 1


@pytest.fixture
def mallopt(monkeypatch):
    fake = FakeMallopt()
    monkeypatch.setattr(allocator, "_mallopt", lambda: fake)
    for name in TUNING:
        monkeypatch.delenv(name, raising=False)
    return fake


def test_both_thresholds_are_raised(mallopt):
    assert allocator.keep_freed_memory()
    assert mallopt.calls == [(allocator.M_MMAP_THRESHOLD, 32 << 20), (allocator.M_TRIM_THRESHOLD, 64 << 20)]


@pytest.mark.parametrize(
    "name, value",
    [
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072"),
        ("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F:glibc.malloc.mmap_threshold=65536"),
        ("MALLOC_TRIM_THRESHOLD_", "131072"),
        ("MALLOC_MMAP_THRESHOLD_", "65536"),
    ],
)
def test_the_users_own_thresholds_stand(mallopt, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert not allocator.keep_freed_memory()
    assert mallopt.calls == []


def test_other_tunables_do_not_stop_it(mallopt, monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")
    assert allocator.keep_freed_memory() and len(mallopt.calls) == 2


def test_nothing_to_do_without_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_mallopt", lambda: None)
    assert not allocator.keep_freed_memory()


def test_the_command_line_calls_it(monkeypatch):
    called = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: called.append(True))
    assert cli.main(["explain", "activations"]) == 0
    assert called == [True]


STEPS = """
import resource, sys
import numpy as np
from handgrad import allocator, compile, presets
from handgrad.optim import SGD
if sys.argv[1] == "keep":
    assert allocator.keep_freed_memory()
rng = np.random.default_rng(0)
source, loss = presets.seed_cnn(rng)
model = compile(source)
opt = SGD(model.params, 0.01)
x, y = rng.standard_normal((64, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 64)
def step():
    loss.forward(model.forward(x), y)
    model.backward(loss.backward(), input_grad=False)
    opt.step(model.grads)
for _ in range(20):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
"""


@pytest.mark.skipif(allocator._mallopt() is None, reason="glibc's malloc only: elsewhere there is nothing to set")
def test_on_glibc_steps_stop_faulting_in_fresh_pages():
    """A seed-CNN training step after the thresholds are raised takes (almost) no page faults; this machine's
    default took about 97 a step."""

    def faults(mode):
        run = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, env={}, check=True)
        return float(run.stdout)

    kept, default = faults("keep"), faults("default")
    assert kept < 5, f"{kept} page faults a step with the thresholds raised ({default} without)"
