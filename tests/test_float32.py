"""The float32 path: no float64 anywhere in it, and results within 1e-4 of the float64 computation."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

import handgrad
from handgrad import Sequential, presets
from handgrad.layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Tanh


def _odd(rng, dtype):
    return Sequential(
        [
            Conv2D(1, 4, 3, stride=2, padding=1, mode="conv", center=(2, 0), dtype=dtype, rng=rng),
            Tanh(),
            MaxPool2D(3, stride=2, padding=1, center=(1, 1)),
            Conv2D(4, 6, 3, padding=1, dtype=dtype, rng=rng),
            ReLU(),
            Flatten(),
            Linear(6 * 7 * 7, 10, dtype=dtype, rng=rng),
        ]
    )


BUILDERS = {name: (lambda rng, dtype, name=name: presets.build(name, rng, dtype)) for name in presets.PRESETS}
BUILDERS["odd"] = lambda rng, dtype: (_odd(rng, dtype), presets.build("seed-cnn", rng, dtype)[1])


@pytest.mark.parametrize("name", list(BUILDERS))
def test_float32_agrees_with_float64_and_stays_float32(rng, name):
    model64, loss = BUILDERS[name](np.random.default_rng(0), np.float64)
    model32, _ = BUILDERS[name](np.random.default_rng(0), np.float32)
    for key, value in model64.params.items():
        np.copyto(model32.params[key], value)  # the same weights, rounded to float32
    x = rng.standard_normal((16, 1, 28, 28))
    labels = rng.integers(0, 10, size=16)

    out64 = model64.forward(x)
    loss.forward(out64, labels)
    dx64 = model64.backward(loss.backward())

    h = x.astype(np.float32)
    for layer in model32:
        h = layer.forward(h)
        assert h.dtype == np.float32, f"{layer!r} returned {h.dtype}"
    loss.forward(h, labels)
    g = loss.backward()
    assert g.dtype == np.float32
    for layer in reversed(model32.layers):
        g = layer.backward(g)
        assert g.dtype == np.float32, f"{layer!r} backward returned {g.dtype}"
        assert all(v.dtype == np.float32 for v in layer.grads.values()), repr(layer)
    assert model32.predict(x.astype(np.float32)).dtype == np.float32

    assert_close(h, out64, 1e-4, f"{name} output")
    assert_close(g, dx64, 1e-4, f"{name} dx")
    for key, grad in model32.grads.items():
        assert_close(grad, model64.grads[key], 1e-4, f"{name} {key}")


@pytest.mark.parametrize("name", list(BUILDERS))
def test_the_compiled_model_in_float32_agrees_with_float64(rng, name):
    """The fast tier in float32 against the formula tier in float64: output, dX and every gradient."""
    model64, loss = BUILDERS[name](np.random.default_rng(0), np.float64)
    model32, _ = BUILDERS[name](np.random.default_rng(0), np.float32)
    for key, value in model64.params.items():
        np.copyto(model32.params[key], value)
    compiled = handgrad.compile(model32)
    x, labels = rng.standard_normal((16, 1, 28, 28)), rng.integers(0, 10, size=16)
    out64 = model64.forward(x)
    loss.forward(out64, labels)
    dx64 = model64.backward(loss.backward())
    grads64 = {k: v.copy() for k, v in model64.grads.items()}

    out32 = compiled.forward(x.astype(np.float32))
    loss.forward(out32, labels)
    dx32 = compiled.backward(loss.backward())
    assert out32.dtype == dx32.dtype == np.float32
    assert_close(out32, out64, 1e-4, f"{name} output")
    assert_close(dx32, dx64, 1e-4, f"{name} dx")
    assert compiled.grads.keys() == grads64.keys()
    for key, grad in compiled.grads.items():
        assert grad.dtype == np.float32
        assert_close(grad, grads64[key], 1e-4, f"{name} {key}")
