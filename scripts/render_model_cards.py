"""Render the example model cards in ``model_cards/`` from a run folder's records.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/render_model_cards.py runs/demo        # after the README's main job
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/render_model_cards.py                  # re-render from the sample

With a run folder, its records (no weights: ``elastic_*.json``, every ``dn{k}/elastic_level.json``, ``latency.json``,
``onnx/export.json`` and ``preprocessor_config.json``, the family's ``family_config.json``, the demo parent's
``parent_info.json``) are first copied into ``model_cards/sample_run/``. Then the cards are rendered from that sample
exactly as a finished run writes them (:func:`elastoformer_hf.refresh.write_run_cards`) and the examples kept:
``dn1/`` (the core's card and plot), ``family/`` (the family card) and ``family.png``. ``tests/test_model_cards.py``
renders them again and fails when the committed examples are stale.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from elastoformer_hf.refresh import write_run_cards
from elastoformer_hf.run_folder import (
    BASE_MODEL_FILE,
    CARD_FILE,
    FAMILY_DIR,
    FAMILY_PLOT,
    LATENCY_FILE,
    LEVEL_FILE,
    PARENT_DIR,
    PARENT_INFO_FILE,
    PLAN_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    level_folders,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL_CARDS = ROOT / "model_cards"
SAMPLE = MODEL_CARDS / "sample_run"
#: the records a card is rendered from (relative to the run folder; dn{k}/ files for every level)
RUN_RECORDS = (PLAN_FILE, RUN_FILE, SUMMARY_FILE, BASE_MODEL_FILE, f"{FAMILY_DIR}/family_config.json",
               f"{PARENT_DIR}/{PARENT_INFO_FILE}")
LEVEL_RECORDS = (LEVEL_FILE, LATENCY_FILE, "preprocessor_config.json", "onnx/export.json")
#: what the examples keep: the core's card, the family card, the family plot
EXAMPLES = ("dn1", FAMILY_DIR, FAMILY_PLOT)


def copy_records(run: Path, sample: Path) -> None:
    """Replace ``sample`` with the records of ``run`` (no weights)."""
    shutil.rmtree(sample, ignore_errors=True)
    wanted = list(RUN_RECORDS)
    for k in level_folders(run):
        wanted += [f"dn{k}/{name}" for name in LEVEL_RECORDS]
    for rel in wanted:
        if (run / rel).is_file():
            (sample / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run / rel, sample / rel)


def render(sample: Path, out: Path) -> list[Path]:
    """Render the cards of ``sample`` as a finished run writes them, and keep :data:`EXAMPLES` in ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(sample, run)
        write_run_cards(run)
        kept = []
        for name in EXAMPLES:
            source, target = run / name, out / name
            if source.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir(parents=True)
                for path in sorted(source.iterdir()):
                    if path.name == CARD_FILE or path.suffix == ".png":
                        shutil.copy2(path, target / path.name)
                        kept.append(target / path.name)
            else:
                shutil.copy2(source, target)
                kept.append(target)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", help="a finished run folder (default: re-render model_cards/sample_run)")
    args = parser.parse_args(argv)
    if args.run_dir:
        copy_records(Path(args.run_dir), SAMPLE)
    for path in render(SAMPLE, MODEL_CARDS):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
