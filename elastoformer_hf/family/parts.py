"""What a family is made of, in memory: the base model, the storage layout, the tensors and the metadata."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..base_model import BaseModelSpec
from .layout import Layout


@dataclass
class FamilyParts:
    spec: BaseModelSpec
    layout: Layout
    shared: dict[str, torch.Tensor]  # full width, family order
    own: list[dict[str, torch.Tensor]]  # per level: its own tensors, family order
    levels: list[dict]  # per level: params, macs, flops, accuracy, metrics, latency, heads, structure
    info: dict  # model name, architecture, image size, plan summary, label names
