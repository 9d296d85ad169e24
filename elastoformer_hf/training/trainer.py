"""``ElasticTrainer``: plan the levels, train the core, then grow the family level by level.

Each level is one ordinary ``Trainer.train()`` call on a model of that level's shape, with a fresh optimizer and
schedule (shapes change *between* calls, never inside). What the elastic pipeline adds goes through narrow hooks:
``compute_loss`` (soft targets, distillation), ``training_step`` (zeroes the frozen block's gradients before
clipping), ``create_optimizer`` (restores the frozen block after every step),
``_get_train_sampler``/``get_train_dataloader`` (timm's repeated augmentation), ``get_eval_dataloader`` (plain
labels for evaluation) and ``log`` (which level is training and how far the whole run is).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import Trainer, TrainerCallback

from ..adapters import get_adapter
from ..base_model import LoadedModel, load_base_model, spec_from_model
from ..data import ImageCollator
from ..descendant import bare_model, load_descendant, save_descendant
from ..errors import ElastoformerError
from ..family.storage import CONFIG_FILE as FAMILY_CONFIG
from ..hub import push_run
from ..messages import get_logger, set_level
from ..metrics import compute_accuracy, level_consistency, predicted_classes
from ..nesting import build_family
from ..nesting.levels import FrozenBlocks, grow_level, nested_positions, original_indices, random_like
from ..pruning.heads import resolve_head_pruning
from ..pruning.planner import plan_levels
from ..pruning.record import ElasticPlan
from ..pruning.replay import apply_level
from ..refresh import write_run_cards
from ..run_folder import (
    CHECKPOINTS_DIR,
    FAMILY_DIR,
    LEVEL_FILE,
    LOGS_DIR,
    PLAN_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    clean_leftovers,
    level_dir,
    portable_path,
    read_json,
    read_level_info,
    write_json,
)
from .arguments import ElasticTrainingArguments
from .drop_path import apply_stochastic_depth
from .settings import data_identity, first_row, format_summary, is_stream, recorded_setting, run_settings

logger = get_logger(__name__)  # progress lines and warnings: [elastoformer] ... on stderr, --log_level applies

EMA_FILE = "ema.safetensors"
#: written into a checkpoint last, after Trainer's files and the EMA: the checkpoint is complete when it exists
COMPLETE_FILE = "elastoformer_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _is_final(checkpoint: str | os.PathLike) -> bool:
    """Whether the checkpoint was taken at the level's last step (its completion marker says so)."""
    return bool(json.loads((Path(checkpoint) / COMPLETE_FILE).read_text()).get("final"))


