"""``ElasticTrainingArguments``: Trainer's arguments plus the elastic pipeline's knobs (trl-style config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..errors import SettingError
from ..hub.repo_ids import check_repo_prefix
from ..pruning.config import PruningConfig, knob_field, parse_round_to, pruning_config_from
from ..run_folder import check_output_dir

MIXED_INITS = ("pretrained", "random")


@dataclass
class ElasticTrainingArguments(TrainingArguments):
    """Arguments of :class:`~elastoformer_hf.ElasticTrainer`.

    Trainer's own arguments keep their meaning *per level*: ``num_train_epochs`` (or ``max_steps``) is the
    length of every rebuilt level (DN2 .. DN(N+1)), ``learning_rate``/``warmup_*``/``lr_scheduler_type`` build a
    fresh schedule for each level, ``weight_decay`` applies to the trainable entries of rebuilt levels. The
    reference's flags map to Trainer's: ``--amp`` -> ``bf16``/``fp16``, ``--clip-grad-norm`` -> ``max_grad_norm``,
    ``--lr-warmup-epochs`` -> ``warmup_steps``/``warmup_ratio``, ``--log_wandb`` -> ``report_to``,
    ``--save_as`` -> ``output_dir`` (the run folder that receives ``dn1/`` .. ``dn{N+1}/``).

    Besides: ``label_smoothing_factor`` becomes ``label_smoothing`` (Trainer's own smoother stays off: the
    trainer computes the loss), ``label_names`` defaults to ``["labels"]``, and ``push_to_hub`` (with
    ``hub_model_id``) turns into ``push_levels``.

    Args:
        pruning_type (`str`, *optional*, defaults to `"l1"`): importance criterion: l1, l2, taylor, hessian,
            random.
        pruning_ratio (`float`, *optional*, defaults to `0.4`): channel ratio removed at the core (DN1),
            strictly between 0 and 1.
        pruning_steps (`int`, *optional*, defaults to `5`): N: the family has N+1 nested levels.
        taylor_batches (`int`, *optional*, defaults to `10`): batches of gradients per pruning step
            (taylor/hessian).
        round_to (`str`, *optional*): round every width to a multiple of this (1 = no rounding); ``"auto"`` or
            None (default): the multiple the architecture's kernels like on ``round_to_profile``, lowered to
            fit the narrowest core width. Text such as ``"8"`` becomes an integer.
        round_to_profile (`str`, *optional*, defaults to `"cpu"`): the device auto rounding aims at: cpu, cuda
            or jetson (only read when ``round_to`` is auto).
        global_pruning (`bool`, *optional*, defaults to `False`): rank channels across layers (per-layer
            widths).
        head_pruning (`str`, *optional*, defaults to `"auto"`): ViTs: ``"heads"`` removes whole heads (head_dim
            kept), ``"head_dims"`` narrows every head (the reference's); ``"auto"``: whole heads when every level
            gets a distinct head count, head dims otherwise (resolved and recorded in the plan).
        prune_heads (`bool`, *optional*): the older spelling of ``head_pruning`` (true = ``"heads"``, false =
            ``"head_dims"``); None (default): not given.
        core_epochs (`float`, *optional*): epochs of core (DN1) training; default: ``num_train_epochs``.
        core_max_steps (`int`, *optional*): optimizer steps of core (DN1) training when levels are counted in
            steps (``max_steps`` > 0, which a streamed dataset needs); default: ``max_steps``. As Trainer's
            ``max_steps`` overrides ``num_train_epochs``, it overrides ``core_epochs`` too (a full-scale config
            shrunk with ``--max_steps 1`` for a smoke test trains every level, the core included, one step).
        core_weight_decay (`float`, *optional*): weight decay while training the core; default:
            ``weight_decay``.
        mixed_init (`str`, *optional*, defaults to `"pretrained"`): init of the mixed blocks (new rows x kept
            columns and the reverse) when a level grows: ``"pretrained"`` (the dense model's weights) or
            ``"random"`` (the reference's behaviour).
        share_classifier (`bool`, *optional*, defaults to `False`): share the classifier weight across levels:
            nested like every other layer (a level's columns are frozen when the next level grows, the new
            columns start from the pre-trained weights) and stored once in the family artifact; the bias stays
            per level. Default: every level trains its own classifier, as the reference does.
        keep_level_checkpoints (`bool`, *optional*, defaults to `False`): keep ``checkpoints/dn{k}/`` after
            ``dn{k}/`` is written (default: delete them).
        mixup_alpha (`float`, *optional*, defaults to `0.0`): timm Mixup alpha (0 = off); DeiT uses 0.8.
        cutmix_alpha (`float`, *optional*, defaults to `0.0`): timm CutMix alpha (0 = off); DeiT uses 1.0.
        label_smoothing (`float`, *optional*, defaults to `0.0`): label smoothing of the loss, in [0, 1).
        stochastic_depth (`float`, *optional*, defaults to `0.0`): drop-path rate of the last block (linear in
            depth), in [0, 1); residual models only.
        model_ema (`bool`, *optional*, defaults to `False`): keep a timm ``ModelEmaV3`` per level; save its
            weights.
        model_ema_decay (`float`, *optional*, defaults to `0.99996`): EMA decay, in (0, 1).
        ra_sampler (`bool`, *optional*, defaults to `False`): timm ``RepeatAugSampler`` (repeated
            augmentation).
        ra_reps (`int`, *optional*, defaults to `3`): repetitions per image with ``ra_sampler``.
        distillation_teacher (`str`, *optional*, defaults to `"dense"`): teacher for logit distillation:
            ``"dense"`` (the pre-trained model the family comes from), a model name/path, or ``"none"`` (or
            ``""``/None: no teacher).
        distillation_alpha (`float`, *optional*, defaults to `0.5`): weight of the distillation loss, in
            [0, 1] (0 = off).
        distillation_temperature (`float`, *optional*, defaults to `1.0`): softmax temperature, > 0.
        save_family (`bool`, *optional*, defaults to `True`): write the whole family as one switchable
            artifact (``ElasticFamily``) into ``output_dir/family/`` when the run ends.
        push_levels (`bool`, *optional*, defaults to `False`): set by ``push_to_hub`` (with ``hub_model_id``
            ``org/name``): push every ``dn{k}/`` to ``org/name-dn{k}`` as soon as it is written.
        remove_unused_columns (`bool`, *optional*, defaults to `False`): keep False: the image transforms read
            columns the model does not take.

    Raises:
        SettingError: a setting outside what it accepts: an elastic knob, or one of Trainer's numbers that
            ``TrainingArguments`` leaves unchecked (``learning_rate``, epochs, batch sizes, ...), or an
            ``output_dir`` that is a file.
        ElastoformerError: a pruning setting outside what it accepts, or ``push_to_hub`` (``push_levels``)
            without a ``hub_model_id`` of the form ``org/name`` whose repos (``org/name``, ``org/name-dn1`` ..
            ``org/name-dn{N+1}``) the Hub accepts (:func:`~elastoformer_hf.hub.repo_ids.check_repo_prefix`).
    """

    # -- pruning (declared once, in elastoformer_hf.pruning.config.KNOBS) --------------------------------
    pruning_type: str = knob_field("pruning_type")
    pruning_ratio: float = knob_field("pruning_ratio")
    pruning_steps: int = knob_field("pruning_steps")
    taylor_batches: int = knob_field("taylor_batches")
    # typed str so that `--round_to auto` and `--round_to 8` both parse (HfArgumentParser takes no int|str union);
    # __post_init__ turns it into an int, or None for auto
    round_to: str | None = knob_field("round_to")
    round_to_profile: str = knob_field("round_to_profile")
    global_pruning: bool = knob_field("global_pruning")
    head_pruning: str = knob_field("head_pruning")
    # None = not given; `--prune_heads` alone means true, as when it was a plain bool (argparse's nargs/const)
    prune_heads: bool | None = field(
        default=None, metadata={"help": "the older spelling of --head_pruning: true = heads, false = head_dims",
                                "nargs": "?", "const": True}
    )

    # -- schedule per level -----------------------------------------------------------------------------
    core_epochs: float | None = field(
        default=None, metadata={"help": "epochs of core (DN1) training; default: num_train_epochs (max_steps > 0 "
                                        "overrides it, as it overrides num_train_epochs: see core_max_steps)"}
    )
    core_max_steps: int | None = field(
        default=None, metadata={"help": "optimizer steps of core (DN1) training when the levels are counted in steps "
                                        "(max_steps > 0, which a streamed dataset needs); default: max_steps"}
    )
    core_weight_decay: float | None = field(
        default=None, metadata={"help": "weight decay while training the core; default: weight_decay"}
    )
    mixed_init: str = field(
        default="pretrained",
        metadata={"help": "init of the mixed blocks (new rows x kept columns and the reverse) when a level grows: "
                          "'pretrained' (the dense model's weights) or 'random' (the reference's behaviour)"},
    )
    share_classifier: bool = field(
        default=False,
        metadata={"help": "share the classifier weight across levels: nested like every other layer (a level's "
                          "columns are frozen when the next level grows, the new columns start from the "
                          "pre-trained weights) and stored once in the family artifact; the bias stays per level. "
                          "Default: every level trains its own classifier, as the reference does"},
    )
    keep_level_checkpoints: bool = field(
        default=False, metadata={"help": "keep checkpoints/dn{k}/ after dn{k}/ is written (default: delete them)"}
    )

    # -- regularisation and augmentation ----------------------------------------------------------------
    mixup_alpha: float = field(default=0.0, metadata={"help": "timm Mixup alpha (0 = off); DeiT uses 0.8"})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "timm CutMix alpha (0 = off); DeiT uses 1.0"})
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing of the loss, in [0, 1)"})
    stochastic_depth: float = field(
        default=0.0, metadata={"help": "drop-path rate of the last block (linear in depth), in [0, 1); residual "
                                       "models only"}
    )
    model_ema: bool = field(default=False, metadata={"help": "keep a timm ModelEmaV3 per level; save its weights"})
    model_ema_decay: float = field(default=0.99996, metadata={"help": "EMA decay, in (0, 1)"})
    ra_sampler: bool = field(default=False, metadata={"help": "timm RepeatAugSampler (repeated augmentation)"})
    ra_reps: int = field(default=3, metadata={"help": "repetitions per image with --ra_sampler"})

    # -- distillation -----------------------------------------------------------------------------------
    distillation_teacher: str | None = field(
        default="dense",
        metadata={"help": "teacher for logit distillation: 'dense' (the pre-trained model the family comes from), "
                          "a model name/path, or 'none'"},
    )
    distillation_alpha: float = field(
        default=0.5, metadata={"help": "weight of the distillation loss, in [0, 1] (0 = off)"}
    )
    distillation_temperature: float = field(default=1.0, metadata={"help": "softmax temperature, > 0"})

    save_family: bool = field(
        default=True, metadata={"help": "write the whole family as one switchable artifact (ElasticFamily) into "
                                        "output_dir/family/ when the run ends"}
    )
    push_levels: bool = field(
        default=False, metadata={"help": "set by --push_to_hub (with --hub_model_id org/name): push every dn{k}/ to "
                                         "org/name-dn{k} as soon as it is written"}
    )

    # -- Trainer defaults that images need --------------------------------------------------------------
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "keep False: the image transforms read columns the model does not take"}
    )

    def __post_init__(self):
        if self.label_smoothing_factor and not self.label_smoothing:
            self.label_smoothing = self.label_smoothing_factor
        # the loss is computed by ElasticTrainer (soft targets, distillation): Trainer's smoother must stay off
        self.label_smoothing_factor = 0.0
        if self.label_names is None:
            self.label_names = ["labels"]  # timm/torchvision models have no ``labels`` argument to infer it from
        if self.distillation_teacher in ("none", "", None):
            self.distillation_teacher = None
        self.round_to = parse_round_to(self.round_to)
        if self.push_to_hub:
            # ElasticTrainer pushes every finished dn{k}/ (elastoformer_hf.hub); Trainer's own push would upload
            # one level's checkpoints at a time into a single repo
            self.push_levels = True
            self.push_to_hub = False
        if self.push_levels and not self.hub_model_id:
            raise SettingError("push_to_hub needs hub_model_id='org/name': the levels become the repos "
                               "org/name-dn1 .. org/name-dn{N+1}")
        super().__post_init__()
        if self.dataloader_pin_memory and (self.use_cpu or not _accelerator_available()):
            # pinning needs an accelerator; without one torch warns at every DataLoader, i.e. at every level
            self.dataloader_pin_memory = False
        self.pruning_config  # noqa: B018 - validates ratio, steps, type, round_to
        if self.push_levels:
            # every repo the run will create, before anything is written: org/name-dn1 .. -dn{N+1} and the family
            check_repo_prefix(self.hub_model_id, self.pruning_steps + 1, option="hub_model_id")
        check_output_dir(self.output_dir, "output_dir")
        for ok, message in self._trainer_checks() + self._elastic_checks():
            if not ok:
                raise SettingError(message)

    def _trainer_checks(self) -> list[tuple[bool, str]]:
        """Trainer's own numbers that ``TrainingArguments`` leaves unchecked: refused here, before a run records
        them (``elastic_run.json``), instead of failing in torch at the first step."""
        return [
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.num_train_epochs > 0 or self.max_steps > 0,
             f"num_train_epochs must be > 0 (or max_steps > 0), got {self.num_train_epochs}"),
            (self.per_device_train_batch_size >= 1,
             f"per_device_train_batch_size must be an integer >= 1, got {self.per_device_train_batch_size}"),
            (self.per_device_eval_batch_size >= 1,
             f"per_device_eval_batch_size must be an integer >= 1, got {self.per_device_eval_batch_size}"),
            (self.gradient_accumulation_steps >= 1,
             f"gradient_accumulation_steps must be an integer >= 1, got {self.gradient_accumulation_steps}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1,
             f"adam_beta1 and adam_beta2 must be in [0, 1), got {self.adam_beta1}, {self.adam_beta2}"),
            (self.adam_epsilon >= 0, f"adam_epsilon must be >= 0, got {self.adam_epsilon}"),
            (self.max_grad_norm is None or self.max_grad_norm >= 0,
             f"max_grad_norm must be >= 0 (0 = no clipping), got {self.max_grad_norm}"),
        ]

    def _elastic_checks(self) -> list[tuple[bool, str]]:
        return [
            (self.core_epochs is None or self.core_epochs > 0, f"core_epochs must be > 0, got {self.core_epochs}"),
            (self.core_max_steps is None or (self.core_max_steps >= 1 and self.max_steps > 0),
             f"core_max_steps must be an integer >= 1 and goes with max_steps > 0 (levels counted in steps; with "
             f"epochs, use core_epochs), got core_max_steps={self.core_max_steps}, max_steps={self.max_steps}"),
            (self.core_weight_decay is None or self.core_weight_decay >= 0,
             f"core_weight_decay must be >= 0, got {self.core_weight_decay}"),
            (self.mixed_init in MIXED_INITS, f"mixed_init must be one of {MIXED_INITS}, got {self.mixed_init!r}"),
            (isinstance(self.share_classifier, bool),
             f"share_classifier must be true or false, got {self.share_classifier!r}"),
            (self.mixup_alpha >= 0 and self.cutmix_alpha >= 0, "mixup_alpha and cutmix_alpha must be >= 0"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0 <= self.stochastic_depth < 1, f"stochastic_depth must be in [0, 1), got {self.stochastic_depth}"),
            (0 < self.model_ema_decay < 1, f"model_ema_decay must be in (0, 1), got {self.model_ema_decay}"),
            (self.ra_reps >= 1, f"ra_reps must be >= 1, got {self.ra_reps}"),
            (0 <= self.distillation_alpha <= 1, f"distillation_alpha must be in [0, 1], got {self.distillation_alpha}"),
            (self.distillation_temperature > 0,
             f"distillation_temperature must be > 0, got {self.distillation_temperature}"),
        ]

    @property
    def pruning_config(self) -> PruningConfig:
        return pruning_config_from(self)

    @property
    def distillation_enabled(self) -> bool:
        return self.distillation_teacher is not None and self.distillation_alpha > 0

    @property
    def mixup_enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


def _accelerator_available() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, ... alike
    return bool(accelerator.is_available()) if accelerator is not None else torch.cuda.is_available()
