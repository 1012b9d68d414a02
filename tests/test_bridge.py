"""handgrad.torch_bridge: the equivalent torch.nn module, parameters both ways, state_dicts, and handgrad
without torch installed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import assert_close
from torch import nn

from handgrad import Sequential, presets
from handgrad import torch_bridge as tb
from handgrad.layers import Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh
from handgrad.model import named_leaves


def _odd_model(rng):
    """Every layer kind, true convolution, strides, off-origin centres, pool padding beyond half the window."""
    return Sequential(
        [
            Conv2D(2, 4, 3, stride=2, padding=1, mode="conv", center=(2, 1), dtype=np.float64, rng=rng),
            Tanh(),
            MaxPool2D(3, stride=2, padding=1, mode="conv", center=(1, 1)),
            Conv2D(4, 3, (2, 3), padding=(0, 1), center=(1, 2), dtype=np.float64, rng=rng),
            Sigmoid(),
            MaxPool2D(2, stride=1, padding=1),
            ReLU(),
            Flatten(),
            Linear(3 * 4 * 4, 5, dtype=np.float64, rng=rng),
            Softmax(),
        ]
    )


def _options_model(rng):
    """Dilation, groups, padding modes, 'same' padding, ceil_mode."""
    kw = {"dtype": np.float64, "rng": rng}
    return Sequential(
        [
            Conv2D(2, 4, 3, padding="same", dilation=2, padding_mode="reflect", mode="conv", center=(0, 1), **kw),
            ReLU(),
            Conv2D(4, 4, 3, padding=1, groups=4, padding_mode="circular", **kw),
            MaxPool2D(2, ceil_mode=True),
            Conv2D(4, 6, (3, 2), padding=((1, 0), (0, 1)), groups=2, padding_mode="replicate", center=(2, 1), **kw),
            MaxPool2D(3, stride=1, padding=1, dilation=2, center=(1, 1)),
            Flatten(),
            Linear(6 * 4 * 4, 3, **kw),
        ]
    )


def _blocks_model(rng):
    """Batch normalisation in both forms, residual blocks, LeakyReLU, ELU, average pooling, dropout (eval)."""
    from handgrad.layers import ELU, AvgPool2D, BatchNorm1D, BatchNorm2D, Dropout, GlobalAvgPool2D, LeakyReLU, Residual

    kw = {"dtype": np.float64, "rng": rng}
    return Sequential(
        [
            Conv2D(2, 4, 3, padding=1, **kw),
            BatchNorm2D(4, dtype=np.float64),
            LeakyReLU(0.2),
            Residual([Conv2D(4, 4, 3, padding=1, **kw), ELU(0.5)]),
            AvgPool2D(2),
            Residual([Conv2D(4, 6, 3, padding=1, **kw)], projection=Conv2D(4, 6, 1, **kw)),
            GlobalAvgPool2D(),
            Dropout(0.0),
            Linear(6, 5, **kw),
            BatchNorm1D(5, dtype=np.float64),
        ]
    )


MODELS = {name: (lambda rng, name=name: presets.build(name, rng, np.float64)[0]) for name in presets.PRESETS}
MODELS["odd"] = _odd_model
MODELS["options"] = _options_model
MODELS["blocks"] = _blocks_model


@pytest.mark.parametrize("name", list(MODELS))
def test_the_module_computes_what_the_model_computes(rng, name):
    model = MODELS[name](rng)
    if any(isinstance(layer, Dropout) and layer.p > 0 for _, layer in named_leaves(model)):
        model.eval()  # PyTorch draws its own dropout masks: the two agree in evaluation mode
    x = (
        rng.standard_normal((3, 2, 13, 11))
        if name in ("odd", "options", "blocks")
        else rng.standard_normal((3, 1, 28, 28))
    )
    module = tb.to_torch_module(model)
    y = model.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    assert_close(y, yt.detach().numpy(), 1e-12, f"{name} forward")
    dy = rng.uniform(-1, 1, size=y.shape)
    dx = model.backward(dy)
    yt.backward(torch.tensor(dy))
    assert_close(dx, xt.grad.numpy(), 1e-10, f"{name} dx")
    theirs = tb.grads_from_torch(model, module)
    assert set(theirs) == set(model.grads)
    for key, grad in model.grads.items():  # (a bias before batch normalisation has a zero gradient: floor)
        assert_close(grad, theirs[key], 1e-10, f"{name} {key}", floor=1e-3)


def test_what_pytorch_cannot_express_is_refused_clearly():
    model = Sequential([MaxPool2D(2, ceil_mode=True, center=(1, 1))])
    with pytest.raises(ValueError, match="MaxPool2D with ceil_mode and a centre"):
        tb.to_torch_module(model)


def test_running_statistics_go_both_ways_and_eval_mode_matches(rng):
    model = _blocks_model(rng)
    x = rng.standard_normal((4, 2, 8, 8))
    model.forward(x)  # training: running statistics move
    module = tb.to_torch_module(model)
    assert module.training
    np.testing.assert_array_equal(module[1].running_mean.numpy(), model.buffers["1.running_mean"])
    model.eval()
    module.eval()
    assert_close(model.forward(x), module(torch.tensor(x)).detach().numpy(), 1e-12, "eval forward")
    with torch.no_grad():
        module[1].running_var.mul_(3)
    tb.from_torch(model, module)
    np.testing.assert_array_equal(model.buffers["1.running_var"], module[1].running_var.numpy())
    fresh = _blocks_model(np.random.default_rng(5))
    tb.load_state_dict(fresh, module.state_dict())  # num_batches_tracked is skipped
    for key, value in {**model.params, **model.buffers}.items():
        np.testing.assert_array_equal({**fresh.params, **fresh.buffers}[key], value)


def test_parameters_go_both_ways(rng):
    model, other = _odd_model(rng), _odd_model(rng)
    module = tb.to_torch_module(model)
    tb.from_torch(other, module)
    for key, value in model.params.items():
        np.testing.assert_array_equal(other.params[key], value)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(2)
    tb.from_torch(other, module)
    np.testing.assert_array_equal(other.params["0.weight"], 2 * model.params["0.weight"])
    assert module[0][1].weight.dtype == torch.float64
    assert tb.params_from_torch(model, tb.to_torch_module(model)).keys() == model.params.keys()


def test_a_plain_torch_state_dict_loads_into_the_matching_model(rng):
    torch.manual_seed(0)
    plain = nn.Sequential(
        nn.Conv2d(1, 8, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    ).double()
    model, _ = presets.build("seed-cnn", rng, np.float64)
    tb.load_state_dict(model, plain.state_dict())
    x = rng.standard_normal((4, 1, 28, 28))
    assert_close(model.forward(x), plain(torch.tensor(x)).detach().numpy(), 1e-12)
    np.testing.assert_array_equal(model.params["7.weight"], plain[7].weight.detach().numpy().T)


def test_a_state_dict_for_true_convolution_keeps_the_function(rng):
    """nn.Conv2d cross-correlates; a handgrad Conv2D in mode="conv" gets the flipped kernel."""
    conv = nn.Conv2d(1, 2, 3).double()
    model = Sequential([Conv2D(1, 2, 3, mode="conv", center=(2, 2), dtype=np.float64, rng=rng)])
    tb.load_state_dict(model, conv.state_dict())
    x = rng.standard_normal((1, 1, 6, 6))
    assert_close(model.forward(x), conv(torch.tensor(x)).detach().numpy(), 1e-12)


def test_mismatched_state_dicts_are_refused_before_copying(rng):
    model, _ = presets.build("seed-cnn", rng, np.float64)
    before = {k: v.copy() for k, v in model.params.items()}
    wrong_width = nn.Sequential(nn.Conv2d(1, 8, 5), nn.Conv2d(8, 16, 5), nn.Linear(256, 64), nn.Linear(64, 10))
    with pytest.raises(
        ValueError,
        match=r"'2.weight' has shape \(256, 64\) as handgrad lays it out, layer 7 \(Linear\) needs \(256, 128\)",
    ):
        tb.load_state_dict(model, wrong_width.state_dict())
    with pytest.raises(ValueError, match="the state_dict holds 2 modules with parameters, the model 4"):
        tb.load_state_dict(model, nn.Sequential(nn.Conv2d(1, 8, 5), nn.Linear(2, 2)).state_dict())
    no_bias = nn.Sequential(
        nn.Conv2d(1, 8, 5, bias=False), nn.Conv2d(8, 16, 5), nn.Linear(256, 128), nn.Linear(128, 10)
    )
    with pytest.raises(ValueError, match=r"'0' holds \['weight'\], layer 0 \(Conv2D\) needs \['bias', 'weight'\]"):
        tb.load_state_dict(model, no_bias.state_dict())
    for key, value in model.params.items():
        np.testing.assert_array_equal(value, before[key])


def test_handgrad_works_without_torch_and_the_bridge_says_how_to_get_it():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if PyTorch were not installed\n"
        "import numpy as np, handgrad\n"
        "from handgrad import presets\n"
        "model, loss = presets.build('seed-cnn', np.random.default_rng(0))\n"
        "loss.forward(model.forward(np.zeros((2, 1, 28, 28))), np.array([1, 2]))\n"
        "model.backward(loss.backward())\n"
        "try:\n"
        "    import handgrad.torch_bridge\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "needs PyTorch" in out and ".venv/bin/pip install -e '.[compare]' (in the handgrad checkout)" in out
