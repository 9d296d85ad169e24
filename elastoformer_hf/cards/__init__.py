"""Model cards of an elastic family: one per descendant network (``dn{k}``) and one for the family repo.

    from elastoformer_hf.cards import write_level_card, update_card

    write_level_card("runs/deit-elastic", 3, repo_prefix="org/deit-elastic")   # dn3/README.md + plots
    update_card("runs/deit-elastic/dn3", latency_entries=[
        {"device": "Jetson Orin Nano 8GB", "runtime": "TensorRT 10.3", "precision": "fp16", "batch_size": 1,
         "ms": 4.2, "method": "measured"}])

The templates (``elastic_model_card.md``, ``elastic_family_card.md``) are Jinja files shipped in this package and
rendered with :meth:`huggingface_hub.ModelCard.from_template`.
"""

from .latency import METHODS, latency_key, merge_latency, normalize_entry
from .plots import ACCURACY_PLOT, LATENCY_PLOT, write_plots
from .render import (
    FAMILY_TEMPLATE,
    LEVEL_TEMPLATE,
    META_KEY,
    apply_latency,
    family_card,
    family_table,
    level_card,
    merge_cards,
    rerender_sections,
    save_card,
    update_card,
    write_family_card,
    write_level_card,
)
from .run import RunRecord, base_model_id, load_run, resolve_dataset

__all__ = [
    "ACCURACY_PLOT",
    "FAMILY_TEMPLATE",
    "LATENCY_PLOT",
    "LEVEL_TEMPLATE",
    "META_KEY",
    "METHODS",
    "RunRecord",
    "apply_latency",
    "base_model_id",
    "family_card",
    "family_table",
    "latency_key",
    "level_card",
    "load_run",
    "merge_cards",
    "merge_latency",
    "rerender_sections",
    "normalize_entry",
    "resolve_dataset",
    "save_card",
    "update_card",
    "write_family_card",
    "write_level_card",
    "write_plots",
]
