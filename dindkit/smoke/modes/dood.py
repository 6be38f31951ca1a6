"""DooD: the host's Docker socket in a non-root container that gets the socket's group."""

from __future__ import annotations

from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import Context, Mode, Step

GRANTS = "the host's Docker socket: whoever reaches it is root on the host"
# Its nature: the socket is the host's daemon, so a job starts a --privileged container with
# the host's / and reads and writes what host root can. The container itself stays confined.
EXPECTED = expect(
    "privileged-host-root", "read-host-shadow", "write-host-root", "host-docker-socket"
)


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
        expected=EXPECTED,
    )
