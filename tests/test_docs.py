"""The documentation's own links: every relative link (and its #anchor) of the README, CONTRIBUTING.md,
tests/README.md and docs/ resolves in the repository, every doc in docs/ is in the README's map, and the README
stays a newcomer's page (issue 35: the specification lives in docs/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "tests" / "README.md", *(REPO / "docs").rglob("*.md")]
)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def prose(path: Path) -> str:
    """The file without its fenced code blocks (a `# comment` there is no heading, a `[x](y)` no link)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def anchors(path: Path) -> set[str]:
    """The #anchors GitHub gives the file's headings: lower case, punctuation dropped, spaces to dashes, a repeated
    heading numbered."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", prose(path), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path)) if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_relative_link_resolves(doc):
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists() or REPO not in (resolved, *resolved.parents):
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(REPO)}")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)


def test_the_readme_maps_every_doc():
    """Every page of docs/ (what the README once held, and the generated reports) is one link away."""
    linked = {(REPO / t.partition("#")[0]).resolve() for t in relative_links(REPO / "README.md")}
    unlinked = [str(d.relative_to(REPO)) for d in sorted((REPO / "docs").glob("*.md")) if d.resolve() not in linked]
    unlinked += [name for name in ("CONTRIBUTING.md", "tests/README.md") if (REPO / name).resolve() not in linked]
    assert not unlinked, f"not in the README's map: {unlinked}"


def test_the_readme_is_a_newcomers_page():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_the_anchors_follow_githubs_rule(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Set-up in two commands\n## Large corpora and `--streaming`\n```bash\n# not a heading\n```\n"
        "## Training data shapes: sentences, pairs, triplets\n## Notes\n## Notes\n",
        encoding="utf-8",
    )
    assert anchors(page) == {
        "set-up-in-two-commands",
        "large-corpora-and---streaming",
        "training-data-shapes-sentences-pairs-triplets",
        "notes",
        "notes-1",
    }
