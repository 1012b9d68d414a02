"""The benchmark script runs and reports what it measured (its speed is not tested: benchmarks are not tests)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from handgrad.allocator import _mallopt

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def run_bench(*args):
    quick = ["--blocks", "1", "--block-seconds", "0.01", "--no-memory", "--models", "seed-cnn", "mlp"]
    return subprocess.run([sys.executable, str(BENCH), *quick, *args], capture_output=True, text=True, check=False)


def test_one_core_each_limits_both_libraries_and_prints_every_workload():
    result = run_bench("--threads", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "BLAS threads: 1" in lines[0] and "(1 threads)" in lines[0] and "malloc: the C library's default" in lines[0]
    rows = [line for line in lines if line.startswith(("| seed-cnn", "| mlp"))]
    assert [row.split("|")[1:4] for row in rows] == [
        [f" {model} ", f" {batch} ", f" {mode} "]
        for model, batch in (("seed-cnn", 64), ("seed-cnn", 256), ("mlp", 128))
        for mode in ("training", "inference")
    ]
    for row in rows:
        ours, theirs, ratio = (float(cell.replace(",", "")) for cell in row.split("|")[4:7])
        assert ours > 0 and theirs > 0 and abs(ratio - ours / theirs) < 0.01 + 0.01 * ratio
    assert any(line.startswith("geometric mean of handgrad / PyTorch, training: ") for line in lines)


def test_bad_thread_count_is_refused():
    result = run_bench("--threads", "0")
    assert result.returncode == 2
    assert "--threads must be >= 1, got 0" in result.stderr


@pytest.mark.skipif(_mallopt() is None, reason="glibc's malloc only: elsewhere the flag is refused")
def test_keep_freed_memory_is_said_and_refused_where_the_environment_sets_malloc(monkeypatch):
    result = run_bench("--keep-freed-memory", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "malloc: freed memory kept" in result.stdout.splitlines()[0]
    child = [
        sys.executable,
        str(BENCH),
        "--keep-freed-memory",
        "--memory-child",
        "handgrad",
        "seed-cnn",
        "64",
        "training",
    ]
    peak = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    assert peak["peak_bytes"] > 0
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    refused = run_bench("--keep-freed-memory")
    assert refused.returncode == 2 and "the environment sets malloc's thresholds" in refused.stderr
