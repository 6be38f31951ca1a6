"""The settings tables of docs/settings.md, generated from the settings tables themselves.

    python -m dindkit.settings.readme            # print the tables
    python -m dindkit.settings.readme --write    # rewrite them in docs/settings.md

tests/unit/test_readme.py fails when docs/settings.md and this output differ, so that neither
the documentation nor the code's defaults drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dindkit.settings import SettingsTable, allowed_text
from dindkit.settings.catalog import ALL_TABLES

BEGIN = "<!-- generated: settings tables (python -m dindkit.settings.readme --write) -->"
END = "<!-- /generated: settings tables -->"

SETTINGS_DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"

# The deploy each capability's settings belong to, for the table headings.
DEPLOYS = {
    "docker": "deploys/docker.py",
    "sysbox": "deploys/sysbox.py",
    "smoke": "deploys/smoke.py, dindkit smoke",
    "bootstrap": "deploys/bootstrap.py",
    "registry": "deploys/registry.py",
    "guard": "deploys/guard.py",
}


def format_default(value: Any) -> str:
    if value is None:
        return "unset"
    return "`" + json.dumps(value).replace("|", "\\|") + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "\\<").replace(">", "\\>")


def table_markdown(table: SettingsTable) -> str:
    where = DEPLOYS.get(table.capability, table.capability)
    lines = [
        f"### {table.capability} ({where})",
        "",
        "| Setting | Default | Description | Allowed |",
        "| --- | --- | --- | --- |",
    ]
    for setting in table.settings:
        description = _cell(setting.description)
        allowed = _cell(allowed_text(setting.check))
        lines.append(
            f"| `{setting.name}` | {format_default(setting.default)} | {description} | {allowed} |"
        )
    return "\n".join(lines)


def generate() -> str:
    """The generated block, markers included."""
    tables = "\n\n".join(table_markdown(table) for table in ALL_TABLES)
    return f"{BEGIN}\n{tables}\n{END}"


def current(text: str) -> str | None:
    """The generated block as it stands in the page, None when the markers are missing."""
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(END)]


def write(path: Path = SETTINGS_DOC) -> bool:
    """Rewrite the block in ``path``; True when it changed."""
    text = path.read_text()
    block = current(text)
    if block is None:
        raise SystemExit(f"{path}: markers not found: {BEGIN} ... {END}")
    fresh = generate()
    if block == fresh:
        return False
    path.write_text(text.replace(block, fresh))
    return True


def main(argv: list[str]) -> int:
    if "--write" in argv:
        print(f"{SETTINGS_DOC} updated" if write() else f"{SETTINGS_DOC} already up to date")
    else:
        print(generate())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
