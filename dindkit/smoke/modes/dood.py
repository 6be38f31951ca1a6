"""DooD: the host's Docker socket in a non-root container that gets the socket's group."""

from __future__ import annotations

from typing import Any

from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import Context, Mode, ModeSpec, Settings, Step, ci_steps

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
            "USER_UID": ctx.options.get("user_uid", 1000),
            "SOCKET_GROUP": ctx.options.get("socket_group", "docker"),
            "CLI_IMAGE": ctx.cli_image,
        },
        ci=ci_steps(ctx),
        expected=EXPECTED,
    )


def options(smoke: Settings, docker: Settings) -> dict[str, Any]:
    return {"user_uid": smoke["smoke_user_uid"], "socket_group": docker["docker_socket_group"]}


SPEC = ModeSpec(
    name="dood",
    summary="the host's socket mounted into a non-root container that gets the socket's group",
    build=build,
    expected=EXPECTED,
    options=options,
)
