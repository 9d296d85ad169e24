"""Model cards for descendant networks and for the family repo: render from a run, update in place.

A card has two parts that matter to code:

* the metadata (YAML header): Hub fields (``library_name``, ``tags``, ``base_model``, ``base_model_relation``,
  ``datasets``, ``pipeline_tag``, ``model-index`` with top-1) and one custom key, ``elastoformer``, holding the
  machine-readable costs: ``level``, ``num_levels``, ``params``, ``macs``, ``flops``, ``image_size``, ``top1``,
  ``latency`` (entries, see :mod:`.latency`) and ``family`` (one row per level with the same numbers and the
  level's repo id);
* generated body sections between ``<!-- elastoformer:NAME:start -->`` and ``<!-- elastoformer:NAME:end -->``
  (the family table and the plots). Updating a card re-renders those sections from the metadata and leaves the
  rest of the text, and every metadata key it does not manage (a license, extra tags), as it was.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import yaml_dump

from ..data.catalog import describe_dataset
from ..errors import ElastoformerError
from ..latency.entries import latency_key, merge_latency, setting_label
from ..latency.store import card_entries
from ..run_folder import CARD_FILE, RunRecord, load_run
from ..version import TRANSFORMERS_MIN_VERSION
from .deploy import SECTION as DEPLOY_SECTION
from .deploy import deploy_section
from .plots import ACCURACY_PLOT, LATENCY_PLOT, available_plots, matplotlib_available, write_plots
from .provenance import UNKNOWN_LICENSE, base_license, base_model_id, evaluation_set, run_dataset

TEMPLATE_DIR = Path(__file__).resolve().parent
LEVEL_TEMPLATE = TEMPLATE_DIR / "elastic_model_card.md"
FAMILY_TEMPLATE = TEMPLATE_DIR / "elastic_family_card.md"
META_KEY = "elastoformer"
TAGS = ["elastoformer", "pruning", "image-classification", "elastic"]
#: pruned-then-retrained weights: of the Hub's four relations (adapter, merge, quantized, finetune) the right one
BASE_MODEL_RELATION = "finetune"
#: the library that loads each checkpoint form: the elastoformer form is transformers with its modeling code in the
#: repo (``trust_remote_code=True``), which the Hub marks with the ``custom_code`` tag
LIBRARY_NAMES = {"transformers": "transformers", "timm": "timm", "elastoformer": "transformers"}
FORM_TAGS = {"elastoformer": ("custom_code",)}
DEFAULT_LIBRARY = "elastoformer-hf"
SECTIONS = ("family-table", "plots")
#: metadata an existing card keeps over a fresh render
USER_KEYS = frozenset({"license", "license_name", "license_link", "language"})
_SECRET_KEYS = re.compile(r"token|secret|password|api_key", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ numbers
def human(n: float | None) -> str:
    """A count in the cards' short form (``86.57 M``, ``17.56 G``).

    Args:
        n (`float`, *optional*): the count.

    Returns:
        `str`: four significant digits with a ``G``, ``M`` or ``K`` unit (none below a thousand); ``"-"`` for
        None.
    """
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:.4g}"


def _metric(metrics: dict | None, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = (metrics or {}).get(key)
        if value is not None:
            return round(float(value), 4)
    return None


def _top1(metrics: dict | None) -> float | None:
    return _metric(metrics, ("eval_accuracy", "eval_top1", "accuracy", "top1"))


def _top5(metrics: dict | None) -> float | None:
    return _metric(metrics, ("eval_top5_accuracy", "eval_top5", "top5_accuracy", "top5"))


def placeholder_prefix(record: RunRecord) -> str:
    """``ORG/{model}-elastic``: how the cards of a run not published yet name its repos."""
    return f"ORG/{Path(str(record.model_name())).name}-elastic"


def dn_repo(repo_prefix: str | None, level: int) -> str | None:
    """The repo id of a level.

    Args:
        repo_prefix (`str`, *optional*): ``org/name``.
        level (`int`): the level.

    Returns:
        `str` or `None`: ``{repo_prefix}-dn{level}``, or None without a prefix.
    """
    return f"{repo_prefix}-dn{level}" if repo_prefix else None


def _family_rows(record: RunRecord, repo_prefix: str | None) -> list[dict]:
    rows = []
    for level, info in record.levels.items():
        row = {"level": level}
        if repo_prefix:
            row["repo"] = dn_repo(repo_prefix, level)
        row.update({k: int(info[k]) for k in ("params", "macs", "flops")})
        if (top1 := _top1(info.get("metrics"))) is not None:
            row["top1"] = top1
        if info.get("consistency"):  # agreement with the full/next level, worst class (the trainer measures it)
            row["consistency"] = dict(info["consistency"])
        # what the level record carries, then what `elastoformer bench`/`estimate` recorded in latency.json
        row["latency"] = merge_latency(info.get("latency") or [], card_entries(record.folder(level)))
        rows.append(row)
    return rows


def _redacted(value):
    if isinstance(value, dict):
        return {k: ("<redacted>" if _SECRET_KEYS.search(str(k)) and v else _redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ sections
def _level_name(row: dict, num_levels: int) -> str:
    level = row["level"]
    role = " (core)" if level == 1 else " (full width)" if level == num_levels else ""
    return f"DN{level}{role}"


def family_table(meta: dict) -> str:
    """The markdown table of every level: costs, top-1 and one latency column per measured setting.

    The card's own level (``meta["level"]``) is in bold and marked "(this model)"; estimated latencies are
    marked "(est.)", with a note below the table.

    Args:
        meta (`dict`): a card's ``elastoformer`` metadata block (``family`` rows, ``num_levels``,
            ``image_size``, ``level``).

    Returns:
        `str`: the table in markdown, with a note when latency is not measured yet or partly estimated.
    """
    rows = sorted(meta.get("family") or [], key=lambda r: r["level"])
    num_levels = int(meta.get("num_levels") or len(rows))
    own = meta.get("level")
    settings: list[tuple] = []
    for row in rows:
        for e in row.get("latency") or []:
            if latency_key(e) not in settings:
                settings.append(latency_key(e))
    size = meta.get("image_size")
    at = f" at {size}px" if size else ""
    header = ["Level", "Params", f"MACs{at}", f"FLOPs{at}", "Top-1 (%)"]
    consistent = any(row.get("consistency") for row in rows)
    if consistent:
        header.append("Agrees with full (%)")
    header += [f"Latency (ms): {setting_label(s)}" for s in settings] or ["Latency (ms)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        name = _level_name(row, num_levels)
        if row.get("repo"):
            name = f"[{name}](/{row['repo']})"
        cells = [name, human(row["params"]), human(row["macs"]), human(row["flops"]),
                 "-" if row.get("top1") is None else f"{100 * row['top1']:.2f}"]
        if consistent:
            agreement = (row.get("consistency") or {}).get("agreement_full")
            cells.append("-" if agreement is None else f"{100 * agreement:.1f}")
        by_key = {latency_key(e): e for e in row.get("latency") or []}
        for s in settings or [None]:
            e = by_key.get(s)
            cells.append("-" if e is None else f"{e['ms']:.2f}" + (" (est.)" if e["method"] == "estimated" else ""))
        if row["level"] == own:
            cells = [f"**{c}**" for c in cells]
            cells[0] += " (this model)"
        lines.append("| " + " | ".join(cells) + " |")
    notes = _efficiency_notes(rows, settings, num_levels)
    if not settings:
        notes.append("Latency is not measured yet: add measurements with `elastoformer_hf.cards.update_card(folder, "
                     "latency_entries=[...])` (device, runtime, precision, batch size, ms, measured or estimated).")
    elif any(e["method"] == "estimated" for r in rows for e in r.get("latency") or []):
        notes.append("Latencies marked (est.) are estimates (not timed on the device).")
    return "\n".join(lines + ([""] + notes if notes else []))


def _efficiency_notes(rows: list[dict], settings: list[tuple], num_levels: int) -> list[str]:
    """Per measured setting that timed the full-width level: each smaller level's speed-up over it divided by the
    ideal speed-up, the ratio of their FLOPs (the full cost: module MACs and the attention matmuls)."""
    full = next((r for r in rows if r["level"] == num_levels), None)
    if full is None:
        return []
    notes = []
    for s in settings:
        timed = {r["level"]: e for r in rows for e in r.get("latency") or []
                 if latency_key(e) == s and e["method"] == "measured"}
        if num_levels not in timed:
            continue
        parts = [f"DN{r['level']} {timed[num_levels]['ms'] / timed[r['level']]['ms'] * r['flops'] / full['flops']:.2f}"
                 for r in rows if r["level"] in timed and r["level"] != num_levels]
        if parts:
            notes.append(f"Efficiency, {setting_label(s)}: {', '.join(parts)} (speed-up over DN{num_levels} / the "
                         "ideal speed-up, its FLOPs over the level's: module MACs and attention matmuls counted).")
    return notes


def plots_section(meta: dict, written: Iterable[str] | None = None) -> str:
    """Image links to the figures, or a sentence saying why a figure is missing.

    Args:
        meta (`dict`): a card's ``elastoformer`` metadata block.
        written (`Iterable[str]`, *optional*): the files that exist; default: whatever the data allows (none
            without matplotlib).

    Returns:
        `str`: the section's markdown.
    """
    wanted = available_plots(meta)
    if written is None:
        written = [name for name, ok in wanted.items() if ok] if matplotlib_available() else []
    written = set(written)
    parts = []
    if ACCURACY_PLOT in written:
        parts.append(f"![Top-1 accuracy vs FLOPs of every level]({ACCURACY_PLOT})")
    elif not wanted[ACCURACY_PLOT]:
        parts.append("No top-1 accuracy is recorded for this family yet (the levels are not evaluated), so there "
                     "is no accuracy plot.")
    if LATENCY_PLOT in written:
        parts.append(f"![Latency vs FLOPs of every level]({LATENCY_PLOT})")
    elif not wanted[LATENCY_PLOT]:
        parts.append("Latency is not measured yet, so there is no latency plot.")
    if any(ok and name not in written for name, ok in wanted.items()):
        parts.append("(Plots are not rendered: matplotlib was not installed when this card was written.)")
    return "\n\n".join(parts)


def _marked(name: str, body: str) -> str:
    return f"<!-- elastoformer:{name}:start -->\n{body}\n<!-- elastoformer:{name}:end -->"


def _section_re(name: str) -> re.Pattern:
    return re.compile(rf"<!-- elastoformer:{re.escape(name)}:start -->\n?.*?\n?<!-- elastoformer:{re.escape(name)}:end -->",
                      re.DOTALL)


def sections_of(text: str) -> dict[str, str]:
    """``{name: body}`` of every marked section in ``text``.

    Args:
        text (`str`): a card's body.

    Returns:
        `dict[str, str]`: the body of every section between ``<!-- elastoformer:NAME:start -->`` and
        ``<!-- elastoformer:NAME:end -->``, by name.
    """
    found = re.finditer(r"<!-- elastoformer:([\w-]+):start -->\n?(.*?)\n?<!-- elastoformer:\1:end -->", text, re.DOTALL)
    return {m.group(1): m.group(2) for m in found}


def _with_deploy(text: str, body: str) -> str:
    """``text`` with the Deploy section: spliced in place, or (a card rendered before the section existed) inserted
    before "## Training recipe", else at the end."""
    if f"<!-- elastoformer:{DEPLOY_SECTION}:start -->" in text:
        return splice_sections(text, {DEPLOY_SECTION: body})
    block = f"## Deploy\n\n{_marked(DEPLOY_SECTION, body)}\n\n"
    anchor = text.find("## Training recipe")
    return text[:anchor] + block + text[anchor:] if anchor >= 0 else text.rstrip("\n") + "\n\n" + block


def splice_sections(text: str, sections: dict[str, str]) -> str:
    """``text`` with each marked section replaced by ``sections[name]`` (sections without markers are left).

    Args:
        text (`str`): a card's body.
        sections (`dict[str, str]`): the new body of each section, by name.

    Returns:
        `str`: the new text (only the first occurrence of each section is replaced).
    """
    for name, body in sections.items():
        text = _section_re(name).sub(lambda _m, b=body, n=name: _marked(n, b), text, count=1)
    return text


# ------------------------------------------------------------------------------------------------ snippets
def _usage(form: str, repo_id: str, image_size: int | None, has_processor: bool) -> tuple[str, str]:
    size = image_size or 224
    if form == "timm":
        intro = "A stock timm checkpoint: `timm.create_model` opens it (elastoformer-hf is not needed)."
        code = (f'import timm\nimport torch\n\nmodel = timm.create_model("hf-hub:{repo_id}", pretrained=True).eval()\n'
                "config = timm.data.resolve_data_config({}, model=model)\n"
                "transform = timm.data.create_transform(**config)\n"
                "with torch.no_grad():\n    logits = model(transform(image).unsqueeze(0))  # image: a PIL image")
        return intro, code
    if form == "transformers":
        intro = ("A stock transformers checkpoint (the pruned widths are plain config fields): "
                 "`AutoModelForImageClassification` opens it; elastoformer-hf is not needed.")
        head = "import torch\nfrom transformers import AutoModelForImageClassification\n"
    else:
        intro = ("The widths of this level are not expressible in the base architecture's stock config, so the "
                 "checkpoint uses elastoformer-hf's `ElastoformerForImageClassification`, whose modeling code is "
                 "bundled in this repo: stock transformers runs it with `trust_remote_code=True` (elastoformer-hf "
                 "is not needed; where it is installed, `import elastoformer_hf` registers the architecture and "
                 "`trust_remote_code` can be left out).")
        head = "import torch\nfrom transformers import AutoModelForImageClassification\n"
    # a user who tries AutoModel first sees transformers' load report and may think the level is broken
    intro += (" `AutoModel` opens the backbone without the classifier (transformers then reports the classifier "
              "weights as unused and, for ViT/DeiT, a newly initialised pooler: expected, not a broken file); "
              "use `AutoModelForImageClassification` for predictions.")
    # the oldest transformers CI runs (the floor in pyproject.toml): older ones cannot open pruned widths
    intro += f"\n\nRequires transformers >= {TRANSFORMERS_MIN_VERSION}."
    remote = ", trust_remote_code=True" if form == "elastoformer" else ""
    code = head + f'\nmodel = AutoModelForImageClassification.from_pretrained("{repo_id}"{remote}).eval()\n'
    if has_processor:
        code = code.replace("import AutoModelForImageClassification",
                            "import AutoImageProcessor, AutoModelForImageClassification")
        code += (f'processor = AutoImageProcessor.from_pretrained("{repo_id}"{remote})\n'
                 'inputs = processor(images=image, return_tensors="pt")  # image: a PIL image\n'
                 "with torch.no_grad():\n    logits = model(**inputs).logits")
    else:
        code += (f"pixel_values = torch.randn(1, 3, {size}, {size})  # preprocess like the base model "
                 "(resize, crop, normalize)\nwith torch.no_grad():\n    logits = model(pixel_values).logits")
    return intro, code


def _evaluated_text(evaluated: dict) -> str | None:
    """``2,000 images of the test split``: how much the accuracy rests on (a subset is not the benchmark)."""
    if not evaluated:
        return None
    images = f"{evaluated['images']:,} images" if evaluated.get("images") else "the images"
    split = f" of the {evaluated['split']} split" if evaluated.get("split") else ""
    return images + split


def _consistency_text(info: dict, level: int, num_levels: int) -> str | None:
    """What switching to this level changes: agreement with the full and the next level, the worst class."""
    c = info.get("consistency") or {}
    if level == num_levels or c.get("agreement_full") is None:
        return None
    text = f"the same top-1 class as the full level on {100 * c['agreement_full']:.1f} % of the evaluation images"
    if c.get("agreement_next") is not None and level + 1 < num_levels:
        text += f" (as DN{level + 1} on {100 * c['agreement_next']:.1f} %)"
    if c.get("worst_class_drop") is not None:
        text += (f"; the class that loses most against the full level is {c['worst_class']} "
                 f"({100 * c['worst_class_drop']:.1f} points)")
    return text


def _license_note(license: str) -> str:
    if license != UNKNOWN_LICENSE:
        return f"`{license}`"
    return ("`unknown`: neither the run nor the base model's metadata records one; the base model's license and the "
            "training data's terms apply until the owner sets one (`elastoformer push --license`)")


def _base_display(spec: dict, hub_id: str | None) -> str:
    if hub_id:
        return f"[{hub_id}](/{hub_id})"
    name = spec.get("name") or "an unnamed model"
    what = [spec.get("source") or "?"]
    if spec.get("architecture") and spec.get("architecture") != name:
        what.append(str(spec["architecture"]))
    note = "random init, " if spec.get("pretrained") is False else ""
    return f"`{name}` ({note}{' '.join(what)}, not a Hub model)"


def _pruning_line(pruning: dict) -> str:
    if not pruning:
        return "not recorded"
    extras = ["global_pruning"] if pruning.get("global_pruning") else []
    # a record from before head_pruning says prune_heads (false there was the only head-dim setting: not shown)
    heads = pruning.get("head_pruning", "heads" if pruning.get("prune_heads") else "auto")
    if heads != "auto":  # auto stays auto only on a model without heads
        extras.append(f"head_pruning {'auto: ' if pruning.get('head_pruning_auto') else ''}"
                      f"{'whole heads' if heads == 'heads' else 'head dims'}")
    return (f"{pruning.get('pruning_type')} importance, {pruning.get('pruning_ratio')} of the channels removed at the "
            f"core over {pruning.get('pruning_steps')} steps, widths rounded to multiples of "
            f"{pruning.get('round_to')}" + (f" ({', '.join(extras)})" if extras else ""))


# ------------------------------------------------------------------------------------------------ cards
def _card_data(*, library_name, base_model, dataset_ids, license, model_name, eval_results, meta,
               extra_tags=()) -> ModelCardData:
    data = ModelCardData(
        base_model=base_model, datasets=dataset_ids or None, library_name=library_name, license=license,
        model_name=model_name if eval_results else None, eval_results=eval_results or None,
        pipeline_tag="image-classification", tags=[*TAGS, *extra_tags],
    )
    if base_model:
        data["base_model_relation"] = BASE_MODEL_RELATION
    data[META_KEY] = meta
    return data


def _as_record(run: str | Path | RunRecord) -> RunRecord:
    return run if isinstance(run, RunRecord) else load_run(run)


def level_card(run: str | Path | RunRecord, level: int, *, repo_prefix: str | None = None,
               family_repo: str | None = None, dataset: str | None = None, license: str | None = None,
               base_model: str | None = None, latency_entries: Iterable[dict] | None = None,
               plots: Iterable[str] | None = None) -> ModelCard:
    """The card of ``dn{level}`` of a run.

    Args:
        run (`str`, `Path` or `RunRecord`): the run folder, or its record (:func:`load_run`).
        level (`int`): the level.
        repo_prefix (`str`, *optional*): ``org/name``; names the repos (``{prefix}-dn{k}``).
        family_repo (`str`, *optional*): the family repo, when there is one.
        dataset (`str`, *optional*): a dataset name of :mod:`elastoformer_hf.data` or a Hub id; overrides what
            the run recorded.
        license (`str`, *optional*): the card's license.
        base_model (`str`, *optional*): a Hub id; overrides what the run recorded.
        latency_entries (`Iterable[dict]`, *optional*): merged into the recorded ones (an entry's ``level``
            picks the row, default this level).
        plots (`Iterable[str]`, *optional*): the figure files that will sit next to the card (default: the
            ones the data allows).

    Returns:
        `ModelCard`: the card (nothing is written).

    Raises:
        ElastoformerError: ``run`` is not a run folder or holds a corrupt record, the run has no
            ``dn{level}/``, or a latency entry is not valid or names a level the family does not have.
    """
    record = _as_record(run)
    if level not in record.levels:
        raise ElastoformerError(f"{record.root} has no dn{level}/ (levels: {sorted(record.levels)})")
    info = record.levels[level]
    spec = info.get("base_model") or record.base_spec()
    form = info.get("checkpoint_format") or "elastoformer"
    num_levels = int(info.get("num_levels") or record.num_levels)
    repo_id = dn_repo(repo_prefix, level)
    hub_base = base_model or base_model_id(spec)
    dataset_id, dataset_type, dataset_name = describe_dataset(dataset or run_dataset(record, info))
    evaluated = evaluation_set(record, info)
    license = license or base_license(spec) or UNKNOWN_LICENSE

    rows = _family_rows(record, repo_prefix)
    meta = {"level": level, "num_levels": num_levels, "checkpoint_format": form, "image_size": record.image_size}
    meta.update({k: int(info[k]) for k in ("params", "macs", "flops")})
    top1 = _top1(info.get("metrics"))
    if top1 is not None:
        meta["top1"] = top1
    if family_repo:
        meta["family_repo"] = family_repo
    meta["latency"] = copy.deepcopy(next(r["latency"] for r in rows if r["level"] == level))
    meta["family"] = rows
    meta = {k: v for k, v in meta.items() if v is not None}
    meta = apply_latency(meta, latency_entries)

    name = (repo_id or dn_repo(placeholder_prefix(record), level)).split("/")[-1]
    eval_results = [
        EvalResult(task_type="image-classification", task_name="Image Classification",
                   dataset_type=dataset_type or "unknown", dataset_name=dataset_name or "evaluation set (not recorded)",
                   dataset_split=evaluated.get("split"), dataset_config=evaluated.get("config"),
                   metric_type=kind, metric_name=label, metric_value=value)
        for kind, label, value in (("accuracy", "Top-1 accuracy", top1),
                                   ("top_5_accuracy", "Top-5 accuracy", _top5(info.get("metrics"))))
        if value is not None]
    data = _card_data(library_name=LIBRARY_NAMES.get(form, DEFAULT_LIBRARY), base_model=hub_base,
                      dataset_ids=[dataset_id] if dataset_id else None, license=license, model_name=name,
                      eval_results=eval_results, meta=meta,
                      extra_tags=FORM_TAGS.get(form, ()))
    shown_id = repo_id or f"ORG/{name}"
    intro, code = _usage(form, shown_id, record.image_size,
                         (record.folder(level) / "preprocessor_config.json").is_file())
    recipe = _redacted({"base_model": spec.get("name"), "dataset": dataset or run_dataset(record, info),
                        "image_size": record.image_size, "pruning": info.get("pruning") or record.run.get("pruning"),
                        "training": info.get("training") or record.run.get("training")})
    recipe = {k: v for k, v in recipe.items() if v is not None}
    keep = info.get("keep_fraction")
    return ModelCard.from_template(
        data, template_path=str(LEVEL_TEMPLATE),
        title=name, level=level, num_levels=num_levels, repo_id=repo_id, shown_id=shown_id,
        family_repo=family_repo, base_display=_base_display(spec, hub_base), model_name=record.model_name(),
        params=human(meta["params"]), macs=human(meta["macs"]), flops=human(meta["flops"]),
        top1=None if top1 is None else f"{100 * top1:.2f}", image_size=record.image_size,
        dataset_name=dataset_name, evaluated=_evaluated_text(evaluated), license_note=_license_note(license),
        keep=None if keep is None else f"{100 * keep:.0f}%", consistency=_consistency_text(info, level, num_levels),
        role="the core (smallest level)" if level == 1 else "the full-width level" if level == num_levels else
        "an intermediate level",
        family_table=_marked("family-table", family_table(meta)),
        plots_section=_marked("plots", plots_section(meta, plots)),
        usage_intro=intro, usage_code=code, checkpoint_format=form, trained=info.get("trained", True),
        macs_budget=f"{meta['macs']:.4g}",
        deploy_section=_marked(DEPLOY_SECTION, deploy_section(record.folder(level), record.image_size, level=level)),
        recipe_yaml=yaml.safe_dump(recipe, sort_keys=False, default_flow_style=False).strip(),
        pruning=_pruning_line(info.get("pruning") or {}),
    )


def family_card(run: str | Path | RunRecord, *, repo_prefix: str | None = None, family_repo: str | None = None,
                has_family_artifact: bool | None = None, dataset: str | None = None, license: str | None = None,
                base_model: str | None = None, latency_entries: Iterable[dict] | None = None,
                plots: Iterable[str] | None = None) -> ModelCard:
    """The card of the family repo (``family_repo``, default ``repo_prefix``): every level, how to load them.

    Args:
        run (`str`, `Path` or `RunRecord`): the run folder, or its record (:func:`load_run`).
        repo_prefix (`str`, *optional*): ``org/name``; names the level repos (``{prefix}-dn{k}``). Without it (a
            run not published yet) the card names them ``ORG/{model}-elastic-dn{k}``, as the level cards do.
        family_repo (`str`, *optional*): the family repo (default ``repo_prefix``).
        has_family_artifact (`bool`, *optional*): whether the repo holds the ``family/`` artifact (default:
            whether the run has one).
        dataset (`str`, *optional*): a dataset name of :mod:`elastoformer_hf.data` or a Hub id; overrides what
            the run recorded.
        license (`str`, *optional*): the card's license.
        base_model (`str`, *optional*): a Hub id; overrides what the run recorded.
        latency_entries (`Iterable[dict]`, *optional*): merged into the recorded ones; each needs a ``level``.
        plots (`Iterable[str]`, *optional*): the figure files that will sit next to the card (default: the
            ones the data allows).

    Returns:
        `ModelCard`: the card (nothing is written).

    Raises:
        ElastoformerError: ``run`` is not a run folder or holds a corrupt record, or a latency entry is not
            valid, has no level, or names a level the family does not have.
    """
    record = _as_record(run)
    shown_prefix = repo_prefix or placeholder_prefix(record)
    family_repo = family_repo or shown_prefix
    if has_family_artifact is None:
        has_family_artifact = record.family_dir is not None
    spec = record.base_spec()
    hub_base = base_model or base_model_id(spec)
    dataset_id, _, dataset_name = describe_dataset(dataset or run_dataset(record))
    license = license or base_license(spec) or UNKNOWN_LICENSE
    meta = {"card": "family", "num_levels": record.num_levels, "image_size": record.image_size,
            "family_repo": family_repo, "family": _family_rows(record, repo_prefix)}
    meta = apply_latency({k: v for k, v in meta.items() if v is not None}, latency_entries)
    data = _card_data(library_name=DEFAULT_LIBRARY, base_model=hub_base, license=license, model_name=None,
                      dataset_ids=[dataset_id] if dataset_id else None, eval_results=None, meta=meta)
    first = next(iter(record.levels.values()))
    recipe = _redacted({"base_model": spec.get("name"), "dataset": dataset or run_dataset(record),
                        "image_size": record.image_size, "pruning": first.get("pruning") or record.run.get("pruning"),
                        "training": first.get("training") or record.run.get("training")})
    recipe = {k: v for k, v in recipe.items() if v is not None}
    return ModelCard.from_template(
        data, template_path=str(FAMILY_TEMPLATE),
        title=family_repo.split("/")[-1], family_repo=family_repo, num_levels=record.num_levels,
        repos=[dn_repo(shown_prefix, k) for k in record.levels], model_name=record.model_name(),
        base_display=_base_display(spec, hub_base), has_family_artifact=has_family_artifact,
        macs_budget=f"{meta['family'][len(meta['family']) // 2]['macs']:.4g}",
        dataset_name=dataset_name, image_size=record.image_size, license_note=_license_note(license),
        evaluated=_evaluated_text(evaluation_set(record, first)),
        family_table=_marked("family-table", family_table(meta)),
        plots_section=_marked("plots", plots_section(meta, plots)),
        recipe_yaml=yaml.safe_dump(recipe, sort_keys=False, default_flow_style=False).strip(),
        pruning=_pruning_line(first.get("pruning") or {}),
    )


# ------------------------------------------------------------------------------------------------ updating
def apply_latency(meta: dict, entries: Iterable[dict] | None) -> dict:
    """A copy of an ``elastoformer`` metadata block with ``entries`` merged into the rows they belong to.

    On a level's card, its own ``latency`` entries are authoritative for its row, and the block's ``latency``
    is set to its row's merged entries.

    Args:
        meta (`dict`): the metadata block (not modified).
        entries (`Iterable[dict]`, *optional*): latency entries (card form); an entry's ``level`` picks the
            row (default: the card's own level).

    Returns:
        `dict`: the updated copy.

    Raises:
        ElastoformerError: an entry without a level on a family card, an entry for a level the family does not
            have, or an entry that is not valid.
    """
    meta = copy.deepcopy(meta)
    rows = {r["level"]: r for r in meta.get("family") or []}
    own = meta.get("level")
    if own is not None and own in rows:  # the card's own entries are authoritative for its row
        rows[own]["latency"] = merge_latency(rows[own].get("latency") or [], meta.get("latency") or [])
    by_level: dict[int, list] = {}
    for entry in entries or ():
        level = entry.get("level", own) if isinstance(entry, dict) else own
        if level is None:
            raise ElastoformerError(f"latency entry {entry!r} needs a level on a family card")
        if int(level) not in rows:
            raise ElastoformerError(f"latency entry {entry!r}: the family has no level {level} "
                                    f"(levels: {sorted(rows)})")
        by_level.setdefault(int(level), []).append(entry)
    for level, new in by_level.items():
        rows[level]["latency"] = merge_latency(rows[level].get("latency") or [], new)
    if own is not None and own in rows:
        meta["latency"] = copy.deepcopy(rows[own]["latency"])  # a copy: shared lists become YAML anchors
    return meta


def _compose(metadata: dict, text: str) -> ModelCard:
    return ModelCard(f"---\n{yaml_dump(metadata, sort_keys=False).strip()}\n---\n{text}")


def _meta_of(card: ModelCard) -> dict:
    meta = card.data.to_dict().get(META_KEY)
    if not isinstance(meta, dict) or not meta.get("family"):
        raise ElastoformerError(f"this card has no '{META_KEY}' metadata with a family table: not an elastoformer "
                                "card (render one with elastoformer_hf.cards.level_card)")
    return meta


def _rendered_sections(meta: dict, plots: Iterable[str] | None) -> dict[str, str]:
    return {"family-table": family_table(meta), "plots": plots_section(meta, plots)}


def _card_prefix(card: ModelCard) -> str | None:
    """The ``org/name`` a generated card names its repos by (``ORG/{model}-elastic`` before a push), read from its
    metadata: the repo of a family row (``org/name-dn{k}``), else the family repo."""
    meta = card.data.to_dict().get(META_KEY) or {}
    for row in meta.get("family") or []:
        repo, level = row.get("repo"), row.get("level")
        if isinstance(repo, str) and repo.endswith(f"-dn{level}"):
            return repo[: -len(f"-dn{level}")]
    family_repo = meta.get("family_repo")
    return family_repo if isinstance(family_repo, str) else None


def retarget_card(card: ModelCard, repo_prefix: str) -> ModelCard:
    """``card`` (a run's own card, maybe edited by its owner) naming the repos of ``repo_prefix``: the repo ids its
    text gives (links, snippets, the title) are replaced, everything else is kept. A card written before a push
    names placeholder repos (``ORG/{model}-elastic-dn{k}``); the first push of a repo without a card publishes the
    run's card, merged, so it must name the repos it goes to."""
    old = _card_prefix(card)
    if not old or old == repo_prefix:
        return card
    text = card.text.replace(old, repo_prefix)
    old_name, new_name = old.split("/")[-1], repo_prefix.split("/")[-1]
    # the title is the repo's name alone (no org): its heading line only
    text = re.sub(rf"^# {re.escape(old_name)}(-dn\d+)?$", lambda m: f"# {new_name}{m.group(1) or ''}", text,
                  count=1, flags=re.MULTILINE)
    return _compose(card.data.to_dict(), text)


def merge_cards(existing: ModelCard, fresh: ModelCard, *, plots: Iterable[str] | None = None) -> ModelCard:
    """``existing`` (e.g. the card already on the Hub) brought up to date with ``fresh`` (rendered from the run).

    Metadata: the keys ``fresh`` sets replace the existing ones, except ``tags`` (union: user tags stay),
    :data:`USER_KEYS` (an existing license stays) and ``elastoformer`` (fresh numbers, latency entries of both
    merged, the newer winning); every other existing key (a user's own fields) stays. Body: the generated
    sections are re-rendered in place (the Deploy section as ``fresh`` has it, added to a generated card that
    predates it); the rest of the existing text is kept (a body without the section markers is left as it is).

    Args:
        existing (`ModelCard`): the card to update.
        fresh (`ModelCard`): the card rendered from the run.
        plots (`Iterable[str]`, *optional*): the figure files that exist next to the card (default: the ones
            the data allows).

    Returns:
        `ModelCard`: the merged card.

    Raises:
        ElastoformerError: a latency entry of either card is not valid.
    """
    old, new = existing.data.to_dict(), fresh.data.to_dict()
    merged = dict(old)
    for key, value in new.items():
        if key == "tags":  # the existing order first: a card the user reordered is not rewritten
            merged[key] = list(dict.fromkeys([*(old.get(key) or []), *value]))
        elif key in USER_KEYS and old.get(key) and old.get(key) != UNKNOWN_LICENSE:
            continue  # a license set on the Hub is the owner's call (an explicit "unknown" is a placeholder)
        elif key == META_KEY and isinstance(old.get(key), dict):
            merged[key] = _merge_meta(old[key], value)
        else:
            merged[key] = value
    meta = merged.get(META_KEY) or {}
    text = existing.text
    if meta.get("family") and "<!-- elastoformer:family-table:start -->" in text:
        text = splice_sections(text, _rendered_sections(meta, plots))
        deploy = sections_of(fresh.text).get(DEPLOY_SECTION)
        if deploy is not None:
            text = _with_deploy(text, deploy)
    return _compose(merged, text)


def _merge_meta(old: dict, new: dict) -> dict:
    old_rows = {r.get("level"): r for r in old.get("family") or []}
    meta = copy.deepcopy(new)
    for row in meta.get("family") or []:
        row["latency"] = merge_latency((old_rows.get(row["level"]) or {}).get("latency") or [],
                                       row.get("latency") or [])
    if meta.get("level") is not None:
        meta["latency"] = merge_latency(old.get("latency") or [], meta.get("latency") or [])
    return apply_latency(meta, None)


def rerender_sections(card: ModelCard, plots: Iterable[str] | None = None) -> ModelCard:
    """``card`` with its generated sections rendered again from its metadata.

    Args:
        card (`ModelCard`): an elastoformer card.
        plots (`Iterable[str]`, *optional*): the figure files that exist next to it; default: the ones the
            data allows.

    Returns:
        `ModelCard`: the re-rendered card.

    Raises:
        ElastoformerError: the card has no ``elastoformer`` metadata with a family table.
    """
    return _compose(card.data.to_dict(), splice_sections(card.text, _rendered_sections(_meta_of(card), plots)))


def update_card(target: str | Path | ModelCard, latency_entries: Iterable[dict] | None = None, *,
                plots: bool = True) -> ModelCard:
    """Merge ``latency_entries`` into an existing card and re-render its table and plots.

    Entries are deduplicated by (device, runtime, precision, batch_size), the newer winning; an entry's
    ``level`` picks the family row (default: the card's own level). Everything else in the metadata and the
    text is kept.

    Args:
        target (`str`, `Path` or `ModelCard`): a folder holding README.md (the card and, with ``plots``, the
            figures are rewritten there), a README.md path, or a :class:`~huggingface_hub.ModelCard` (returned
            updated; nothing is written).
        latency_entries (`Iterable[dict]`, *optional*): the entries to merge (card form).
        plots (`bool`, *optional*, defaults to `True`): rewrite the figures next to a card on disk.

    Returns:
        `ModelCard`: the updated card.

    Raises:
        ElastoformerError: the README.md does not exist, the card has no ``elastoformer`` metadata with a
            family table, or an entry is not valid or names no level the family has.
    """
    if isinstance(target, ModelCard):
        card, folder = target, None
    else:
        path = Path(target)
        readme = path / CARD_FILE if path.is_dir() else path
        if not readme.is_file():
            raise ElastoformerError(f"{readme} does not exist: render a card first (elastoformer_hf.cards.level_card)")
        card, folder = ModelCard.load(readme), readme.parent
    meta = apply_latency(_meta_of(card), latency_entries)
    written = write_plots(meta, folder) if folder is not None and plots else None
    data = card.data.to_dict()
    data[META_KEY] = meta
    updated = _compose(data, splice_sections(card.text, _rendered_sections(meta, written)))
    if folder is not None:
        save_card(updated, readme)
    return updated


def save_card(card: ModelCard, path: str | Path) -> Path:
    """Write ``card`` to ``path`` (UTF-8, ending with a newline; missing parent folders are created).

    Args:
        card (`ModelCard`): the card.
        path (`str` or `Path`): the file (README.md).

    Returns:
        `Path`: ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = str(card)
    path.write_bytes((text if text.endswith("\n") else text + "\n").encode("utf-8"))
    return path


def write_card(card: ModelCard, folder: str | Path) -> ModelCard:
    """Write ``card`` as ``folder/README.md`` with the plots its metadata has data for; the card's plots section
    links what was written. What ``elastoformer push`` uploads and what a run keeps locally are written by this.

    Args:
        card (`ModelCard`): an elastoformer card (:func:`level_card`, :func:`family_card`, :func:`merge_cards`).
        folder (`str` or `Path`): where to write README.md and the plots.

    Returns:
        `ModelCard`: the card as written.

    Raises:
        ElastoformerError: the card has no ``elastoformer`` metadata.
    """
    folder = Path(folder)
    card = rerender_sections(card, write_plots(_meta_of(card), folder))
    save_card(card, folder / CARD_FILE)
    return card


def write_level_card(run: str | Path | RunRecord, level: int, folder: str | Path | None = None,
                     **kwargs) -> ModelCard:
    """Render ``dn{level}``'s card and its plots into ``folder`` (default: the ``dn{level}/`` folder itself).

    Args:
        run (`str`, `Path` or `RunRecord`): the run folder, or its record.
        level (`int`): the level.
        folder (`str` or `Path`, *optional*): where to write README.md and the plots.
        **kwargs: :func:`level_card`'s keyword arguments (``repo_prefix``, ``dataset``, ...).

    Returns:
        `ModelCard`: the card written.

    Raises:
        ElastoformerError: as :func:`level_card`.
    """
    record = _as_record(run)
    return write_card(level_card(record, level, **kwargs), folder if folder is not None else record.folder(level))


def write_family_card(run: str | Path | RunRecord, folder: str | Path, **kwargs) -> ModelCard:
    """Render the family repo's card and its plots into ``folder``.

    Args:
        run (`str`, `Path` or `RunRecord`): the run folder, or its record.
        folder (`str` or `Path`): where to write README.md and the plots.
        **kwargs: :func:`family_card`'s keyword arguments (``repo_prefix``, ``dataset``, ...).

    Returns:
        `ModelCard`: the card written.

    Raises:
        ElastoformerError: as :func:`family_card`.
    """
    return write_card(family_card(run, **kwargs), folder)
