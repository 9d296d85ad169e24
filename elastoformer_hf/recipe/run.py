"""The recipe: data, then the demo's parent, then the model, then :class:`~elastoformer_hf.training.ElasticTrainer`.

``recipes/deit.py`` (ViT/DeiT), ``recipes/cnn.py`` (ResNet/VGG) and ``elastoformer train`` are thin wrappers around
:func:`recipe_main`::

    accelerate launch recipes/deit.py --config recipes/configs/deit_base_imagenet.yaml --output_dir runs/x
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from transformers import set_seed

from ..adapters import KINDS, get_adapter
from ..base_model import load_base_model, probe_adapter
from ..data.transforms import with_transforms
from ..descendant import image_processor_for
from ..errors import ElastoformerError, run_command
from ..run_folder import CARD_FILE, FAMILY_DIR, FAMILY_PLOT, PARENT_DIR, SUMMARY_FILE, portable_path
from ..training import ElasticTrainer
from ..training.arguments import ElasticTrainingArguments
from ..training.settings import format_summary
from .arguments import DataArguments, ModelArguments, ParentArguments
from .data import load_recipe_data, recipe_preprocessing, recipe_transforms, transform_source
from .parent import complete_parent, finetune_parent, train_parent
from .parser import parse_recipe_args

__all__ = ["model_kind", "recipe_main", "run_recipe"]

_SCRIPT_OF = {"vit": "recipes/deit.py", "cnn": "recipes/cnn.py"}
_WHAT = {"vit": "a vision transformer (ViT/DeiT)", "cnn": "a CNN (ResNet/VGG)"}


def model_kind(name: str, weights: str | None = None, model_args: dict | None = None) -> str | None:
    """``"vit"`` or ``"cnn"``: the ``kind`` of the adapter of ``name``'s architecture, read from its config or name
    alone (no weights, no network); None when that cannot be read here (a Hub id not in the local cache).

    Raises:
        UnsupportedModelError: the architecture is known and no adapter supports it.
    """
    adapter = probe_adapter(name, weights=weights, model_args=model_args)
    return adapter.kind if adapter is not None else None


def _check_kind(name: str, found: str | None, expected: str | None, detail: str = "") -> None:
    if expected is None or found is None or found == expected:
        return
    raise ElastoformerError(
        f"{_SCRIPT_OF[expected]} trains {_WHAT[expected]}, but {name!r} is {_WHAT[found]}{detail}: "
        f"use {_SCRIPT_OF[found]}"
    )


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
    kind: str | None = None,
) -> dict:
    """Train the elastic family described by the arguments; returns :meth:`ElasticTrainer.train`'s summary.

    Order: the architecture's kind (``kind``: ``"vit"``/``"cnn"``, None = any) is checked from the model's
    config or name alone (no weights fetched), then the data is loaded (a missing dataset fails here, before any
    model), then the demo's parent is trained (``parent_args.parent_config``), then the model is loaded, its
    adapter checked against ``kind``, and the transforms built from its preprocessing settings with the data
    arguments' overrides.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    with_parent = parent_args is not None and parent_args.from_scratch
    finetune = parent_args is not None and parent_args.parent_finetune
    if with_parent and kind == "cnn":
        raise ElastoformerError("--parent_config trains a transformers ViT parent: use recipes/deit.py")
    if not with_parent and model_args.model_name_or_path is None:
        raise ElastoformerError("--model_name_or_path is required (or --parent_config, to train a demo parent first)")
    name = model_args.model_name_or_path
    if name is not None:
        _check_kind(name, model_kind(name, model_args.weights, model_args.model_args), kind)

    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    train_raw, eval_raw, label_names, parent_train = load_recipe_data(data_args, seed, parent_args)
    if model_args.num_labels is not None and model_args.num_labels != len(label_names):
        raise ElastoformerError(
            f"num_labels {model_args.num_labels} differs from the {len(label_names)} classes of "
            f"{data_args.dataset_name}; drop --num_labels to use the dataset's"
        )
    random_init = model_args.random_init
    if with_parent:
        name = str(train_parent(parent_args, data_args, training_args, parent_train, eval_raw, label_names))
        random_init = False

    # a replaced classifier (and a --random_init model) is drawn from the run's seed: the same run, the same model
    set_seed(training_args.seed)
    loaded = load_base_model(name, random_init=random_init, weights=model_args.weights,
                             num_labels=_num_labels_for_loading(name, len(label_names)),
                             model_args=model_args.model_args)
    adapter = get_adapter(loaded.model)
    _check_kind(name, adapter.kind, kind, f" ({adapter.name})")
    classes = adapter.classifier_layers(loaded.model)[0].out_features
    if classes != len(label_names):
        raise ElastoformerError(f"{name} has {classes} classes but {data_args.dataset_name} has {len(label_names)}")
    if adapter.fixed_resolution and data_args.image_size and data_args.image_size != adapter.image_size(loaded.model):
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

    source = transform_source(loaded)
    train_tf, eval_tf = recipe_transforms(source, data_args)
    # every level records the preprocessing it was trained with (a --image_size 32 run is not a 224 px model)
    loaded.data_config = recipe_preprocessing(source, data_args)
    if loaded.image_processor is not None and not adapter.fixed_resolution:
        loaded.image_processor = image_processor_for(loaded.data_config)
    if finetune:  # the family is cut from (and distils from) the pre-trained model fine-tuned on this data
        loaded = finetune_parent(loaded, parent_args, data_args, training_args, parent_train, eval_raw,
                                 train_tf, eval_tf)
    # what the run learns from, recorded with it: a resume on other data is refused, and the cards name the dataset
    data_info = {"dataset_name": data_args.dataset_name,
                 "data_path": portable_path(data_args.data_path, training_args.output_dir) if data_args.data_path else None,
                 "dataset_config": data_args.dataset_config, "image_column_name": data_args.image_column_name,
                 "label_column_name": data_args.label_column_name,
                 # the split actually evaluated (a Hub/folder dataset picks validation/val/valid/test itself)
                 "train_split": data_args.train_split, "eval_split": data_args.eval_split or _split_name(eval_raw),
                 "max_train_samples": data_args.max_train_samples, "max_eval_samples": data_args.max_eval_samples}
    trainer = ElasticTrainer(model=loaded, args=training_args, train_dataset=with_transforms(train_raw, train_tf),
                             eval_dataset=with_transforms(eval_raw, eval_tf), label_names=loaded.label_names,
                             data_info=data_info)
    summary = trainer.train()
    if (with_parent or finetune) and isinstance(summary, dict):
        folder = Path(training_args.output_dir) / PARENT_DIR
        info = complete_parent(folder) or {}
        summary = {**summary, "parent": {"folder": str(folder), **{k: info.get(k) for k in (
            "eval_accuracy", "train_seconds", "train_images", "steps")}}}
    return summary


