"""Evaluation: predictions in batches, accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import positive_int
from .functional import softmax_forward
from .losses import SoftmaxCrossEntropy

EVAL_BATCH = 500
TTAS = ("none", "flip")  # test-time augmentation: none, or each image and its mirror


def check_tta(tta, where: str) -> None:
    if tta not in TTAS:
        raise ValueError(f"{where}: tta must be one of {TTAS}, got {tta!r}")


def outputs(model, loss, images: np.ndarray, normalizer, dtype, tta: str = "none") -> np.ndarray:
    """The model's outputs (N, K) for uint8 images (N, H, W) or (N, C, H, W), as ``loss`` scores them.

    ``tta="flip"`` (test-time augmentation) runs each image X and its mirror X'[..., j] = X[..., W-1-j] and
    averages their class probabilities, ``P = (softmax(Z) + softmax(Z')) / 2``.  For a model scored on logits
    the output is ``ln P``, computed as ``logaddexp(ln softmax(Z), ln softmax(Z')) - ln 2`` (finite even where
    P itself underflows): since P sums to 1, ``softmax(ln P) = P``, so the fused loss of ``ln P`` is
    ``-ln P[n, t_n]`` and its argmax is P's.  Otherwise it is the mean of the two outputs (P itself for a
    model scored on probabilities).
    """
    check_tta(tta, "outputs")
    if tta == "none":
        return model.predict(normalizer(images, dtype))
    both = model.predict(normalizer(np.concatenate([images, images[..., ::-1]]), dtype))  # (2N, K): X, then X'
    z, mirrored = both[: len(images)], both[len(images) :]
    if not isinstance(loss, SoftmaxCrossEntropy):
        return (z + mirrored) / 2
    return np.logaddexp(_log_softmax(z), _log_softmax(mirrored)) - np.log(2, dtype=z.dtype)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """``ln softmax(Z) = Z - m - ln sum_k e^{Z_k - m}``, m the row's maximum."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def probabilities(model, loss, images: np.ndarray, normalizer, dtype, tta="none", batch_size=EVAL_BATCH) -> np.ndarray:
    """Class probabilities (N, K) for uint8 images (N, H, W): the softmax of the logits of a model trained with
    :class:`~handgrad.losses.SoftmaxCrossEntropy`, the output itself of a model that ends in a softmax (with
    ``tta``: see :func:`outputs`).  No images give (0, K), as an empty batch does."""
    starts = range(0, max(len(images), 1), batch_size)
    out = np.concatenate([outputs(model, loss, images[i : i + batch_size], normalizer, dtype, tta) for i in starts])
    return softmax_forward(out)[0] if isinstance(loss, SoftmaxCrossEntropy) else out


def evaluate(model, loss, images, labels, normalizer, dtype, tta="none", batch_size=EVAL_BATCH):
    """``(mean loss, accuracy, predicted labels)`` over a whole set, of at least one image."""
    if not len(images):
        raise ValueError("evaluate: no images; the mean loss and accuracy of an empty set are undefined")
    total, predictions = 0.0, []
    for i in range(0, len(images), batch_size):
        out = outputs(model, loss, images[i : i + batch_size], normalizer, dtype, tta)
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
    c = classifier
    value, _, predictions = evaluate(c.compiled, c.objective, images, labels, c.normalizer, c.dtype, c.tta)
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
