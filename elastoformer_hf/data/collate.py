"""Batch collation for ``transformers.Trainer``, with optional timm Mixup/CutMix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from timm.data import Mixup
from timm.data.mixup import mixup_target

__all__ = ["ImageCollator"]


@dataclass
class ImageCollator:
    """Stack the ``pixel_values``/``labels`` of a list of examples into a dict of batch tensors.

    Use as ``Trainer(data_collator=ImageCollator(...))``. Without Mixup, ``labels`` is an int64 tensor (B,).

    With ``mixup_alpha > 0`` or ``cutmix_alpha > 0`` (``num_classes`` required) each batch goes through
    :class:`timm.data.Mixup` and ``labels`` becomes a float tensor (B, num_classes) of soft targets (rows
    sum to 1, ``label_smoothing`` included). Consequences for the caller:

    * the loss must be soft-target cross-entropy (``timm.loss.SoftTargetCrossEntropy``); do not hand float
      labels to a transformers ``*ForImageClassification`` model, which would switch to BCE
      (``problem_type="multi_label_classification"``);
    * ``Trainer`` also collates eval batches with ``data_collator``: use :meth:`for_eval` there so that
      evaluation sees plain int labels.

    timm's Mixup asserts an even batch size. An odd batch (normally only the last, partial one) is *not*
    mixed: it gets the same soft-label format (one-hot + label smoothing) so shapes and dtype stay
    consistent. Set ``dataloader_drop_last=True`` in ``TrainingArguments`` to avoid such batches entirely.

    Args:
        mixup_alpha (`float`, *optional*, defaults to `0.0`): Mixup's alpha (> 0 enables it).
        cutmix_alpha (`float`, *optional*, defaults to `0.0`): CutMix's alpha (> 0 enables it).
        cutmix_minmax (`Sequence[float]`, *optional*): CutMix's min/max box ratio (given, it enables CutMix).
        prob (`float`, *optional*, defaults to `1.0`): the probability of mixing a batch.
        switch_prob (`float`, *optional*, defaults to `0.5`): the probability of CutMix instead of Mixup when
            both are enabled.
        mode (`str`, *optional*, defaults to `"batch"`): timm's Mixup mode (``batch``, ``pair`` or ``elem``).
        label_smoothing (`float`, *optional*, defaults to `0.1`): smoothing of the soft targets.
        num_classes (`int`, *optional*): the number of classes; required when mixing.

    Raises:
        ValueError: Mixup or CutMix is enabled without ``num_classes``.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    cutmix_minmax: Sequence[float] | None = None
    prob: float = 1.0
    switch_prob: float = 0.5
    mode: str = "batch"
    label_smoothing: float = 0.1
    num_classes: int | None = None
    _mixup: Mixup | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mixup_enabled:
            if not self.num_classes:
                raise ValueError(
                    "ImageCollator: num_classes is required when mixup_alpha or cutmix_alpha > 0"
                )
            self._mixup = Mixup(
                mixup_alpha=self.mixup_alpha,
                cutmix_alpha=self.cutmix_alpha,
                cutmix_minmax=list(self.cutmix_minmax) if self.cutmix_minmax is not None else None,
                prob=self.prob,
                switch_prob=self.switch_prob,
                mode=self.mode,
                label_smoothing=self.label_smoothing,
                num_classes=self.num_classes,
            )

    @property
    def mixup_enabled(self) -> bool:
        """`bool`: whether batches are mixed (``mixup_alpha > 0``, ``cutmix_alpha > 0`` or a
        ``cutmix_minmax``)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0 or self.cutmix_minmax is not None

    def for_eval(self) -> ImageCollator:
        """A plain collator (no Mixup, int labels) for evaluation/prediction dataloaders.

        Returns:
            `ImageCollator`: a collator with the default settings.
        """
        return ImageCollator()

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        pixel_values = torch.stack([torch.as_tensor(f["pixel_values"]) for f in features])
        label_key = "labels" if "labels" in features[0] else "label"
        labels = torch.tensor([int(f[label_key]) for f in features], dtype=torch.long)
        if self._mixup is not None:
            if len(features) % 2 == 0:
                pixel_values, labels = self._mixup(pixel_values, labels)
            else:  # odd batch: skip mixing (timm asserts even sizes) but keep the soft-label format
                labels = mixup_target(labels, self.num_classes, lam=1.0, smoothing=self.label_smoothing)
        return {"pixel_values": pixel_values, "labels": labels}
