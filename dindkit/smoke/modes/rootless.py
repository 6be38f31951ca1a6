"""rootless: DooD on a rootless user's own daemon (/run/user/UID/docker.sock), as that user."""

from __future__ import annotations

from typing import Any

from dindkit import images
from dindkit.images import image_tag
from dindkit.rootless import check_accounts
from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import (
    Context,
    Mode,
    ModeImage,
    ModeSpec,
    Runner,
    Settings,
    Step,
    ci_steps,
    q,
)

GRANTS = (
    "a rootless user's Docker socket: that user's rights on the host, "
    "even for --privileged containers"
)


# The user's daemon runs everything in the user's namespace: even its --privileged containers
# with the host's / mounted read no more than the user can.
EXPECTED = expect()

# The client image, a fifth of the smoke image, copied into the user's own image store by the
# mode itself (uploaded, not imported into the host's store). Without it (an archive of the
# user's own in smoke_image_archive) the mode copies cli_image from the host's store.
CLIENT_IMAGE = ModeImage(
    kind="rootless-client",
    what="rootless client image",
    archive=lambda: images.cli_image_archive(),
    build=lambda **options: images.build_cli_image(**options),
    from_smoke_image=True,
)


def user(ctx: Context) -> str | None:
    name: str | None = ctx.options.get("rootless_user")
    return name


def skip_reason(ctx: Context, run: Runner) -> str | None:
    name = user(ctx)
    if not name:
        return "no rootless user: set smoke_rootless_user or docker_rootless_users"
    ok, output = run(f"id -u {q(name)}")
    if not ok:
        return f"smoke_rootless_user {name} does not exist on the host"
    socket = ctx.options.get("rootless_socket") or f"/run/user/{output.strip()}/docker.sock"
    ok, _ = run(f"test -S {q(socket)}")
    if not ok:
        return f"no rootless Docker socket at {socket} (docker_rootless_users deploys it)"
    return None


def build(ctx: Context) -> Mode:
    cli_archive = ctx.images.get(CLIENT_IMAGE.kind, "")
    return Mode(
        name="rootless",
        title="rootless: DooD on a rootless user's Docker socket",
        grants=GRANTS,
        setup=(Step("socket"), Step("load-image"), Step("start-client")),
        checks=(Step("docker-version"), Step("build"), Step("run"), Step("no-escalation")),
        values={
            "ROOTLESS_USER": user(ctx) or "",
            "ROOTLESS_SOCKET": ctx.options.get("rootless_socket") or "",
            "CLI_IMAGE": ctx.cli_image,
            "CLI_ARCHIVE": cli_archive,
            "CLIENT_IMAGE": image_tag(cli_archive) if cli_archive else ctx.cli_image,
        },
        ci=ci_steps(ctx),
        skip_reason=skip_reason,
        expected=EXPECTED,
    )


def check_settings(smoke: Settings, docker: Settings) -> None:
    """smoke_rootless_user must be a login user on the host (read before anything changes)."""
    if smoke["smoke_rootless_user"]:
        check_accounts([smoke["smoke_rootless_user"]], "smoke_rootless_user")


def options(smoke: Settings, docker: Settings) -> dict[str, Any]:
    """The user: smoke_rootless_user, else the first of docker_rootless_users."""
    users = docker.get("docker_rootless_users") or []
    # rootless_socket (None: /run/user/UID/docker.sock) is set only by tests.
    return {"rootless_user": smoke["smoke_rootless_user"] or next(iter(users), None)}


SPEC = ModeSpec(
    name="rootless",
    summary="DooD on a rootless user's own daemon (/run/user/UID/docker.sock), as that user",
    build=build,
    expected=EXPECTED,
    images=(CLIENT_IMAGE,),
    check_settings=check_settings,
    options=options,
)
