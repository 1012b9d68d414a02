"""Data: the IDX reader, the MNIST-style datasets, and mini-batching."""

from .batches import NORMALIZATIONS, Normalizer, batch_indices
from .datasets import DATASETS, Dataset, DatasetSpec, get_spec, load
from .idx import IDXError, read_idx, read_images_and_labels

__all__ = [
    "DATASETS",
    "NORMALIZATIONS",
    "Dataset",
    "DatasetSpec",
    "IDXError",
    "Normalizer",
    "batch_indices",
    "get_spec",
    "load",
    "read_idx",
    "read_images_and_labels",
]
