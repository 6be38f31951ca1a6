"""README.md tells the truth: its settings tables are the code's, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from dindkit.settings.catalog import ALL_TABLES
from dindkit.settings.readme import BEGIN, END, current, generate

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_settings_tables_match_the_code() -> None:
    block = current(README)
    assert block is not None, f"README.md lacks the settings markers {BEGIN} ... {END}"
    assert block == generate(), (
        "README.md's settings tables differ from dindkit/settings/*.py; regenerate them with "
        "`.venv/bin/python -m dindkit.settings.readme --write` and commit README.md"
    )


def test_every_setting_is_documented_once() -> None:
    for table in ALL_TABLES:
        for setting in table.settings:
            assert README.count(f"| `{setting.name}` |") == 1, setting.name


def test_two_commands_are_make_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_files_the_readme_names_exist() -> None:
    for path in re.findall(
        r"`((?:deploys|inventories|scripts|dindkit|templates)/[\w./-]+)`", README
    ):
        assert (ROOT / path).exists(), f"README.md names {path}, which does not exist"


def _github_anchor(heading: str) -> str:
    # GitHub's rule: lowercase, drop punctuation except '-' and spaces, spaces become '-'.
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_inside_the_readme_reach_a_heading() -> None:
    anchors = {
        _github_anchor(line.lstrip("#"))
        for line in README.splitlines()
        if re.match(r"#{1,6} ", line)
    }
    for target in re.findall(r"\]\(#([^)]+)\)", README):
        assert target in anchors, f"README.md links to #{target}, which is no heading"
