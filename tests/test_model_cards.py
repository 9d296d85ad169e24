"""model_cards/ holds real examples: the demo family's core card, family card and plot, rendered from the records in
model_cards/sample_run/ by scripts/render_model_cards.py. They are rendered again here and must be identical: a
change to the cards or the plots that leaves the committed examples stale fails (re-run the script to update them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("render_model_cards", ROOT / "scripts" / "render_model_cards.py")
render_model_cards = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(render_model_cards)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model_cards")
    render_model_cards.render(render_model_cards.SAMPLE, out)
    return out


def test_the_sample_is_a_run_with_records_only():
    sample = render_model_cards.SAMPLE
    assert (sample / "elastic_plan.json").is_file() and (sample / "dn1" / "elastic_level.json").is_file()
    assert not list(sample.rglob("*.safetensors"))  # records, no weights


def test_committed_examples_are_what_the_renderer_writes_now(rendered):
    committed = render_model_cards.MODEL_CARDS
    produced = sorted(p.relative_to(rendered) for p in rendered.rglob("*") if p.is_file())
    assert {str(p) for p in produced} >= {"dn1/README.md", "family/README.md", "family.png"}
    stale = [str(p) for p in produced if not (committed / p).is_file()
             or (committed / p).read_bytes() != (rendered / p).read_bytes()]
    assert not stale, f"stale examples {stale}: run `python scripts/render_model_cards.py` and commit model_cards/"
