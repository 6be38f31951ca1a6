"""DinD: a privileged dind container running its own daemon, TLS on 2376."""

from __future__ import annotations

from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import Context, Mode, ModeSpec, dind_container_mode

GRANTS = "--privileged: every capability and host device, root on the host if it breaks out"
# Its nature: --privileged is host root with every device and capability; the job mounts the
# host's disk, sets the clock, writes global sysctls. Only the inner daemon's --privileged
# containers see the dind container's / (not the host's), and its namespaces are its own.
EXPECTED = expect(
    "read-host-shadow",
    "write-host-root",
    "host-proc-sys",
    "host-block-device",
    "kernel-module",
    "mount",
    "set-time",
    "container-root-on-host",
)


def build(ctx: Context) -> Mode:
    return dind_container_mode(
        ctx,
        "dind",
        "DinD: a privileged dind container, TLS on 2376",
        GRANTS,
        expected=EXPECTED,
    )


SPEC = ModeSpec(
    name="dind",
    summary="a --privileged dind container runs its own daemon (TLS on 2376)",
    build=build,
    expected=EXPECTED,
)
