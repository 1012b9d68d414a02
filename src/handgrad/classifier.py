"""A trained classifier, saved whole in one safetensors file: the model, the normaliser its inputs were scaled
with, its class names, the shape of its images and its test-time augmentation.

The file is a checkpoint of :mod:`handgrad.checkpoint` (digests of every array and of the metadata, no pickle)
holding the parameters (``model.NAME``) and running statistics (``buffers.NAME``) as arrays, and as metadata
the model's description (:mod:`handgrad.describe`), ``input_shape``, ``normalizer``, ``classes`` and ``tta``
(absent from files written before it: ``"none"``).  A run's
``checkpoint.safetensors`` holds all of these too, so :func:`load` reads either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint
from ._checks import kind_of
from .data import Normalizer
from .describe import describe, rebuild
from .evaluate import check_tta, evaluate, probabilities
from .fast.head import compile_with_loss

KEYS = ("model", "input_shape", "normalizer", "classes")  # the metadata of a classifier's file


def model_dtype(model) -> np.dtype:
    """The dtype of a model's parameters (float32 for a model without any)."""
    return next(iter({**model.params, **model.buffers}.values()), np.zeros(0, np.float32)).dtype


@dataclass
class Classifier:
    """A model that classifies uint8 images (N, H, W) or (N, C, H, W) as they come from files: its inputs are
    scaled by ``normalizer``, its outputs name ``classes``; ``tta="flip"`` averages the class probabilities of
    each image and its mirror (:func:`handgrad.evaluate.outputs`).  The model is put in evaluation mode."""

    model: object
    loss: object
    normalizer: Normalizer
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]  # one image as the model takes it, (C, H, W)
    tta: str = "none"  # test-time augmentation: "none" or "flip"
    compiled: object = field(init=False, repr=False)  # the fast tier that runs the model (see objective)
    objective: object = field(init=False, repr=False)  # the loss it scores with: a softmax's fused on the logits

    def __post_init__(self):
        self.classes, self.input_shape = tuple(self.classes), tuple(int(n) for n in self.input_shape)
        outputs = self.model.output_shape((1, *self.input_shape))
        if len(outputs) != 2 or outputs[1] != len(self.classes):
            raise ValueError(f"Classifier: {len(self.classes)} class names for a model whose output is {outputs[1:]}")
        check_tta(self.tta, "Classifier")
        self.compiled, self.objective = compile_with_loss(self.model.eval(), self.loss)

    @property
    def dtype(self) -> np.dtype:
        return model_dtype(self.model)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, K): the probability of each class for each image."""
        images = self._checked(images)
        return probabilities(self.compiled, self.objective, images, self.normalizer, self.dtype, self.tta)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N,): the index of the most probable class of each image (``classes[i]`` names it)."""
        return self.probabilities(images).argmax(axis=1)

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """``(mean loss, accuracy)`` on labelled images."""
        images = self._checked(images)
        value, accuracy, _ = evaluate(
            self.compiled, self.objective, images, labels, self.normalizer, self.dtype, self.tta
        )
        return value, accuracy

    def _checked(self, images) -> np.ndarray:
        c, h, w = self.input_shape
        pixels = (h, w) if c == 1 else (c, h, w)
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != pixels:
            found = kind_of(images)
            shape = ", ".join(map(str, pixels))
            raise ValueError(f"Classifier: images must be uint8 pixels (N, {shape}), got {found}")
        return images

    def save(self, path, **extra) -> Path:
        """Write the classifier to ``path`` (atomically; ``extra`` JSON-ready metadata beside it)."""
        meta = file_meta(self.model, self.loss, self.normalizer, self.classes, self.input_shape, self.tta)
        checkpoint.save(path, model_arrays(self.model), {**meta, **extra})
        return Path(path)


def model_arrays(model) -> dict[str, np.ndarray]:
    """A model's parameters and running statistics, named as in the file."""
    params = {f"model.{k}": v for k, v in model.params.items()}
    return {**params, **{f"buffers.{k}": v for k, v in model.buffers.items()}}


def checked_weights(model, tensors: dict, where) -> tuple[dict, dict]:
    """``(params, buffers)``: the arrays of ``tensors`` named as :func:`model_arrays` names them, checked against
    the model's parameters and running statistics (names, shapes, dtypes, finite values) for
    :func:`copy_weights`."""
    params, buffers = checkpoint.strip_prefix(tensors, "model."), checkpoint.strip_prefix(tensors, "buffers.")
    checkpoint.check_params(model.params, params, where)
    checkpoint.check_params(model.buffers, buffers, f"{where} (running statistics)")
    return params, buffers


def copy_weights(model, weights: tuple[dict, dict], where) -> None:
    """:func:`checked_weights`'s arrays into the model's own (which cannot fail once they are checked)."""
    params, buffers = weights
    checkpoint.copy_params(model.params, params, where)
    checkpoint.copy_params(model.buffers, buffers, where)


def file_meta(model, loss, normalizer, classes, input_shape, tta="none") -> dict:
    """The metadata that rebuilds a classifier around :func:`model_arrays`."""
    return {
        "model": describe(model, loss),
        "input_shape": list(input_shape),
        "normalizer": asdict(normalizer),
        "classes": list(classes),
        "tta": tta,
    }


def from_file(tensors: dict, meta: dict, where) -> Classifier:
    """The classifier that a file's arrays and metadata describe, every field checked."""
    missing = [key for key in KEYS if key not in meta]
    if missing:
        raise checkpoint.CheckpointError(f"{where}: metadata lacks {missing}: not a classifier's file")
    try:
        shape = meta["input_shape"]
        if not (isinstance(shape, list) and len(shape) == 3 and all(type(n) is int and n >= 1 for n in shape)):
            raise ValueError(f"input_shape must be three counts (C, H, W), got {shape!r}")
        classes = meta["classes"]
        if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"classes must be a list of at least two names, got {classes!r:.80}")
        normalizer = meta["normalizer"]
        if not isinstance(normalizer, dict) or set(normalizer) != {"mean", "std"}:
            raise ValueError(f"normalizer must be {{'mean', 'std'}}, got {normalizer!r:.80}")
        dtypes = {v.dtype for k, v in tensors.items() if k.startswith(("model.", "buffers."))}
        model, loss = rebuild(meta["model"], dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float32))
        tta = meta.get("tta", "none")  # a file written before test-time augmentation: none
        classifier = Classifier(model, loss, Normalizer(**normalizer), classes, shape, tta)
    except (TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(f"{where}: bad metadata ({error})") from None
    copy_weights(model, checked_weights(model, tensors, where), where)
    return classifier


def load(path) -> Classifier:
    """The classifier in a file written by :meth:`Classifier.save`, a run's checkpoint, or a run's folder (the
    model it chose: that of the best validation epoch, or the last one)."""
    from .runs import load_run

    path = Path(path)
    if path.is_dir():
        return load_run(path)[0]
    tensors, meta = checkpoint.load(path)
    if "history" in meta:  # a run's checkpoint: the whole run is checked, and its chosen model taken
        return load_run(path, (tensors, meta))[0]
    return from_file(tensors, meta, path)
