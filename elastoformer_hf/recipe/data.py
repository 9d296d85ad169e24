"""The recipe's data: the training and evaluation splits (one load for the demo's parent and the family) and the
timm transforms built from the model's preprocessing settings."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import build_transforms, load_image_datasets, mean_std_from_processor
from ..data.catalog import DataError
from .arguments import DataArguments, ParentArguments

__all__ = ["load_recipe_data", "recipe_preprocessing", "recipe_transforms", "transform_source"]


def _subsample(ds, n: int | None, seed: int):
    if n is None or n >= len(ds):
        return ds
    return ds.select(np.sort(np.random.default_rng(seed).permutation(len(ds))[:n]).tolist())


def load_recipe_data(data_args: DataArguments, seed: int, parent_args: ParentArguments | None):
    """``(elastic_train, eval, label_names, parent_train)``; ``parent_train`` is None without a parent."""
    n_elastic = data_args.max_train_samples
    n_parent = parent_args.parent_max_train_samples if parent_args is not None and parent_args.enabled else None
    with_parent = parent_args is not None and parent_args.enabled
    # load once, enough rows for both stages; then subsample each
    n_load = (None if n_elastic is None or n_parent is None else max(n_elastic, n_parent)) if with_parent else n_elastic
    train, eval_ds, label_names = load_image_datasets(
        data_args.dataset_name, data_args.data_path, dataset_config=data_args.dataset_config,
        image_column_name=data_args.image_column_name, label_column_name=data_args.label_column_name,
        train_split=data_args.train_split,
        eval_split=data_args.eval_split, max_train_samples=n_load, max_eval_samples=data_args.max_eval_samples,
        seed=seed, dummy_num_classes=data_args.dummy_num_classes, dummy_image_size=data_args.dummy_image_size,
        streaming=data_args.streaming,
    )
    if data_args.streaming:  # no parent with a stream (refused by the parser); a stream's length is unknown
        return train, eval_ds, label_names, None
    if len(train) == 0 or len(eval_ds) == 0:
        raise DataError(f"{data_args.dataset_name}: empty split (train {len(train)}, eval {len(eval_ds)} images)")
    parent_train = _subsample(train, n_parent, seed) if with_parent else None
    return _subsample(train, n_elastic, seed), eval_ds, label_names, parent_train


def recipe_preprocessing(source: Any, data_args: DataArguments) -> dict:
    """The evaluation preprocessing a run uses, as timm's data config (``input_size``, ``mean``, ``std``,
    ``interpolation``, ``crop_pct``): the model's settings (a transformers image processor, a timm/torchvision
    data-config dict, or None) with the data arguments' overrides. Saved with every level, so a processor built
    from it feeds the resolution the level was trained at."""
    base = mean_std_from_processor(source)
    size = data_args.image_size or base["image_size"]
    channels = (source.get("input_size") or [3])[0] if isinstance(source, dict) else 3
    return {"input_size": [int(channels), int(size), int(size)], "mean": list(base["mean"]), "std": list(base["std"]),
            "interpolation": data_args.interpolation or base["interpolation"],
            "crop_pct": data_args.crop_pct or base["crop_pct"]}


def recipe_transforms(source: Any, data_args: DataArguments):
    """``(train_transform, eval_transform)`` from a model's preprocessing settings (a transformers image processor,
    a timm/torchvision data-config dict, or None) and the data arguments' overrides."""
    config = recipe_preprocessing(source, data_args)
    image_size = config["input_size"][-1]
    common = dict(mean=config["mean"], std=config["std"], interpolation=config["interpolation"],
                  hflip=data_args.hflip)
    train = build_transforms(image_size, is_training=True, auto_augment=data_args.auto_augment,
                             re_prob=data_args.re_prob, scale=(data_args.min_crop_scale, 1.0),
                             color_jitter=data_args.color_jitter or None, **common)
    eval_ = build_transforms(image_size, is_training=False, crop_pct=config["crop_pct"], **common)
    return train, eval_


def transform_source(loaded) -> Any:
    return loaded.image_processor if loaded.image_processor is not None else loaded.data_config
