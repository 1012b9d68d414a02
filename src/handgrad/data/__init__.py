"""Data: the IDX reader, the MNIST-style datasets, images to classify (PNG, IDX), and mini-batching."""

from .batches import NORMALIZATIONS, Normalizer, batch_indices
from .datasets import DATASETS, Dataset, DatasetSpec, get_spec, load
from .idx import IDXError, read_idx, read_images_and_labels
from .images import ImageError, Images, image_files, read_images

__all__ = [
    "DATASETS",
    "NORMALIZATIONS",
    "Dataset",
    "DatasetSpec",
    "IDXError",
    "ImageError",
    "Images",
    "Normalizer",
    "batch_indices",
    "get_spec",
    "image_files",
    "load",
    "read_idx",
    "read_images",
    "read_images_and_labels",
]