def last_complete_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` holding everything a resume reads: its completion marker
    (:data:`COMPLETE_FILE`), written after Trainer's files and the EMA, must be there. Newer, half-written ones (a
    run killed mid-save) are removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name))), reverse=True)
    for _, path in found:
        try:
            json.loads((path / COMPLETE_FILE).read_text())
            return str(path)
        except (OSError, ValueError):  # missing, or cut short by a kill while it was written
            shutil.rmtree(path, ignore_errors=True)
    return None


class _LevelCallback(TrainerCallback):
    """Keeps the per-level EMA and saves it with every checkpoint."""

    def __init__(self, trainer: ElasticTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer._ema is not None:
            self.trainer._ema.update(self.trainer.model, step=state.global_step)

    def on_save(self, args, state, control, **kwargs):
        # Trainer calls on_save once the checkpoint's own files are written: the EMA, then the marker, go last
        if not args.should_save:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.trainer._ema is not None:
            state_dict = {k: v.detach().contiguous().cpu() for k, v in self.trainer._ema.module.state_dict().items()}
            save_file(state_dict, str(folder / EMA_FILE))
        write_json(folder / COMPLETE_FILE, {"step": state.global_step, "ema": self.trainer._ema is not None,
                                            "final": state.global_step >= state.max_steps})


class ElasticTrainer(Trainer):
    """Turns a pre-trained model into a trained elastic family::

        args = ElasticTrainingArguments(output_dir="runs/deit-elastic", pruning_ratio=0.4, pruning_steps=5)
        trainer = ElasticTrainer(model="facebook/deit-base-patch16-224", args=args,
                                 train_dataset=train, eval_dataset=val)   # datasets yield pixel_values/labels
        summary = trainer.train()   # args.output_dir/dn1 .. dn6, elastic_plan.json, elastic_summary.json

    The trainer builds the Mixup/CutMix collator from the arguments unless given ``data_collator``. Running
    ``train()`` again on the same ``output_dir`` resumes: finished levels are loaded, the interrupted one
    continues from its last checkpoint; other settings are refused.

    Args:
        model (`nn.Module`, `LoadedModel` or `str`): a model name (anything
            :func:`~elastoformer_hf.load_base_model` takes), a
            :class:`~elastoformer_hf.base_model.LoadedModel`, or a module (transformers ViT/DeiT, timm models;
            torchvision models need ``base_spec``).
        args (`ElasticTrainingArguments`): the training arguments.
        train_dataset (*optional*): yields ``pixel_values``/``labels``; required by :meth:`train`.
        eval_dataset (*optional*): evaluated after every level (its metrics go into the level's record).
        data_collator (*optional*): replaces the collator the trainer builds (then ``mixup_alpha`` and
            ``cutmix_alpha`` must stay 0); its ``for_eval()``, when it has one, collates evaluation batches.
        compute_metrics (*optional*): as in ``Trainer`` (default: top-1 accuracy,
            :func:`~elastoformer_hf.metrics.compute_accuracy`).
        callbacks (*optional*): as in ``Trainer``.
        label_names (`list[str]`, *optional*): the class names; their count must match the model's classifier
            (a model name is loaded with that many labels).
        base_spec (`BaseModelSpec`, *optional*): how to rebuild a module's architecture (default: read from
            the module, :func:`~elastoformer_hf.base_model.spec_from_model`).
        data_config (`dict`, *optional*): a module's preprocessing, saved with the levels.
        image_processor (*optional*): a module's transformers image processor, saved with the levels.
        model_name (`str`, *optional*): the name recorded in the plan and the levels (default: the spec's
            name).
        **kwargs: go to ``Trainer``.

    Raises:
        ElastoformerError: ``args`` are not :class:`ElasticTrainingArguments`, several processes were launched
            but the arguments did not join them, ``model`` is not a module, a ``LoadedModel`` or a name (or a
            module whose architecture cannot be read back), ``label_names`` and the classifier disagree, Mixup
            or CutMix is set together with ``data_collator``, the teacher predicts another number of classes,
            or a model cannot be loaded.
        UnsupportedModelError: no adapter supports the model's (or the teacher's) architecture.
    """

    def __init__(self, model: nn.Module | LoadedModel | str, args: ElasticTrainingArguments,
                 train_dataset=None, eval_dataset=None, data_collator=None, compute_metrics=None,
                 callbacks=None, *, label_names: list[str] | None = None, base_spec=None, data_config=None,
                 image_processor=None, model_name: str | None = None, data_info: dict | None = None, **kwargs):
        if not isinstance(args, ElasticTrainingArguments):
            raise ElastoformerError("ElasticTrainer needs ElasticTrainingArguments")
        launched = int(os.environ.get("WORLD_SIZE") or 1)
        if launched > 1 and args.world_size == 1:  # every rank would train alone and write the same output_dir
            raise ElastoformerError(
                f"launched as {launched} processes, but the training arguments did not join them (world size 1): "
                "without a GPU, accelerate only runs several processes on the CPU with use_cpu=True (--use_cpu true)")
        self._check_streaming(args, train_dataset)
        loaded = _as_loaded(model, base_spec, data_config, image_processor, label_names)
        # names as the run records (and publishes) them: a local folder by its place in the run, never a path of
        # this machine
        out = Path(args.output_dir)
        loaded = dataclasses.replace(loaded, spec=dataclasses.replace(loaded.spec,
                                                                      name=portable_path(loaded.spec.name, out)))
        self.loaded = loaded
        self.model_name = portable_path(model_name, out) if model_name else loaded.spec.name
        self.data_info = data_info
        self.dense = loaded.model.eval()  # stays on CPU: levels are sliced from it
        self.adapter = get_adapter(self.dense)
        num_classes = self.adapter.classifier_layers(self.dense)[0].out_features
        if label_names is not None and len(label_names) != num_classes:
            raise ElastoformerError(f"the data has {len(label_names)} classes but the model's classifier has "
                                    f"{num_classes}: load the model with num_labels={len(label_names)}")
        if data_collator is None:
            data_collator = ImageCollator(mixup_alpha=args.mixup_alpha, cutmix_alpha=args.cutmix_alpha,
                                          label_smoothing=args.label_smoothing, num_classes=num_classes)
        elif args.mixup_enabled:
            raise ElastoformerError("mixup_alpha/cutmix_alpha configure the trainer's own collator: leave them at 0 "
                                    "when passing data_collator")
        if args.log_level != "passive":  # --log_level applies to our messages as to transformers'
            set_level(args.get_process_log_level())
        self._eval_collator = data_collator.for_eval() if hasattr(data_collator, "for_eval") else data_collator
        self._level: int | None = None
        self._plan: ElasticPlan | None = None
        self._frozen: FrozenBlocks | None = None
        self._ema = None
        self._trained_now = False
        self._progress = (0.0, 1.0)  # share of the run done before this level, share of this level
        self._steps_before = 0  # optimizer steps of the levels before the one training (the logged step adds them)
        # Trainer gets its own copy: it moves it to the device, and it is the teacher of "dense" distillation
        super().__init__(model=copy.deepcopy(self.dense), args=args, data_collator=data_collator,
                         train_dataset=train_dataset, eval_dataset=eval_dataset,
                         compute_metrics=compute_metrics or compute_accuracy, callbacks=callbacks, **kwargs)
        self.model_accepts_loss_kwargs = False  # compute_loss returns a batch mean
        self.add_callback(_LevelCallback(self))
        self.teacher = self._build_teacher(num_classes)

    # -- narrow Trainer hooks ---------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        logits = self.adapter.forward_logits(model, inputs["pixel_values"])
        if labels.is_floating_point():  # Mixup/CutMix soft targets (label smoothing included)
            loss = torch.sum(-labels * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        else:
            smoothing = self.args.label_smoothing if model.training else 0.0
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)
        if model.training and self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher_adapter.forward_logits(self.teacher, inputs["pixel_values"])
            t = self.args.distillation_temperature
            distill = F.kl_div(F.log_softmax(logits.float() / t, dim=-1),
                               F.log_softmax(teacher_logits.float() / t, dim=-1),
                               reduction="batchmean", log_target=True) * t * t
            loss = (1 - self.args.distillation_alpha) * loss + self.args.distillation_alpha * distill
        return (loss, {"logits": logits}) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self._frozen is not None:
            # after each backward, before Trainer clips: the frozen entries' gradients are zero in the clipping
            # norm and the optimizer's state (one fused kernel rather than a hook per tensor)
            self._frozen.mask_gradients()
        return loss

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Resume a level's weights, all of them or fail.

        Trainer loads ``model.safetensors`` with ``load_state_dict(strict=False)`` under the names on disk, and
        only logs what did not match. transformers 5 writes a PreTrainedModel under its legacy names
        (``save_pretrained`` reverts its weight conversions: ``vit.layers.0.attention.q_proj`` is saved as
        ``vit.encoder.layer.0.attention.attention.query``), so a ViT level resumed mid-way kept the weights it
        started the level with in every encoder layer, against the optimizer state of the checkpoint. Here the names are mapped back through the
        same transformers function (``revert_weight_conversion``) and every key must load. FSDP, DeepSpeed and
        sharded checkpoints keep Trainer's own loading."""
        import safetensors.torch
        from transformers.utils import SAFE_WEIGHTS_NAME

        path = Path(resume_from_checkpoint) / SAFE_WEIGHTS_NAME
        target = self.model if model is None else self.accelerator.unwrap_model(model)
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or not path.is_file():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        state = _own_names(target, safetensors.torch.load_file(str(path), device="cpu"))
        missing, unexpected = target.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ElastoformerError(
                f"{resume_from_checkpoint} does not hold this level's weights ({len(missing)} missing, e.g. "
                f"{missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]}): delete it to restart the "
                "level from its start")

    def _save_checkpoint(self, model, trial):
        """Trainer's checkpoint, with no Hub token in the ``training_args.bin`` it pickles (the run pushes with the
        token in memory; a checkpoint folder is no place for a secret)."""
        with _overridden(self.args, {"hub_token": None}):
            return super()._save_checkpoint(model, trial)

    def _load_best_model(self):
        """``load_best_model_at_end``: the best checkpoint through the same strict, name-mapping loader."""
        from transformers.utils import SAFE_WEIGHTS_NAME

        best = self.state.best_model_checkpoint
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or not (Path(best) / SAFE_WEIGHTS_NAME).is_file():
            return super()._load_best_model()
        logger.info("Loading best model from %s (score: %s).", best, self.state.best_metric)
        self._load_from_checkpoint(best, self.model)

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self._frozen is not None and self._frozen.entries:
            optimizer.register_step_post_hook(self._frozen.restore)
        return optimizer

    def _get_train_sampler(self, train_dataset=None):
        if not self.args.ra_sampler:
            return super()._get_train_sampler(train_dataset)
        from timm.data.distributed_sampler import RepeatAugSampler

        dataset = train_dataset if train_dataset is not None else self.train_dataset
        world = self.args.world_size
        # timm's default selected_round=256: an epoch is len(dataset) rounded down to 256 images in all, whatever
        # the world size (timm falls back to ceil(len / world) per rank below 256 images)
        return RepeatAugSampler(dataset, num_replicas=world, rank=self.args.process_index, shuffle=True,
                                num_repeats=self.args.ra_reps)

    def get_train_dataloader(self):
        loader = super().get_train_dataloader()
        if self.args.ra_sampler:
            # RepeatAugSampler already gives each rank its share; accelerate's BatchSamplerShard would shard it
            # again (transformers does the same for its own rank-aware BatchRebalanceSampler)
            shard = getattr(loader, "batch_sampler", None)
            if shard is not None and hasattr(shard, "num_processes"):
                shard.num_processes, shard.process_index = 1, 0
        return loader

    def get_eval_dataloader(self, eval_dataset=None):
        collator, self.data_collator = self.data_collator, self._eval_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = collator

    def _route_logs(self, k: int, run_dir: Path) -> None:
        """Point TensorBoard at ``{output_dir}/logs/dn{k}`` (or ``$TENSORBOARD_LOGGING_DIR/dn{k}``).

        Trainer's callback fixes its folder at the first ``train()`` under ``args.output_dir``, which for a level is
        ``checkpoints/dn{k}``: deleted when the level is done, so the curves of finished levels would go with it.
        One subfolder per level keeps every level's curves, one after another in TensorBoard (the logged step is the
        run's, see :meth:`log`). wandb and others keep one run with that monotonic step; every log carries
        ``level``.
        """
        from transformers.integrations import TensorBoardCallback

        root = os.getenv("TENSORBOARD_LOGGING_DIR") or str(run_dir / LOGS_DIR)
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback):
                if callback.tb_writer is not None:
                    callback.tb_writer.close()
                    callback.tb_writer = None
                callback.logging_dir = os.path.join(os.path.expanduser(root), f"dn{k}")

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._level is None or self._plan is None:
            return super().log(logs, *args, **kwargs)
        done, share = self._progress
        fraction = self.state.global_step / self.state.max_steps if self.state.max_steps else 0.0
        logs = {**logs, "level": self._level, "family_progress": round(done + share * fraction, 4)}
        # Every level is its own Trainer.train(), whose global_step starts at 0; the reporting integrations (wandb,
        # trackio, MLflow, TensorBoard) read state.global_step as their x axis. While they log, the step is the run's:
        # the steps of the earlier levels plus this level's, so one wandb/trackio run has a monotonic step.
        step = self.state.global_step
        self.state.global_step = self._steps_before + step
        try:
            super().log(logs, *args, **kwargs)
        finally:
            self.state.global_step = step

    # -- the elastic pipeline ---------------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs) -> dict:
        """Train every level not yet in ``output_dir``.

        Returns the run summary (also in elastic_summary.json).

        The levels are planned first (``elastic_plan.json``, unless the run already has it); then the core,
        and every next level grown from the previous one, is trained as one ``Trainer.train()`` call,
        evaluated and written to ``dn{k}/``. Levels already in ``output_dir`` are loaded, and an interrupted
        level resumes from its last complete checkpoint; what a killed run left (temporaries of its writes, the
        checkpoints of levels already written unless ``keep_level_checkpoints``) is removed first. With
        ``save_family`` the family artifact is written to ``family/`` at the end.

        Args:
            resume_from_checkpoint (*optional*): ignored: resuming is automatic (see above).
            trial (*optional*): ignored.
            ignore_keys_for_eval (`list[str]`, *optional*): as in ``Trainer.train``, for every level's
                evaluation.
            **kwargs: ignored.

        Returns:
            `dict`: the run summary: ``model_name``, ``architecture``, ``pruning`` and, per level, ``level``,
            ``folder``, ``params``, ``macs``, ``flops``, ``keep_fraction`` and ``metrics``.

        Raises:
            ElastoformerError: no ``train_dataset``; ``output_dir`` holds a run with other settings or a plan
                made with another pruning config; a pruning or checkpoint error (e.g. a checkpoint that does
                not hold its level's weights).
            CheckpointError: a finished level's folder cannot be loaded.
        """
        if self.train_dataset is None:
            raise ElastoformerError("ElasticTrainer.train needs a train_dataset")
        out = Path(self.args.output_dir)
        settings = self._check_run_settings(out)
        self._clear_leftovers(out)
        plan = self._plan = self._make_plan(out, settings)
        self._trained_now = False  # a level was trained (and written) by this call
        previous, indices, levels = None, {}, []
        predictions = {} if self._needs_consistency(out, plan) else None
        self._steps_before = 0
        for k in range(1, plan.num_levels + 1):
            folder = level_dir(out, k)
            template = apply_level(copy.deepcopy(self.dense), plan, k)
            indices[k] = original_indices(self.dense, plan, k, template)
            if folder.is_dir():
                self._announce(f"dn{k} is already trained ({folder}): loading it")
                model = _load_level(folder, template)
            else:
                model, frozen = template, None
                if k > 1:
                    positions = nested_positions(indices[k - 1], indices[k])
                    source = random_like(model, seed=self.args.seed + k) if self.args.mixed_init == "random" else None
                    frozen = grow_level(previous, model, positions, mixed_init=self.args.mixed_init,
                                        random_source=source, share_classifier=self.args.share_classifier)
                metrics = self._train_level(k, model, frozen, ignore_keys_for_eval)
                self._save_level(folder, model, k, metrics)
            if predictions is not None:
                predictions[k] = self._predict_classes(model, ignore_keys_for_eval)
            levels.append(read_level_info(folder))
            self._steps_before += int(levels[-1].get("train_steps") or 0)  # a level recorded before it: not counted
            previous = model.cpu()
            indices.pop(k - 1, None)
        self._level = None
        if predictions:
            levels = self._record_consistency(out, predictions)
        summary = self._write_summary(out, plan, levels)
        new_family = self.args.save_family and self._save_family(out)
        if self.args.should_save:
            # the cards and family.png, as `elastoformer push` publishes them (a card already there is merged into)
            write_run_cards(out, repo_prefix=self.args.hub_model_id if self.args.push_levels else None)
            if self.args.push_levels and (new_family or self._trained_now):
                self._push()  # every repo once more, only where something changed: one commit per level per change
        self.accelerator.wait_for_everyone()
        return summary

    def _save_family(self, out: Path) -> bool:
        """The finished family as one artifact (shared weights stored once, levels as views): out/family/.
        Returns whether it was written now (False when a finished run is resumed, or on other ranks)."""
        written = False
        if self.args.should_save and not (out / FAMILY_DIR / FAMILY_CONFIG).is_file():
            self._announce(f"writing the switchable family artifact to {out / FAMILY_DIR} ...")
            build_family(out).save_pretrained(out / FAMILY_DIR, overwrite=True)
            written = True
        self.accelerator.wait_for_everyone()
        return written

    def _make_plan(self, out: Path, settings: dict | None) -> ElasticPlan:
        """The run's plan: made (rank 0) and saved, or the one ``out`` holds; ``settings`` (see
        :meth:`_check_run_settings`) are recorded once it is accepted, so that a refused run (a schedule with
        identical levels, a plan of another config) leaves nothing that would refuse its corrected re-run as "a run
        with other settings"."""
        path = out / PLAN_FILE
        if not path.is_file() and self.args.should_save:
            self._announce("planning the levels ...")
            # on the training device (Trainer's copy of the dense model): taylor/hessian need real batches
            plan = plan_levels(self.model, self.args.pruning_config, model_name=self.model_name,
                               calibration=self._calibration(), image_size=self._image_size())
            self._record_run_settings(out, settings)  # before the plan: a run's plan comes with its settings
            plan.save(path)
        # every rank uses the plan rank 0 made (taylor is data-dependent); the barrier is unconditional: a rank that
        # saw the file rank 0 just wrote must not skip it (the ranks' collectives would no longer pair up)
        self.accelerator.wait_for_everyone()
        plan = ElasticPlan.load(path)
        # an auto head_pruning compares as what it resolves to here: a plan from before the setting (head dims)
        # still matches the default on a model where auto means head dims
        wanted = resolve_head_pruning(self.args.pruning_config, self.adapter.num_heads(self.dense),
                                      self.adapter.whole_heads_supported(self.dense))
        if plan.config != wanted:
            raise ElastoformerError(f"{path} was planned with {plan.config.to_dict()}, not "
                                    f"{wanted.to_dict()}: use another output_dir")
        self._record_run_settings(out, settings)  # a plan made before (elastoformer plan --output_dir)
        return plan

    def _image_size(self) -> int:
        """The training resolution (costs are counted at it): a CNN trained at 32px costs what it costs at 32px."""
        try:
            return int(first_row(self.train_dataset)["pixel_values"].shape[-1])
        except (TypeError, KeyError, IndexError, AttributeError, StopIteration):
            return self.adapter.image_size(self.dense)

    def _calibration(self):
        if not self.args.pruning_config.needs_gradients:
            return None
        generator = torch.Generator().manual_seed(self.args.seed)
        streamed = is_stream(self.train_dataset)  # a stream comes shuffled (and a DataLoader cannot shuffle it)
        return torch.utils.data.DataLoader(self.train_dataset, batch_size=self.args.per_device_train_batch_size,
                                           shuffle=not streamed, collate_fn=self._eval_collator,
                                           generator=None if streamed else generator)

    def _train_level(self, k: int, model: nn.Module, frozen: FrozenBlocks | None, ignore_keys_for_eval) -> dict:
        args, plan = self.args, self._plan
        epochs = [self._level_epochs(i) for i in range(1, plan.num_levels + 1)]
        self._progress = (sum(epochs[: k - 1]) / sum(epochs), epochs[k - 1] / sum(epochs))
        kind = "core" if k == 1 else "rebuild"
        trainable = sum(p.numel() for p in model.parameters()) - (frozen.num_frozen if frozen else 0)
        self._announce(f"=== dn{k}/{plan.num_levels} ({kind}): {trainable / 1e6:.2f} M trainable parameters; "
                       f"the run is {100 * self._progress[0]:.0f}% done, this level is {100 * self._progress[1]:.0f}%")
        run_dir = Path(args.output_dir)
        overrides = {"output_dir": str(level_dir(run_dir / CHECKPOINTS_DIR, k)),
                     "max_steps" if args.max_steps > 0 else "num_train_epochs": epochs[k - 1]}
        if args.max_steps > 0:
            overrides["max_steps"] = int(overrides["max_steps"])
        if k == 1 and args.core_weight_decay is not None:
            overrides["weight_decay"] = args.core_weight_decay
        model.to(args.device)
        if frozen is not None:
            frozen.to(args.device).install(hooks=False)  # training_step masks the gradients
        self.model = self.model_wrapped = model
        self.optimizer, self.lr_scheduler = None, None
        self._level, self._frozen = k, frozen
        with contextlib.ExitStack() as stack:
            stack.enter_context(_overridden(args, overrides))
            if args.stochastic_depth > 0:
                stack.callback(apply_stochastic_depth(model, args.stochastic_depth).remove)
            if frozen is not None:
                stack.callback(frozen.remove)
            self._route_logs(k, run_dir)
            checkpoint = last_complete_checkpoint(args.output_dir) if args.should_save else None
            checkpoint = _broadcast(checkpoint, self.accelerator)
            self._ema = self._make_ema(model, checkpoint)
            if checkpoint and _is_final(checkpoint):
                self._announce(f"dn{k}: its training ended at {checkpoint}; loading it")
                self._finish_from(checkpoint)
            else:
                if checkpoint:
                    self._announce(f"dn{k}: resuming from {checkpoint}")
                super().train(resume_from_checkpoint=checkpoint, ignore_keys_for_eval=ignore_keys_for_eval)
        if self._ema is not None:
            model.load_state_dict(self._ema.module.state_dict())
            self._ema = None
        if frozen is not None:
            frozen.restore()  # exact nesting, whatever the EMA did
        self._frozen = None
        self.optimizer, self.lr_scheduler = None, None
        metrics = self.evaluate(ignore_keys=ignore_keys_for_eval) if self.eval_dataset is not None else {}
        # with bf16/fp16, accelerate's prepare_model replaced model.forward by an autocast wrapper; take it off, so
        # the level saved (and checked against its reloaded copy) and grown from is the plain fp32 module
        self.accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        return metrics

    def _finish_from(self, checkpoint: str) -> None:
        """A level killed after its last checkpoint (while it was being saved) ends as the uninterrupted run ended.

        Not through ``Trainer.train(resume_from_checkpoint=...)``: with ``max_steps`` inside an epoch, Trainer
        re-enters that epoch and checks its stop flag only after a step, so a checkpoint taken at ``max_steps`` is
        resumed by training one step more (and updating the EMA once more): measured, the level's weights moved by
        2e-4. Here the weights (and, with ``load_best_model_at_end``, the best checkpoint) are loaded instead."""
        from transformers.trainer import TRAINER_STATE_NAME
        from transformers.trainer_callback import TrainerState

        self.state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE_NAME))
        self._load_from_checkpoint(checkpoint)
        best = self.state.best_model_checkpoint
        if self.args.load_best_model_at_end and best and Path(best).is_dir():
            self._load_best_model()

    def _level_epochs(self, k: int) -> float:
        """Level ``k``'s length: in epochs, or (``max_steps`` > 0) in steps, which Trainer then counts instead."""
        if self.args.max_steps > 0:
            return float(self.args.core_max_steps if k == 1 and self.args.core_max_steps else self.args.max_steps)
        if k == 1 and self.args.core_epochs is not None:
            return float(self.args.core_epochs)
        return float(self.args.num_train_epochs)

    @staticmethod
    def _check_streaming(args: ElasticTrainingArguments, train_dataset) -> None:
        """A streamed ``train_dataset`` (no length) needs its levels counted in steps, and no sampler: say so
        before anything is written."""
        if not is_stream(train_dataset):
            return
        if args.max_steps <= 0:
            raise ElastoformerError(
                "the training data is a stream (datasets.IterableDataset, --streaming): it has no length, so epochs "
                "cannot be counted; set max_steps (the optimizer steps of every level; core_max_steps for the core)")
        if args.ra_sampler:
            raise ElastoformerError("ra_sampler (timm's RepeatAugSampler) draws indices, which a streamed dataset "
                                    "does not have: drop ra_sampler, or load the data without streaming")

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """Trainer's, plus ``{prefix}_samples``: the number of images evaluated (a stream's count is only known
        here), recorded with the level's metrics and named on its card."""
        output = super().evaluation_loop(dataloader, description, prediction_loss_only=prediction_loss_only,
                                         ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        prefix = metric_key_prefix
        if output.num_samples and output.metrics is not None:
            output.metrics[f"{prefix}_samples"] = int(output.num_samples)
        return output

    def _make_ema(self, model: nn.Module, checkpoint: str | None):
        if not self.args.model_ema:
            return None
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=self.args.model_ema_decay)
        if checkpoint and (Path(checkpoint) / EMA_FILE).is_file():
            from safetensors.torch import load_file

            # loaded on the CPU, copied onto the EMA's device: safetensors rejects "cpu:0" (a CPU DDP rank's device)
            ema.module.load_state_dict(load_file(str(Path(checkpoint) / EMA_FILE)))
        elif checkpoint:
            logger.warning("%s has no %s: the EMA restarts from the resumed weights", checkpoint, EMA_FILE)
        return ema

    def _save_level(self, folder: Path, model: nn.Module, k: int, metrics: dict) -> None:
        model.cpu().eval()
        if self.args.should_save:
            record = self._plan.level(k)
            save_descendant(
                model, folder, spec=self.loaded.spec, overwrite=True,
                level_info={**record.summary(), "num_levels": self._plan.num_levels, "model_name": self.model_name,
                            "trained": True, "metrics": metrics, "train_steps": int(self.state.global_step),
                            "pruning": self._plan.config.to_dict(),
                            "share_classifier": self.args.share_classifier,
                            "training": run_settings(self.args, self.model_name)["training"]},
                label_names=self.loaded.label_names, data_config=self._data_config(),
                image_processor=self.loaded.image_processor,
            )
            self._trained_now = True
            if self.args.push_levels and k < self._plan.num_levels:
                # this level alone: the others' cards change once more when the run ends (the family table, the
                # family repo), and are pushed then; the last level waits for that final push
                self._push(levels=[k])
            if not self.args.keep_level_checkpoints:
                checkpoints = Path(self.args.output_dir) / CHECKPOINTS_DIR
                shutil.rmtree(level_dir(checkpoints, k), ignore_errors=True)
                with contextlib.suppress(OSError):
                    checkpoints.rmdir()  # once empty
        self.accelerator.wait_for_everyone()

    def _needs_consistency(self, out: Path, plan: ElasticPlan) -> bool:
        """Whether the levels' agreement must be measured: there is evaluation data, and some level has none yet."""
        if self.eval_dataset is None:
            return False
        folders = [level_dir(out, k) for k in range(1, plan.num_levels + 1)]
        return not all(f.is_dir() and "consistency" in read_level_info(f) for f in folders)

    def _predict_classes(self, model: nn.Module, ignore_keys) -> tuple:
        """``(predicted class ids, labels)`` of ``model`` on the evaluation set (Trainer's ``predict``: batched,
        gathered across processes)."""
        model.to(self.args.device).eval()
        self.model = self.model_wrapped = model
        # measuring must not change what is measured next: every DataLoader iterator draws its base seed from
        # torch's global generator, so this extra pass would shift the shuffling of every later level
        cuda = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            output = self.predict(self.eval_dataset, ignore_keys=ignore_keys)
        return predicted_classes(output.predictions), np.asarray(output.label_ids).reshape(len(output.label_ids), -1)

    def _record_consistency(self, out: Path, predictions: dict) -> list[dict]:
        """Every level's agreement with the full and the next larger level, and its worst class against the full
        level (:func:`~elastoformer_hf.metrics.level_consistency`), added to ``dn{k}/elastic_level.json``."""
        labels = next(iter(predictions.values()))[1]
        labels = labels.argmax(-1) if labels.shape[-1] > 1 else labels.reshape(-1)  # soft rows: their class
        table = level_consistency({k: p for k, (p, _) in predictions.items()}, labels, self.loaded.label_names)
        if self.args.should_save:
            for k, values in table.items():
                path = level_dir(out, k) / LEVEL_FILE
                write_json(path, {**read_json(path), "consistency": values})
        self.accelerator.wait_for_everyone()
        return [read_level_info(level_dir(out, k)) for k in sorted(table)]

    def _push(self, levels: list[int] | None = None) -> None:
        """Push what is finished (only what changed; ``levels``: only those repos, not the family's); a failed upload
        is reported, never fatal to training."""
        try:
            push_run(self.args.output_dir, self.args.hub_model_id, private=bool(self.args.hub_private_repo),
                     include_family=levels is None and (Path(self.args.output_dir) / FAMILY_DIR).is_dir(),
                     token=self.args.hub_token, endpoint=os.environ.get("HF_ENDPOINT") or None, levels=levels,
                     log=self._announce)
        except ElastoformerError as err:  # PushError included: it names the repos that made it
            self._announce(f"push failed ({err}); finish it later with: elastoformer push {self.args.output_dir} "
                           f"--repo_prefix {self.args.hub_model_id}")

    def _data_config(self) -> dict:
        """The preprocessing saved with every level: the model's, at the resolution the levels train at (the
        plan's; a CNN trained on 32 px images is not a 224 px model)."""
        config = dict(self.loaded.data_config or {})
        size = self._plan.image_size if self._plan is not None else None
        if size and not self.adapter.fixed_resolution:
            channels = (config.get("input_size") or [self.adapter.in_channels(self.dense)])[0]
            config["input_size"] = [channels, size, size]
        return config

    def _check_run_settings(self, out: Path) -> dict | None:
        """Refuse a run folder that holds a run with other settings. Returns this run's settings, or None when
        ``out`` already records them. Nothing is written here: see :meth:`_record_run_settings`."""
        settings = run_settings(self.args, self.model_name,
                                data_identity(self.train_dataset, self.eval_dataset, self.data_info))
        path = out / RUN_FILE
        if path.is_file():
            previous = read_json(path, what="remove it to start this run again")
            model = previous.get("model") or {}
            if model.get("model_name"):  # recorded as given before names were made portable
                model["model_name"] = portable_path(model["model_name"], out)
            # a setting added after the run was started is missing there: compared with its default; a run
            # recorded before its data was (no "data" group) is not compared on it
            groups = {g: v for g, v in settings.items() if g != "data" or "data" in previous}
            diffs = {k: (recorded_setting(previous, g, k), v) for g, values in groups.items()
                     for k, v in values.items() if recorded_setting(previous, g, k) != v}
            if diffs:
                shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diffs.items())[:8])
                raise ElastoformerError(f"{out} holds a run with other settings ({shown}); use another output_dir, "
                                        "or the same settings to resume it")
            return None
        return settings

    def _clear_leftovers(self, out: Path) -> None:
        """Clear what an interrupted run left (:func:`~elastoformer_hf.run_folder.clean_leftovers`), before anything
        else is written, once ``out`` is known to be this run's."""
        if self.accelerator.is_main_process:  # one process deletes; the others wait below, before reading the folder
            clean_leftovers(out, checkpoints=not self.args.keep_level_checkpoints, log=self._announce)
        self.accelerator.wait_for_everyone()

    def _record_run_settings(self, out: Path, settings: dict | None) -> None:
        """Write ``elastic_run.json`` (rank 0), unless the run folder already holds it."""
        if settings is not None and self.args.should_save and not (out / RUN_FILE).is_file():
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / RUN_FILE, settings)

    def _write_summary(self, out: Path, plan: ElasticPlan, levels: list[dict]) -> dict:
        summary = {"model_name": self.model_name, "architecture": plan.architecture,
                   "pruning": plan.config.to_dict(), "levels": [
                       {"level": lv["level"], "folder": f"dn{lv['level']}", "params": lv["params"], "macs": lv["macs"],
                        "flops": lv["flops"], "keep_fraction": lv["keep_fraction"], "metrics": lv.get("metrics", {}),
                        **({"consistency": lv["consistency"]} if lv.get("consistency") else {})}
                       for lv in levels]}
        if self.args.should_save:
            write_json(out / SUMMARY_FILE, summary)
            self._announce(format_summary(summary))
        self.accelerator.wait_for_everyone()  # train() returns on every rank once the run folder is complete
        return summary

    def _build_teacher(self, num_classes: int):
        if not self.args.distillation_enabled:
            return None
        name = self.args.distillation_teacher
        if name == "dense":
            teacher = self.model  # Trainer's copy of the dense model, already on the device
        else:
            teacher = load_base_model(name).model.to(self.args.device)
        self.teacher_adapter = get_adapter(teacher)
        classes = self.teacher_adapter.classifier_layers(teacher)[0].out_features
        if classes != num_classes:
            raise ElastoformerError(f"the teacher {name!r} predicts {classes} classes, the family {num_classes}")
        return teacher.eval().requires_grad_(False)

    def _announce(self, message: str) -> None:
        if self.is_world_process_zero():
            logger.info(message)


def _as_loaded(model, spec, data_config, image_processor, label_names) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str):
        return load_base_model(model, num_labels=len(label_names) if label_names else None)
    if not isinstance(model, nn.Module):
        raise ElastoformerError(f"model must be a module, a LoadedModel or a model name, got {type(model).__name__}")
    get_adapter(model)
    spec = spec or spec_from_model(model)
    return LoadedModel(model=model, spec=spec, data_config=data_config or {}, label_names=label_names,
                       image_processor=image_processor)


def _own_names(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` under ``model``'s own parameter names when it was saved under transformers' legacy names."""
    own = model.state_dict()
    if set(state) == set(own) or not hasattr(model, "config"):
        return state
    from transformers.core_model_loading import revert_weight_conversion

    # save_pretrained renames the very tensors of the state dict: match the saved names to ours by storage
    saved = revert_weight_conversion(model, dict(own))
    by_storage = {tensor.data_ptr(): name for name, tensor in own.items()}
    renames = {key: by_storage[tensor.data_ptr()] for key, tensor in saved.items() if tensor.data_ptr() in by_storage}
    return {renames.get(key, key): tensor for key, tensor in state.items()}


def _load_level(folder: Path, template: nn.Module) -> nn.Module:
    """A finished level's weights (as saved in dn{k}/) in the training architecture."""
    template.load_state_dict(bare_model(load_descendant(folder)).state_dict())
    return template


@contextlib.contextmanager
def _overridden(args, values: dict[str, Any]):
    before = {k: getattr(args, k) for k in values}
    for k, v in values.items():
        setattr(args, k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            setattr(args, k, v)


def _broadcast(value, accelerator):
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]
