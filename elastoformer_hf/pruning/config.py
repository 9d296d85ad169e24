"""The pruning settings of an elastic family, validated and JSON-friendly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ElastoformerError

PRUNING_TYPES = ("l1", "l2", "taylor", "hessian", "random")
GRADIENT_PRUNING_TYPES = ("taylor", "hessian")


@dataclass
class PruningConfig:
    """How one model becomes ``pruning_steps + 1`` nested levels.

    Level ``k`` (1 = core, ``pruning_steps + 1`` = dense) keeps the channel fraction
    ``1 - pruning_ratio * (pruning_steps + 1 - k) / pruning_steps`` of every pruned dimension (torch-pruning's
    linear schedule, as in the reference).
    """

    pruning_type: str = "l1"
    pruning_ratio: float = 0.5
    pruning_steps: int = 5
    round_to: int = 8
    global_pruning: bool = False
    prune_heads: bool = False
    taylor_batches: int = 10

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
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            raise ElastoformerError(f"round_to must be an integer >= 1 (1 = no rounding), got {self.round_to!r}")
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PruningConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
