"""The pruning settings of an elastic family, validated and JSON-friendly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..errors import ElastoformerError
from .alignment import DEVICE_PROFILES

PRUNING_TYPES = ("l1", "l2", "taylor", "hessian", "random")
GRADIENT_PRUNING_TYPES = ("taylor", "hessian")


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
    """

    pruning_type: str = "l1"
    pruning_ratio: float = 0.5
    pruning_steps: int = 5
    round_to: int | None = None
    global_pruning: bool = False
    prune_heads: bool = False
    taylor_batches: int = 10
    #: the device family auto rounding aims at: "cpu", "cuda" or "jetson" (only read when round_to is auto)
    round_to_profile: str = "cpu"
    #: set by the planner: ``round_to`` was chosen by auto rather than given
    round_to_auto: bool = False

    def __post_init__(self):
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

    def _identity(self) -> dict:
        data = self.to_dict()
        data["round_to"] = "auto" if self.auto_round_to else self.round_to
        del data["round_to_auto"]
        if not self.auto_round_to:
            del data["round_to_profile"]  # only auto reads it
        return data

    def __eq__(self, other):
        if not isinstance(other, PruningConfig):
            return NotImplemented
        return self._identity() == other._identity()

    __hash__ = None  # mutable, like any eq dataclass

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PruningConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
