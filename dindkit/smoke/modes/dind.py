"""DinD: a privileged dind container running its own daemon, TLS on 2376."""

from __future__ import annotations

from dindkit.smoke.modes.common import Context, Mode, dind_container_mode

GRANTS = "--privileged: every capability and host device, root on the host if it breaks out"


def build(ctx: Context) -> Mode:
    return dind_container_mode(
        ctx, "dind", "DinD: a privileged dind container, TLS on 2376", GRANTS
    )
