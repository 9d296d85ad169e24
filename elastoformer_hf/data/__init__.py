"""Data layer: dataset loading (``datasets``), timm transforms and a Trainer collator."""

from .collate import ImageCollator
from .datasets import DATASET_NAMES, FASHION_MNIST_CLASSES, DataError, load_image_datasets
from .transforms import ToRGB, build_transforms, mean_std_from_processor, with_transforms

__all__ = [
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "DataError",
    "ImageCollator",
    "ToRGB",
    "build_transforms",
    "load_image_datasets",
    "mean_std_from_processor",
    "with_transforms",
]
