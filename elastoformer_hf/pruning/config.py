"""The pruning settings of an elastic family, validated and JSON-friendly, and the one place they are declared.

Every pruning knob is declared once, in :data:`KNOBS` (default and help text). :class:`PruningConfig`, the
trainer's :class:`~elastoformer_hf.training.ElasticTrainingArguments` (through :func:`knob_field`) and the
``elastoformer plan`` command line (through :func:`add_pruning_arguments`) all take their fields from it, and
``round_to`` is read by one parser (:func:`parse_round_to`). ``prune_heads`` is the older spelling of
``head_pruning`` (``True`` = ``"heads"``, ``False`` = ``"head_dims"``), still accepted everywhere.
"""

from __future__ import annotations

import argparse
from dataclasses import InitVar, asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import ElastoformerError, SettingError

PRUNING_TYPES = ("l1", "l2", "taylor", "hessian", "random")
GRADIENT_PRUNING_TYPES = ("taylor", "hessian")
#: the devices auto rounding can aim at (:mod:`.alignment`)
DEVICE_PROFILES = ("cpu", "cuda", "jetson")
#: how a ViT's attention shrinks: auto (resolved per model by :mod:`.heads`), whole heads, or every head narrower
HEAD_PRUNING = ("auto", "heads", "head_dims")


@dataclass(frozen=True)
class Knob:
    """One pruning setting: its default, its help text and, for a closed set, its accepted values."""

    default: Any
    help: str
    choices: tuple[str, ...] | None = None


KNOBS: dict[str, Knob] = {
    "pruning_type": Knob("l1", f"importance criterion: {', '.join(PRUNING_TYPES)}", PRUNING_TYPES),
    "pruning_ratio": Knob(0.4, "channel ratio removed at the core (DN1), strictly between 0 and 1"),
    "pruning_steps": Knob(5, "N: the family has N+1 nested levels"),
    "round_to": Knob(None, "round every width to a multiple of this (1 = no rounding); 'auto' (default): the "
                           "multiple the architecture's kernels like on round_to_profile "
                           "(elastoformer_hf/pruning/alignment.py), lowered to fit the narrowest core width"),
    "round_to_profile": Knob("cpu", "the device auto rounding aims at: cpu, cuda or jetson (only read when "
                                    "round_to is auto)", DEVICE_PROFILES),
    "global_pruning": Knob(False, "rank channels across layers (per-layer widths)"),
    "head_pruning": Knob("auto", "ViTs: 'heads' removes whole heads (head_dim kept), 'head_dims' narrows every "
                                 "head (the reference's); 'auto' (default): whole heads when every level gets a "
                                 "distinct head count (elastoformer_hf/pruning/heads.py), head dims otherwise",
                         HEAD_PRUNING),
    "taylor_batches": Knob(10, "batches of gradients per pruning step (taylor/hessian)"),
}


def knob_field(name: str) -> Any:
    """A dataclass ``field`` for the knob ``name`` (its default, and its help text for ``HfArgumentParser``)."""
    spec = KNOBS[name]
    return field(default=spec.default, metadata={"help": spec.help})


def parse_round_to(value: Any) -> int | None:
    """``"auto"`` or None -> None (the planner resolves it); an integer or its text -> that integer (checked by
    :class:`PruningConfig`).

    Raises:
        SettingError: anything else.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise SettingError(f"round_to must be 'auto' or an integer >= 1, got {value!r}")


def _round_to_argument(text: str) -> int | None:
    try:
        return parse_round_to(text)
    except ElastoformerError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_pruning_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per knob, with the knob's default and help (booleans as switches)."""
    for name, spec in KNOBS.items():
        flag = f"--{name}"
        if isinstance(spec.default, bool):
            parser.add_argument(flag, action="store_true", help=spec.help)
        elif name == "head_pruning":
            parser.add_argument(flag, default=spec.default, choices=spec.choices,
                                help=f"{spec.help} (default {spec.default})")
            parser.add_argument("--prune_heads", dest=name, action="store_const", const="heads",
                                help="the older spelling of --head_pruning heads")
        elif name == "round_to":
            parser.add_argument(flag, type=_round_to_argument, default=None, help=spec.help)
        else:
            kind = type(spec.default)
            parser.add_argument(flag, type=kind, default=spec.default, choices=spec.choices,
                                help=f"{spec.help} (default {spec.default})")


