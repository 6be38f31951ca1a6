"""The checkout the tests run from, found once, for every project file a test reads.

Tests read docs, README, Makefile, Vagrantfile, inventories' examples and fixtures from the
checkout they live in, never from where ``dindkit`` was imported: the unit suite runs against
the editable install and against a wheel installed in site-packages (``make unit``), and only the
checkout has these files. What dindkit itself runs (deploys, templates) comes from
``dindkit.paths``, so that the wheel run exercises the installed copies.
"""

from __future__ import annotations

import tomllib
from pathlib import Path


def find_checkout(start: Path) -> Path:
    """The nearest folder above ``start`` holding dindkit's pyproject.toml and its tests/."""
    for folder in start.resolve().parents:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and (folder / "tests" / "conftest.py").is_file():
            project = tomllib.loads(pyproject.read_text()).get("project", {})
            if project.get("name") == "dindkit":
                return folder
    raise RuntimeError(f"no dindkit checkout (pyproject.toml and tests/) above {start}")


CHECKOUT = find_checkout(Path(__file__))


def project_file(*parts: str) -> Path:
    """A file of the checkout, e.g. ``project_file("docs", "settings.md")``; it must exist."""
    path = CHECKOUT.joinpath(*parts)
    assert path.exists(), f"{path} is not in the checkout {CHECKOUT}"
    return path
