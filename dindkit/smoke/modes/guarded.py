"""Guarded DooD: the job socket of deploys/guard.py (a policy proxy in front of dockerd) in a
non-root container that gets the job socket's group (skipped where the guard is not set up)."""

from __future__ import annotations

from typing import Any

from dindkit.guard import SOCKET_UNIT
from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import Context, Mode, ModeSpec, Runner, Settings, Step, ci_steps

GRANTS = "the host's Docker daemon through a proxy that refuses what would hand over the host"
# It reaches the host's daemon (that is the point), but only through the policy: no privileged
# container, no host mounts, no host namespaces; the job container itself stays confined. The
# host tells the job socket from the root socket (templates/smoke/escape/host.sh.j2).
EXPECTED = expect()


def skip_reason(ctx: Context, run: Runner) -> str | None:
    """Why there is no job socket to test, None if there is."""
    ok, output = run(f"systemctl is-enabled {SOCKET_UNIT} 2>/dev/null")
    if not ok:
        state = output.strip() or "not installed"
        return f"no job socket: {SOCKET_UNIT} is {state} (guard_enabled, deploys/guard.py)"
    return None


def build(ctx: Context) -> Mode:
    return Mode(
        name="guarded",
        title="Guarded DooD: the job socket (a policy proxy) in a non-root container",
        grants=GRANTS,
        setup=(Step("socket-group"), Step("start-client")),
        checks=(
            Step("docker-version"),
            Step("build"),
            Step("run"),
            Step("refused-by-the-guard"),
        ),
        values={
            "USER_UID": ctx.options.get("user_uid", 1000),
            "CLI_IMAGE": ctx.cli_image,
            "JOBS_SOCKET_UNIT": SOCKET_UNIT,
        },
        ci=ci_steps(ctx),
        skip_reason=skip_reason,
        expected=EXPECTED,
    )


def options(smoke: Settings, docker: Settings) -> dict[str, Any]:
    return {"user_uid": smoke["smoke_user_uid"]}


SPEC = ModeSpec(
    name="guarded",
    summary="the job socket of deploys/guard.py (a policy proxy in front of dockerd) mounted "
    "into a non-root container that gets its group",
    build=build,
    expected=EXPECTED,
    options=options,
)
