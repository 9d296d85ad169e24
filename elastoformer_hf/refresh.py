"""The views of a run folder, brought up to date from its records.

The records are written by whoever measured or made something: ``elastic_level.json`` (training, planning),
``dn{k}/latency.json`` (``elastoformer bench``, ``elastoformer estimate``) and ``dn{k}/onnx/export.json``
(``elastoformer export``). The views are derived from them and never written by those commands directly:

* every model card already in the run folder (``dn{k}/README.md``, ``family/README.md``): rendered afresh from the
  records and merged into the card there (:func:`~elastoformer_hf.cards.merge_cards`: a license, tags, text and
  latency entries added by hand stay), with its plots;
* the family artifact's level metadata (``family/family_config.json``), which
  ``ElasticFamily.select(max_latency_ms=...)`` reads: the levels' recorded latencies merged in.

Everything is read and checked before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import ModelCard

from .cards import META_KEY, family_card, level_card, merge_cards, rerender_sections, save_card, write_plots
from .errors import ElastoformerError
from .family.storage import CONFIG_FILE, with_level_latency, write_config
from .latency.entries import to_card_entry
from .latency.store import card_entries, merge_records, write_records
from .run_folder import CARD_FILE, FAMILY_DIR, load_run, run_of

__all__ = ["record_latency", "refresh_run"]


def _existing_card(folder: Path) -> ModelCard | None:
    """The elastoformer card in ``folder`` (None when there is none; a card of another kind is left alone)."""
    readme = folder / CARD_FILE
    if not readme.is_file():
        return None
    try:
        card = ModelCard.load(readme, ignore_metadata_errors=True)
    except Exception:  # an unreadable YAML header: the user's card, left alone
        return None
    meta = card.data.to_dict().get(META_KEY)
    return card if isinstance(meta, dict) and meta.get("family") else None


def _rendered_with(card: ModelCard) -> dict:
    """What ``card`` was rendered with beyond the run's records (repo names, dataset, base model), so that a fresh
    render names the same things."""
    data = card.data.to_dict()
    meta = data[META_KEY]
    repo = next((r.get("repo") for r in meta["family"] if r.get("repo")), None)
    base = data.get("base_model")
    return {"repo_prefix": repo.rsplit("-dn", 1)[0] if repo else None, "family_repo": meta.get("family_repo"),
            "dataset": (data.get("datasets") or [None])[0], "base_model": base if isinstance(base, str) else None}


def refresh_run(run_dir: str | os.PathLike) -> list[Path]:
    """Bring the cards and the family metadata of the run in ``run_dir`` up to date with its records.

    Args:
        run_dir: a run folder (``dn1/`` .. ``dn{N+1}/``, as training or ``elastoformer plan --output_dir`` write it).

    Returns:
        The files written: cards and ``family_config.json`` (each card's plots are written beside it); nothing
        when the run has no card and no family.

    Raises:
        ElastoformerError: a record or the family config is corrupt, or the family is not this run's (then
            nothing is written).
    """
    record = load_run(run_dir)
    family_dir = record.family_dir
    # 1. read and check everything
    config = None
    by_level = {k: entries for k in record.levels if (entries := card_entries(record.folder(k)))}
    if by_level and family_dir is not None and (family_dir / CONFIG_FILE).is_file():
        config = with_level_latency(family_dir, by_level, record.levels)
    cards: list[tuple[Path, ModelCard]] = []
    for level in record.levels:
        existing = _existing_card(record.folder(level))
        if existing is not None:
            fresh = level_card(record, level, **_rendered_with(existing))
            cards.append((record.folder(level), merge_cards(existing, fresh)))
    existing = _existing_card(family_dir) if family_dir is not None else None
    if existing is not None:
        kwargs = _rendered_with(existing)
        if kwargs["repo_prefix"] is None:
            raise ElastoformerError(f"{family_dir / CARD_FILE} names no level repos: render it again with "
                                    "elastoformer_hf.cards.write_family_card(run, folder, repo_prefix=...)")
        cards.append((family_dir, merge_cards(existing, family_card(record, **kwargs))))
    # 2. write
    written: list[Path] = []
    if config is not None:
        written.append(write_config(family_dir, config))
    for folder, card in cards:
        plots = write_plots(card.data.to_dict()[META_KEY], folder)
        written.append(save_card(rerender_sections(card, plots), folder / CARD_FILE))
    return written


def record_latency(entries_by_dn: dict) -> list[Path]:
    """Record latency entries (``{dn_dir: [latency.json records]}``, :func:`~elastoformer_hf.latency.store.record_run`)
    and refresh the views of every run they belong to. Returns the files written.

    The entries, the existing records and each run's family artifact (it must be the run's) are checked before
    anything is written.
    """
    merged = merge_records(entries_by_dn)
    runs = [run for run in dict.fromkeys(run_of(folder) for folder in merged) if run is not None]
    for run in runs:
        family_dir = Path(run) / FAMILY_DIR
        if (family_dir / CONFIG_FILE).is_file():
            record = load_run(run)
            pending = {k: [to_card_entry(e) for e in merged[record.folder(k)]]
                       for k in record.levels if record.folder(k) in merged}
            with_level_latency(family_dir, pending, record.levels)
    written = write_records(merged)
    for run in runs:
        written += refresh_run(run)
    return written
