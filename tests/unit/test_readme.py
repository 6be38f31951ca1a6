"""The documentation tells the truth: docs/settings.md's tables are the code's, the README's
two commands exist, and the files the pages name are there."""

from __future__ import annotations

import re

from dindkit.settings.catalog import ALL_TABLES
from dindkit.settings.readme import BEGIN, END, current, generate
from tests.checkout import CHECKOUT, project_file

README = project_file("README.md").read_text()
# From this checkout, not from dindkit's location: the tests also run against an installed wheel.
SETTINGS = project_file("docs", "settings.md").read_text()
PAGES = [CHECKOUT / "README.md", *sorted((CHECKOUT / "docs").glob("*.md"))]


def test_settings_tables_match_the_code() -> None:
    block = current(SETTINGS)
    assert block is not None, f"docs/settings.md lacks the settings markers {BEGIN} ... {END}"
    assert block == generate(), (
        "docs/settings.md's tables differ from dindkit/settings/*.py; regenerate them with "
        "`.venv/bin/python -m dindkit.settings.readme --write` and commit docs/settings.md"
    )


def test_every_setting_is_documented_once() -> None:
    for table in ALL_TABLES:
        for setting in table.settings:
            assert SETTINGS.count(f"| `{setting.name}` |") == 1, setting.name


def test_two_commands_are_make_targets_on_the_first_screen() -> None:
    makefile = project_file("Makefile").read_text()
    first_screen = README[: README.index("## Two commands") + 400]
    for target in ("demo", "test"):
        assert f"make {target}   #" in first_screen
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_files_the_pages_name_exist() -> None:
    for page in PAGES:
        for path in re.findall(
            r"`((?:deploys|inventories|scripts|dindkit|templates|benchmarks)/[\w./-]+)`",
            page.read_text(),
        ):
            assert (CHECKOUT / path).exists(), f"{page.name} names {path}, which does not exist"
