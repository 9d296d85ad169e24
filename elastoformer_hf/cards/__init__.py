"""Model cards of an elastic family: one per descendant network (``dn{k}``) and one for the family repo.

    from elastoformer_hf.cards import write_level_card, update_card

    write_level_card("runs/deit-elastic", 3, repo_prefix="org/deit-elastic")   # dn3/README.md + plots
    update_card("runs/deit-elastic/dn3", latency_entries=[
        {"device": "Jetson Orin Nano 8GB", "runtime": "TensorRT 10.3", "precision": "fp16", "batch_size": 1,
         "ms": 4.2, "method": "measured"}])

Cards are views of the run's records (``elastic_level.json``, ``latency.json``, ``onnx/export.json``): they are
rendered from them, never the other way round (:func:`elastoformer_hf.refresh.refresh_run` re-renders the cards
of a run folder). The templates (``elastic_model_card.md``, ``elastic_family_card.md``) are Jinja files shipped in
this package and rendered with :meth:`huggingface_hub.ModelCard.from_template`.
"""

from .deploy import deploy_section
from .plots import ACCURACY_PLOT, LATENCY_PLOT, write_family_plot, write_plots
from .provenance import base_model_id, is_repo_id, run_dataset
from .render import (
    FAMILY_TEMPLATE,
    LEVEL_TEMPLATE,
    META_KEY,
    apply_latency,
    dn_repo,
    family_card,
    family_table,
    human,
    level_card,
    merge_cards,
    rerender_sections,
    retarget_card,
    save_card,
    update_card,
    write_card,
    write_family_card,
    write_level_card,
)

__all__ = [
    "ACCURACY_PLOT",
    "FAMILY_TEMPLATE",
    "LATENCY_PLOT",
    "LEVEL_TEMPLATE",
    "META_KEY",
    "apply_latency",
    "base_model_id",
    "deploy_section",
    "dn_repo",
    "family_card",
    "family_table",
    "human",
    "is_repo_id",
    "level_card",
    "merge_cards",
    "retarget_card",
    "rerender_sections",
    "run_dataset",
    "save_card",
    "update_card",
    "write_card",
    "write_family_card",
    "write_family_plot",
    "write_level_card",
    "write_plots",
]
