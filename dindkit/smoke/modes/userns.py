"""userns: DinD without --privileged on a daemon that remaps users (userns-remap)."""

from __future__ import annotations

from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import (
    Context,
    Mode,
    ModeSpec,
    Runner,
    Step,
    dind_container_mode,
    remaps_users,
)

GRANTS = (
    "its own daemon with SYS_ADMIN and NET_ADMIN in a remapped user namespace: "
    "root inside is an unprivileged host UID, no host devices"
)
# SYS_ADMIN inside its own user namespace mounts (the inner daemon needs it); nothing else.
EXPECTED = expect("mount")
# How the dind container runs: no --privileged, two capabilities, unconfined profiles.
DAEMON_FLAGS = (
    "--cap-add SYS_ADMIN --cap-add NET_ADMIN "
    "--security-opt seccomp=unconfined --security-opt apparmor=unconfined"
)


def skip_reason(ctx: Context, run: Runner) -> str | None:
    remapped = remaps_users(run)
    if remapped is None:
        return "docker info failed: cannot tell whether the daemon remaps users"
    if not remapped:
        return (
            "the daemon does not remap users (docker info shows no name=userns): "
            "set docker_userns_remap"
        )
    return None


def build(ctx: Context, daemon_flags: str = DAEMON_FLAGS) -> Mode:
    """DAEMON_FLAGS is a parameter only so that a test can show the checks fail."""
    return dind_container_mode(
        ctx,
        "userns",
        "userns: the dind image without --privileged in a remapped user namespace",
        GRANTS,
        (Step("uid-map-not-identity"), Step("no-host-devices")),
        values={"DAEMON_FLAGS": daemon_flags},
        skip_reason=skip_reason,
        expected=EXPECTED,
    )


SPEC = ModeSpec(
    name="userns",
    summary="the dind image with only SYS_ADMIN, NET_ADMIN, unconfined seccomp/AppArmor, "
    "no --privileged, on a daemon that remaps users",
    build=build,
    expected=EXPECTED,
)
