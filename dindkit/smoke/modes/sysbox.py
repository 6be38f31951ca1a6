"""Sysbox: the dind image under sysbox-runc, without --privileged (skipped without Sysbox)."""

from __future__ import annotations

from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import (
    Context,
    Mode,
    ModeSpec,
    Runner,
    Step,
    dind_container_mode,
)

GRANTS = "its own daemon in a user namespace (sysbox-runc): no host root, no host devices"
# As userns: root with capabilities only inside its own user namespace.
EXPECTED = expect("mount")


def skip_reason(ctx: Context, run: Runner) -> str | None:
    """Why the sysbox-runc runtime cannot be used right now, None if it can."""
    ok, output = run("docker info --format '{{json .Runtimes}}'")
    if not ok:
        return f"docker info failed: {output.strip()[-200:]}"
    if "sysbox-runc" not in output:
        return "the sysbox-runc runtime is not registered with Docker (docker info)"
    ok, output = run("systemctl is-active sysbox-mgr sysbox-fs")
    if not ok:
        states = ", ".join(output.split()) or "unknown"
        return f"Sysbox services are not active (sysbox-mgr, sysbox-fs: {states})"
    return None


def build(ctx: Context) -> Mode:
    return dind_container_mode(
        ctx,
        "sysbox",
        "Sysbox: the dind image under sysbox-runc, without --privileged",
        GRANTS,
        (Step("uid-map-not-identity"), Step("no-host-socket")),
        skip_reason=skip_reason,
        expected=EXPECTED,
    )


def plan_note() -> str | None:
    """Why Sysbox's preflight refuses this host (plan time), for the skip reason."""
    try:
        from dindkit.sysbox import unavailable_reason
    except ImportError:
        return None
    reason = unavailable_reason()
    return f"Sysbox preflight: {reason}" if reason else None


SPEC = ModeSpec(
    name="sysbox",
    summary="the dind image under sysbox-runc, no --privileged",
    build=build,
    expected=EXPECTED,
    plan_note=plan_note,
)
