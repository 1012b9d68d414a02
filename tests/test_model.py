"""Sequential and the layer interface."""

from __future__ import annotations

import numpy as np
import pytest

from handgrad import Sequential
from handgrad.layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU
from handgrad.losses import SoftmaxCrossEntropy


def _seed_cnn(rng, dtype=np.float64):
    return Sequential(
        [
            Conv2D(1, 8, 5, dtype=dtype, rng=rng),
            ReLU(),
            MaxPool2D(2),
            Conv2D(8, 16, 5, dtype=dtype, rng=rng),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Linear(256, 128, dtype=dtype, rng=rng),
            ReLU(),
            Linear(128, 10, dtype=dtype, rng=rng),
        ]
    )


def test_forward_and_backward_chain_the_layers(rng):
    """Sequential gives what the layers give one after the other, and back in reverse order."""
    model = _seed_cnn(rng)
    x = rng.standard_normal((3, 1, 28, 28))
    h = x
    for layer in model:
        h = layer.forward(h)
    dy = rng.standard_normal(h.shape)
    g = dy
    for layer in reversed(model.layers):
        g = layer.backward(g)
    grads = {name: grad.copy() for name, grad in model.grads.items()}
    np.testing.assert_array_equal(model.forward(x), h)
    np.testing.assert_array_equal(model.backward(dy), g)
    for name, grad in model.grads.items():
        np.testing.assert_array_equal(grad, grads[name])
    assert g.shape == x.shape
    assert model.backward(dy, input_grad=False) is None


def test_sequential_imports_no_layer():
    """The container knows its layers only through their interface: model.py imports NumPy and the declarations,
    nothing of handgrad.layers (and so no import circle through Residual)."""
    import ast
    import inspect

    from handgrad import model as model_module

    tree = ast.parse(inspect.getsource(model_module))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"__future__", "numpy", "declarations"}


def test_params_and_grads_are_the_layers_own_arrays(rng):
    model = _seed_cnn(rng)
    assert list(model.params) == [f"{i}.{k}" for i in (0, 3, 7, 9) for k in ("weight", "bias")]
    assert model.params["7.weight"] is model[7].params["weight"]
    assert model.params["0.weight"].shape == (8, 1, 5, 5)
    assert model.params["7.weight"].shape == (256, 128)
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(rng.standard_normal((2, 1, 28, 28))), np.array([3, 7]))
    model.backward(loss.backward())
    assert set(model.grads) == set(model.params)
    for name, grad in model.grads.items():
        assert grad.shape == model.params[name].shape


def test_a_gradient_step_lowers_the_loss(rng):
    model = _seed_cnn(rng)
    x, labels = rng.standard_normal((8, 1, 28, 28)), rng.integers(0, 10, size=8)
    loss = SoftmaxCrossEntropy()
    before = loss.forward(model.forward(x), labels)
    model.backward(loss.backward())
    for name, value in model.params.items():
        value -= 0.01 * model.grads[name]
    assert loss.forward(model.forward(x), labels) < before


