"""Shared test set-up. VM tests carry the ``lab`` marker (see pyproject.toml)."""
