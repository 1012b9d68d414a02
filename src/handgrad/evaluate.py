"""Evaluation: predictions in batches, accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import positive_int
from .functional import softmax_forward
from .losses import SoftmaxCrossEntropy

EVAL_BATCH = 500


def probabilities(model, loss, images: np.ndarray, normalizer, dtype, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Class probabilities (N, K) for uint8 images (N, H, W): the softmax of the logits of a model trained with
    :class:`~handgrad.losses.SoftmaxCrossEntropy`, the output itself of a model that ends in a softmax.  No images
    give (0, K), as an empty batch does."""
    starts = range(0, max(len(images), 1), batch_size)
    outputs = [model.predict(normalizer(images[i : i + batch_size], dtype)) for i in starts]
    out = np.concatenate(outputs)
    return softmax_forward(out)[0] if isinstance(loss, SoftmaxCrossEntropy) else out


def evaluate(model, loss, images, labels, normalizer, dtype, batch_size: int = EVAL_BATCH):
    """``(mean loss, accuracy, predicted labels)`` over a whole set, of at least one image."""
    if not len(images):
        raise ValueError("evaluate: no images; the mean loss and accuracy of an empty set are undefined")
    total, predictions = 0.0, []
    for i in range(0, len(images), batch_size):
        out = model.predict(normalizer(images[i : i + batch_size], dtype))
        total += loss.forward(out, labels[i : i + batch_size]) * len(out)
        predictions.append(out.argmax(axis=1))
    predictions = np.concatenate(predictions)
    return total / len(images), float(np.mean(predictions == labels)), predictions


@dataclass
class RunEvaluation:
    """A saved run evaluated on (the first ``limit`` images of) its dataset's test set."""

    model: object
    state: object  # runs.RunState
    title: str  # the dataset's name
    images: np.ndarray
    labels: np.ndarray
    loss: float
    predictions: np.ndarray
    total: int  # images in the whole test set, of which ``images`` may be the first few


def evaluate_run(run_dir, data_dir=None, limit=None) -> RunEvaluation:
    """Load a run's chosen model (in evaluation mode) and the test images of its data (all of them, whatever the
    run's ``test_limit``; ``limit``: the first N), and evaluate it on them."""
    from . import runs

    if limit is not None:
        positive_int(limit, "limit", "evaluate")
    classifier, state = runs.load_run(run_dir)
    config = state.config
    if config.dataset is None:
        raise ValueError(f"{run_dir} was trained by handgrad.fit on data of its own: evaluate it there")
    data = config.load_data(data_dir)
    images, labels = data.test_images[:limit], data.test_labels[:limit]
    value, _, predictions = evaluate(
        classifier.compiled, classifier.objective, images, labels, classifier.normalizer, classifier.dtype
    )
    return RunEvaluation(classifier.model, state, data.title, images, labels, value, predictions, len(data.test_labels))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``M[t, p]``: how many images of true class t were predicted as p."""
    return np.bincount(labels.astype(np.int64) * num_classes + predictions, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def report(labels: np.ndarray, predictions: np.ndarray, classes) -> str:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class, columns: predicted) as text."""
    k = len(classes)
    matrix = confusion_matrix(labels, predictions, k)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    name_width = max(len(c) for c in classes)
    lines = [f"accuracy {np.mean(labels == predictions):.4f} on {len(labels):,} images", "", "per class:"]
    for i, name in enumerate(classes):
        lines.append(f"  {i}  {name:<{name_width}}  {per_class[i]:.4f}  ({matrix[i, i]:,} of {matrix[i].sum():,})")
    cell = max(len(f"{matrix.max():,}"), 3) + 1
    lines += ["", "confusion matrix (rows: true class, columns: predicted class):"]
    lines.append(" " * (name_width + 5) + "".join(f"{j:>{cell}}" for j in range(k)))
    for i, name in enumerate(classes):
        lines.append(f"  {i}  {name:<{name_width}}" + "".join(f"{v:>{cell},}" for v in matrix[i]))
    return "\n".join(lines)