def pruning_config_from(source: Any) -> PruningConfig:
    """The :class:`PruningConfig` of any object carrying the knobs as attributes (parsed arguments, training
    arguments), and ``prune_heads`` where it has one."""
    return PruningConfig(**{name: getattr(source, name) for name in KNOBS},
                         prune_heads=getattr(source, "prune_heads", None))


@dataclass(eq=False)  # __eq__ below: auto matches its resolved form
class PruningConfig:
    """How one model becomes ``pruning_steps + 1`` nested levels.

    Level ``k`` (1 = core, ``pruning_steps + 1`` = dense) keeps the channel fraction
    ``1 - pruning_ratio * (pruning_steps + 1 - k) / pruning_steps`` of every pruned dimension (torch-pruning's
    linear schedule, as in the reference).

    ``round_to`` floors every kept width (per head for attention head dims) to a multiple of it; ``None`` (the
    default) means "auto": the planner picks the multiple for the architecture and ``round_to_profile``
    (:mod:`.alignment`, which cites the latency measurements behind it) and records it in the plan's config as
    ``round_to`` with ``round_to_auto=True``. Two configs compare equal when everything but the rounding matches
    and both roundings are auto (resolved or not) or both are the same explicit value, so a run folder planned
    with auto matches the auto setting that made it.

    ``head_pruning`` works the same way: ``"auto"`` (the default) is resolved by the planner
    (:func:`~.heads.resolve_head_pruning`) to ``"heads"`` or ``"head_dims"`` for the model and recorded with
    ``head_pruning_auto=True``; a model without attention heads keeps ``"auto"`` (nothing to choose). An auto
    config matches its resolved form; explicit choices match the same choice, however it was reached.
    ``prune_heads`` (init only) is the older spelling: ``True`` = ``"heads"``, ``False`` = ``"head_dims"``; plans
    written before ``head_pruning`` existed load with the choice they were made with. The resolved choice as a
    boolean is :attr:`whole_heads`.
    """

    pruning_type: str = knob_field("pruning_type")
    pruning_ratio: float = knob_field("pruning_ratio")
    pruning_steps: int = knob_field("pruning_steps")
    round_to: int | None = knob_field("round_to")
    global_pruning: bool = knob_field("global_pruning")
    head_pruning: str = knob_field("head_pruning")
    taylor_batches: int = knob_field("taylor_batches")
    round_to_profile: str = knob_field("round_to_profile")
    #: set by the planner: ``round_to`` was chosen by auto rather than given
    round_to_auto: bool = False
    #: set by the planner: ``head_pruning`` was chosen by auto rather than given
    head_pruning_auto: bool = False
    #: the older spelling of ``head_pruning`` (init only; True = "heads", False = "head_dims")
    prune_heads: InitVar[bool | None] = None

    def __post_init__(self, prune_heads):
        if prune_heads is not None:
            if not isinstance(prune_heads, bool):
                raise ElastoformerError(f"prune_heads must be true or false, got {prune_heads!r}")
            spelled = "heads" if prune_heads else "head_dims"
            if self.head_pruning not in ("auto", spelled):
                raise ElastoformerError(f"prune_heads={prune_heads} contradicts head_pruning={self.head_pruning!r}: "
                                        "give one of them (head_pruning: auto, heads or head_dims)")
            self.head_pruning = spelled
        if self.head_pruning not in HEAD_PRUNING:
            raise ElastoformerError(
                f"unknown head_pruning {self.head_pruning!r}; accepted: {', '.join(HEAD_PRUNING)}")
        if self.head_pruning_auto and self.head_pruning == "auto":
            raise ElastoformerError("head_pruning_auto marks a resolved choice: it needs head_pruning heads or "
                                    "head_dims")
        if self.pruning_type not in PRUNING_TYPES:
            raise ElastoformerError(
                f"unknown pruning_type {self.pruning_type!r}; accepted: {', '.join(PRUNING_TYPES)}"
            )
        ratio = self.pruning_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < float(ratio) < 1.0:
            raise ElastoformerError(f"pruning_ratio must be a number strictly between 0 and 1, got {ratio!r}")
        self.pruning_ratio = float(ratio)
        if isinstance(self.pruning_steps, bool) or not isinstance(self.pruning_steps, int) or self.pruning_steps < 1:
            raise ElastoformerError(f"pruning_steps must be an integer >= 1, got {self.pruning_steps!r}")
        if self.round_to is not None and (
            isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1
        ):
            raise ElastoformerError(
                f"round_to must be an integer >= 1 (1 = no rounding) or None (auto), got {self.round_to!r}"
            )
        if self.round_to_auto and self.round_to is None:
            raise ElastoformerError("round_to_auto marks a resolved rounding: it needs an integer round_to")
        if self.round_to_profile not in DEVICE_PROFILES:
            raise ElastoformerError(
                f"unknown round_to_profile {self.round_to_profile!r}; accepted: {', '.join(DEVICE_PROFILES)}"
            )
        if not isinstance(self.taylor_batches, int) or self.taylor_batches < 1:
            raise ElastoformerError(f"taylor_batches must be an integer >= 1, got {self.taylor_batches!r}")

    @property
    def num_levels(self) -> int:
        return self.pruning_steps + 1

    @property
    def needs_gradients(self) -> bool:
        return self.pruning_type in GRADIENT_PRUNING_TYPES

    def keep_fraction(self, level: int) -> float:
        """Channel fraction kept at ``level`` (1-based; the last level is dense)."""
        if not 1 <= level <= self.num_levels:
            raise ElastoformerError(f"level must be in 1..{self.num_levels}, got {level}")
        return 1.0 - self.pruning_ratio * (self.num_levels - level) / self.pruning_steps

    @property
    def auto_round_to(self) -> bool:
        """True when the rounding is (or was) chosen by the planner rather than given."""
        return self.round_to is None or self.round_to_auto

    def with_round_to(self, value: int) -> PruningConfig:
        """This config with an auto rounding resolved to ``value`` (explicit roundings are returned as they are)."""
        if not self.auto_round_to:
            return self
        return replace(self, round_to=value, round_to_auto=True)

    @property
    def whole_heads(self) -> bool:
        """True when whole heads are pruned (``head_pruning`` is, or resolved to, ``"heads"``)."""
        return self.head_pruning == "heads"

    def with_head_pruning(self, value: str) -> PruningConfig:
        """This config with an auto ``head_pruning`` resolved to ``value`` (explicit choices come back as they
        are)."""
        if self.head_pruning != "auto":
            return self
        return replace(self, head_pruning=value, head_pruning_auto=True)

    def _identity(self) -> dict:
        data = self.to_dict()
        data["round_to"] = "auto" if self.auto_round_to else self.round_to
        del data["round_to_auto"]
        if not self.auto_round_to:
            del data["round_to_profile"]  # only auto reads it
        del data["head_pruning"], data["head_pruning_auto"]  # compared in __eq__
        return data

    def _heads_match(self, other: PruningConfig) -> bool:
        mine, theirs = self.head_pruning, other.head_pruning
        if "auto" in (mine, theirs):  # unresolved auto matches auto, resolved or not
            return mine == theirs or (other.head_pruning_auto if mine == "auto" else self.head_pruning_auto)
        return mine == theirs

    def __eq__(self, other):
        if not isinstance(other, PruningConfig):
            return NotImplemented
        return self._identity() == other._identity() and self._heads_match(other)

    __hash__ = None  # mutable, like any eq dataclass

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PruningConfig:
        """The config in ``data`` (:meth:`to_dict`'s form); a plan from before ``head_pruning`` records
        ``prune_heads`` instead, and means what it meant then (false: head dims)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if "head_pruning" not in data:
            kwargs["head_pruning"] = "heads" if data.get("prune_heads") else "head_dims"
        return cls(**kwargs)

