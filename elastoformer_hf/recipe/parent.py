"""The dense parent a family is cut from, trained before the elastic pipeline on the same data (``parent/``):
the offline demo's small ViT trained from scratch (``--parent_config``), or the pre-trained model itself fine-tuned
(``--parent_finetune``). A complete parent trained with the same settings is reused; other settings are refused."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch
import transformers

from ..adapters import get_adapter
from ..base_model import LoadedModel
from ..data import ImageCollator, with_transforms
from ..descendant import bare_model, load_descendant, save_descendant
from ..errors import ElastoformerError
from ..messages import get_logger
from ..pruning.planner import plan_levels
from ..run_folder import PARENT_DIR, PARENT_INFO_FILE, staged_folder, write_json
from ..training.arguments import ElasticTrainingArguments
from ..training.dense import DenseTrainer
from .arguments import DataArguments, ParentArguments
from .data import recipe_transforms

logger = get_logger(__name__)

__all__ = ["complete_parent", "finetune_parent", "train_parent"]


def _parent_fingerprint(parent_args: ParentArguments, data_args: DataArguments, seed: int) -> dict:
    data = {k: getattr(data_args, k) for k in ("dataset_name", "data_path", "train_split", "auto_augment", "re_prob",
                                               "hflip", "color_jitter", "min_crop_scale", "interpolation")}
    parent = dataclasses.asdict(parent_args)
    if not parent.get("parent_finetune"):
        del parent["parent_finetune"]  # parents recorded before the option existed match
    return {"parent": parent, "data": data, "seed": seed}


def _reusable(out: Path, fingerprint: dict) -> dict | None:
    """The record of a complete parent in ``out`` trained with ``fingerprint``'s settings; None when there is none.

    Raises:
        ElastoformerError: ``out`` holds a parent trained with other settings.
    """
    info = complete_parent(out)
    if info is None:
        return None
    if info.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        raise ElastoformerError(f"{out} holds a parent trained with other settings; delete it (it is retrained) or "
                                "choose another --output_dir")
    logger.info(f"reusing the parent in {out} (eval accuracy {info.get('eval_accuracy', float('nan')):.4f})")
    return info


def _training_arguments(parent_args: ParentArguments, training_args: ElasticTrainingArguments, out: Path,
                        label_smoothing: float) -> transformers.TrainingArguments:
    return transformers.TrainingArguments(
        output_dir=str(out.parent / f".{PARENT_DIR}-trainer"),
        per_device_train_batch_size=parent_args.parent_batch_size,
        per_device_eval_batch_size=max(parent_args.parent_batch_size, training_args.per_device_eval_batch_size),
        num_train_epochs=parent_args.parent_epochs, max_steps=parent_args.parent_max_steps,
        learning_rate=parent_args.parent_learning_rate, weight_decay=parent_args.parent_weight_decay,
        warmup_steps=parent_args.parent_warmup_ratio, lr_scheduler_type="cosine",  # < 1: a ratio
        label_smoothing_factor=label_smoothing, eval_strategy="no", save_strategy="no",
        logging_steps=max(training_args.logging_steps if training_args.logging_steps >= 1 else 50, 1),
        report_to="none", remove_unused_columns=False, seed=training_args.seed, bf16=training_args.bf16,
        fp16=training_args.fp16, use_cpu=training_args.use_cpu,
        dataloader_num_workers=training_args.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(), dataloader_drop_last=True,
        disable_tqdm=training_args.disable_tqdm,
    )


def complete_parent(folder: Path) -> dict | None:
    info = folder / PARENT_INFO_FILE
    weights = any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin"))
    if not (info.is_file() and (folder / "config.json").is_file() and weights):
        return None
    try:
        return json.loads(info.read_text())
    except json.JSONDecodeError:
        return None


def _accuracy(model, dataset, batch_size: int) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=ImageCollator())
    device = next(model.parameters()).device
    adapter = get_adapter(model)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            logits = adapter.forward_logits(model, batch["pixel_values"].to(device))
            correct += (logits.argmax(-1).cpu() == batch["labels"]).sum().item()
            total += len(batch["labels"])
    return correct / max(total, 1)


def check_schedule_before_training(model: torch.nn.Module, training_args: ElasticTrainingArguments) -> None:
    """Plan the levels of the untrained parent, to refuse a schedule before the parent trains (minutes) rather
    than after: under local pruning a level's widths follow from the architecture and the settings alone
    (``pruning_ratio``, ``pruning_steps``, ``round_to``, ``head_pruning``), never from the weights, so identical
    levels or a ``round_to`` wider than the core are the same errors on random weights. Planned with l1, which
    needs no data (taylor and hessian keep as many channels). Global pruning's widths follow the weights: its
    schedule is checked when the trained parent is planned, as in every run."""
    config = training_args.pruning_config
    if config.global_pruning:
        return
    plan_levels(model, dataclasses.replace(config, pruning_type="l1"), image_size=model.config.image_size)


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
    seed = training_args.seed
    out = Path(training_args.output_dir) / PARENT_DIR
    fingerprint = _parent_fingerprint(parent_args, data_args, seed)
    if _reusable(out, fingerprint) is not None:
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
    check_schedule_before_training(model, training_args)  # plans a copy: the parent is not changed
    out.parent.mkdir(parents=True, exist_ok=True)
    args = _training_arguments(parent_args, training_args, out, parent_args.parent_label_smoothing)
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
            write_json(tmp / PARENT_INFO_FILE, info, sort_keys=False)  # last: the folder is complete
            shutil.rmtree(args.output_dir, ignore_errors=True)
        logger.info(f"parent: {len(train_dataset)} images, {result.global_step} steps in {train_seconds:.0f} s, "
                    f"eval accuracy {accuracy:.4f} -> {out}")
    trainer.accelerator.wait_for_everyone()
    return out


def finetune_parent(loaded: LoadedModel, parent_args: ParentArguments, data_args: DataArguments,
                    training_args: ElasticTrainingArguments, train_dataset, eval_dataset, train_transform,
                    eval_transform) -> LoadedModel:
    """Fine-tune (or reuse) the pre-trained model as the dense parent (``<output_dir>/parent/``).

    The parent is saved as a level folder of the base architecture (:func:`~elastoformer_hf.descendant.save_descendant`),
    with ``parent_info.json`` (settings, accuracy, time) written last; a complete parent trained with the same
    settings is reused.

    Args:
        loaded (`LoadedModel`): the pre-trained model, its classifier already sized for the data.
        parent_args (`ParentArguments`): the parent_* settings (epochs, learning rate, batch size, ...).
        data_args (`DataArguments`): the data settings (part of the parent's identity).
        training_args (`ElasticTrainingArguments`): output folder, seed, precision and device.
        train_dataset, eval_dataset: the raw ``image``/``label`` datasets.
        train_transform, eval_transform: the transforms the family trains and evaluates with.

    Returns:
        `LoadedModel`: ``loaded`` with the fine-tuned weights (same spec: the levels record the pre-trained base).

    Raises:
        ElastoformerError: ``parent/`` holds a parent trained with other settings.
    """
    out = Path(training_args.output_dir) / PARENT_DIR
    fingerprint = {**_parent_fingerprint(parent_args, data_args, training_args.seed),
                   "model": loaded.spec.to_dict(), "image_size": loaded.data_config.get("input_size")}
    if _reusable(out, fingerprint) is None:
        torch.manual_seed(training_args.seed)
        args = _training_arguments(parent_args, training_args, out, 0.0)  # DenseTrainer applies the smoothing
        trainer = DenseTrainer(model=loaded.model, args=args, train_dataset=with_transforms(train_dataset,
                               train_transform), data_collator=ImageCollator(),
                               label_smoothing=parent_args.parent_label_smoothing)
        start = time.perf_counter()
        result = trainer.train()
        train_seconds = time.perf_counter() - start
        if args.process_index == 0:
            model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).to("cpu").float()
            accuracy = _accuracy(model, with_transforms(eval_dataset, eval_transform), args.per_device_eval_batch_size)
            save_descendant(model, out, spec=loaded.spec, overwrite=True, level_info={"role": "parent"},
                            label_names=loaded.label_names, data_config=loaded.data_config,
                            image_processor=loaded.image_processor)
            write_json(out / PARENT_INFO_FILE, {  # last: the folder is complete
                "fingerprint": fingerprint, "eval_accuracy": accuracy, "train_seconds": round(train_seconds, 1),
                "train_images": len(train_dataset), "eval_images": len(eval_dataset), "steps": result.global_step,
                "train_loss": result.training_loss}, sort_keys=False)
            shutil.rmtree(args.output_dir, ignore_errors=True)
            logger.info(f"parent: {loaded.spec.name} fine-tuned on {len(train_dataset)} images, {result.global_step} "
                        f"steps in {train_seconds:.0f} s, eval accuracy {accuracy:.4f} -> {out}")
        trainer.accelerator.wait_for_everyone()
    model = bare_model(load_descendant(out)).eval()
    return dataclasses.replace(loaded, model=model)
