"""Training recipes: trl-style argument dataclasses, a YAML + command-line parser, and ``run_recipe``.

``recipes/deit.py`` (ViT/DeiT) and ``recipes/cnn.py`` (ResNet/VGG) are thin wrappers around :func:`recipe_main`::

    accelerate launch recipes/deit.py --config recipes/configs/deit_base_imagenet.yaml --output_dir runs/x

Arguments come from four dataclasses, parsed by :class:`transformers.HfArgumentParser`: :class:`ModelArguments`,
:class:`DataArguments`, :class:`~elastoformer_hf.training.arguments.ElasticTrainingArguments` (Trainer's arguments
plus the elastic knobs) and :class:`ParentArguments` (the offline demo trains its own small parent first).
``--config file.yaml`` gives values for any of their fields; flags on the command line override the file.

:func:`run_recipe` loads the data first (a missing dataset fails before any model is loaded), then the model,
builds the timm transforms from the model's preprocessing settings, and hands everything to
:class:`~elastoformer_hf.training.ElasticTrainer`, which trains the whole family.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import staged_folder
from .data.datasets import DATASET_NAMES, DataError, _canonical_name, load_image_datasets
from .data.transforms import build_transforms, mean_std_from_processor, with_transforms
from .errors import ElastoformerError
from .models import load_base_model
from .training.arguments import ElasticTrainingArguments

__all__ = [
    "DataArguments",
    "ModelArguments",
    "ParentArguments",
    "build_recipe_parser",
    "model_family",
    "parse_recipe_args",
    "recipe_main",
    "run_recipe",
    "train_parent",
]

FAMILIES = ("vit", "cnn")
#: adapters (elastoformer_hf.adapters) whose models are vision transformers; every other adapter is a CNN
VIT_ADAPTERS = ("transformers-vit", "timm-vit")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "hamming", "box", "random")
PARENT_FOLDER = "parent"
PARENT_INFO = "parent_info.json"


def _json_dict(value: Any, name: str) -> dict | None:
    """A dict field given as a dict (YAML) or as a JSON string (command line)."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        if value.strip().lower() in ("", "none", "null"):
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as err:
            raise ElastoformerError(
                f"{name} must be a JSON object such as '{{\"key\": 1}}', got {value!r} ({err})"
            ) from None
        if isinstance(parsed, dict):
            return parsed
    raise ElastoformerError(f"{name} must be a mapping (a JSON object on the command line), got {value!r}")


def _optional_str(value: Any) -> str | None:
    return None if value is None or str(value).strip().lower() in ("", "none", "null") else str(value)


