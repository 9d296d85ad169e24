"""The recipe's own argument dataclasses (trl-style: fields with ``metadata={"help": ...}``, checks in
``__post_init__``): which model, which data and how it is augmented, and the offline demo's parent.

With :class:`~elastoformer_hf.training.ElasticTrainingArguments` (Trainer's arguments plus the elastic knobs) they
are the four dataclasses :func:`~elastoformer_hf.recipe.parser.make_parser` reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import transformers

from ..base_model import check_model_args
from ..data.catalog import DATASET_NAMES, DataError, canonical_name
from ..data.transforms import build_transforms
from ..errors import ElastoformerError
from ..training.arguments import ElasticTrainingArguments

__all__ = ["RECIPE_DATACLASSES", "DataArguments", "ModelArguments", "ParentArguments"]

INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "hamming", "box", "random")


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
        metadata={"help": "extra architecture arguments for timm.create_model, as a JSON object "
                          "(e.g. '{\"drop_path_rate\": 0.1}'; loader options such as checkpoint_path are refused)"},
    )

    def __post_init__(self):
        self.model_name_or_path = _optional_str(self.model_name_or_path)
        self.weights = _optional_str(self.weights)
        _positive_int_or_none(self.num_labels, "num_labels")
        self.model_args = _json_dict(self.model_args, "model_args")
        if self.model_args:  # before the demo's parent or anything else is written
            check_model_args(self.model_args)


@dataclass
class DataArguments:
    """Which images, and how they are augmented (timm's ``create_transform``)."""

    dataset_name: str = field(
        metadata={"help": "any Hub dataset id (e.g. AI-Lab-Makerere/beans) or local dataset folder, loaded with "
                          "datasets.load_dataset; or a shortcut: "
                          + "; ".join(f"{k} = {v}" for k, v in DATASET_NAMES.items())},
    )
    data_path: str | None = field(
        default=None, metadata={"help": "local data folder (imagefolder: train/<class>/*, val/<class>/*; for a Hub "
                                        "id: a local copy of it, which the cards still name by the id)"}
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "the dataset's configuration (load_dataset's name), for a Hub id or folder"}
    )
    image_column_name: str | None = field(
        default=None, metadata={"help": "the image column (default: image/img, else the first Image column)"}
    )
    label_column_name: str | None = field(
        default=None,
        metadata={"help": "the label column (default: label/fine_label/labels, else the first ClassLabel column)"},
    )
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: str | None = field(
        default=None, metadata={"help": "split to evaluate on (default: the first of validation/val/valid/test)"}
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "read the splits as streams (datasets' streaming) instead of downloading them whole, for "
                          "sets too large to download (ImageNet-1k is about 150 GB); then max_steps is required (a "
                          "stream has no length), ra_sampler and the demo parent are not available, and "
                          "max_train_samples/max_eval_samples take the first rows of each stream"},
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
            self.dataset_name = canonical_name(self.dataset_name)
        except DataError as err:
            raise ElastoformerError(str(err)) from None
        self.data_path = _optional_str(self.data_path)
        self.dataset_config = _optional_str(self.dataset_config)
        self.image_column_name = _optional_str(self.image_column_name)
        self.label_column_name = _optional_str(self.label_column_name)
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
    """The dense parent a family is cut from, trained first on the same data (``<output_dir>/parent/``).

    Two ways, both reused when a complete ``parent/`` folder trained with the same settings exists:

    * ``parent_config`` (the offline demo): a small ``ViTForImageClassification(ViTConfig(**parent_config))``
      trained from scratch with a plain ``transformers.Trainer``;
    * ``parent_finetune``: the pre-trained ``--model_name_or_path`` itself fine-tuned (its new classifier and every
      other weight) with :class:`~elastoformer_hf.training.dense.DenseTrainer`. Its accuracy is the baseline the
      levels are compared with; it is also the distillation teacher (``dense``) and the weights the levels are cut
      from.
    """

    parent_config: dict | str | None = field(
        default=None,
        metadata={"help": "ViTConfig keyword arguments of a parent to train first (JSON on the command line), e.g. "
                          "'{\"hidden_size\": 192, \"num_hidden_layers\": 6, \"num_attention_heads\": 3, "
                          "\"intermediate_size\": 768, \"image_size\": 28, \"patch_size\": 7}'; unset: no parent"},
    )
    parent_finetune: bool = field(
        default=False,
        metadata={"help": "fine-tune the pre-trained --model_name_or_path on the data first (the parent_* settings); "
                          "the family is cut from the fine-tuned model, which is also the summary's baseline"},
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
        if self.parent_config is not None and self.parent_finetune:
            raise ElastoformerError("give --parent_config (a ViT trained from scratch) or --parent_finetune (the "
                                    "pre-trained model fine-tuned), not both")
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
            try:
                transformers.ViTConfig(**self.parent_config)
            except (TypeError, ValueError) as err:
                raise ElastoformerError(f"parent_config is not a valid ViTConfig: {err}") from None
            unknown = sorted(set(self.parent_config) - set(transformers.ViTConfig().to_dict()))
            if unknown:
                raise ElastoformerError(f"parent_config has keys that ViTConfig does not know: {', '.join(unknown)}")

    @property
    def enabled(self) -> bool:
        """Whether a parent is trained first (from scratch, or fine-tuned)."""
        return self.parent_config is not None or self.parent_finetune

    @property
    def from_scratch(self) -> bool:
        """Whether the parent is the demo's ViT trained from scratch (``parent_config``)."""
        return self.parent_config is not None


RECIPE_DATACLASSES = (ModelArguments, DataArguments, ElasticTrainingArguments, ParentArguments)
