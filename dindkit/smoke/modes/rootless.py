"""rootless: DooD on a rootless user's own daemon (/run/user/UID/docker.sock), as that user."""

from __future__ import annotations

from dindkit.images import image_tag
from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import Context, Mode, Runner, Step, q

GRANTS = (
    "a rootless user's Docker socket: that user's rights on the host, "
    "even for --privileged containers"
)


# The user's daemon runs everything in the user's namespace: even its --privileged containers
# with the host's / mounted read no more than the user can.
EXPECTED = expect()


def skip_reason(ctx: Context, run: Runner) -> str | None:
    user = ctx.rootless_user
    if not user:
        return "no rootless user: set smoke_rootless_user or docker_rootless_users"
    ok, output = run(f"id -u {q(user)}")
    if not ok:
        return f"smoke_rootless_user {user} does not exist on the host"
    socket = ctx.rootless_socket or f"/run/user/{output.strip()}/docker.sock"
    ok, _ = run(f"test -S {q(socket)}")
    if not ok:
        return f"no rootless Docker socket at {socket} (docker_rootless_users deploys it)"
    return None


def build(ctx: Context) -> Mode:
    return Mode(
        name="rootless",
        title="rootless: DooD on a rootless user's Docker socket",
        grants=GRANTS,
        setup=(Step("socket"), Step("load-image"), Step("start-client")),
        checks=(Step("docker-version"), Step("build"), Step("run"), Step("no-escalation")),
        values={
            "ROOTLESS_USER": ctx.rootless_user or "",
            "ROOTLESS_SOCKET": ctx.rootless_socket or "",
            "CLI_IMAGE": ctx.cli_image,
            "CLI_ARCHIVE": ctx.cli_archive,
            "CLIENT_IMAGE": image_tag(ctx.cli_archive) if ctx.cli_archive else ctx.cli_image,
        },
        skip_reason=skip_reason,
        expected=EXPECTED,
    )
