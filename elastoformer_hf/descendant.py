"""Descendant-network folders (``dn{k}/``) that the stock loaders open, written atomically, loaded strictly.

Three forms, chosen per level:

* ``transformers``: a uniformly pruned ViT/DeiT is a stock config (``hidden_size``, ``num_attention_heads``,
  ``head_dim``, ``intermediate_size``); ``AutoModelForImageClassification.from_pretrained(path)`` opens it in a
  process that never imports elastoformer_hf.
* ``timm``: timm's Hub layout (``config.json`` with ``architecture``/``model_args``/``pretrained_cfg``) where
  the widths are expressible through the architecture's arguments: ``timm.create_model("local-dir:" + path,
  pretrained=True)`` (or ``hf-hub:org/repo``) opens it.
* ``elastoformer``: otherwise (per-layer widths, torchvision CNNs): :class:`ElastoformerConfig` with the base
  architecture and the changed shapes, plus ``auto_map`` code, so ``trust_remote_code=True`` also works
  without the package, and plain ``from_pretrained`` works once elastoformer_hf is imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .adapters import get_adapter
from .base_model import BaseModelSpec, build_skeleton, check_stored_model_args
from .errors import CheckpointError, ElastoformerError
from .modeling import ElastoformerConfig, ElastoformerForImageClassification
from .modeling.modeling_elastoformer import conv_groups
from .run_folder import (
    LEVEL_FILE,
    check_digests,
    read_level_info,
    stable_metrics,
    staged_folder,
    weight_digests,
    write_json,
)


def _shapes(module: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _label_maps(label_names: list[str] | None, num_labels: int) -> dict:
    names = label_names if label_names and len(label_names) == num_labels else [f"LABEL_{i}" for i in range(num_labels)]
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def _num_labels(model: nn.Module) -> int:
    return get_adapter(model).classifier_layers(model)[0].out_features


def _save_transformers(model, folder: Path, spec: BaseModelSpec, label_names, image_processor) -> bool:
    # a uniformly pruned ViT is a stock config; any other architecture only at its base widths (the full level)
    if not get_adapter(model).structure(model).get("uniform") and _shapes(build_skeleton(spec)) != _shapes(model):
        return False
    for key, value in _label_maps(label_names, _num_labels(model)).items():
        setattr(model.config, key, value)
    model.save_pretrained(folder)
    if image_processor is not None:
        image_processor.save_pretrained(folder)
    return True


def _save_timm(model, folder: Path, spec: BaseModelSpec, label_names, data_config) -> bool:
    args = get_adapter(model).stock_model_args(model)
    if args is None:
        return False
    model_args = {**spec.model_args, **args}
    try:
        candidate = build_skeleton({**spec.to_dict(), "model_args": model_args})
    except (TypeError, ValueError, RuntimeError, AssertionError):
        return False
    if _shapes(candidate) != _shapes(model):
        return False
    from timm.models._hub import save_for_hf

    model_config = {"label_names": label_names} if label_names else None
    save_for_hf(model, str(folder), model_config=model_config, model_args=model_args, safe_serialization=True,
                data_config={k: tuple(v) if isinstance(v, list) else v for k, v in (data_config or {}).items()})
    # timm records num_classes at the top of config.json and again in model_args; transformers' TimmWrapper passes
    # the top-level one and model_args together ("got multiple values for keyword argument 'num_classes'")
    config = json.loads((folder / "config.json").read_text())
    if (config.get("model_args") or {}).pop("num_classes", None) is not None:
        write_json(folder / "config.json", config, sort_keys=False)
    return True


#: PIL resampling codes of timm's interpolation names (what transformers' image processors take)
_RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def image_processor_for(data_config: dict | None):
    """A transformers image processor doing timm's evaluation transform of ``data_config`` (resize the shorter side
    to ``input_size / crop_pct``, center-crop ``input_size``, normalise with ``mean``/``std``), or None without one.

    Args:
        data_config (`dict`, *optional*): timm's preprocessing (``input_size``, ``mean``, ``std``,
            ``interpolation``, ``crop_pct``), as the level was trained with.

    Returns:
        `ConvNextImageProcessor` or `None`: ConvNext's processor is the transformers one with timm's crop
        percentage (``crop_pct``) below 384 px.
    """
    if not data_config or not data_config.get("input_size"):
        return None
    from transformers import ConvNextImageProcessor

    size = int(data_config["input_size"][-1])
    return ConvNextImageProcessor(
        size={"shortest_edge": size}, crop_pct=float(data_config.get("crop_pct") or 1.0),
        resample=_RESAMPLE.get(str(data_config.get("interpolation")), 3),
        image_mean=list(data_config.get("mean") or (0.485, 0.456, 0.406)),
        image_std=list(data_config.get("std") or (0.229, 0.224, 0.225)))


def wrap_elastic(model: nn.Module, spec: BaseModelSpec, *, label_names=None, data_config=None,
                 elastic: dict | None = None) -> ElastoformerForImageClassification:
    """``model`` (a pruned level) as an :class:`ElastoformerForImageClassification` sharing its weights.

    Its :class:`ElastoformerConfig` records the base architecture of ``spec`` and only the tensor shapes that
    differ from it, plus every attention module's head count and head dimension.

    Args:
        model (`nn.Module`): the pruned level; the wrapper shares its weights.
        spec (`BaseModelSpec`): how to rebuild the dense architecture ``model`` was cut from.
        label_names (`list[str]`, *optional*): the class names; ignored unless there is one per output
            (``LABEL_{i}`` names are used then).
        data_config (`dict`, *optional*): the preprocessing (input size, mean, std, ...) to record.
        elastic (`dict`, *optional*): the elastic metadata to record (e.g. ``level`` and ``num_levels``).

    Returns:
        `ElastoformerForImageClassification`: the wrapped model.

    Raises:
        ElastoformerError: ``model``'s tensors are not those of the base architecture (by name).
        UnsupportedModelError: no adapter supports ``model``'s architecture.
    """
    adapter = get_adapter(model)
    base = build_skeleton(spec)
    base_shapes, shapes = _shapes(base), _shapes(model)
    if set(base_shapes) != set(shapes):
        missing = sorted(set(base_shapes) ^ set(shapes))[:5]
        raise ElastoformerError(f"the model's tensors differ from the base architecture's ({missing} ...)")
    attention = {
        name: {"num_heads": heads, "head_dim": head_dim}
        for name, (heads, head_dim) in adapter.attention_modules(model).items()
    }
    base_groups = conv_groups(base)
    config = ElastoformerConfig(
        base_source=spec.source,
        base_architecture=spec.architecture,
        base_model_args=spec.model_args,
        base_config=spec.config,
        param_shapes={k: list(v) for k, v in shapes.items() if v != base_shapes[k]},
        attention=attention,
        conv_groups={n: g for n, g in conv_groups(model).items() if base_groups.get(n) != g},
        data_config=data_config,
        elastic=elastic,
        **_label_maps(label_names, _num_labels(model)),
    )
    # save_pretrained adds AutoConfig and AutoModelForImageClassification (register_for_auto_class); AutoModel,
    # which the Hub's usage snippets use, opens the same class
    config.auto_map = {"AutoModel": f"modeling_elastoformer.{ElastoformerForImageClassification.__name__}"}
    return ElastoformerForImageClassification(config, model=model)


def save_descendant(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    spec: BaseModelSpec,
    level_info: dict,
    label_names: list[str] | None = None,
    data_config: dict | None = None,
    image_processor=None,
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Write ``model`` (one level) to ``path`` in the most stock form that expresses it.

    The form is ``transformers`` for a uniformly pruned transformers model, ``timm`` when timm's architecture
    arguments rebuild exactly the level's shapes, ``elastoformer`` otherwise. The folder is written aside and
    renamed into place, so an interrupted save never leaves a ``dn{k}/`` that looks complete. Beside the model
    goes the level record (``elastic_level.json``): ``level_info`` plus the form (``checkpoint_format``) and
    the base model's spec.

    Args:
        model (`nn.Module`): the level to save (put in eval mode).
        path (`str` or `os.PathLike`): the folder to write (``dn{k}/``).
        spec (`BaseModelSpec`): how to rebuild the dense architecture ``model`` was cut from.
        level_info (`dict`): the level record (``level``, ``num_levels``, costs, ...).
        label_names (`list[str]`, *optional*): the class names.
        data_config (`dict`, *optional*): the preprocessing (input size, mean, std, ...).
        image_processor (*optional*): a transformers image processor, saved beside a transformers or
            elastoformer form.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing ``path``.
        verify (`bool`, *optional*, defaults to `True`): reload the folder and compare logits with the
            in-memory model.

    Returns:
        `Path`: ``path``.

    Raises:
        ElastoformerError: ``path`` exists and ``overwrite`` is False, or (elastoformer form) ``model``'s
            tensors are not those of the base architecture.
        CheckpointError: with ``verify``, the written folder cannot be loaded (:func:`load_descendant`).
        RuntimeError: with ``verify``, reloading the folder does not reproduce the model's logits.
        UnsupportedModelError: no adapter supports ``model``'s architecture.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ElastoformerError(f"{path} already exists; refusing to overwrite it")
    with staged_folder(path) as tmp:
        model = model.eval()
        form = None
        if spec.source == "transformers" and _save_transformers(model, tmp, spec, label_names, image_processor):
            form = "transformers"
        elif spec.source == "timm" and _save_timm(model, tmp, spec, label_names, data_config):
            form = "timm"
        else:
            wrapped = wrap_elastic(model, spec, label_names=label_names, data_config=data_config,
                                   elastic={k: level_info[k] for k in ("level", "num_levels") if k in level_info})
            wrapped.save_pretrained(tmp)
            # AutoImageProcessor and pipeline("image-classification") read preprocessor_config.json
            processor = image_processor if image_processor is not None else image_processor_for(data_config)
            if processor is not None:
                processor.save_pretrained(tmp)
            form = "elastoformer"
        record = {**level_info, "checkpoint_format": form, "base_model": spec.to_dict(), "sha256": weight_digests(tmp)}
        if "metrics" in record:  # the same level written twice gives the same bytes: no timings (stable_metrics)
            record["metrics"] = stable_metrics(record["metrics"])
        write_json(tmp / LEVEL_FILE, record)
        if verify:
            _verify(model, tmp, spec)
    return path


@torch.no_grad()
def _verify(model: nn.Module, folder: Path, spec: BaseModelSpec) -> None:
    adapter = get_adapter(model)
    # ViTs only run at their own resolution; CNNs are checked on a small image (cheaper, same weights)
    image_size = None if adapter.fixed_resolution else 64
    x = adapter.example_inputs(model, image_size)
    expected = adapter.forward_logits(model, x)
    got = adapter.output_transform(load_descendant(folder)(x))
    if not torch.allclose(expected, got, atol=1e-5, rtol=1e-4):
        raise RuntimeError(f"reloading {folder} does not reproduce the model's logits")


@contextlib.contextmanager
def _no_progress_bar(transformers):
    """transformers draws a "Loading weights" bar per ``from_pretrained``; a level is small and bench, export and
    the family load them in loops, so the bar is off while a level loads (the user's setting is restored)."""
    logging = transformers.utils.logging
    was_on = logging.is_progress_bar_enabled()
    if was_on:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            with warnings.catch_warnings():  # huggingface_hub warns when its environment variable disables bars
                warnings.simplefilter("ignore")
                logging.enable_progress_bar()


def verify_level_files(path: str | os.PathLike) -> None:
    """Check a level folder's weight files against the sha256 its record holds (folders written before levels
    recorded digests, or without a level record, have nothing to check).

    Raises:
        CheckpointError: a weight file is missing or is not the file that was written.
    """
    if (Path(path) / LEVEL_FILE).is_file():
        check_digests(path, read_level_info(path).get("sha256") or {})


def bare_model(model: nn.Module) -> nn.Module:
    """The stock architecture inside a loaded level.

    An :class:`ElastoformerForImageClassification` wraps one.

    Args:
        model (`nn.Module`): a level as :func:`load_descendant` returns it.

    Returns:
        `nn.Module`: the wrapped model, or ``model`` itself when it is not a wrapper.
    """
    return model.model if isinstance(model, ElastoformerForImageClassification) else model


def load_descendant(path: str | os.PathLike) -> nn.Module:
    """Open a ``dn{k}/`` folder strictly.

    Missing, unexpected or mis-shaped tensors are an error, never a silently re-initialised model. A timm
    layout is opened with ``timm.create_model``, anything else with the transformers class its config names
    (``AutoModelForImageClassification`` for an elastoformer form or an unknown class).

    Args:
        path (`str` or `os.PathLike`): the level folder.

    Returns:
        `nn.Module`: the model, in eval mode.

    Raises:
        CheckpointError: ``path`` has no ``config.json``, its config is corrupt or hands the model builder
            something else than architecture arguments (``checkpoint_path``, ``pretrained_cfg_overlay``, ...), a
            weight file is not the one written (the sha256 its level record holds), the model cannot be loaded, or
            its tensors do not match its config.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{path} has no config.json: not a saved model folder")
    verify_level_files(path)
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_file} is corrupt ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_file} is corrupt (not a JSON object)")
    # the builders see only architecture arguments: never a checkpoint_path or pretrained_cfg_overlay a config names
    if "architecture" in config:
        check_stored_model_args(config.get("model_args"), config_file, "model_args")
    if config.get("model_type") == ElastoformerConfig.model_type:
        check_stored_model_args(config.get("base_model_args"), config_file, "base_model_args")
    try:
        if "architecture" in config:  # timm layout; timm loads state dicts strictly
            import timm

            return timm.create_model(f"local-dir:{path.resolve()}", pretrained=True).eval()
        import transformers

        architecture = (config.get("architectures") or ["AutoModelForImageClassification"])[0]
        cls = getattr(transformers, architecture, None)
        if cls is None or architecture == "ElastoformerForImageClassification":
            cls = transformers.AutoModelForImageClassification
        with _no_progress_bar(transformers):
            model, info = cls.from_pretrained(path, output_loading_info=True)
    except CheckpointError:
        raise
    except Exception as err:  # safetensors, json, shape and IO errors all mean the same thing here
        raise CheckpointError(f"cannot load {path}: {type(err).__name__}: {str(err).splitlines()[0][:300]}") from None
    problems = {k: v for k, v in info.items() if k != "error_msgs" and v}
    if problems or info.get("error_msgs"):
        raise CheckpointError(f"{path} does not match its config: {problems or info['error_msgs']}")
    return model.eval()
