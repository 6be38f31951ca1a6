"""The smoke modes: one module per mode beside the shared pieces (:mod:`.common`).

A new mode is one module with a ``build(ctx) -> Mode`` (steps, grants, skip condition), its
script template templates/smoke/<name>.sh.j2, and a line in :data:`BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from dindkit.smoke.modes import dind, dood, guarded, podman, rootless, sysbox, userns
from dindkit.smoke.modes.common import (
    CheckResult,
    Context,
    Mode,
    ModeOutput,
    Runner,
    Step,
    parse_output,
    q,
    script,
)

BUILDERS: dict[str, Callable[[Context], Mode]] = {
    "dood": dood.build,
    "guarded": guarded.build,
    "dind": dind.build,
    "sysbox": sysbox.build,
    "rootless": rootless.build,
    "userns": userns.build,
    "podman": podman.build,
}


def build_mode(name: str, ctx: Context) -> Mode:
    return BUILDERS[name](ctx)


__all__ = [
    "BUILDERS",
    "CheckResult",
    "Context",
    "Mode",
    "ModeOutput",
    "Runner",
    "Step",
    "build_mode",
    "parse_output",
    "q",
    "script",
]
