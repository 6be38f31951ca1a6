"""The smoke deploy: run each mode's checks on the targets, bring the results home.

Plan time reads the settings and decides which images and modes to use; everything that
touches Docker happens at execution time in ``python.call`` callbacks (so the smoke tests can
follow a Docker install in the same run, as the bootstrap deploy does). Each mode's script
(:mod:`dindkit.smoke.modes`) runs over the host's own connection with
``host.run_shell_command``; its framed output becomes check results, and the last operation
writes this host's results into the report folder, rebuilds report.json and junit.xml, and
fails (so pyinfra exits non-zero) when a mode failed.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from pyinfra import host, logger
from pyinfra.api import StringCommand, deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import files, python

from dindkit.images import IMPORT_CHANGES, build_smoke_image, image_tag, smoke_image_archive
from dindkit.report import Check as ReportCheck
from dindkit.report import HostResult as ReportHost
from dindkit.report import ModeResult, clear_other_runs, write_host
from dindkit.settings.docker import DOCKER_SETTINGS
from dindkit.settings.smoke import SMOKE_SETTINGS
from dindkit.smoke.modes import Context, Mode, build_mode, parse_output, q, script

# One id per pyinfra run (the deploy module is imported once per run): names every object
# the modes create and tells this run's report files from older ones.
RUN_ID = os.environ.get("DINDKIT_SMOKE_RUN_ID") or secrets.token_hex(4)
REMOTE_CACHE = "/var/cache/dindkit/images"


def _fail(host_: Any, message: str) -> bool:
    host_.log_styled(message, fg="red")
    return False


def _load_archive(state: Any, host: Any, archive: str, tag: str) -> bool:
    changes = " ".join(f"--change {q(change)}" for change in IMPORT_CHANGES)
    command = (
        f"if docker image inspect {q(tag)} >/dev/null 2>&1; then echo present; "
        f"else docker import {changes} {q(archive)} {q(tag)}; fi"
    )
    ok, output = host.run_shell_command(StringCommand(command), _timeout=1800)
    if not ok:
        return _fail(host, f"Could not import {archive} as {tag}: {output.output}")
    return True


def _pull(state: Any, host: Any, images: list[str]) -> bool:
    for image in dict.fromkeys(images):
        command = f"docker image inspect {q(image)} >/dev/null 2>&1 || docker pull -q {q(image)}"
        ok, output = host.run_shell_command(StringCommand(command), _timeout=1800)
        if not ok:
            return _fail(host, f"Could not pull {image}: {output.output}")
    return True


def sysbox_missing(host_: Any) -> str | None:
    """Why the sysbox-runc runtime cannot be used right now (execution time), None if it can."""
    ok, output = host_.run_shell_command(
        StringCommand("docker info --format '{{json .Runtimes}}'"), _timeout=60
    )
    if not ok:
        return f"docker info failed: {output.output.strip()[-200:]}"
    if "sysbox-runc" not in output.stdout:
        return "the sysbox-runc runtime is not registered with Docker (docker info)"
    ok, output = host_.run_shell_command(
        StringCommand("systemctl is-active sysbox-mgr sysbox-fs"), _timeout=60
    )
    if not ok:
        states = ", ".join(output.stdout_lines) or output.output.strip()
        return f"Sysbox services are not active (sysbox-mgr, sysbox-fs: {states})"
    return None


def summarise(mode: Mode, checks: list[ReportCheck], seconds: float) -> ModeResult:
    failed = [check for check in checks if check.status == "failed"]
    if not failed:
        return ModeResult("passed", f"{len(checks)} checks passed", seconds, checks)
    first = failed[0]
    lines = first.detail.splitlines()
    cause = lines[0].removeprefix("FAIL: ") if lines else "failed"
    return ModeResult("failed", f"{first.name}: {cause}", seconds, checks)


def _run_mode(
    state: Any,
    host: Any,
    mode: Mode,
    ctx: Context,
    results: ReportHost,
    plan_reason: str | None,
) -> bool:
    started = time.monotonic()
    if mode.name == "sysbox":
        missing = sysbox_missing(host)
        if missing:
            reason = missing + (f"; Sysbox preflight: {plan_reason}" if plan_reason else "")
            results.modes[mode.name] = ModeResult(
                "skipped", reason, round(time.monotonic() - started, 1)
            )
            host.log_styled(f"sysbox skipped: {reason}", fg="yellow")
            return True
    try:
        _ok, output = host.run_shell_command(
            StringCommand(script(mode, ctx)), _timeout=ctx.timeout * 4 + 600
        )
        text = output.output
    except Exception as error:  # lost connection, timeout: the mode failed, report why
        text = f"{type(error).__name__}: {error}"
    parsed = parse_output(mode, text)
    checks = [ReportCheck(check.name, check.status, check.detail) for check in parsed.checks]
    result = summarise(mode, checks, round(time.monotonic() - started, 1))
    results.modes[mode.name] = result
    colour = "green" if result.status == "passed" else "red"
    host.log_styled(
        f"{mode.name} {result.status} in {result.seconds} s: {result.reason}", fg=colour
    )
    return True


def _write_report(state: Any, host: Any, report_dir: str, results: ReportHost) -> bool:
    write_host(report_dir, RUN_ID, host.name, results)
    failed = [name for name, mode in results.modes.items() if mode.status == "failed"]
    if failed:
        return _fail(host, f"Smoke tests failed: {', '.join(failed)} (see {report_dir})")
    return True


def _sysbox_plan_reason() -> str | None:
    try:
        from dindkit.sysbox import unavailable_reason
    except ImportError:
        return None
    return unavailable_reason()


@deploy("Smoke-test the Docker-in-Docker modes", data_defaults=SMOKE_SETTINGS.defaults)
def run_smoke_tests() -> None:
    """Run the selected modes on the host and add its results to the report folder."""
    values = SMOKE_SETTINGS.validate(host.data)
    socket_group = DOCKER_SETTINGS.validate(host.data)["docker_socket_group"]
    report_dir = values["smoke_report_dir"]
    clear_other_runs(report_dir, RUN_ID)

    archive = values["smoke_image_archive"]
    if archive:
        path = Path(archive).expanduser()
        if not path.is_file() and path == smoke_image_archive():
            build_smoke_image(progress=logger.info)  # the current recipe: build it now
        if not path.is_file():
            raise DeployError(
                f"smoke_image_archive {archive} does not exist: build it with "
                "`dindkit images build`"
            )
        cli_image = dind_image = image_tag(path)
        remote = f"{REMOTE_CACHE}/{path.name}"
        files.directory(name="Create the smoke image cache folder", path=REMOTE_CACHE, mode="0700")
        files.put(name="Upload the smoke image archive", src=str(path), dest=remote, mode="0600")
        python.call(
            name=f"Load the smoke image {cli_image} unless the host has it",
            function=_load_archive,
            archive=remote,
            tag=cli_image,
        )
    else:
        cli_image, dind_image = values["smoke_images"]["cli"], values["smoke_images"]["dind"]
        python.call(
            name="Pull the smoke images unless the host has them",
            function=_pull,
            images=[cli_image, dind_image],
        )

    ctx = Context(
        run_id=RUN_ID,
        cli_image=cli_image,
        dind_image=dind_image,
        user_uid=values["smoke_user_uid"],
        socket_group=socket_group,
        timeout=values["smoke_timeout"],
    )
    plan_reason = _sysbox_plan_reason() if "sysbox" in values["smoke_modes"] else None
    results = ReportHost()
    for name in values["smoke_modes"]:
        mode = build_mode(name, ctx)
        python.call(
            name=f"Smoke-test {mode.title}",
            function=_run_mode,
            mode=mode,
            ctx=ctx,
            results=results,
            plan_reason=plan_reason,
        )
    python.call(
        name="Write the smoke report",
        function=_write_report,
        report_dir=report_dir,
        results=results,
    )
