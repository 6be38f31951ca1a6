"""The smoke modes: one module per mode beside the shared pieces (:mod:`.common`).

Each mode module (``dindkit.smoke.modes.<name>``) exports ``SPEC``, a :class:`ModeSpec`: its
name, summary, ``build(ctx) -> Mode``, declared escape outcomes, the images it needs, its
plan-time hooks. The registry is the ordered list of names ``SMOKE_MODES``
(dindkit/settings/smoke.py, where the settings read it without importing any mode); every
other list of modes (settings, CLI choices, the deploy's images and steps, the demo's
prebuilds) asks :func:`registry` or :func:`spec`. A new mode is its module, its script
template templates/smoke/<name>.sh.j2, its name in ``SMOKE_MODES`` and its test.
"""

from __future__ import annotations

import importlib

from dindkit.settings import smoke as smoke_settings
from dindkit.smoke.modes.common import (
    CheckResult,
    Context,
    Mode,
    ModeImage,
    ModeOutput,
    ModeSpec,
    Runner,
    Step,
    parse_output,
    q,
    script,
)


def spec(name: str) -> ModeSpec:
    """The spec of mode NAME: ``SPEC`` of its module, dindkit.smoke.modes.NAME."""
    if name not in smoke_settings.SMOKE_MODES:
        raise LookupError(f"no smoke mode {name!r} (allowed: {', '.join(names())})")
    found = getattr(importlib.import_module(f"{__name__}.{name}"), "SPEC", None)
    if not isinstance(found, ModeSpec) or found.name != name:
        raise LookupError(f"{__name__}.{name} exports no ModeSpec named {name!r} as SPEC")
    return found


def names() -> tuple[str, ...]:
    return tuple(smoke_settings.SMOKE_MODES)


def registry() -> tuple[ModeSpec, ...]:
    """Every mode's spec, in the order of SMOKE_MODES."""
    return tuple(spec(name) for name in names())


def build_mode(name: str, ctx: Context) -> Mode:
    return spec(name).build(ctx)


def mode_images(specs: tuple[ModeSpec, ...] | None = None) -> tuple[ModeImage, ...]:
    """The images SPECS (default: every mode) need, each once, in the registry's order."""
    chosen = registry() if specs is None else specs
    return tuple({image.kind: image for each in chosen for image in each.images}.values())


__all__ = [
    "CheckResult",
    "Context",
    "Mode",
    "ModeImage",
    "ModeOutput",
    "ModeSpec",
    "Runner",
    "Step",
    "build_mode",
    "mode_images",
    "names",
    "parse_output",
    "q",
    "registry",
    "script",
    "spec",
]
