"""Load the base (dense, pre-trained) model by name, remembering how to build it again.

Names: a transformers Hub id or local folder (ViT / DeiT), a timm model name (``resnet50``,
``vit_base_patch16_224``, ``hf-hub:timm/...``, or a local timm folder), or a torchvision builder name
(``torchvision:resnet50``, or any torchvision name together with ``weights=``). ``random_init`` builds from the
config alone and fetches no weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .adapters import ArchitectureAdapter, get_adapter
from .errors import CheckpointError, ElastoformerError, SettingError, UnsupportedModelError
from .modeling.modeling_elastoformer import ARCHITECTURE_ARGS, build_base_model, non_architecture_args

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class BaseModelSpec:
    """How to rebuild the dense architecture (JSON-friendly, recorded in plans and configs).

    Args:
        source (`str`): ``"transformers"``, ``"timm"`` or ``"torchvision"``.
        name (`str`): what the user asked for.
        architecture (`str`): the timm name, torchvision builder, or transformers class name.
        model_args (`dict`, *optional*, defaults to `{}`): the constructor arguments (timm, torchvision).
        config (`dict`, *optional*): the transformers config as a dict.
        weights (`str`, *optional*): the torchvision weights enum name.
        pretrained (`bool`, *optional*, defaults to `True`): whether the model was loaded with pre-trained
            weights.
    """

    source: str  # "transformers" | "timm" | "torchvision"
    name: str  # what the user asked for
    architecture: str  # timm name, torchvision builder, or transformers class name
    model_args: dict = field(default_factory=dict)
    config: dict | None = None  # transformers config as a dict
    weights: str | None = None  # torchvision weights enum name
    pretrained: bool = True

    def to_dict(self) -> dict:
        """The spec as a JSON-friendly dict.

        Returns:
            `dict`: every field; ``BaseModelSpec(**spec.to_dict())`` rebuilds the spec.
        """
        return asdict(self)


def check_model_args(model_args: dict | None) -> dict:
    """The constructor arguments a user gives for the base model (``--model_args``), checked: a run records them
    and every level is rebuilt with them, so only architecture arguments (:data:`ARCHITECTURE_ARGS`) are taken.

    Raises:
        SettingError: ``model_args`` is not a mapping, or holds a key that is not an architecture argument.
    """
    if model_args is None:
        return {}
    if not isinstance(model_args, dict):
        raise SettingError(f"model_args must be a mapping of architecture arguments, got {model_args!r}")
    refused = non_architecture_args(model_args)
    if refused:
        raise SettingError(f"model_args {refused[0]!r} is not an architecture argument (a run records model_args "
                           "and rebuilds every level with them); accepted: " + ", ".join(sorted(ARCHITECTURE_ARGS)))
    return dict(model_args)


def check_stored_model_args(model_args, path: str | os.PathLike, key: str) -> dict:
    """``model_args`` read from a stored config (``path``, under ``key``), checked before any builder sees them.

    A config can come from anyone (a downloaded level, a family repo): only architecture arguments
    (:data:`ARCHITECTURE_ARGS`) are passed on, never loader options such as ``checkpoint_path``, ``pretrained``
    or ``pretrained_cfg_overlay``, which would make rebuilding the architecture read a file the config names.

    Raises:
        CheckpointError: ``model_args`` is not a mapping, or holds another key (one line naming it and the file).
    """
    if model_args is None:
        return {}
    if not isinstance(model_args, dict):
        raise CheckpointError(f"{path}: {key} must be a JSON object, got {type(model_args).__name__}")
    refused = non_architecture_args(model_args)
    if refused:
        raise CheckpointError(f"{path}: {key} sets {refused[0]!r}, which is not an architecture argument; a stored "
                              "config may only hold the architecture's own arguments (not loader options such as "
                              "checkpoint_path, pretrained or pretrained_cfg_overlay): refusing to load it")
    return model_args


def stored_spec(data, path: str | os.PathLike, key: str = "base_model") -> BaseModelSpec:
    """The :class:`BaseModelSpec` a stored file records (``elastic_level.json``, ``family_config.json``), checked.

    Rebuilding from it never loads pre-trained weights (:func:`build_from_spec` builds with ``pretrained=False``)
    and passes only architecture arguments on (:func:`check_stored_model_args`).

    Raises:
        CheckpointError: ``data`` is not a spec, or its ``model_args`` hold a key that is not an architecture
            argument.
    """
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: {key} must be a JSON object (source, name, architecture, ...)")
    try:
        spec = BaseModelSpec(**data)
    except TypeError as err:
        raise CheckpointError(f"{path}: {key} is not a base model spec ({err})") from None
    check_stored_model_args(spec.model_args, path, f"{key}.model_args")
    return spec


@dataclass
class LoadedModel:
    """A base model as :func:`load_base_model` returns it.

    Args:
        model (`nn.Module`): the dense model.
        spec (`BaseModelSpec`): how to rebuild its architecture.
        data_config (`dict`): its preprocessing: ``input_size``, ``mean``, ``std``, ``interpolation``,
            ``crop_pct``.
        label_names (`list[str]`, *optional*): the class names, when known.
        image_processor (*optional*): the transformers image processor, for transformers models.
    """

    model: nn.Module
    spec: BaseModelSpec
    data_config: dict  # input_size, mean, std, interpolation, crop_pct
    label_names: list[str] | None = None
    image_processor: Any = None  # transformers image processor, for transformers models


def _offline_hint(err: Exception) -> str:
    return f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"


def _load_transformers(name: str, random_init: bool, num_labels: int | None) -> LoadedModel:
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise ElastoformerError(
            f"could not read the config of {name!r} {_offline_hint(err)}; offline, pass a local folder holding "
            "its config.json (and weights, unless --random_init)"
        ) from None
    architecture = (config.architectures or [None])[0]
    # a backbone-only checkpoint (ViTModel, e.g. google/vit-base-patch16-224-in21k) gets the classification class
    if architecture is None or not hasattr(transformers, architecture) or "ForImageClassification" not in architecture:
        try:
            cls = transformers.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING[type(config)]
        except KeyError:
            raise UnsupportedModelError(f"{name!r} ({config.model_type}) is not an image-classification model") from None
        architecture = (cls[0] if isinstance(cls, tuple) else cls).__name__
    cls = getattr(transformers, architecture)
    if num_labels is not None and num_labels != config.num_labels:
        config.num_labels = num_labels
        config.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    if random_init:
        model = cls(config)
    else:
        try:
            model = cls.from_pretrained(name, config=config, ignore_mismatched_sizes=num_labels is not None)
        except OSError as err:
            raise ElastoformerError(
                f"could not load the weights of {name!r} {_offline_hint(err)}; use --random_init to plan from the "
                "config alone"
            ) from None
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(name)
    except (OSError, ValueError):
        size = getattr(config, "image_size", 224)
        size = size if isinstance(size, int) else size[0]
        # no preprocessor_config.json next to the config: the ViT defaults at the model's resolution
        processor = transformers.ViTImageProcessor(size={"height": size, "width": size})
    crop = getattr(processor, "crop_size", None) or processor.size
    side = crop.get("height", crop.get("shortest_edge", 224))
    data_config = {
        "input_size": [config.num_channels, side, side],
        "mean": list(processor.image_mean),
        "std": list(processor.image_std),
        "interpolation": "bicubic" if getattr(processor, "resample", 3) == 3 else "bilinear",
        "crop_pct": 1.0 if getattr(processor, "crop_size", None) is None else side / processor.size.get("height", side),
    }
    spec = BaseModelSpec("transformers", name, architecture, config=config.to_dict(), pretrained=not random_init)
    id2label = model.config.id2label
    return LoadedModel(model, spec, data_config, [id2label[i] for i in sorted(id2label)], processor)


def _load_timm(name: str, random_init: bool, num_labels: int | None, model_args: dict) -> LoadedModel:
    import timm

    args = dict(model_args)
    if num_labels is not None:
        args["num_classes"] = num_labels
    try:
        model = timm.create_model(name, pretrained=not random_init, **args)
    except (OSError, RuntimeError, ValueError) as err:
        raise ElastoformerError(
            f"could not build timm model {name!r} with pretrained weights {_offline_hint(err)}; use --random_init "
            "to plan from the architecture alone, or a local folder"
        ) from None
    architecture = model.pretrained_cfg.get("architecture") or name
    args.setdefault("num_classes", model.num_classes)
    overrides = {}
    if args.get("img_size"):  # timm's pretrained config still names the default resolution
        size = args["img_size"]
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        overrides["input_size"] = (int(args.get("in_chans", 3)), height, width)
    data_config = timm.data.resolve_data_config(overrides, model=model)
    labels = model.pretrained_cfg.get("label_names")
    if labels is None and model.num_classes == 1000:
        labels = timm.data.ImageNetInfo().label_names()
    spec = BaseModelSpec("timm", name, architecture, model_args=args, pretrained=not random_init)
    return LoadedModel(model, spec, {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
                       list(labels) if labels else None)


def _load_torchvision(name: str, random_init: bool, num_labels: int | None, weights: str | None) -> LoadedModel:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise UnsupportedModelError(f"unknown torchvision model {name!r}")
    weight_enum = None
    if weights and not random_init:
        try:
            weight_enum = torchvision.models.get_weight(weights)
        except (ValueError, KeyError, AttributeError):
            raise ElastoformerError(
                f"unknown torchvision weights {weights!r}; expected an enum name such as ResNet50_Weights.IMAGENET1K_V2"
            ) from None
    try:
        model = torchvision.models.get_model(name, weights=weight_enum)
    except (OSError, RuntimeError) as err:
        raise ElastoformerError(f"could not fetch torchvision weights {weights} {_offline_hint(err)}") from None
    labels, data_config = None, {
        "input_size": [3, 224, 224], "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
        "interpolation": "bilinear", "crop_pct": 0.875,
    }
    if weight_enum is not None:
        labels = list(weight_enum.meta.get("categories") or []) or None
        tf = weight_enum.transforms()
        crop, resize = tf.crop_size[0], tf.resize_size[0]
        data_config.update(input_size=[3, crop, crop], mean=list(tf.mean), std=list(tf.std),
                           interpolation=tf.interpolation.value, crop_pct=crop / resize)
    num_classes = _torchvision_num_classes(model)
    if num_labels is not None and num_labels != num_classes:
        _replace_torchvision_classifier(model, num_labels)
        labels, num_classes = None, num_labels
    spec = BaseModelSpec("torchvision", name, name, model_args={"num_classes": num_classes},
                         weights=weights if weight_enum is not None else None, pretrained=weight_enum is not None)
    return LoadedModel(model, spec, data_config, labels)


def _torchvision_classifier(model: nn.Module) -> tuple[nn.Module, str]:
    if isinstance(getattr(model, "fc", None), nn.Linear):
        return model, "fc"
    if isinstance(getattr(model, "classifier", None), nn.Sequential):
        return model.classifier, str(len(model.classifier) - 1)
    raise UnsupportedModelError(f"cannot find the classifier of torchvision {type(model).__name__}")


def _torchvision_num_classes(model: nn.Module) -> int:
    owner, attr = _torchvision_classifier(model)
    return getattr(owner, attr).out_features


def _replace_torchvision_classifier(model: nn.Module, num_classes: int) -> None:
    owner, attr = _torchvision_classifier(model)
    old = getattr(owner, attr)
    setattr(owner, attr, nn.Linear(old.in_features, num_classes))


def load_base_model(
    name: str,
    *,
    random_init: bool = False,
    weights: str | None = None,
    num_labels: int | None = None,
    model_args: dict | None = None,
) -> LoadedModel:
    """Load (or, with ``random_init``, build) the dense model and check that an adapter supports it.

    The architecture is checked first, from the config or the name alone (:func:`probe_adapter`), so an
    unsupported model is refused before any weights are fetched.

    Args:
        name (`str`): a transformers Hub id or local folder (ViT / DeiT), a timm model name (``resnet50``,
            ``timm:...``, ``hf-hub:timm/...``, or a local timm folder), or a torchvision builder name
            (``torchvision:resnet50``, or any torchvision name together with ``weights``).
        random_init (`bool`, *optional*, defaults to `False`): build from the config alone and fetch no
            weights.
        weights (`str`, *optional*): a torchvision weights enum name (e.g.
            ``ResNet50_Weights.IMAGENET1K_V2``); it makes ``name`` a torchvision name.
        num_labels (`int`, *optional*): the number of classes; a different count than the checkpoint's gets
            a new classifier.
        model_args (`dict`, *optional*): extra constructor arguments for timm models: architecture arguments
            only (:data:`~elastoformer_hf.modeling.modeling_elastoformer.ARCHITECTURE_ARGS`).

    Returns:
        `LoadedModel`: the model (in eval mode), its spec, its preprocessing and, when known, its class names
        and image processor.

    Raises:
        UnsupportedModelError: an unknown name, or an architecture no adapter supports.
        SettingError: ``model_args`` holds a key that is not an architecture argument (:func:`check_model_args`),
            or ``num_labels`` is not an integer >= 1.
        CheckpointError: a local timm folder's ``config.json`` does (:func:`check_stored_model_args`).
        ElastoformerError: the config or the weights cannot be read.
    """
    import timm
    import torchvision

    if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1):
        # 0 or less would build a headless model (transformers and timm read it as "no classifier")
        raise SettingError(f"num_labels must be an integer >= 1 (or None: the model's own), got {num_labels!r}: it "
                           "is the classifier's class count, and 0 or less builds a model without a classifier")
    model_args = check_model_args(model_args)
    probe_adapter(name, weights=weights, model_args=model_args)
    if name.startswith("torchvision:"):
        loaded = _load_torchvision(name.split(":", 1)[1], random_init, num_labels, weights)
    elif name.startswith("timm:"):
        loaded = _load_timm(name.split(":", 1)[1], random_init, num_labels, model_args)
    elif name.startswith("hf-hub:"):
        loaded = _load_timm(name, random_init, num_labels, model_args)
    elif os.path.isdir(name):
        config_path = os.path.join(name, "config.json")
        if not os.path.isfile(config_path):
            raise ElastoformerError(f"{name} is a folder without config.json: not a model folder")
        try:
            config = json.loads(Path(config_path).read_text())
        except json.JSONDecodeError as err:
            raise ElastoformerError(f"{config_path} is not valid JSON ({err})") from None
        if "architecture" in config:  # timm's Hub layout: timm passes its model_args to the builder
            check_stored_model_args(config.get("model_args"), config_path, "model_args")
            loaded = _load_timm(f"local-dir:{os.path.abspath(name)}", random_init, num_labels, model_args)
        else:
            loaded = _load_transformers(name, random_init, num_labels)
    elif weights is not None:
        loaded = _load_torchvision(name, random_init, num_labels, weights)
    elif timm.is_model(name):
        loaded = _load_timm(name, random_init, num_labels, model_args)
    elif name in torchvision.models.list_models(module=torchvision.models):
        loaded = _load_torchvision(name, random_init, num_labels, weights)
    elif name.count("/") == 1 and not name.startswith((".", "/")):
        loaded = _load_transformers(name, random_init, num_labels)
    else:
        raise UnsupportedModelError(
            f"unknown model {name!r}: expected a transformers Hub id or local folder (ViT/DeiT), a timm name "
            "(e.g. resnet50, vgg16, deit_base_patch16_224), or a torchvision name (e.g. torchvision:resnet50, "
            "or resnet50 with --weights ResNet50_Weights.IMAGENET1K_V2)"
        )
    get_adapter(loaded.model)  # unsupported architectures fail here, before any work
    loaded.model.eval()
    return loaded


def probe_adapter(name: str, *, weights: str | None = None,
                  model_args: dict | None = None) -> ArchitectureAdapter | None:
    """The adapter of ``name``'s architecture, built from its config or name alone on the meta device.

    No weights are fetched.

    Args:
        name (`str`): a model name, as :func:`load_base_model` takes it.
        weights (`str`, *optional*): a torchvision weights enum name (it makes ``name`` a torchvision name).
        model_args (`dict`, *optional*): extra constructor arguments for timm models.

    Returns:
        `ArchitectureAdapter` or `None`: the adapter; None when the architecture cannot be read here (a Hub id
        that is not in the local cache offline, a folder without a readable config: :func:`load_base_model`
        then says what is wrong).

    Raises:
        UnsupportedModelError: the architecture is known and no adapter supports it.
    """
    skeleton = _skeleton(name, weights, dict(model_args or {}))
    return get_adapter(skeleton) if skeleton is not None else None


def _skeleton(name: str, weights: str | None, model_args: dict) -> nn.Module | None:
    import timm
    import torchvision
    import transformers

    def transformers_skeleton(config) -> nn.Module | None:
        architecture = (config.architectures or [None])[0]
        cls = getattr(transformers, architecture, None) if architecture else None
        if cls is None or "ForImageClassification" not in architecture:
            found = transformers.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING.get(type(config))
            if found is None:
                raise UnsupportedModelError(f"{name!r} ({config.model_type}) is not an image-classification model")
            cls = found[0] if isinstance(found, tuple) else found
        return cls(config)

    torchvision_names = torchvision.models.list_models(module=torchvision.models)
    try:
        with torch.device("meta"):
            if name.startswith("torchvision:") or weights is not None:
                arch = name.split(":", 1)[-1]
                return torchvision.models.get_model(arch, weights=None) if arch in torchvision_names else None
            if name.startswith("hf-hub:"):
                return None  # the architecture is in the repo's config.json: known once it is fetched
            arch = name.split(":", 1)[1] if name.startswith("timm:") else name
            if os.path.isdir(name):
                config = json.loads((Path(name) / "config.json").read_text())
                if "architecture" in config:  # timm's layout
                    return timm.create_model(config["architecture"], pretrained=False)
                if config.get("model_type") == "elastoformer":  # a saved level: the architecture it was cut from
                    args = check_stored_model_args(config.get("base_model_args"), Path(name) / "config.json",
                                                   "base_model_args")
                    return build_base_model(config["base_source"], config["base_architecture"], args,
                                            config.get("base_config"))
                return transformers_skeleton(transformers.AutoConfig.from_pretrained(name))
            if timm.is_model(arch):
                return timm.create_model(arch, pretrained=False, **model_args)
            if arch in torchvision_names:
                return torchvision.models.get_model(arch, weights=None)
            if name.count("/") == 1 and not name.startswith((".", "/")):
                return transformers_skeleton(transformers.AutoConfig.from_pretrained(name))
    except ElastoformerError:  # an unsupported architecture, a config that names what it may not
        raise
    except Exception:  # offline without the config, a corrupt config, arguments the builder rejects
        return None
    return None


def build_skeleton(spec: BaseModelSpec | dict) -> nn.Module:
    """The dense architecture of ``spec`` on the meta device: its structure and shapes, no memory for weights.

    Args:
        spec (`BaseModelSpec` or `dict`): how to build the architecture.

    Returns:
        `nn.Module`: the model, every tensor on the meta device.
    """
    try:
        with torch.device("meta"):
            return build_from_spec(spec)
    except (NotImplementedError, RuntimeError):  # a constructor that computes with tensors (torchvision's RegNet)
        return build_from_spec(spec).to("meta")


def build_from_spec(spec: BaseModelSpec | dict) -> nn.Module:
    """The dense architecture of ``spec`` with fresh weights (no download).

    Args:
        spec (`BaseModelSpec` or `dict`): the spec, or its :meth:`BaseModelSpec.to_dict`.

    Returns:
        `nn.Module`: the model, randomly initialised.

    Raises:
        ValueError: the spec's source is not timm, torchvision or transformers.
    """
    spec = BaseModelSpec(**spec) if isinstance(spec, dict) else spec
    return build_base_model(spec.source, spec.architecture, spec.model_args, spec.config)


def spec_from_model(model: nn.Module) -> BaseModelSpec:
    """The :class:`BaseModelSpec` of a model built elsewhere (a user's own script).

    transformers models carry their config; timm models their architecture name (other constructor arguments
    cannot be read back, so the rebuilt architecture is checked against the model). torchvision models record
    neither: load them with :func:`load_base_model` or pass a spec.

    Args:
        model (`nn.Module`): a transformers or timm model.

    Returns:
        `BaseModelSpec`: how to rebuild ``model``'s architecture.

    Raises:
        ElastoformerError: ``model`` is a timm model that its architecture name does not rebuild (other
            constructor arguments), or neither a transformers nor a timm model (e.g. torchvision).
    """
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        config = model.config
        return BaseModelSpec("transformers", config.name_or_path or type(model).__name__, type(model).__name__,
                             config=config.to_dict())
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg and cfg.get("architecture"):
        spec = BaseModelSpec("timm", cfg["architecture"], cfg["architecture"],
                             model_args={"num_classes": model.num_classes})
        rebuilt = build_skeleton(spec)
        if {k: v.shape for k, v in rebuilt.state_dict().items()} != {k: v.shape for k, v in model.state_dict().items()}:
            raise ElastoformerError(
                f"cannot tell which constructor arguments built this timm {cfg['architecture']}: load it with "
                "load_base_model(name, model_args=...) or pass base_spec=BaseModelSpec(...)"
            )
        return spec
    raise ElastoformerError(f"cannot tell how to rebuild a {type(model).__name__}: load it with load_base_model "
                            "(e.g. 'torchvision:resnet50') or pass base_spec=BaseModelSpec(...)")
