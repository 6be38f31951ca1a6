"""Shared test set-up. VM tests carry the ``lab`` marker (see pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checkout import CHECKOUT


@pytest.fixture(scope="session")
def checkout() -> Path:
    """The checkout the tests run from (tests/checkout.py), not where dindkit was imported."""
    return CHECKOUT
