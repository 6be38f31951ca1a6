"""The README's settings tables, generated from the settings tables themselves.

    python -m dindkit.settings.readme            # print the tables
    python -m dindkit.settings.readme --write    # rewrite them in README.md

tests/unit/test_readme.py fails when README.md and this output differ, so that neither the
documentation nor the code's defaults drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dindkit.settings import SettingsTable
from dindkit.settings.catalog import ALL_TABLES

BEGIN = "<!-- generated: settings tables (python -m dindkit.settings.readme --write) -->"
END = "<!-- /generated: settings tables -->"

README = Path(__file__).resolve().parents[2] / "README.md"

# The deploy each capability's settings belong to, for the table headings.
DEPLOYS = {
    "docker": "deploys/docker.py",
    "sysbox": "deploys/sysbox.py",
    "smoke": "deploys/smoke.py, dindkit smoke",
    "bootstrap": "deploys/bootstrap.py",
}


def format_default(value: Any) -> str:
    if value is None:
        return "unset"
    return "`" + json.dumps(value).replace("|", "\\|") + "`"


def table_markdown(table: SettingsTable) -> str:
    where = DEPLOYS.get(table.capability, table.capability)
    lines = [
        f"#### {table.capability} ({where})",
        "",
        "| Setting | Default | Description |",
        "| --- | --- | --- |",
    ]
    for setting in table.settings:
        description = (
            setting.description.replace("|", "\\|").replace("<", "\\<").replace(">", "\\>")
        )
        lines.append(f"| `{setting.name}` | {format_default(setting.default)} | {description} |")
    return "\n".join(lines)


def generate() -> str:
    """The generated block, markers included."""
    tables = "\n\n".join(table_markdown(table) for table in ALL_TABLES)
    return f"{BEGIN}\n{tables}\n{END}"


def current(readme_text: str) -> str | None:
    """The generated block as it stands in the README, None when the markers are missing."""
    start = readme_text.find(BEGIN)
    end = readme_text.find(END)
    if start < 0 or end < start:
        return None
    return readme_text[start : end + len(END)]


def write(path: Path = README) -> bool:
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
        print("README.md updated" if write() else "README.md already up to date")
    else:
        print(generate())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
