"""handgrad plot: every figure is written as a PNG, and says what it shows (read from the matplotlib figures'
texts and ticks, not from pixels)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from handgrad import cli, plots, presets, runs
from handgrad.compare import CompareResult
from handgrad.compare import figure as compare_figure
from handgrad.layers import Conv2D, Flatten, Linear
from handgrad.model import Sequential
from handgrad.plots import DPI, MAPS_WIDTH, SIZES
from handgrad.train import train

plt = pytest.importorskip("matplotlib.pyplot")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_every_plot_is_a_png_of_the_expected_size(tmp_path, capsys):
    config = runs.TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=2e-3, train_limit=256, test_limit=64)
    train(config, tmp_path, progress=False, log=lambda *a: None)
    assert cli.main(["plot", str(tmp_path), "--limit", "200"]) == 0
    written = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in written] == ["curves.png", "confusion.png", "filters.png", "feature_maps.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG"
            name = path.rsplit("/", 1)[-1].removesuffix(".png")
            width, height = SIZES[name] if name in SIZES else (MAPS_WIDTH, image.size[1] / DPI)
            assert image.size == (width * DPI, height * DPI)
            pixels = np.asarray(image.convert("L"))
            assert pixels.std() > 5  # something was drawn


@pytest.mark.parametrize("epochs", [1, 3])
def test_curves_have_whole_epoch_ticks_and_draw_validation_and_the_test_once(epochs):
    metrics = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_accuracy": 0.5, "val_accuracy": 0.6}
        for e in range(1, epochs + 1)
    ]
    test = {"epoch": 1, "test_loss": 0.7, "test_accuracy": 0.55, "test_images": 100}
    fig = plots.curves(metrics, plt, test)
    fig.canvas.draw()
    for axis in fig.axes:
        low, high = axis.get_xlim()
        ticks = [t for t in axis.get_xticks() if low <= t <= high]
        assert ticks == list(range(1, epochs + 1)), ticks
        assert [line.get_label() for line in axis.get_lines()] == ["training", "validation", "test (once)"]
        assert list(axis.get_lines()[2].get_xdata()) == [1]
    plt.close(fig)


@pytest.mark.parametrize(
    "total, says", [(10_000, "on the first 500 of the 10,000 test images (a subset"), (500, "on all 500 test images")]
)
def test_confusion_says_how_many_test_images(total, says):
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    fig = plots.confusion(labels, predictions, CLASSES, total, plt)
    title = fig.axes[0].get_title()
    assert says in title and f"accuracy {np.mean(labels == predictions):.4f}" in title
    plt.close(fig)


def test_filters_have_a_colour_scale():
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(3, 16, 3, rng=rng), Flatten(), Linear(16 * 4, 2, rng=rng)])
    fig = plots.filters(model, plt)
    bar = [axis for axis in fig.axes if axis.get_ylabel() == "weight (red +, blue -)"]
    assert len(bar) == 1
    bound = np.abs(model[0].params["weight"]).max()
    np.testing.assert_allclose(bar[0].get_ylim(), (-bound, bound), rtol=1e-6)
    images = [image for axis in fig.axes for image in axis.get_images()]
    assert len(images) == plots.MAX_FILTERS and all(image.get_clim() == (-bound, bound) for image in images)
    assert "32 of 48" in fig._suptitle.get_text()
    plt.close(fig)


@pytest.fixture(scope="module")
def fashion_maps():
    rng = np.random.default_rng(0)
    model, _ = presets.build("fashion-cnn", rng)
    model.eval()
    image = rng.integers(0, 256, (28, 28)).astype(np.uint8)
    x = ((image - 72.9) / 90.0).astype(np.float32)[None, None]
    fig = plots.feature_maps(model, image, x, 8, CLASSES, 3, plt)
    fig.canvas.draw()
    yield model, x, fig
    plt.close(fig)


def test_feature_maps_say_which_image_and_how_many_channels(fashion_maps):
    model, x, fig = fashion_maps
    predicted = CLASSES[int(np.argmax(model.predict(x)[0]))]
    title = fig._suptitle.get_text()
    assert title.startswith(f"test image 3: label Bag, predicted {predicted} (")
    assert "not drawn, unchanged at prediction: 7 Dropout, 12 Dropout, 13 Flatten, 17 Dropout" in title
    texts = [text.get_text() for axis in fig.axes for text in axis.texts]
    assert "0 Conv2D\n(32, 28, 28)\nchannels 0-7 of 32" in texts
    assert "8 Conv2D\n(64, 14, 14)\nchannels 0-7 of 64" in texts
    scores = fig.axes[-1]
    assert [t.get_text() for t in scores.get_xticklabels()] == CLASSES and scores.get_ylabel() == "score"
    bars = scores.patches
    assert [bar.get_facecolor() for bar in bars].count(bars[CLASSES.index(predicted)].get_facecolor()) == 1


def test_feature_maps_are_readable_for_fashion_cnn(fashion_maps):
    _, _, fig = fashion_maps
    renderer = fig.canvas.get_renderer()
    for axis in fig.axes:
        if axis.get_images() and axis.get_title():  # a feature map: at least 0.8 inches across
            assert axis.get_window_extent(renderer).width / fig.dpi >= 0.8
    texts = _drawn_texts(fig)
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlaps = [(a.get_text(), b.get_text()) for (a, p), (b, q) in combinations(zip(texts, boxes), 2) if p.overlaps(q)]
    assert not overlaps


def _drawn_texts(fig) -> list:
    """Every non-empty text the figure shows: titles, labels, tick labels of visible axes, free texts."""
    texts = list(fig.texts)  # the suptitle among them
    for axis in fig.axes:
        texts += [axis.title, axis._left_title, axis._right_title, *axis.texts]
        if axis.axison:
            (x0, x1), (y0, y1) = sorted(axis.get_xlim()), sorted(axis.get_ylim())
            texts += [axis.xaxis.label, axis.yaxis.label]
            texts += [t for t in axis.get_xticklabels() if x0 <= t.get_position()[0] <= x1]
            texts += [t for t in axis.get_yticklabels() if y0 <= t.get_position()[1] <= y1]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compare_draws_each_tolerance(dtype):
    from handgrad.compare import TOLERANCES

    loss_tol, param_tol = TOLERANCES[dtype]
    rows = [
        {
            "step": s,
            "loss_handgrad": 1.0,
            "loss_torch": 1.0,
            "loss_rel_diff": 1e-16,
            "grad_rel_diff": 1e-14,
            "param_rel_diff": 1e-15,
        }
        for s in range(1, 4)
    ]
    fig = compare_figure(CompareResult(rows, loss_tol, param_tol), "title", plt)
    bottom = fig.axes[1]
    levels = sorted(line.get_ydata()[0] for line in bottom.get_lines() if line.get_linestyle() == ":")
    assert levels == sorted(t for t in (loss_tol, param_tol) if t is not None)
    legend = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert f"loss tolerance {loss_tol:g}" in legend
    assert [t for t in legend if t.startswith("parameter tolerance")] == (
        [] if param_tol is None else [f"parameter tolerance {param_tol:g}"]
    )
    plt.close(fig)
