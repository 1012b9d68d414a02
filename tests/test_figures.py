"""handgrad explain --figure/--animate: every number a figure draws is the text derivation's and the kernel's.

The checks read the frames the figures are drawn from (and the texts of the drawn matplotlib figure), not
pixels: each grid against the derivation's array of that name and the kernel's result, each product written
in a cell against its factors, each sum of products against the kernel.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image

from handgrad import cli, explain, figures
from handgrad.explain import grid_text, number
from handgrad.explain.explanation import TOLERANCE
from handgrad.figures import draw

NOTE = re.compile(r"^×\(?(?P<factor>-?[\d.]+)\)?=(?P<product>-?[\d.]+)$")

CONV = [  # input, kernel, stride, padding, mode, centre, dilation: the tutorials' examples first
    ((3, 3), (2, 2), 1, 0, "xcorr", None, 1),
    ((5, 5), (3, 3), 2, 0, "xcorr", (1, 1), 1),
    ((5, 5), (3, 3), 2, 0, "conv", (1, 1), 1),
    ((4, 5), (3, 2), 2, 1, "conv", (2, 0), 1),
    ((5, 6), (2, 3), 1, 1, "xcorr", (1, 1), 2),
]
POOL = [
    ((4, 4), (2, 2), None, 0, "xcorr", None, 1),
    ((4, 4), (3, 3), 1, 0, "xcorr", None, 1),  # overlapping windows: gradients accumulate
    ((5, 5), (3, 3), 2, 1, "conv", (1, 1), 1),
]
TABLES = [
    (explain.linear, {}),
    (explain.linear, {"batch": 3, "in_features": 2, "out_features": 4}),
    (explain.softmax, {"size": 4}),
    (explain.batchnorm, {}),
    (explain.batchnorm, {"batch": 3, "features": 3}),
]
EVERY = [explain.conv(*c) for c in CONV] + [explain.pool(*c) for c in POOL] + [f(**kw) for f, kw in TABLES]


def _resolve(e: explain.Explanation, name: str) -> np.ndarray:
    value = np.atleast_2d(e.arrays[name.removesuffix("^T")])
    return value.T if name.endswith("^T") else value


def _marked(grid, mark):
    return [cell for cell, m in grid.marks.items() if m == mark]


def _products(grid):
    """The products written in a grid's cells, each checked against its factors: the cell's number and the
    factor written after ×."""
    products = []
    for cell, note in grid.notes.items():
        match = NOTE.match(note)
        assert match, note
        factor, product = float(match["factor"]), float(match["product"])
        assert product == factor * grid.values[cell], f"{grid.name}{cell}: {note} on {grid.values[cell]}"
        products.append(product)
    return products


def _frames(e, section_start):
    section = next(s for s in figures.sections(e) if s.heading.startswith(section_start))
    return section.frames


@pytest.mark.parametrize("e", EVERY, ids=lambda e: e.command)
def test_every_grid_holds_the_derivations_numbers(e):
    text, steps = e.text(), {step.name: step for step in e.steps}
    complete = set()
    for section in figures.sections(e):
        for frame in section.frames:
            for grid in frame.grids:
                expected, shown = _resolve(e, grid.name), ~np.isnan(grid.values)
                assert grid.values.shape == expected.shape, grid.name
                if grid.partial:  # sums still adding up: followed step by step in test_pool_winners_and_routes
                    continue
                np.testing.assert_array_equal(grid.values[shown], expected[shown], err_msg=grid.name)
                assert grid_text(e.arrays[grid.name.removesuffix("^T")]) in text  # printed by the text too
                if grid.name in steps:
                    kernel = np.atleast_2d(steps[grid.name].kernel)
                    np.testing.assert_allclose(grid.values[shown], kernel[shown], rtol=TOLERANCE, atol=TOLERANCE)
                    if shown.all():
                        complete.add(grid.name)
            assert not frame.title or any(frame.title in line or line in frame.title for line in text.splitlines())
    assert complete == set(steps)  # every result is drawn whole at least once


@pytest.mark.parametrize("case", CONV, ids=str)
def test_conv_forward_products_sum_to_the_kernels_output(case):
    e = explain.conv(*case)
    kernel, lines = e.steps[0].kernel, e.steps[0].lines
    window, bias = e.work.window, e.arrays["b"][0]
    for frame in _frames(e, "Y:"):
        xp, _, y = frame.grids
        ((i, j),) = _marked(y, "new")
        assert bias + sum(_products(xp)) == kernel[i, j]
        line = next(line for line in lines if line.startswith(f"Y[{i},{j}] ="))
        assert line.endswith(frame.title.split(" = ", 1)[1])  # the products of the text, in its order
        assert len(xp.outline) == window.kernel[0] * window.kernel[1]  # the whole kernel, in Xp or not
        assert sorted(xp.notes) == sorted(_marked(xp, "met"))


@pytest.mark.parametrize("case", CONV, ids=str)
def test_conv_kernel_coordinates_and_flip(case):
    e = explain.conv(*case)
    (frame,) = _frames(e, "The kernel")
    w, (c_h, c_w) = e.arrays["W"], e.work.window.center
    given, centred, *flipped = frame.grids
    assert given.row_labels() == [str(a) for a in range(w.shape[0])]
    assert centred.row_labels() == [str(a - c_h) for a in range(w.shape[0])]
    assert centred.col_labels() == [str(b - c_w) for b in range(w.shape[1])]
    assert _marked(centred, "centre") == [(c_h, c_w)]
    assert len(flipped) == (e.work.window.mode == "conv")
    for grid in flipped:  # flipped about the centre: the centre element stays at (0, 0)
        (cell,) = _marked(grid, "centre")
        assert grid.row_labels()[cell[0]] == grid.col_labels()[cell[1]] == "0"
        assert grid.values[cell] == w[c_h, c_w]
        np.testing.assert_array_equal(grid.values, w[::-1, ::-1])


@pytest.mark.parametrize("case", CONV, ids=str)
def test_conv_dw_one_frame_per_kernel_cell(case):
    e = explain.conv(*case)
    kernel = e.steps[2].kernel
    frames = _frames(e, "dW:")
    assert len(frames) == kernel.size
    for frame in frames:
        xp, _, dw = frame.grids
        (cell,) = _marked(dw, "new")
        assert sum(_products(xp)) == kernel[cell]
        rows = {r for r, _ in xp.notes}
        stride = e.work.window.stride[0]
        assert len({r % stride for r in rows}) <= 1  # at stride 2 the cells one kernel cell meets are apart


def test_conv_dw_breaks_apart_at_stride_2():
    e = explain.conv((5, 5), (3, 3), 2, 0, "xcorr", (1, 1))
    for frame in _frames(e, "dW:"):
        rows = sorted({r for r, _ in frame.grids[0].notes})
        assert all(b - a == 2 for a, b in pairwise(rows))
    assert any(len({r for r, _ in f.grids[0].notes}) > 1 for f in _frames(e, "dW:"))


@pytest.mark.parametrize("case", CONV, ids=str)
def test_conv_dx_full_correlation_then_crop(case):
    e = explain.conv(*case)
    dxq, lead = e.arrays["dXq"], e.work.lead
    prepare, *slides, crop = _frames(e, "dX:")
    assert [g.name for g in prepare.grids] == ["dY", "D", "Dp"]
    assert len(slides) == dxq.size and sum(f.key for f in slides) == 1
    for frame in slides:
        dp, rot, shown = frame.grids
        (cell,) = _marked(shown, "new")
        assert sum(_products(dp)) == dxq[cell]
        assert len(dp.outline) == rot.values.size
    source, dx = crop.grids
    h, w = dx.values.shape
    assert sorted(source.outline) == sorted((lead[0] + r, lead[1] + q) for r in range(h) for q in range(w))
    np.testing.assert_array_equal(dx.values, e.steps[1].kernel)


@pytest.mark.parametrize("case", POOL, ids=str)
def test_pool_winners_and_routes(case):
    e = explain.pool(*case)
    x, dy = e.arrays["X"], e.arrays["dY"]
    y_kernel, dx_kernel = e.steps[0].kernel, e.steps[1].kernel
    for frame in _frames(e, "Y:"):
        window, y = frame.grids
        (i, j), ((r, q),) = _marked(y, "new")[0], _marked(window, "winner")
        assert x[r, q] == y_kernel[i, j] == max(x[cell] for cell in [*_marked(window, "met"), (r, q)])
        assert y.notes[i, j] == f"at {r},{q}"
    before, accumulated = np.zeros_like(x), False
    for frame in _frames(e, "dX:"):
        incoming, winner, dx = frame.grids
        (cell,) = _marked(incoming, "used")
        (target,) = _marked(dx, "new")
        assert _marked(winner, "winner") == [target]
        assert dx.values[target] == before[target] + dy[cell]
        accumulated |= before[target] != 0
        before = dx.values
    np.testing.assert_array_equal(before, dx_kernel)
    windows, stride = e.work.window.kernel, e.work.window.stride
    assert accumulated or stride[0] >= windows[0]  # overlapping windows add up, as the kernel does


@pytest.mark.parametrize("kwargs", [{}, {"batch": 3, "in_features": 2, "out_features": 4}], ids=str)
def test_linear_cells_from_the_marked_row_and_column(kwargs):
    e = explain.linear(**kwargs)
    for name in ("Y", "dX", "dW"):
        kernel = next(step.kernel for step in e.steps if step.name == name)
        overview, *cells = _frames(e, f"{name}:")
        assert [g.before for g in overview.grids][1] == "@"
        assert len(cells) == kernel.size
        for frame in cells:
            left, right, *rest = frame.grids
            (cell,) = _marked(rest[-1], "new")
            row = [left.values[c] for c in sorted(_marked(left, "used"))]
            column = [right.values[c] for c in sorted(_marked(right, "used"))]
            bias = sum(g.values[c] for g in rest[:-1] for c in _marked(g, "used"))
            assert np.dot(row, column) + bias == kernel[cell]


def test_softmax_jacobian_terms():
    e = explain.softmax(3)
    (frame,) = _frames(e, "J:")
    jac = frame.grids[1]
    assert jac.notes[1, 1] == "y1(1-y1)" and jac.notes[0, 2] == "-y0y2"


def test_a_layer_without_figures_says_which_have_them():
    with pytest.raises(ValueError, match="figures are drawn for conv, pool, linear, softmax, batchnorm; not for"):
        figures.sections(explain.activations())


@pytest.mark.parametrize("e", [EVERY[2], EVERY[4], EVERY[5], EVERY[8]], ids=lambda e: e.command)
def test_the_drawing_writes_the_frames_numbers(e):
    plt = pytest.importorskip("matplotlib.pyplot")
    sections = figures.sections(e)
    drawn = Counter(text.get_text() for text in draw.sheet(e, sections, plt).axes[0].texts)
    stills = [draw.still(s) for s in sections]
    assert not _texts([frame for _, frames in stills for frame in frames]) - drawn
    for heading, _ in stills:
        assert drawn[heading] == 1
    fig, show, count = draw.movie(e, sections, plt)
    frames = [frame for s in sections for frame in s.frames]
    assert count == len(frames)
    for k in (0, count - 1):
        show(k)
        assert not _texts([frames[k]]) - Counter(text.get_text() for text in fig.axes[0].texts)
    plt.close("all")


def _texts(frames) -> Counter:
    """What a drawing of ``frames`` must write: every worked-out number, product, caption and index label."""
    texts = Counter()
    for frame in frames:
        for grid in frame.grids:
            texts.update(number(v) for v in grid.values.ravel() if np.isfinite(v))
            texts.update(grid.notes.values())
            texts.update([grid.caption, *grid.row_labels(), *grid.col_labels()])
            texts.update([grid.before] if grid.before else [])
    return texts


def test_command_line_writes_a_png_and_a_gif(tmp_path, capsys):
    png, gif = tmp_path / "conv.png", tmp_path / "conv.gif"
    argv = ["explain", "conv", "--input", "3x3", "--kernel", "2x2", "--figure", str(png), "--animate", str(gif)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Cross-correlation of a 3x3 input") and out.count(": yes") == 4  # the text, checked
    assert out.splitlines()[-2:] == [str(png), str(gif)]
    with Image.open(png) as image:
        assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 5
    e = explain.conv((3, 3), (2, 2))
    with Image.open(gif) as image:
        assert image.format == "GIF"
        assert image.n_frames == sum(len(s.frames) for s in figures.sections(e))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["conv", "--figure", "{tmp}/x.jpg"], "--figure: expected a .png file, got"),
        (["conv", "--animate", "{tmp}/x.png"], "--animate: expected a .gif file, got"),
        (["conv", "--figure", "{tmp}/missing/x.png"], "--figure: directory"),
        (["activations", "--figure", "{tmp}/x.png"], "explain activations: figures are drawn for conv, pool"),
        (["conv", "--input", "2x2", "--kernel", "3x3", "--figure", "{tmp}/x.png"], "larger than the padded input"),
    ],
)
def test_command_line_errors(tmp_path, capsys, argv, message):
    assert cli.main(["explain", *(a.format(tmp=tmp_path) for a in argv)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("handgrad: error: ") and message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_without_matplotlib_it_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert cli.main(["explain", "pool", "--figure", str(tmp_path / "p.png")]) == 1
    printed = capsys.readouterr()
    assert (
        printed.err
        == "handgrad: error: handgrad explain needs matplotlib: .venv/bin/pip install -e '.[plot]' (in the handgrad checkout)\n"
    )
    assert not printed.out and not list(tmp_path.iterdir())


def test_a_path_that_cannot_be_written_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)  # as for a read-only directory
    assert cli.main(["explain", "pool", "--animate", str(tmp_path / "p.gif")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("handgrad: error: --animate: ") and "cannot be written (permission denied)" in err
    assert not list(tmp_path.iterdir())


def test_the_gallery_is_its_scripts(monkeypatch):
    import importlib.util
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    spec = importlib.util.spec_from_file_location("make_gallery", docs / "gallery" / "make_gallery.py")
    gallery = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, gallery)  # its dataclass looks its module up there
    spec.loader.exec_module(gallery)
    assert (docs / "gallery.md").read_text() == gallery.page()  # the page is the script's, as committed
    linked = set(re.findall(r"\]\(gallery/([^)]+)\)", gallery.page()))
    drawn = {f"{e.name}.png" for e in gallery.EXAMPLES} | {f"{e.name}.gif" for e in gallery.EXAMPLES if e.animated}
    assert linked == drawn and all((docs / "gallery" / name).is_file() for name in drawn)
    assert all(e.explanation().ok for e in gallery.EXAMPLES)
    commands = {e.explanation().command for e in gallery.EXAMPLES}
    for tutorial in (  # the tutorials' own examples
        "handgrad explain conv --input 3x3 --kernel 2x2",
        "handgrad explain conv --input 5x5 --kernel 3x3 --stride 2 --center 1,1",
        "handgrad explain conv --input 5x5 --kernel 3x3 --stride 2 --mode conv --center 1,1",
        "handgrad explain pool --input 4x4 --kernel 2x2",
    ):
        assert tutorial in commands
    assert "(docs/gallery.md)" in (docs.parent / "README.md").read_text()


def test_a_long_section_shows_some_of_its_frames_in_the_still():
    e = explain.conv((5, 6), (2, 3), 1, 1, "xcorr", (1, 1), 2)  # 5x4 outputs: 20 forward frames
    forward = next(s for s in figures.sections(e) if s.heading.startswith("Y:"))
    heading, frames = draw.still(forward)
    assert heading.endswith(f"({draw.STILL_FRAMES} of its 20 frames)")
    assert len(frames) == draw.STILL_FRAMES and frames[0] is forward.frames[0] and frames[-1] is forward.frames[-1]
