"""Image transforms (timm's ``create_transform``) and their on-the-fly application to ``datasets`` objects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import datasets
import torch
from packaging.version import Version
from PIL import Image as PILImage
from timm.data import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    create_transform,
    resolve_data_config,
    resolve_model_data_config,
)
from torchvision import transforms as T

from .catalog import DataError

__all__ = ["BadImageError", "ToRGB", "build_transforms", "mean_std_from_processor", "with_transforms"]

DEFAULT_CROP_PCT = 0.875
# PIL.Image.Resampling values (used by transformers' `resample`) -> timm interpolation names
_PIL_RESAMPLE_TO_NAME = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


class ToRGB:
    """Convert a PIL image of any mode (L, LA, P, RGBA, CMYK, I;16...) to RGB; a class so it pickles.

    An RGB image is returned as it is.
    """

    def __call__(self, image):
        return image if image.mode == "RGB" else image.convert("RGB")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_TO_RGB = ToRGB()


def build_transforms(
    image_size: int | tuple[int, int],
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD,
    *,
    is_training: bool,
    interpolation: str = "bicubic",
    auto_augment: str | None = None,
    re_prob: float = 0.0,
    hflip: float = 0.5,
    crop_pct: float | None = None,
    grayscale_to_rgb: bool = True,
    **timm_kwargs: Any,
) -> Callable:
    """PIL image -> normalized float tensor (3, H, W), built with :func:`timm.data.create_transform`.

    Training: RandomResizedCrop(image_size) + horizontal flip (``hflip``) + optional RandAugment/AutoAugment
    (``auto_augment``, e.g. ``"rand-m9-mstd0.5-inc1"`` as in DeiT) + normalize + random erasing (``re_prob``).
    Evaluation: resize to ``image_size / crop_pct`` + center crop ``image_size`` + normalize.

    Args:
        image_size (`int` or `tuple[int, int]`): the output size.
        mean (`tuple[float, ...]`, *optional*, defaults to `IMAGENET_DEFAULT_MEAN`): the normalization
            mean.
        std (`tuple[float, ...]`, *optional*, defaults to `IMAGENET_DEFAULT_STD`): the normalization
            standard deviation.
        is_training (`bool`): the training pipeline (augmentation) or the evaluation one.
        interpolation (`str`, *optional*, defaults to `"bicubic"`): the resize interpolation.
        auto_augment (`str`, *optional*): a RandAugment/AutoAugment policy, e.g. ``"rand-m9-mstd0.5-inc1"`` as
            in DeiT (training only).
        re_prob (`float`, *optional*, defaults to `0.0`): the random-erasing probability (training only).
        hflip (`float`, *optional*, defaults to `0.5`): the horizontal-flip probability (training).
        crop_pct (`float`, *optional*): the evaluation crop fraction (None: timm's default).
        grayscale_to_rgb (`bool`, *optional*, defaults to `True`): prepend :class:`ToRGB` so grey/palette/RGBA
            images give 3 channels (RandAugment needs RGB too).
        **timm_kwargs: go to ``create_transform`` (``color_jitter``, ``scale``, ...).

    Returns:
        `Callable`: the transform (a ``torchvision.transforms.Compose``).
    """
    tf = create_transform(
        input_size=image_size,
        is_training=is_training,
        interpolation=interpolation,
        mean=tuple(mean),
        std=tuple(std),
        auto_augment=auto_augment if is_training else None,
        re_prob=re_prob if is_training else 0.0,
        hflip=hflip,
        crop_pct=crop_pct,
        **timm_kwargs,
    )
    if grayscale_to_rgb:
        tf = T.Compose([ToRGB(), *tf.transforms]) if isinstance(tf, T.Compose) else T.Compose([ToRGB(), tf])
    return tf


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def mean_std_from_processor(source: Any = None) -> dict[str, Any]:
    """Read preprocessing settings as keyword arguments for :func:`build_transforms`.

    Args:
        source (`Any`, *optional*): a transformers image processor (``image_mean``, ``image_std``, ``size``,
            ``crop_size``, ``resample``), a timm ``pretrained_cfg`` / data-config dict (``mean``, ``std``,
            ``input_size``, ``crop_pct``, ``interpolation``), a timm model (its ``pretrained_cfg``), or
            ``None`` (ImageNet defaults: torchvision models carry no config).

    Returns:
        `dict[str, Any]`: ``{"image_size", "mean", "std", "crop_pct", "interpolation"}``, so
        ``build_transforms(**mean_std_from_processor(proc), is_training=False)`` works.

    Raises:
        ValueError: an image processor whose ``size`` has neither ``height`` nor ``shortest_edge``.
        TypeError: ``source`` is none of the above.
    """
    if source is None:
        return {
            "image_size": 224,
            "mean": tuple(IMAGENET_DEFAULT_MEAN),
            "std": tuple(IMAGENET_DEFAULT_STD),
            "crop_pct": DEFAULT_CROP_PCT,
            "interpolation": "bicubic",
        }
    if _get(source, "image_mean") is not None:  # transformers image processor
        size, crop = _get(source, "size"), _get(source, "crop_size")
        resize_edge = _get(size, "height") or _get(size, "shortest_edge")
        if resize_edge is None:
            raise ValueError(f"cannot read an image size from the image processor's size={size!r}")
        if _get(source, "do_center_crop") and _get(crop, "height"):  # e.g. DeiT: resize 256, crop 224
            image_size, crop_pct = int(_get(crop, "height")), float(_get(crop, "height")) / float(resize_edge)
        else:  # e.g. ViT: resize straight to 224x224; ConvNeXt: shortest_edge + crop_pct
            image_size, crop_pct = int(resize_edge), float(_get(source, "crop_pct") or 1.0)
        resample = _get(source, "resample")
        return {
            "image_size": image_size,
            "mean": tuple(float(m) for m in _get(source, "image_mean")),
            "std": tuple(float(s) for s in _get(source, "image_std")),
            "crop_pct": crop_pct,
            "interpolation": _PIL_RESAMPLE_TO_NAME.get(int(resample), "bilinear")
            if resample is not None
            else "bilinear",
        }
    if isinstance(source, Mapping):  # timm pretrained_cfg or resolved data config
        cfg = resolve_data_config({}, pretrained_cfg=dict(source), verbose=False)
    elif _get(source, "pretrained_cfg") is not None:  # timm model
        cfg = resolve_model_data_config(source)
    else:
        raise TypeError(
            "mean_std_from_processor expects a transformers image processor, a timm pretrained_cfg dict, "
            f"a timm model or None; got {type(source).__name__}"
        )
    input_size = cfg["input_size"]
    return {
        "image_size": int(input_size[-1]) if input_size[-1] == input_size[-2] else tuple(input_size[-2:]),
        "mean": tuple(float(m) for m in cfg["mean"]),
        "std": tuple(float(s) for s in cfg["std"]),
        "crop_pct": float(cfg.get("crop_pct") or DEFAULT_CROP_PCT),
        "interpolation": cfg.get("interpolation") or "bicubic",
    }


class BadImageError(DataError):
    """An image of the data that does not decode (a file that is not an image, or a truncated one), named in
    one line."""

    def __init__(self, message: str):
        # torch's DataLoader re-raises a worker's error as its type called with the whole worker traceback: the
        # last line of that text is this error's own one-line message
        if "\n" in message:
            message = message.strip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


def _decode(value: Any, mode: str | None = None) -> Any:
    """A PIL image from what an undecoded ``datasets.Image`` column holds (``{"bytes", "path"}`` or a path), as
    ``datasets`` would decode it; anything else (an image already) is returned as it is.

    Raises:
        BadImageError: the bytes or the file are not a readable image; the file is named.
    """
    if not isinstance(value, (dict, str)):
        return value
    path = value if isinstance(value, str) else value.get("path")
    try:
        return datasets.Image(mode=mode).decode_example(value)
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:  # PIL's errors for bad files
        where = f"image file {path!r}" if path else "an image stored in the dataset (no file name)"
        first = (str(err).strip().splitlines() or [""])[0]
        reason = type(err).__name__ + (f": {first}" if first and not (path and path in first) else "")
        raise BadImageError(f"{where} cannot be read as an image ({reason}); remove or replace it") from None


class _ExampleTransform:
    """Batch function for ``Dataset.with_transform``: {image, label} lists -> {pixel_values, labels} lists.

    The images arrive undecoded (see :func:`with_transforms`) and are decoded here, one at a time, so that a
    file that is not an image is named in the error.
    """

    mode: str | None = None  # the image column's own mode (datasets.Image(mode=...)), when it has one

    def __init__(self, transform: Callable, image_column: str = "image", label_column: str = "label",
                 mode: str | None = None):
        self.transform = transform
        self.image_column = image_column
        self.label_column = label_column
        if mode is not None:  # only then: the state of the usual transform, hence the view's fingerprint, is unchanged
            self.mode = mode

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        images = (_decode(value, self.mode) for value in batch[self.image_column])
        out = {"pixel_values": [self.transform(_TO_RGB(img)) for img in images]}
        if self.label_column in batch:
            out["labels"] = [int(y) for y in batch[self.label_column]]
        return out


def _undecoded(dataset, image_column: str) -> tuple[Any, str | None]:
    """``(dataset, mode)``: ``dataset`` with its ``datasets.Image`` column left undecoded, and that column's mode.

    ``datasets`` decodes a batch before the transform sees it, where a bad file fails as a traceback in
    ``datasets``; checking every file up front would take hours on ImageNet: the transform decodes instead. The
    rows are the same, so is the fingerprint (a run records it, and resumes only on the same data).
    """
    feature = (getattr(dataset, "features", None) or {}).get(image_column)
    if isinstance(dataset, datasets.Dataset) and isinstance(feature, datasets.Image) and feature.decode:
        dataset = dataset.cast_column(image_column, datasets.Image(mode=feature.mode, decode=False),
                                      new_fingerprint=dataset._fingerprint)
        return dataset, feature.mode
    if isinstance(dataset, datasets.IterableDataset) and isinstance(feature, datasets.Image) and feature.decode:
        return dataset.cast_column(image_column, datasets.Image(mode=feature.mode, decode=False)), feature.mode
    return dataset, None


def with_transforms(
    dataset, transform: Callable, *, image_column: str = "image", label_column: str = "label"
):
    """Return a view of ``dataset`` (``Dataset`` or ``DatasetDict``) that yields ``pixel_values``/``labels``.

    Applied lazily on access via ``with_transform`` (the original is unchanged): each image is converted
    to RGB, passed through ``transform`` (e.g. :func:`build_transforms`) to a float CHW tensor, and the
    label becomes an int ``labels``. Note: with ``transformers.Trainer`` set ``remove_unused_columns=False``,
    otherwise it drops the ``image``/``label`` columns this transform reads.

    Args:
        dataset (`datasets.Dataset`, `datasets.IterableDataset` or `datasets.DatasetDict`): the data (a stream is
            mapped lazily: its rows become ``pixel_values``/``labels`` only).
        transform (`Callable`): PIL image -> tensor.
        image_column (`str`, *optional*, defaults to `"image"`): the column of the images.
        label_column (`str`, *optional*, defaults to `"label"`): the column of the labels (no ``labels`` when
            a batch lacks it).

    Returns:
        `datasets.Dataset` or `datasets.DatasetDict`: the transformed view.

    Raises:
        BadImageError: (when a row is read) its image does not decode; the message names the file.
    """
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict({split: with_transforms(ds, transform, image_column=image_column,
                                                            label_column=label_column)
                                     for split, ds in dataset.items()})
    dataset, mode = _undecoded(dataset, image_column)
    apply = _ExampleTransform(transform, image_column, label_column, mode)
    if isinstance(dataset, datasets.IterableDataset):
        check_streaming_support()
        return TransformedStream(dataset, apply)
    return dataset.with_transform(apply)


#: the oldest ``datasets`` whose streams can be read more than once after ``take``/``cast_column``/``map`` (2.21, this
#: package's floor otherwise, yields such a stream's rows on the first pass only: a level's second evaluation would
#: see no image); checked by hand with 4.0.0 and in CI with constraints.txt's version
STREAMING_MIN_DATASETS = "4.0.0"


def check_streaming_support() -> None:
    """Raise :class:`DataError` when the installed ``datasets`` cannot stream (see :data:`STREAMING_MIN_DATASETS`)."""
    if Version(datasets.__version__) < Version(STREAMING_MIN_DATASETS):
        raise DataError(f"streaming needs datasets >= {STREAMING_MIN_DATASETS} (datasets {datasets.__version__} reads a "
                        "stream only once: a level's second evaluation would see no image): pip install -U "
                        f"'datasets>={STREAMING_MIN_DATASETS}', or load the data without streaming")


class TransformedStream(torch.utils.data.IterableDataset):
    """A ``datasets.IterableDataset`` whose rows become ``pixel_values``/``labels`` as they are read (a fresh
    augmentation at every pass).

    Written by hand because a stream has no ``with_transform``, and its ``map`` cannot serve: under datasets 2.21
    (this package's floor) a mapped stream yields its rows on the first pass only, so the second evaluation of a
    level would see no image. Iterating the stream itself keeps what it does per pass: its shuffle (reshuffled by
    :meth:`set_epoch`, which Trainer calls every epoch) and its split between DataLoader workers."""

    def __init__(self, stream: datasets.IterableDataset, apply: _ExampleTransform):
        self.stream, self.apply = stream, apply

    def __iter__(self):
        for row in self.stream:
            yield {key: values[0] for key, values in self.apply({k: [v] for k, v in row.items()}).items()}

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)
