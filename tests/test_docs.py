"""The documentation holds together: every relative link in README.md, docs/*.md and benchmarks/README.md points to
a file or folder that exists, every ``#anchor`` into a Markdown file names one of its headings, and README.md stays
a short first page that keeps the two set-up commands verbatim. No network: external links are not followed."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]

SETUP_COMMANDS = (
    "bash scripts/setup.sh && HF_HUB_OFFLINE=1 .venv/bin/python recipes/deit.py --config recipes/configs/demo.yaml",
    "HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q",
)
README_MAX_BYTES = 10_000

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
#: [text](target) and ![alt](target); the target may carry a "title"
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = ("http://", "https://", "mailto:")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * 3
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: inline markup dropped, lower-case, punctuation other than '-', '_' and spaces
    removed, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """``(line number, target)`` of every Markdown link outside code."""
    found = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            found.append((number, match.group(1)))
    return found


def test_slugs_follow_github():
    assert github_slug("Set-up on a fresh machine (two commands)") == "set-up-on-a-fresh-machine-two-commands"
    assert github_slug("`family.py`: the elastic family as one artifact") == "familypy-the-elastic-family-as-one-artifact"
    assert github_slug("Widths hardware likes: `round_to`") == "widths-hardware-likes-round_to"
    assert github_slug("Preview offline: `--dry_run --stage_dir`") == "preview-offline---dry_run---stage_dir"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    broken = []
    for number, target in links(path):
        if not target or target.startswith(EXTERNAL):
            continue
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{where} (no such file or folder)")
            continue
        if anchor:
            if dest.is_file() and dest.suffix == ".md":
                if unquote(anchor).lower() not in anchors(dest):
                    broken.append(f"{where} (no heading with that anchor in {dest.relative_to(ROOT)})")
            else:
                broken.append(f"{where} (an anchor into something that is not a Markdown file)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_docs_link_to_each_other():
    """Every docs page is reachable from README.md."""
    linked = {(README.parent / t.partition("#")[0]).resolve() for _, t in links(README) if not t.startswith(EXTERNAL)}
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages README.md does not link to: {unlinked}"


def test_readme_is_a_short_first_page():
    size = len(README.read_bytes())
    assert size < README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {README_MAX_BYTES})"
    text = README.read_text(encoding="utf-8")
    for command in SETUP_COMMANDS:
        assert command in text, f"README.md lost the set-up command: {command}"


def test_the_package_tree_lists_every_module():
    """docs/architecture.md's package tree names every module of elastoformer_hf, and no module that is gone."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("elastoformer_hf/")}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "elastoformer_hf").rglob("*.py")}
    assert listed == modules, f"missing from the tree: {sorted(modules - listed)}; gone: {sorted(listed - modules)}"
