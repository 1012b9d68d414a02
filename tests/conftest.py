from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Property-based tests (test_mutated_files.py): a few hundred reproducible examples in the suite;
# ``pytest --hypothesis-profile thorough`` draws thousands of fresh ones.
settings.register_profile(
    "handgrad",
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("handgrad"), max_examples=5000, derandomize=False)
settings.load_profile("handgrad")  # --hypothesis-profile, applied after this file is read, overrides it

# (layer, oracle) -> [configurations checked, worst relative error]; printed after the run.
ORACLE_REPORT = defaultdict(lambda: [0, 0.0])


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: failures reproduce."""
    return np.random.default_rng(1234)


@pytest.fixture
def record():
    """``record(layer, oracle, *errors)``: count one configuration checked and keep the worst error."""

    def add(layer, oracle, *errors):
        entry = ORACLE_REPORT[(layer, oracle)]
        entry[0] += 1
        entry[1] = max(entry[1], *errors)

    return add


def pytest_terminal_summary(terminalreporter):
    if not ORACLE_REPORT:
        return
    terminalreporter.section("oracles: configurations checked and worst relative error")
    for (layer, oracle), (count, worst) in sorted(ORACLE_REPORT.items()):
        terminalreporter.write_line(f"{layer:<22} {oracle:<10} {count:>6} configurations   worst {worst:.2e}")
