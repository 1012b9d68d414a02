"""Initialisers: the distributions they promise, biases, and reproducibility from one seed."""

from __future__ import annotations

import numpy as np
import pytest

from handgrad import init
from handgrad.layers import Conv2D, Linear


def _draw(name, fan_in=400, fan_out=300, seed=0):
    return init.get(name, "test")(
        np.random.default_rng(seed), (fan_in, fan_out), (fan_out,), fan_in, fan_out, np.float64
    )


def test_he_has_variance_two_over_fan_in():
    w, b = _draw("he")
    assert abs(w.std() - np.sqrt(2 / 400)) < 0.02 * np.sqrt(2 / 400)
    assert abs(w.mean()) < 0.02 * w.std() and not b.any()


def test_xavier_is_uniform_within_the_glorot_bound():
    w, b = _draw("xavier")
    bound = np.sqrt(6 / 700)
    assert w.max() <= bound and w.min() >= -bound and w.max() > 0.99 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound and not b.any()


def test_scaled_normal_is_the_tutorials_scale_times_randn():
    w, b = init.scaled_normal(0.5)(np.random.default_rng(3), (50, 40), (40,), 50, 40, np.float64)
    np.testing.assert_array_equal(w, 0.5 * np.random.default_rng(3).standard_normal((50, 40)))
    assert not b.any()


def test_default_is_pytorchs_fan_in_uniform_for_weight_and_bias():
    w, b = _draw("default")
    bound = 1 / np.sqrt(400)
    assert w.max() <= bound and w.min() >= -bound and b.max() <= bound and b.min() >= -bound
    assert b.any()


def test_layers_use_the_initialiser_and_one_seed_reproduces_them():
    a = Conv2D(3, 4, 3, init="he", rng=np.random.default_rng(7))
    b = Conv2D(3, 4, 3, init="he", rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])
    assert a.params["weight"].dtype == np.float32
    assert not a.params["bias"].any()
    linear = Linear(10, 5, bias=False, init=init.scaled_normal(0.1), rng=np.random.default_rng(0))
    assert set(linear.params) == {"weight"}


def test_unknown_initialiser():
    with pytest.raises(ValueError, match=r"Linear: init must be one of \('default', 'he', 'xavier', 'normal'\)"):
        Linear(3, 2, init="kaiming")
