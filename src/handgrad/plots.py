"""Figures of a training run, written as PNG files next to it (matplotlib, Agg backend; ``handgrad[plot]``).

- ``curves.png``: loss and accuracy per epoch, training and test;
- ``confusion.png``: the confusion matrix on the test set;
- ``filters.png``: the first convolution's kernels;
- ``feature_maps.png``: one test image and what every layer makes of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .evaluate import confusion_matrix, evaluate_run
from .model import named_leaves

DPI = 100
SIZES = {"curves": (10, 4), "confusion": (7, 6), "filters": (8, 4), "feature_maps": (12, 9)}  # inches
MAPS_PER_LAYER = 8


def pyplot(command: str = "plot"):
    """matplotlib.pyplot on the Agg backend, or an ImportError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"handgrad {command} needs matplotlib: pip install 'handgrad[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, name: str) -> Path:
    fig.set_size_inches(*SIZES[name])
    target = path / f"{name}.png"
    fig.savefig(target, dpi=DPI)
    fig.clf()
    return target


def curves(metrics: list[dict], out: Path, plt) -> Path:
    fig, (left, right) = plt.subplots(1, 2, layout="constrained")
    epochs = [row["epoch"] for row in metrics]
    for axis, key in ((left, "loss"), (right, "accuracy")):
        axis.plot(epochs, [row[f"train_{key}"] for row in metrics], "o-", label="training")
        axis.plot(epochs, [row[f"test_{key}"] for row in metrics], "s-", label="test")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.legend()
        axis.grid(alpha=0.3)
    fig.suptitle("training curves")
    return _save(fig, out, "curves")


def confusion(labels, predictions, classes, out: Path, plt) -> Path:
    matrix = confusion_matrix(labels, predictions, len(classes))
    fig, axis = plt.subplots(layout="constrained")
    image = axis.imshow(matrix, cmap="Blues")
    for (t, p), count in np.ndenumerate(matrix):
        axis.text(
            p,
            t,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if count > matrix.max() / 2 else "black",
        )
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(classes)), classes, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"confusion matrix, accuracy {np.mean(labels == predictions):.4f}")
    fig.colorbar(image)
    return _save(fig, out, "confusion")


def filters(model, out: Path, plt) -> Path | None:
    """The first convolution's kernels, one panel per (output, input) channel pair (up to 32)."""
    conv = next((layer for _, layer in named_leaves(model) if type(layer).__name__ == "Conv2D"), None)
    if conv is None:
        return None
    weight = conv.params["weight"]  # (O, C, kH, kW)
    panels = [(o, c) for o in range(weight.shape[0]) for c in range(weight.shape[1])][:32]
    cols = min(8, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, layout="constrained")
    bound = np.abs(weight).max()
    for axis in axes.flat:
        axis.axis("off")
    for axis, (o, c) in zip(axes.flat, panels):
        axis.imshow(weight[o, c], cmap="RdBu_r", vmin=-bound, vmax=bound)
        axis.set_title(f"{o}" if weight.shape[1] == 1 else f"{o}<-{c}", fontsize=8)
    fig.suptitle(f"first convolution's kernels {weight.shape[2]}x{weight.shape[3]} (red +, blue -)")
    return _save(fig, out, "filters")


def feature_maps(model, image: np.ndarray, x: np.ndarray, out: Path, plt) -> Path:
    """The image, then each layer's output: up to MAPS_PER_LAYER maps for images, bars for vectors."""
    outputs, h = [], x
    for i, layer in enumerate(model):
        h = layer.predict(h)
        outputs.append((f"{i} {type(layer).__name__}", h[0]))
    fig = plt.figure(layout="constrained")
    grid = fig.add_gridspec(len(outputs) + 1, MAPS_PER_LAYER)
    axis = fig.add_subplot(grid[0, 0])
    axis.imshow(image, cmap="gray")
    axis.set_title("input", fontsize=7)
    axis.axis("off")
    for row, (name, value) in enumerate(outputs, start=1):
        if value.ndim == 3:  # (C, H, W): a few feature maps side by side
            for k in range(min(MAPS_PER_LAYER, value.shape[0])):
                axis = fig.add_subplot(grid[row, k])
                axis.imshow(value[k], cmap="viridis")
                axis.axis("off")
                if k == 0:
                    axis.set_title(f"{name} {tuple(value.shape)}", fontsize=7, loc="left")
        else:  # (K,): one bar chart across the row
            axis = fig.add_subplot(grid[row, :])
            axis.bar(range(value.size), value.ravel(), color="tab:blue")
            axis.set_title(f"{name} ({value.size},)", fontsize=7, loc="left")
            axis.tick_params(labelsize=6)
    return _save(fig, out, "feature_maps")


def plot_run(run_dir, data_dir=None, limit=None) -> list[Path]:
    """Write every figure of a run into ``run_dir/plots`` and return their paths."""
    plt = pyplot()
    run_dir = Path(run_dir)
    result = evaluate_run(run_dir, data_dir, limit)
    model, state, images = result.model, result.state, result.images
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written = []
    written.append(curves(state.metrics, out, plt))  # the checkpoint's rows, which metrics.jsonl copies
    written.append(confusion(result.labels, result.predictions, state.classes, out, plt))
    first = filters(model, out, plt)
    if first is not None:
        written.append(first)
    x = state.normalizer(images[:1], np.dtype(state.config.dtype))
    written.append(feature_maps(model, images[0], x, out, plt))
    plt.close("all")
    return written
