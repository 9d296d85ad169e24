"""Declared versions are true: every dependency floor in pyproject.toml is pinned in constraints-min.txt, the
environment CI builds and tests in scripts/check_floors.sh, and the transformers version level cards name is that
floor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from elastoformer_hf.version import TRANSFORMERS_MIN_VERSION

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _floors() -> dict[str, str]:
    """``{name: floor}`` of the package's dependencies (``>=`` specifiers) in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        lows = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert len(lows) == 1, f"{line}: a dependency needs exactly one floor (>=)"
        floors[canonicalize_name(requirement.name)] = lows[0]
    return floors


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints-min.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line).groups()
            pins[canonicalize_name(name)] = version
    return pins


def test_transformers_floor_is_the_version_cards_name():
    assert _floors()["transformers"] == TRANSFORMERS_MIN_VERSION


def test_every_floor_is_pinned_in_the_environment_ci_runs():
    floors, pins = _floors(), _pins()
    assert {name: pins.get(name) for name in floors} == floors


def test_ci_runs_the_floor_environment():
    assert "scripts/check_floors.sh" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / "scripts" / "check_floors.sh").read_text()
    assert "set -euo pipefail" in script and "-c constraints-min.txt" in script
