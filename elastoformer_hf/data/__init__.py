"""Data layer: the dataset table (:mod:`.catalog`), loading (``datasets``), timm transforms and a Trainer collator."""

from .catalog import DATASET_NAMES, DATASETS, DataError, canonical_name
from .collate import ImageCollator
from .datasets import FASHION_MNIST_CLASSES, load_image_datasets
from .transforms import BadImageError, ToRGB, build_transforms, mean_std_from_processor, with_transforms

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "BadImageError",
    "DataError",
    "ImageCollator",
    "ToRGB",
    "build_transforms",
    "canonical_name",
    "load_image_datasets",
    "mean_std_from_processor",
    "with_transforms",
]
