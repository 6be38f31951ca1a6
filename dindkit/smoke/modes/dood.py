"""DooD: the host's Docker socket in a non-root container that gets the socket's group."""

from __future__ import annotations

from dindkit.smoke.modes.common import Context, Mode, Step

GRANTS = "the host's Docker socket: whoever reaches it is root on the host"


def build(ctx: Context) -> Mode:
    return Mode(
        name="dood",
        title="DooD: the host's Docker socket in a non-root container",
        grants=GRANTS,
        setup=(Step("socket-group"), Step("start-client")),
        checks=(
            Step("docker-version"),
            Step("build"),
            Step("image-on-host"),
            Step("run"),
            Step("refused-without-group"),
        ),
        values={
            "USER_UID": ctx.user_uid,
            "SOCKET_GROUP": ctx.socket_group,
            "CLI_IMAGE": ctx.cli_image,
        },
    )