def closing_lines(summary: dict, output_dir: str | os.PathLike) -> str:
    """The end of a run's output: the family table, the dense parent's accuracy (the demo), and where to look."""
    out = Path(output_dir)
    lines = [format_summary(summary)]
    parent = (summary.get("parent") or {}).get("eval_accuracy")
    if parent is not None:
        lines.append(f"dense parent: {100 * parent:.2f} % top-1 on the same images")
    levels = [lv["level"] for lv in summary.get("levels") or []]
    cards = [f"{out / f'dn{k}' / CARD_FILE}" for k in levels[:1]] + ([f"... dn{levels[-1]}"] if len(levels) > 1 else [])
    if (out / FAMILY_DIR / CARD_FILE).is_file():
        cards.append(str(out / FAMILY_DIR / CARD_FILE))
    lines += ["", f"model cards:  {', '.join(cards)}"]
    if (out / FAMILY_PLOT).is_file():
        lines.append(f"plot:         {out / FAMILY_PLOT}")
    lines += [f"summary:      {out / SUMMARY_FILE}",
              f"publish with: elastoformer push {out} --repo_prefix ORG/NAME"
              + (" --include_family" if (out / FAMILY_DIR).is_dir() else "")]
    return "\n".join(lines)


def recipe_main(argv: list[str] | None = None, *, kind: str | None = None, prog: str | None = None) -> int:
    """Parse, run, print the family table and where to look (the summary itself is ``elastic_summary.json``); an
    :class:`ElastoformerError` becomes one line on stderr and status 2."""
    prog = prog or os.path.basename(sys.argv[0] or "recipe")

    def command() -> int:
        model_args, data_args, training_args, parent_args = parse_recipe_args(argv, prog=prog)
        summary = run_recipe(model_args, data_args, training_args, parent_args, kind=kind)
        if training_args.process_index == 0:
            print(closing_lines(summary, training_args.output_dir))
        return 0

    return run_command(prog, command)


def _split_name(dataset) -> str | None:
    split = getattr(dataset, "split", None)  # set by datasets.load_dataset; None for a split made in memory
    return str(split) if split is not None else None
