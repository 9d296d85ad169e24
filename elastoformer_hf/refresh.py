"""The views of a run folder, made and kept up to date from its records.

The records are written by whoever measured or made something: ``elastic_level.json`` (training, planning),
``dn{k}/latency.json`` (``elastoformer bench``, ``elastoformer estimate``) and ``dn{k}/onnx/export.json``
(``elastoformer export``). The views are derived from them and never written by those commands directly:

* the model cards (``dn{k}/README.md``, ``family/README.md``), rendered from the records as ``elastoformer push``
  publishes them, and merged into a card already there (:func:`~elastoformer_hf.cards.merge_cards`: a license,
  tags, text and latency entries added by hand stay), with their plots;
* ``family.png``: every level's accuracy (and recorded latency) against its MACs;
* the family artifact's level metadata (``family/family_config.json``), which
  ``ElasticFamily.select(max_latency_ms=...)`` reads: the levels' recorded latencies merged in.

A finished training run writes the cards and the plot (:func:`write_run_cards`); ``bench``, ``estimate`` and
``export`` refresh whatever views exist (:func:`refresh_run`). Everything is read and checked before anything is
written.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import ModelCard

from .cards import META_KEY, family_card, level_card, merge_cards, write_card, write_family_plot
from .cards.render import placeholder_prefix
from .family.storage import CONFIG_FILE, with_level_latency, write_config
from .latency.entries import to_card_entry
from .latency.profiles import load_profile
from .latency.roofline import estimate_level
from .latency.store import card_entries, merge_records, read_latency, write_records
from .run_folder import (
    CARD_FILE,
    FAMILY_DIR,
    FAMILY_PLOT,
    PARENT_DIR,
    PARENT_INFO_FILE,
    RunRecord,
    load_run,
    read_json,
    run_of,
)

__all__ = ["record_latency", "refresh_run", "write_run_cards"]


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


def _reference(record: RunRecord) -> tuple[str, float] | None:
    """The dense model's accuracy for the family plot: the demo's parent (``parent/parent_info.json``), if any."""
    path = record.root / PARENT_DIR / PARENT_INFO_FILE
    info = read_json(path) if path.is_file() else {}
    accuracy = info.get("eval_accuracy") if isinstance(info, dict) else None
    return ("dense parent", float(accuracy)) if isinstance(accuracy, (int, float)) else None


def _family_plot(record: RunRecord, card: ModelCard) -> Path | None:
    return write_family_plot(card.data.to_dict()[META_KEY], record.root / FAMILY_PLOT, reference=_reference(record),
                             title=f"{Path(record.model_name()).name}: {record.num_levels} nested levels")


def write_run_cards(run_dir: str | os.PathLike, *, repo_prefix: str | None = None, **card_kwargs) -> list[Path]:
    """Write every level's card, the family card (into ``family/``, when the run has the artifact) and
    ``family.png``, as ``elastoformer push`` would publish them; a card already there is merged into, not replaced.

    Args:
        run_dir (`str` or `os.PathLike`): a finished run folder.
        repo_prefix (`str`, *optional*): ``org/name`` the levels will be published as (``org/name-dn{k}``); without
            it the cards name them ``ORG/{model}-elastic-dn{k}``, and ``elastoformer push`` names them when it
            publishes.
        **card_kwargs: ``dataset``, ``license``, ``base_model`` (see :func:`~elastoformer_hf.cards.level_card`).

    Returns:
        `list[Path]`: the cards and the plot written.

    Raises:
        ElastoformerError: a record is corrupt.
    """
    record = load_run(run_dir)
    prefix = repo_prefix or placeholder_prefix(record)
    family_repo = prefix if record.family_dir is not None else None
    written = []
    for level in record.levels:
        fresh = level_card(record, level, repo_prefix=prefix, family_repo=family_repo, **card_kwargs)
        written.append(_write_merged(record.folder(level), fresh))
    family = family_card(record, repo_prefix=prefix, **card_kwargs)
    if record.family_dir is not None:
        written.append(_write_merged(record.family_dir, family))
    plot = _family_plot(record, family)
    return written + ([plot] if plot is not None else [])


def _write_merged(folder: Path, fresh: ModelCard) -> Path:
    existing = _existing_card(folder)
    write_card(merge_cards(existing, fresh) if existing is not None else fresh, folder)
    return folder / CARD_FILE


def refresh_run(run_dir: str | os.PathLike) -> list[Path]:
    """Bring the cards and the family metadata of the run in ``run_dir`` up to date with its records.

    Args:
        run_dir: a run folder (``dn1/`` .. ``dn{N+1}/``, as training or ``elastoformer plan --output_dir`` write it).

    Returns:
        The files written: cards and ``family_config.json`` (each card's plots are written beside it, and
        ``family.png`` is redrawn when it exists); nothing when the run has no card and no family.

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
    family = None
    if existing is not None:
        family = merge_cards(existing, family_card(record, **_rendered_with(existing)))
        cards.append((family_dir, family))
    # 2. write
    written: list[Path] = []
    if config is not None:
        written.append(write_config(family_dir, config))
    for folder, card in cards:
        write_card(card, folder)
        written.append(folder / CARD_FILE)
    if (record.root / FAMILY_PLOT).is_file():
        _family_plot(record, family if family is not None else family_card(record))
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


#: the device whose latency a published level states when nobody measured one: the Orin Nano, the smallest
#: current Jetson (``elastoformer push --latency_profile``; ``none`` skips)
DEFAULT_LATENCY_PROFILE = "jetson-orin-nano-8gb"


def estimate_missing_latency(run_dir: str | os.PathLike, profile: str = DEFAULT_LATENCY_PROFILE,
                             log=None) -> list[Path]:
    """Record the roofline latency estimate (``method: "estimated"``, labelled as such on the cards) for
    ``profile``'s device on every level that has no latency entry for that device yet, then refresh the views.
    Measured entries always win: a level measured on the device is left alone, and so is one estimated before.

    Returns:
        `list[Path]`: the files written (none when every level already has the device's latency).
    """
    device = load_profile(profile)
    record = load_run(run_dir)
    entries = {}
    for level in record.levels:
        folder = record.folder(level)
        if any(e["device"].get("name") == device.name for e in read_latency(folder)):
            continue
        entries[folder] = [estimate_level(folder, device)[1]]
    if not entries:
        return []
    if log is not None:
        log(f"no {device.name} latency recorded for {', '.join(f.name for f in entries)}: recording the roofline "
            f"estimate (labelled 'estimated'; measure with elastoformer bench on the device to replace it)")
    return record_latency(entries)
