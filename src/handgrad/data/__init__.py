"""Data: the IDX reader, the MNIST-style datasets, folders of images and arrays of your own, images to classify
(PNG, JPEG, IDX), augmentation and mini-batching."""

from .arrays import from_arrays, load_npz
from .batches import NORMALIZATIONS, Normalizer, batch_indices
from .datasets import DATASETS, Dataset, DatasetSpec, get_spec, load_named
from .folders import load_folder
from .idx import IDXError, read_idx, read_images_and_labels
from .images import ImageError, Images, image_files, read_image, read_images
from .sources import load

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
    "from_arrays",
    "get_spec",
    "image_files",
    "load",
    "load_folder",
    "load_named",
    "load_npz",
    "read_idx",
    "read_image",
    "read_images",
    "read_images_and_labels",
]
