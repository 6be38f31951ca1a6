"""Links in README.md and docs/*.md reach a file and, with #anchor, a heading in it; every page
in docs/ is listed in docs/README.md and reachable from the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.checkout import CHECKOUT

DOCS = CHECKOUT / "docs"
PAGES = [CHECKOUT / "README.md", *sorted(DOCS.glob("*.md"))]

LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")


def github_anchor(heading: str) -> str:
    """GitHub's rule: lowercase, drop punctuation except '-' and '_', spaces become '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; repeated headings get -1, -2, ... as on GitHub."""
    found: set[str] = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            anchor = base = github_anchor(match[1])
            number = 0
            while anchor in found:
                number += 1
                anchor = f"{base}-{number}"
            found.add(anchor)
    return found


def links(page: Path) -> list[str]:
    """Link targets outside code blocks and code spans."""
    text = CODE.sub("", FENCE.sub("", page.read_text()))
    return LINK.findall(text)


def relative_links(page: Path) -> list[str]:
    return [target for target in links(page) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_the_anchor_rule() -> None:
    assert github_anchor("Docker Engine (`deploys/docker.py`)") == "docker-engine-deploysdockerpy"
    assert github_anchor("daemon.json defaults") == "daemonjson-defaults"
    assert github_anchor("Bootstrap: from a fresh host") == "bootstrap-from-a-fresh-host"


def broken_links(page: Path) -> list[str]:
    """Each relative link of ``page`` that reaches no file, or no heading of its #anchor."""
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (destination.suffix != ".md" or anchor not in anchors(destination)):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(CHECKOUT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == [], f"broken links in {page.relative_to(CHECKOUT)}"


def test_every_docs_page_is_in_the_index_and_the_index_in_the_readme() -> None:
    index = DOCS / "README.md"
    listed = {(DOCS / target.partition("#")[0]).resolve() for target in relative_links(index)}
    for page in sorted(DOCS.glob("*.md")):
        if page != index:
            assert page.resolve() in listed, (
                f"docs/{page.name} is not listed in docs/README.md: add a line for it"
            )
    readme_targets = {target.partition("#")[0] for target in relative_links(CHECKOUT / "README.md")}
    assert "docs/README.md" in readme_targets


def test_the_link_check_catches_broken_links(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "# Title\n\n[ok](#title) [ok](b.md#other) [bad](b.md#nowhere) [bad](c.md) [bad](#x)\n"
        "`[in code](d.md)` [web](https://example.org/)\n\n"
        "```\n[fenced](e.md)\n# not a heading\n```\n"
    )
    (tmp_path / "b.md").write_text("# Other\n\n## Other\n")
    assert anchors(tmp_path / "b.md") == {"other", "other-1"}
    assert broken_links(tmp_path / "a.md") == [
        "b.md#nowhere: no heading #nowhere in b.md",
        "c.md: no such file",
        "#x: no heading #x in a.md",
    ]