def _positive_int_or_none(value: Any, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ElastoformerError(f"{name} must be a positive integer, got {value!r}")


@dataclass
class ModelArguments:
    """Which pre-trained model the family comes from."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "transformers Hub id or local folder (ViT/DeiT: facebook/deit-base-patch16-224), timm name "
                          "(resnet50, vgg16), or torchvision name (torchvision:resnet50, or a name with --weights). "
                          "Not needed with --parent_config (the demo trains its own parent)."},
    )
    random_init: bool = field(
        default=False, metadata={"help": "build the architecture with random weights (no download): smoke tests only"}
    )
    weights: str | None = field(
        default=None, metadata={"help": "torchvision weights enum name, e.g. ResNet50_Weights.IMAGENET1K_V2"}
    )
    num_labels: int | None = field(
        default=None,
        metadata={"help": "classes of the classifier; default: the dataset's class count (the head is replaced when "
                          "it differs from the model's)"},
    )
    model_args: dict | str | None = field(
        default=None,
        metadata={"help": "extra keyword arguments for timm.create_model, as a JSON object "
                          "(e.g. '{\"drop_path_rate\": 0.1}')"},
    )

    def __post_init__(self):
        self.model_name_or_path = _optional_str(self.model_name_or_path)
        self.weights = _optional_str(self.weights)
        _positive_int_or_none(self.num_labels, "num_labels")
        self.model_args = _json_dict(self.model_args, "model_args")


@dataclass
class DataArguments:
    """Which images, and how they are augmented (timm's ``create_transform``)."""

    dataset_name: str = field(
        metadata={"help": "dataset: " + "; ".join(f"{k} = {v}" for k, v in DATASET_NAMES.items())},
    )
    data_path: str | None = field(
        default=None, metadata={"help": "local data folder (imagefolder: train/<class>/*, val/<class>/*)"}
    )
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: str | None = field(
        default=None, metadata={"help": "split to evaluate on (default: the first of validation/val/valid/test)"}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "keep a random subset of this many training images (the elastic stages)"}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "keep a random subset of this many evaluation images"}
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "training/eval resolution; default: the model's. ViTs only take their own resolution"},
    )
    auto_augment: str | None = field(
        default=None,
        metadata={"help": "timm auto-augment policy, e.g. rand-m9-mstd0.5-inc1 (DeiT's RandAugment); none = off"},
    )
    re_prob: float = field(default=0.0, metadata={"help": "random erasing probability, in [0, 1] (DeiT: 0.25)"})
    interpolation: str | None = field(
        default=None, metadata={"help": f"resize interpolation ({', '.join(INTERPOLATIONS)}); default: the model's"}
    )
    hflip: float = field(default=0.5, metadata={"help": "horizontal flip probability in training, in [0, 1]"})
    crop_pct: float | None = field(
        default=None,
        metadata={"help": "eval center-crop fraction, in (0, 1]: resize to image_size / crop_pct, then crop; "
                          "default: the model's"},
    )
    color_jitter: float = field(
        default=0.4,
        metadata={"help": "colour-jitter strength in training, >= 0 (timm's default 0.4; off under auto_augment)"},
    )
    min_crop_scale: float = field(
        default=0.08,
        metadata={"help": "smallest area fraction of RandomResizedCrop in training, in (0, 1] (timm/DeiT: 0.08)"},
    )
    dummy_num_classes: int = field(default=1000, metadata={"help": "dataset 'dummy': number of classes"})
    dummy_image_size: int = field(default=224, metadata={"help": "dataset 'dummy': image side in pixels"})

    def __post_init__(self):
        try:
            self.dataset_name = _canonical_name(self.dataset_name)
        except DataError as err:
            raise ElastoformerError(str(err)) from None
        self.data_path = _optional_str(self.data_path)
        self.eval_split = _optional_str(self.eval_split)
        self.auto_augment = _optional_str(self.auto_augment)
        self.interpolation = _optional_str(self.interpolation)
        for name in ("max_train_samples", "max_eval_samples", "image_size"):
            _positive_int_or_none(getattr(self, name), name)
        for name in ("dummy_num_classes", "dummy_image_size"):
            _positive_int_or_none(getattr(self, name), name)
        checks = [
            (0.0 <= self.re_prob <= 1.0, f"re_prob must be in [0, 1], got {self.re_prob}"),
            (0.0 <= self.hflip <= 1.0, f"hflip must be in [0, 1], got {self.hflip}"),
            (self.crop_pct is None or 0.0 < self.crop_pct <= 1.0, f"crop_pct must be in (0, 1], got {self.crop_pct}"),
            (self.color_jitter >= 0, f"color_jitter must be >= 0, got {self.color_jitter}"),
            (0.0 < self.min_crop_scale <= 1.0, f"min_crop_scale must be in (0, 1], got {self.min_crop_scale}"),
            (self.interpolation is None or self.interpolation in INTERPOLATIONS,
             f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ElastoformerError(message)
        if self.auto_augment is not None:
            try:  # timm parses the policy string when the transform is built: fail now, not at the first batch
                build_transforms(32, is_training=True, auto_augment=self.auto_augment)
            except Exception as err:
                raise ElastoformerError(
                    f"auto_augment {self.auto_augment!r} is not a timm policy (e.g. rand-m9-mstd0.5-inc1, "
                    f"augmix-m5-w4-d2, original, v0): {type(err).__name__}: {err}"
                ) from None


@dataclass
class ParentArguments:
    """The offline demo: train a small transformers ViT parent from scratch, then make it elastic.

    With ``parent_config`` set, :func:`run_recipe` first trains ``ViTForImageClassification(ViTConfig(**parent_config))``
    on the same data with a plain ``transformers.Trainer`` and saves it to ``<output_dir>/parent/``; the elastic
    pipeline then starts from that folder. A complete ``parent/`` folder trained with the same settings is reused.
    """

    parent_config: dict | str | None = field(
        default=None,
        metadata={"help": "ViTConfig keyword arguments of a parent to train first (JSON on the command line), e.g. "
                          "'{\"hidden_size\": 192, \"num_hidden_layers\": 6, \"num_attention_heads\": 3, "
                          "\"intermediate_size\": 768, \"image_size\": 28, \"patch_size\": 7}'; unset: no parent"},
    )
    parent_epochs: float = field(default=3.0, metadata={"help": "epochs of parent training"})
    parent_max_steps: int = field(default=-1, metadata={"help": "parent training steps; > 0 overrides parent_epochs"})
    parent_learning_rate: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate of the parent"})
    parent_weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay of the parent"})
    parent_warmup_ratio: float = field(default=0.05, metadata={"help": "linear warmup fraction, then cosine decay"})
    parent_batch_size: int = field(default=64, metadata={"help": "parent training batch size (per device)"})
    parent_label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the parent's loss"})
    parent_max_train_samples: int | None = field(
        default=None, metadata={"help": "training images of the parent (default: the whole training split)"}
    )

    def __post_init__(self):
        self.parent_config = _json_dict(self.parent_config, "parent_config")
        _positive_int_or_none(self.parent_batch_size, "parent_batch_size")
        _positive_int_or_none(self.parent_max_train_samples, "parent_max_train_samples")
        checks = [
            (self.parent_epochs > 0 or self.parent_max_steps > 0,
             f"parent_epochs must be > 0 (or parent_max_steps > 0), got {self.parent_epochs}"),
            (self.parent_learning_rate > 0, f"parent_learning_rate must be > 0, got {self.parent_learning_rate}"),
            (self.parent_weight_decay >= 0, f"parent_weight_decay must be >= 0, got {self.parent_weight_decay}"),
            (0 <= self.parent_warmup_ratio < 1, f"parent_warmup_ratio must be in [0, 1), got {self.parent_warmup_ratio}"),
            (0 <= self.parent_label_smoothing < 1,
             f"parent_label_smoothing must be in [0, 1), got {self.parent_label_smoothing}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ElastoformerError(message)
        if self.parent_config is not None:
            import transformers

            try:
                transformers.ViTConfig(**self.parent_config)
            except (TypeError, ValueError) as err:
                raise ElastoformerError(f"parent_config is not a valid ViTConfig: {err}") from None
            unknown = sorted(set(self.parent_config) - set(transformers.ViTConfig().to_dict()))
            if unknown:
                raise ElastoformerError(f"parent_config has keys that ViTConfig does not know: {', '.join(unknown)}")

    @property
    def enabled(self) -> bool:
        return self.parent_config is not None


RECIPE_DATACLASSES = (ModelArguments, DataArguments, ElasticTrainingArguments, ParentArguments)


# --------------------------------------------------------------------------------------------------------
# parsing


def build_recipe_parser(prog: str | None = None) -> Any:
    """An ``HfArgumentParser`` over the four recipe dataclasses, plus ``--config``."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(list(RECIPE_DATACLASSES), prog=prog,
                              description="Train an elastic family (core, then every rebuilt level).")
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML file of argument values (any field below); command-line flags override it")
    return parser


def _field_names() -> set[str]:
    return {f.name for cls in RECIPE_DATACLASSES for f in dataclasses.fields(cls) if f.init}


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a recipe YAML file: a mapping of dataclass field names to values (unknown names are an error)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a file" if p.exists() else "does not exist"
        raise ElastoformerError(f"config file {str(p)!r} {what}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ElastoformerError(f"config file {p} is not valid YAML: {' '.join(str(err).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ElastoformerError(f"config file {p} must hold a mapping of argument names to values, "
                                f"got a {type(data).__name__}")
    known = _field_names()
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ElastoformerError(f"config file {p} has unknown keys: {', '.join(hints)}")
    return data


def _construction_error(err: Exception) -> ElastoformerError:
    message = " ".join(str(err).split())
    if "bf16" in message and "use_cpu" in message:
        message += " (no bf16-capable GPU here: pass --bf16 false, or --use_cpu true for bf16 on the CPU)"
    return ElastoformerError(f"invalid arguments: {message}")


def parse_recipe_args(
    argv: list[str] | None = None, prog: str | None = None
) -> tuple[ModelArguments, DataArguments, ElasticTrainingArguments, ParentArguments]:
    """``(model_args, data_args, training_args, parent_args)`` from ``--config FILE.yaml`` and flags.

    The YAML values become the parser's defaults, so every flag given on the command line overrides them;
    required arguments (``--dataset_name``) may come from either. Bad values raise :class:`ElastoformerError`;
    malformed flags exit through argparse (status 2, with usage).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    parser = build_recipe_parser(prog)
    if known.config:
        values = load_config_file(known.config)
        from transformers.hf_argparser import string_to_bool

        for action in parser._actions:  # YAML 1.1 reads a bare `no` (eval_strategy: no) as false
            if values.get(action.dest, None) is False and action.type is not string_to_bool:
                values[action.dest] = "no"
        parser.set_defaults(**values)
        for action in parser._actions:  # a required field given by the file is no longer required
            if action.dest in values:
                action.required = False
    try:
        outputs = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    except ElastoformerError:
        raise
    except (ValueError, TypeError) as err:
        raise _construction_error(err) from None
    model_args, data_args, training_args, parent_args = outputs[:4]
    if model_args.model_name_or_path is None and not parent_args.enabled:
        raise ElastoformerError("--model_name_or_path is required (or --parent_config, to train a demo parent first)")
    if model_args.model_name_or_path is not None and parent_args.enabled:
        raise ElastoformerError("give --model_name_or_path or --parent_config, not both: the demo's parent becomes the "
                                "model the family comes from (--parent_config none drops a config file's)")
    return model_args, data_args, training_args, parent_args


# --------------------------------------------------------------------------------------------------------
# model family (ViT or CNN)


def _timm_family(name: str) -> str | None:
    import timm

    arch = name.split(":", 1)[1] if name.startswith("timm:") else name
    arch = arch.split(".", 1)[0]  # drop a pretrained tag (resnet50.a1_in1k)
    if not timm.is_model(arch):
        return None
    module = timm.models.model_entrypoint(arch).__module__.rsplit(".", 1)[-1]
    if module in ("vision_transformer", "deit", "vision_transformer_hybrid", "vision_transformer_relpos"):
        return "vit"
    if module in ("resnet", "vgg"):
        return "cnn"
    return None


def model_family(name: str, weights: str | None = None) -> str | None:
    """``"vit"`` or ``"cnn"`` from a model name alone (no weights, no network); ``None`` when it cannot tell.

    The authoritative check is the adapter of the loaded model (:func:`run_recipe` does both).
    """
    if name.startswith("torchvision:") or weights:
        arch = name.split(":", 1)[-1]
        return "vit" if arch.startswith(("vit_", "swin_", "maxvit_")) else "cnn"
    if os.path.isdir(name):
        config_path = Path(name) / "config.json"
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # load_base_model explains what is wrong with the folder
        if "architecture" in config:  # timm layout
            return _timm_family(config["architecture"])
        model_type = config.get("model_type")
        if model_type in ("vit", "deit"):
            return "vit"
        if model_type == "elastoformer":  # a saved descendant: the family of the architecture it was cut from
            source, arch = config.get("base_source"), str(config.get("base_architecture", ""))
            if source == "transformers":
                return "vit"
            if source == "torchvision":
                return "vit" if arch.startswith(("vit_", "swin_", "maxvit_")) else "cnn"
            return _timm_family(arch) if arch else None
        return "cnn" if model_type in ("resnet", "vgg") else None
    if name.startswith("hf-hub:"):
        return None
    family = _timm_family(name)
    if family is not None:
        return family
    import torchvision

    if name in torchvision.models.list_models(module=torchvision.models):
        return "vit" if name.startswith(("vit_", "swin_", "maxvit_")) else "cnn"
    return None


_SCRIPT_OF = {"vit": "recipes/deit.py", "cnn": "recipes/cnn.py"}
_WHAT = {"vit": "a vision transformer (ViT/DeiT)", "cnn": "a CNN (ResNet/VGG)"}


def _check_family(name: str, found: str | None, expected: str | None, detail: str = "") -> None:
    if expected is None or found is None or found == expected:
        return
    raise ElastoformerError(
        f"{_SCRIPT_OF[expected]} trains {_WHAT[expected]}, but {name!r} is {_WHAT[found]}{detail}: "
        f"use {_SCRIPT_OF[found]}"
    )


# --------------------------------------------------------------------------------------------------------
# data


def _subsample(ds, n: int | None, seed: int):
    import numpy as np

    if n is None or n >= len(ds):
        return ds
    return ds.select(np.sort(np.random.default_rng(seed).permutation(len(ds))[:n]).tolist())


def _load_data(data_args: DataArguments, seed: int, parent_args: ParentArguments | None):
    """``(elastic_train, eval, label_names, parent_train)``; ``parent_train`` is None without a parent."""
    n_elastic = data_args.max_train_samples
    n_parent = parent_args.parent_max_train_samples if parent_args is not None and parent_args.enabled else None
    with_parent = parent_args is not None and parent_args.enabled
    # load once, enough rows for both stages; then subsample each
    n_load = (None if n_elastic is None or n_parent is None else max(n_elastic, n_parent)) if with_parent else n_elastic
    train, eval_ds, label_names = load_image_datasets(
        data_args.dataset_name, data_args.data_path, train_split=data_args.train_split,
        eval_split=data_args.eval_split, max_train_samples=n_load, max_eval_samples=data_args.max_eval_samples,
        seed=seed, dummy_num_classes=data_args.dummy_num_classes, dummy_image_size=data_args.dummy_image_size,
    )
    if len(train) == 0 or len(eval_ds) == 0:
        raise DataError(f"{data_args.dataset_name}: empty split (train {len(train)}, eval {len(eval_ds)} images)")
    parent_train = _subsample(train, n_parent, seed) if with_parent else None
    return _subsample(train, n_elastic, seed), eval_ds, label_names, parent_train


def recipe_transforms(source: Any, data_args: DataArguments):
    """``(train_transform, eval_transform)`` from a model's preprocessing settings (a transformers image processor,
    a timm/torchvision data-config dict, or None) and the data arguments' overrides."""
    base = mean_std_from_processor(source)
    image_size = data_args.image_size or base["image_size"]
    interpolation = data_args.interpolation or base["interpolation"]
    crop_pct = data_args.crop_pct or base["crop_pct"]
    common = dict(mean=base["mean"], std=base["std"], interpolation=interpolation, hflip=data_args.hflip)
    train = build_transforms(image_size, is_training=True, auto_augment=data_args.auto_augment,
                             re_prob=data_args.re_prob, scale=(data_args.min_crop_scale, 1.0),
                             color_jitter=data_args.color_jitter or None, **common)
    eval_ = build_transforms(image_size, is_training=False, crop_pct=crop_pct, **common)
    return train, eval_


def _transform_source(loaded) -> Any:
    return loaded.image_processor if loaded.image_processor is not None else loaded.data_config


# --------------------------------------------------------------------------------------------------------
# the demo's parent


def _parent_fingerprint(parent_args: ParentArguments, data_args: DataArguments, seed: int) -> dict:
    data = {k: getattr(data_args, k) for k in ("dataset_name", "data_path", "train_split", "auto_augment", "re_prob",
                                               "hflip", "color_jitter", "min_crop_scale", "interpolation")}
    return {"parent": dataclasses.asdict(parent_args), "data": data, "seed": seed}


def _complete_parent(folder: Path) -> dict | None:
    info = folder / PARENT_INFO
    weights = any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin"))
    if not (info.is_file() and (folder / "config.json").is_file() and weights):
        return None
    try:
        return json.loads(info.read_text())
    except json.JSONDecodeError:
        return None


def _accuracy(model, dataset, batch_size: int) -> float:
    import torch

    from .data import ImageCollator

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=ImageCollator())
    device = next(model.parameters()).device
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            logits = model(pixel_values=batch["pixel_values"].to(device)).logits
            correct += (logits.argmax(-1).cpu() == batch["labels"]).sum().item()
            total += len(batch["labels"])
    return correct / max(total, 1)


def train_parent(
    parent_args: ParentArguments,
    data_args: DataArguments,
    training_args: ElasticTrainingArguments,
    train_dataset,
    eval_dataset,
    label_names: list[str],
) -> Path:
    """Train (or reuse) the demo's parent ViT; returns ``<output_dir>/parent``.

    ``train_dataset``/``eval_dataset`` are the raw ``image``/``label`` datasets. The folder is written aside and
    renamed into place, with ``parent_info.json`` (settings, accuracy, time) written last: an existing folder
    with that file is complete. It is reused when its settings match, and an error when they differ.
    """
    import torch
    import transformers

    from .data import ImageCollator

    seed = training_args.seed
    out = Path(training_args.output_dir) / PARENT_FOLDER
    fingerprint = _parent_fingerprint(parent_args, data_args, seed)
    info = _complete_parent(out)
    if info is not None:
        if info.get("fingerprint") != json.loads(json.dumps(fingerprint)):
            raise ElastoformerError(
                f"{out} holds a parent trained with other settings; delete it (it is retrained) or choose another "
                "--output_dir"
            )
        print(f"reusing the parent in {out} (eval accuracy {info.get('eval_accuracy', float('nan')):.4f})",
              file=sys.stderr)
        return out

    cfg = dict(parent_args.parent_config)
    if "image_size" not in cfg and data_args.image_size:
        cfg["image_size"] = data_args.image_size
    config = transformers.ViTConfig(
        **cfg, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)}, architectures=["ViTForImageClassification"],
    )
    side = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    if data_args.image_size and data_args.image_size != side:
        raise ElastoformerError(f"image_size {data_args.image_size} differs from parent_config's image_size {side}")
    processor = transformers.ViTImageProcessor(size={"height": side, "width": side}, resample=3)  # bicubic
    train_tf, eval_tf = recipe_transforms(processor, data_args)

    torch.manual_seed(seed)
    model = transformers.ViTForImageClassification(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    args = transformers.TrainingArguments(
        output_dir=str(out.parent / f".{PARENT_FOLDER}-trainer"),
        per_device_train_batch_size=parent_args.parent_batch_size,
        per_device_eval_batch_size=max(parent_args.parent_batch_size, training_args.per_device_eval_batch_size),
        num_train_epochs=parent_args.parent_epochs, max_steps=parent_args.parent_max_steps,
        learning_rate=parent_args.parent_learning_rate, weight_decay=parent_args.parent_weight_decay,
        warmup_steps=parent_args.parent_warmup_ratio, lr_scheduler_type="cosine",  # < 1: a ratio
        label_smoothing_factor=parent_args.parent_label_smoothing, eval_strategy="no", save_strategy="no",
        logging_steps=max(training_args.logging_steps if training_args.logging_steps >= 1 else 50, 1),
        report_to="none", remove_unused_columns=False, seed=seed, bf16=training_args.bf16, fp16=training_args.fp16,
        use_cpu=training_args.use_cpu, dataloader_num_workers=training_args.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(), dataloader_drop_last=True,
        disable_tqdm=training_args.disable_tqdm,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=with_transforms(train_dataset, train_tf),
                                   data_collator=ImageCollator())
    start = time.perf_counter()
    result = trainer.train()  # every process takes part (DDP under accelerate launch); the main one saves
    train_seconds = time.perf_counter() - start
    if args.process_index == 0:
        accuracy = _accuracy(trainer.model, with_transforms(eval_dataset, eval_tf), args.per_device_eval_batch_size)
        with staged_folder(out) as tmp:  # an incomplete folder from an interrupted run is replaced
            trainer.model.to("cpu").float().save_pretrained(tmp)
            processor.save_pretrained(tmp)
            info = {
                "fingerprint": fingerprint, "eval_accuracy": accuracy, "train_seconds": round(train_seconds, 1),
                "train_images": len(train_dataset), "eval_images": len(eval_dataset),
                "steps": result.global_step, "train_loss": result.training_loss,
            }
            (tmp / PARENT_INFO).write_text(json.dumps(info, indent=2) + "\n")  # last: the folder is complete
            shutil.rmtree(args.output_dir, ignore_errors=True)
        print(f"parent: {len(train_dataset)} images, {result.global_step} steps in {train_seconds:.0f} s, "
              f"eval accuracy {accuracy:.4f} -> {out}", file=sys.stderr)
    trainer.accelerator.wait_for_everyone()
    return out


# --------------------------------------------------------------------------------------------------------
# the recipe


def _num_labels_for_loading(name: str, n_classes: int) -> int | None:
    """``n_classes``, or None when a transformers model already has that many classes (no head replacement and
    no ``ignore_mismatched_sizes``)."""
    if os.path.isdir(name) and (Path(name) / "config.json").is_file():
        try:
            config = json.loads((Path(name) / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            return n_classes
        if "architecture" not in config:
            labels = config.get("id2label")
            count = len(labels) if isinstance(labels, dict) else config.get("num_labels", 2)
            return None if count == n_classes else n_classes
    return n_classes


def _generic_labels(names: list[str] | None) -> bool:
    return not names or all(str(n) == f"LABEL_{i}" for i, n in enumerate(names))


def run_recipe(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: ElasticTrainingArguments,
    parent_args: ParentArguments | None = None,
    *,
    family: str | None = None,
) -> dict:
    """Train the elastic family described by the arguments; returns :meth:`ElasticTrainer.train`'s summary.

    Order: the model name's family (``family``: ``"vit"``/``"cnn"``, None = any) is checked from the name alone,
    then the data is loaded (a missing dataset fails here, before any model), then the demo's parent is trained
    (``parent_args.parent_config``), then the model is loaded, its adapter checked against ``family``, and the
    transforms built from its preprocessing settings with the data arguments' overrides.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES} or None, got {family!r}")
    with_parent = parent_args is not None and parent_args.enabled
    if with_parent and family == "cnn":
        raise ElastoformerError("--parent_config trains a transformers ViT parent: use recipes/deit.py")
    if not with_parent and model_args.model_name_or_path is None:
        raise ElastoformerError("--model_name_or_path is required (or --parent_config, to train a demo parent first)")
    name = model_args.model_name_or_path
    if name is not None:
        _check_family(name, model_family(name, model_args.weights), family)

    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    train_raw, eval_raw, label_names, parent_train = _load_data(data_args, seed, parent_args)
    if model_args.num_labels is not None and model_args.num_labels != len(label_names):
        raise ElastoformerError(
            f"num_labels {model_args.num_labels} differs from the {len(label_names)} classes of "
            f"{data_args.dataset_name}; drop --num_labels to use the dataset's"
        )
    random_init = model_args.random_init
    if with_parent:
        name = str(train_parent(parent_args, data_args, training_args, parent_train, eval_raw, label_names))
        random_init = False

    loaded = load_base_model(name, random_init=random_init, weights=model_args.weights,
                             num_labels=_num_labels_for_loading(name, len(label_names)),
                             model_args=model_args.model_args)
    from .adapters import get_adapter

    adapter = get_adapter(loaded.model)
    found = "vit" if adapter.name in VIT_ADAPTERS else "cnn"
    _check_family(name, found, family, f" ({adapter.name})")
    classes = adapter.classifier_layers(loaded.model)[0].out_features
    if classes != len(label_names):
        raise ElastoformerError(f"{name} has {classes} classes but {data_args.dataset_name} has {len(label_names)}")
    if found == "vit" and data_args.image_size and data_args.image_size != adapter.image_size(loaded.model):
        raise ElastoformerError(
            f"image_size {data_args.image_size} differs from the resolution of {name} "
            f"({adapter.image_size(loaded.model)}); a ViT's position embeddings fix it: drop --image_size"
        )
    if _generic_labels(loaded.label_names) or len(loaded.label_names) != len(label_names):
        loaded.label_names = list(label_names)
        config = getattr(loaded.model, "config", None)
        if config is not None and hasattr(config, "id2label"):
            config.id2label = dict(enumerate(label_names))
            config.label2id = {n: i for i, n in enumerate(label_names)}

    train_tf, eval_tf = recipe_transforms(_transform_source(loaded), data_args)
    from .training import ElasticTrainer

    trainer = ElasticTrainer(model=loaded, args=training_args, train_dataset=with_transforms(train_raw, train_tf),
                             eval_dataset=with_transforms(eval_raw, eval_tf), label_names=loaded.label_names)
    summary = trainer.train()
    if with_parent and isinstance(summary, dict):
        info = _complete_parent(Path(name)) or {}
        summary = {**summary, "parent": {"folder": name, **{k: info.get(k) for k in (
            "eval_accuracy", "train_seconds", "train_images", "steps")}}}
    return summary


def recipe_main(argv: list[str] | None = None, *, family: str | None = None, prog: str | None = None) -> int:
    """Parse, run, print the summary; an :class:`ElastoformerError` becomes one line on stderr and status 2."""
    prog = prog or os.path.basename(sys.argv[0] or "recipe")
    try:
        model_args, data_args, training_args, parent_args = parse_recipe_args(argv, prog=prog)
        summary = run_recipe(model_args, data_args, training_args, parent_args, family=family)
    except ElastoformerError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(summary, indent=2, default=str))
    return 0
