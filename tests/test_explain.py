"""handgrad explain: every number it prints is the fast kernel's."""

from __future__ import annotations

import re
import shlex
from itertools import product

import numpy as np
import pytest

from handgrad import cli, explain
from handgrad.explain import number

LINE = re.compile(r"^\s*(?P<name>\w+)\[(?P<index>[\d,]+)\] = .* = (?P<value>-?[\d.]+(?:e[-+]?\d+)?)(?: at .*)?$")


def assert_every_number_is_the_kernels(result: explain.Explanation):
    assert result.ok, result.text()
    text = result.text()
    matched = 0
    for step in result.steps:
        if step.by_hand.dtype.kind == "f" and np.all(step.kernel == np.round(step.kernel)):
            np.testing.assert_array_equal(step.by_hand, step.kernel, err_msg=step.name)  # integers: exactly
        assert explain.grid_text(step.by_hand) in text
        kernel = np.atleast_2d(step.kernel) if step.by_hand.ndim == 1 and step.kernel.ndim == 2 else step.kernel
        for line in step.lines:
            match = LINE.match(line)
            if match and match["name"] == step.name:  # a worked cell of this result: "Y[0,1] = ... = 24"
                index = tuple(int(i) for i in match["index"].split(","))
                value = kernel[index] if len(index) == kernel.ndim else np.atleast_2d(kernel)[(0, *index)]
                assert match["value"] == number(value), f"{line!r} but the kernel gives {value}"
                matched += 1
    assert matched >= result.steps[0].by_hand.size  # at least every cell of the first result was checked


CONV_CASES = [
    ((3, 3), (2, 2), 1, 0, "xcorr", None),
    ((4, 5), (3, 2), 2, 1, "conv", (1, 1)),
    ((5, 4), (3, 3), 2, 2, "xcorr", (2, 0)),
    ((3, 3), (1, 2), 3, 1, "conv", (0, 1)),
    ((5, 6), (2, 3), 1, 1, "xcorr", (1, 1), 2),
    ((6, 5), (3, 2), 2, 0, "conv", (2, 0), (2, 1)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv(case):
    assert_every_number_is_the_kernels(explain.conv(*case))


POOL_CASES = [
    ((4, 4), (2, 2), None, 0, "xcorr", None),
    ((5, 5), (3, 3), 2, 1, "conv", (1, 1)),
    ((4, 6), (2, 3), 1, 0, "xcorr", (1, 2)),
    ((5, 5), (2, 2), 1, 0, "conv", (1, 0), 2),
    ((4, 4), (3, 3), 1, 0, "xcorr", None),
]


@pytest.mark.parametrize(
    "explainer, case",
    [(explain.conv, case) for case in CONV_CASES]
    + [(explain.pool, case) for case in POOL_CASES]
    + [(explain.conv, ((5, 6), (3, 3), (1, 2), (1, 0), "xcorr", None, (2, 1)))]
    + [(explain.conv, ((4, 4), (2, 2), 1, ((0, 1), (1, 1))))],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_the_command_a_derivation_names_gives_it(explainer, case, capsys):
    """What the figures and the gallery print under a derivation runs to that same derivation."""
    result = explainer(*case)
    command, _, only_in_python = result.command.partition("  # ")
    assert command.startswith("handgrad ")
    assert cli.main(shlex.split(command)[1:]) == 0
    if only_in_python:  # uneven padding: the command runs the derivation without it, and says so
        assert only_in_python.startswith("and padding top 0, bottom 1, left 1, right 1")
        assert "padding ((0, 0), (0, 0))" in capsys.readouterr().out
    else:
        assert capsys.readouterr().out == result.text() + "\n"


def test_conv_every_centre_and_mode():
    for center, mode, stride in product(product(range(3), range(2)), ("xcorr", "conv"), (1, 2)):
        assert explain.conv((4, 4), (3, 2), stride, 1, mode, center).ok


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pool(case):
    assert_every_number_is_the_kernels(explain.pool(*case))


@pytest.mark.parametrize(
    "explainer, kwargs",
    [
        (explain.linear, {"batch": 2, "in_features": 3, "out_features": 2}),
        (explain.linear, {"batch": 3, "in_features": 2, "out_features": 4}),
        (explain.softmax, {"size": 3}),
        (explain.softmax, {"size": 5}),
        (explain.batchnorm, {"batch": 4, "features": 2}),
        (explain.batchnorm, {"batch": 3, "features": 3}),
        (explain.residual, {"batch": 2, "features": 3}),
    ],
)
def test_linear_softmax_batchnorm_residual(explainer, kwargs):
    assert_every_number_is_the_kernels(explainer(**kwargs))


def test_activations():
    result = explain.activations(7)
    assert result.ok, result.text()
    text = result.text()
    for step in result.steps:
        assert explain.grid_text(step.by_hand) in text


def test_markdown_has_the_formulas_and_the_numbers():
    result = explain.conv((3, 3), (2, 2), 1, 0, "conv", (1, 0))
    md = result.markdown()
    assert md.startswith("# True convolution") and r"\begin{bmatrix}" in md and "$$" in md
    assert "`handgrad explain conv --input 3x3 --kernel 2x2 --mode conv --center 1,0`" in md
    assert md.count("**yes**") == len(result.steps)


def test_markdown_writes_gradients_with_partial_and_leaves_other_words():
    md = explain.activations(3).markdown()
    assert "$$dropout y = " in md and r"$$dropout \partial X = " in md and r"$$relu \partial X = " in md
    assert r"\partial ropout" not in md
    assert r"$$\partial gamma = " in explain.batchnorm().markdown()


def test_command_line(capsys):
    assert (
        cli.main(
            [
                "explain",
                "conv",
                "--input",
                "3x3",
                "--kernel",
                "2x2",
                "--stride",
                "1",
                "--mode",
                "xcorr",
                "--center",
                "0,0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Y[0,0] = b + W[0,0]*Xp[0,0]" in out and out.count("yes") == 4
    for layer in ("pool", "linear", "activations", "softmax", "batchnorm", "residual"):
        assert cli.main(["explain", layer, "--markdown"]) == 0
        assert "$$" in capsys.readouterr().out
    assert cli.main(["explain", "pool", "--input", "5x5", "--stride", "1", "--dilation", "2"]) == 0
    assert "dilation (2, 2)" in capsys.readouterr().out
    assert cli.main(["explain", "conv", "--input", "2x2", "--kernel", "3x3"]) == 1
    assert "larger than the padded input" in capsys.readouterr().err
