"""Figures of a training run, written as PNG files next to it (matplotlib, Agg backend; ``handgrad[plot]``).

- ``curves.png``: loss and accuracy per epoch, training and validation, and the test figures of the chosen epoch;
- ``confusion.png``: the confusion matrix on the test set, or on the first N images of it (``--limit``);
- ``filters.png``: the first convolution's kernels, on one colour scale drawn beside them;
- ``feature_maps.png``: one test image, its label and the prediction, and what every layer makes of it.

Each figure is built by a function that returns the matplotlib figure (the tests read its texts and ticks);
:func:`plot_run` saves them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .evaluate import confusion_matrix, evaluate_run
from .model import named_leaves
from .mpl import pyplot

DPI = 100
SIZES = {"curves": (10, 4), "confusion": (7, 6), "filters": (9, 4.5)}  # inches
MAPS_PER_LAYER = 8
MAX_FILTERS = 32
MAPS_WIDTH, MAPS_ROW = 12, 1.2  # feature_maps.png: inches wide, and per row (the input, then each layer drawn)


def curves(metrics: list[dict], plt, test: dict | None = None):
    """Loss and accuracy per epoch, training and (when the run had validation data) validation, and the test
    figures of the model tested, at its epoch; epochs are whole numbers, and so are the ticks."""
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=SIZES["curves"], layout="constrained")
    epochs = [row["epoch"] for row in metrics]
    for axis, key in ((left, "loss"), (right, "accuracy")):
        axis.plot(epochs, [row[f"train_{key}"] for row in metrics], "o-", label="training")
        if "val_loss" in metrics[0]:
            axis.plot(epochs, [row[f"val_{key}"] for row in metrics], "s-", label="validation")
        if test is not None:
            axis.plot([test["epoch"]], [test[f"test_{key}"]], "*", markersize=12, label="test (once)")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axis.legend()
        axis.grid(alpha=0.3)
    fig.suptitle("training curves")
    return fig


def confusion(labels, predictions, classes, total: int, plt):
    """The confusion matrix of ``len(labels)`` test images out of ``total``; the title says which."""
    matrix = confusion_matrix(labels, predictions, len(classes))
    fig, axis = plt.subplots(figsize=SIZES["confusion"], layout="constrained")
    image = axis.imshow(matrix, cmap="Blues")
    for (t, p), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axis.text(p, t, str(count), ha="center", va="center", fontsize=7, color=colour)
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(classes)), classes, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    images = (
        f"the first {len(labels):,} of the {total:,} test images (a subset: --limit)"
        if len(labels) < total
        else f"all {total:,} test images"
    )
    axis.set_title(f"confusion matrix on {images}\naccuracy {np.mean(labels == predictions):.4f}", fontsize=10)
    fig.colorbar(image, label="images")
    return fig


def filters(model, plt):
    """The first convolution's kernels, one panel per (output, input) channel pair (up to MAX_FILTERS), on one
    colour scale symmetric about zero; None for a model without a convolution."""
    conv = next((layer for _, layer in named_leaves(model) if type(layer).__name__ == "Conv2D"), None)
    if conv is None:
        return None
    weight = conv.params["weight"]  # (O, C, kH, kW)
    pairs = [(o, c) for o in range(weight.shape[0]) for c in range(weight.shape[1])]
    panels = pairs[:MAX_FILTERS]
    cols = min(8, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=SIZES["filters"], layout="constrained")
    bound = float(np.abs(weight).max())
    for axis in axes.flat:
        axis.axis("off")
    for axis, (o, c) in zip(axes.flat, panels):
        image = axis.imshow(weight[o, c], cmap="RdBu_r", vmin=-bound, vmax=bound)
        axis.set_title(f"{o}" if weight.shape[1] == 1 else f"{o}<-{c}", fontsize=8)
    fig.colorbar(image, ax=axes, label="weight (red +, blue -)", shrink=0.9)
    shown = f"all {len(pairs)}" if len(panels) == len(pairs) else f"{len(panels)} of {len(pairs)}"
    fig.suptitle(f"first convolution's {weight.shape[2]}x{weight.shape[3]} kernels: {shown}, one colour scale")
    return fig


def feature_maps(model, image: np.ndarray, x: np.ndarray, label: int, classes, index: int, plt):
    """The image, then each layer's output: up to MAPS_PER_LAYER maps for images (each on its own colour
    scale), bars for vectors (the last one per class).  Layers that pass their input on unchanged at
    prediction (dropout, flatten) are named instead of drawn again."""
    outputs, unchanged, h = [], [], x
    for i, layer in enumerate(model):
        out = layer.predict(h)
        name = f"{i} {type(layer).__name__}"
        if out.size == h.size and np.array_equal(out.ravel(), h.ravel()):
            unchanged.append(name)
        else:
            outputs.append((name, out[0]))
        h = out
    predicted = int(np.argmax(h[0]))
    fig = plt.figure(figsize=(MAPS_WIDTH, MAPS_ROW * (len(outputs) + 1) + 0.8), layout="constrained")
    grid = fig.add_gridspec(len(outputs) + 1, MAPS_PER_LAYER + 1, width_ratios=[2.2] + [1] * MAPS_PER_LAYER)
    _row_label(fig.add_subplot(grid[0, 0]), f"input\ntest image {index}\nlabel: {classes[label]}")
    axis = fig.add_subplot(grid[0, 1])
    axis.imshow(image if image.ndim == 2 else image.transpose(1, 2, 0), cmap="gray")  # (C, H, W) -> (H, W, C)
    axis.axis("off")
    for row, (name, value) in enumerate(outputs, start=1):
        if value.ndim == 3:  # (C, H, W): the first feature maps side by side
            drawn = min(MAPS_PER_LAYER, value.shape[0])
            _row_label(
                fig.add_subplot(grid[row, 0]), f"{name}\n{value.shape}\nchannels 0-{drawn - 1} of {value.shape[0]}"
            )
            for k in range(drawn):
                axis = fig.add_subplot(grid[row, k + 1])
                axis.imshow(value[k], cmap="viridis")
                axis.set_title(str(k), fontsize=7, pad=2)
                axis.axis("off")
        else:  # (K,): bars across the row, one per feature (per class for the scores)
            per_class = value.size == len(classes) and row == len(outputs)
            what = "\nscore per class\n(orange: predicted)" if per_class else ""
            _row_label(fig.add_subplot(grid[row, 0]), f"{name}\n({value.size},){what}")
            axis = fig.add_subplot(grid[row, 1:])
            colours = ["tab:orange" if per_class and k == predicted else "tab:blue" for k in range(value.size)]
            axis.bar(range(value.size), value.ravel(), color=colours)
            axis.tick_params(labelsize=7)
            if per_class:
                axis.set_xticks(range(value.size), classes, fontsize=7)
                axis.set_ylabel("score", fontsize=7)
            else:
                axis.set_xlabel("feature", fontsize=7, labelpad=1)
    verdict = "right" if predicted == label else "wrong"
    title = f"test image {index}: label {classes[label]}, predicted {classes[predicted]} ({verdict})"
    if unchanged:
        title += f"\nnot drawn, unchanged at prediction: {', '.join(unchanged)}"
    fig.suptitle(title, fontsize=11)
    return fig


def _row_label(axis, text: str) -> None:
    axis.axis("off")
    axis.text(0, 0.5, text, fontsize=8, va="center", ha="left", transform=axis.transAxes)


def plot_run(run_dir, data_dir=None, limit=None) -> list[Path]:
    """Write every figure of a run into ``run_dir/plots`` and return their paths."""
    plt = pyplot()
    run_dir = Path(run_dir)
    result = evaluate_run(run_dir, data_dir, limit)
    model, state, images = result.model, result.state, result.images
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    figures = {}
    if state.metrics:  # the checkpoint's rows, which metrics.jsonl copies
        figures["curves"] = curves(state.metrics, plt, state.history.test)
    figures["confusion"] = confusion(result.labels, result.predictions, state.classes, result.total, plt)
    figures["filters"] = filters(model, plt)
    x = state.normalizer(images[:1], np.dtype(state.config.dtype))
    figures["feature_maps"] = feature_maps(model, images[0], x, int(result.labels[0]), state.classes, 0, plt)
    written = []
    for name, fig in figures.items():
        if fig is not None:
            written.append(out / f"{name}.png")
            fig.savefig(written[-1], dpi=DPI)
    plt.close("all")
    return written