def test_layers_know_their_geometry():
    assert len(_seed_cnn(np.random.default_rng(0))) == 10
    conv = Conv2D(3, 4, (3, 5), stride=(1, 2), padding=1, mode="conv", center=(2, 0))
    assert conv.window.kernel == (3, 5) and conv.window.stride == (1, 2)
    assert "mode='conv', center=(2, 0)" in repr(conv)
    assert MaxPool2D(3).window.stride == (3, 3)
    pool = MaxPool2D(2)
    pool.forward(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(pool.indices[0, 0], [[5, 7], [13, 15]])


def test_summary_gives_shapes_parameters_and_flops(rng):
    table = _seed_cnn(rng, np.float32).summary((1, 28, 28))
    lines = table.splitlines()
    assert lines[0].split() == ["#", "layer", "output", "shape", "params", "FLOPs"]
    conv1 = lines[2].split()
    assert conv1[:2] == ["0", "Conv2D"] and "(8, 24, 24)" in lines[2]
    assert conv1[-2:] == ["208", f"{(2 * 25 + 1) * 8 * 24 * 24:,}"]  # 8*(25+1) params; 25 MACs + bias each
    assert "(16, 4, 4)" in lines[7] and "(256,)" in lines[8]
    assert lines[9].split()[-2:] == [f"{256 * 128 + 128:,}", f"{(2 * 256 + 1) * 128:,}"]
    assert lines[-1].split()[:2] == ["total", f"{8 * 26 + 16 * (8 * 25 + 1) + 256 * 128 + 128 + 128 * 10 + 10:,}"]


def test_output_shape_agrees_with_forward(rng):
    model = _seed_cnn(rng)
    for layer_count in range(1, len(model) + 1):
        part = Sequential(model.layers[:layer_count])
        assert part.output_shape((2, 1, 28, 28)) == part.forward(np.zeros((2, 1, 28, 28))).shape


def test_train_and_eval_modes(rng):
    model = _seed_cnn(rng)
    assert all(layer.training for layer in model)
    assert model.eval() is model and not any(layer.training for layer in model)
    x = rng.standard_normal((2, 1, 28, 28))
    y_eval = model.forward(x)
    dx_eval = model.backward(np.ones_like(y_eval))  # backward still works in evaluation mode
    model.train()
    assert all(layer.training for layer in model)
    np.testing.assert_array_equal(model.forward(x), y_eval)
    np.testing.assert_array_equal(model.backward(np.ones_like(y_eval)), dx_eval)


def test_predict_keeps_nothing_and_matches_forward(rng):
    model = _seed_cnn(rng)
    x = rng.standard_normal((3, 1, 28, 28))
    y = model.forward(x)
    before = [layer._cache for layer in model]
    np.testing.assert_array_equal(model.predict(2 * x), model.forward(2 * x))
    model.forward(x)
    before = [layer._cache for layer in model]
    model.predict(x[:2])
    assert all(a is b for a, b in zip(before, [layer._cache for layer in model]))  # predict kept nothing
    np.testing.assert_array_equal(model.predict(x), y)


def _residual_model(rng, dtype=np.float64):
    from handgrad.layers import BatchNorm2D, GlobalAvgPool2D, Residual

    kw = {"dtype": dtype, "rng": rng}
    return Sequential(
        [
            Conv2D(1, 4, 3, padding=1, **kw),
            Residual(
                [
                    Conv2D(4, 4, 3, padding=1, **kw),
                    BatchNorm2D(4, dtype=dtype),
                    ReLU(),
                    Conv2D(4, 4, 3, padding=1, **kw),
                ]
            ),
            Residual([Conv2D(4, 6, 3, stride=2, padding=1, **kw), ReLU()], projection=Conv2D(4, 6, 1, stride=2, **kw)),
            GlobalAvgPool2D(),
            Linear(6, 3, **kw),
        ]
    )


def test_residual_backward_sums_both_paths(rng):
    from handgrad.layers import Residual

    body = Sequential([Conv2D(2, 2, 3, padding=1, dtype=np.float64, rng=rng), ReLU()])
    block = Residual(body)
    x = rng.standard_normal((2, 2, 5, 5))
    y = block.forward(x)
    np.testing.assert_array_equal(y, body.forward(x) + x)
    dy = rng.standard_normal(y.shape)
    dx = block.backward(dy)
    body.forward(x)
    np.testing.assert_allclose(dx, body.backward(dy) + dy, rtol=1e-14)


def test_residual_blocks_inside_a_model(rng):
    model = _residual_model(rng)
    assert "1.body.0.weight" in model.params and "2.projection.weight" in model.params
    assert "1.body.1.running_mean" in model.buffers
    assert model.output_shape((2, 1, 8, 8)) == (2, 3) == model.forward(rng.standard_normal((2, 1, 8, 8))).shape
    assert model.eval() is model and not model[1].body[1].training
    assert "Residual" in model.summary((1, 8, 8))
    from handgrad.model import named_leaves

    names = [name for name, _ in named_leaves(model)]
    assert names[:3] == ["0", "1.body.0", "1.body.1"] and "2.projection" in names


def test_residual_shape_mismatch_is_explained(rng):
    from handgrad.layers import Residual

    block = Residual([Conv2D(2, 3, 3, dtype=np.float64, rng=rng)])
    with pytest.raises(
        ValueError, match=r"the body gives shape \(1, 3, 3, 3\) but the skip path \(1, 2, 5, 5\); give a projection"
    ):
        block.forward(np.zeros((1, 2, 5, 5)))


def test_predict_never_writes_the_callers_input():
    from handgrad.layers import Dropout

    x = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    before = x.copy()
    for layers in ([Flatten(), ReLU()], [Dropout(0.5), ReLU()], [ReLU(), ReLU()]):
        y = Sequential(layers).predict(x)
        np.testing.assert_array_equal(x, before)
        np.testing.assert_array_equal(y.reshape(x.shape), np.maximum(before, 0))
