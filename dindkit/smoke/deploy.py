"""The smoke deploy: run each mode's checks on the targets, bring the results home.

Plan time reads the settings and decides which images and modes to use; everything that
touches Docker happens at execution time in ``python.call`` callbacks (so the smoke tests can
follow a Docker install in the same run, as the bootstrap deploy does), and so does everything
that writes on the control machine (clearing an earlier report, building a missing image
archive), so ``pyinfra --dry`` changes nothing anywhere. Each mode's script
(:mod:`dindkit.smoke.modes`) runs, unless the mode's skip condition holds on the host, over
the host's own connection with ``host.run_shell_command``; its framed output becomes check
results, and the last operation writes this host's results into the report folder, rebuilds
report.json and junit.xml, and fails (so pyinfra exits non-zero) when a mode failed.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pyinfra import host, logger
from pyinfra.api import StringCommand, deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import files, python

from dindkit import ci_flow
from dindkit.images import (
    IMPORT_CHANGES,
    build_smoke_image,
    image_tag,
    planned_build,
    smoke_image_archive,
)
from dindkit.report import Check as ReportCheck
from dindkit.report import Escape as ReportEscape
from dindkit.report import HostResult as ReportHost
from dindkit.report import ModeResult, clear_other_runs, set_build_ratios, write_host
from dindkit.settings.docker import DOCKER_SETTINGS
from dindkit.settings.registry import CA_CERT, CREDENTIALS_FILE, REGISTRY_SETTINGS
from dindkit.settings.smoke import SMOKE_SETTINGS
from dindkit.smoke import escape
from dindkit.smoke.modes import (
    Context,
    Mode,
    ModeImage,
    ModeSpec,
    mode_images,
    parse_output,
    q,
    registry,
    script,
    spec,
)
from dindkit.smoke.modes.common import ESCAPE_STEP, CiRegistry
from dindkit.templating import render

# One id per pyinfra run (the deploy module is imported once per run): names every object
# the modes create and tells this run's report files from older ones.
RUN_ID = os.environ.get("DINDKIT_SMOKE_RUN_ID") or secrets.token_hex(4)
REMOTE_CACHE = "/var/cache/dindkit/images"
IMPORT_SCRIPT = "smoke/import-images.sh.j2"
IMPORT_MARK = "@@dindkit image"


# Privilege settings a host's data may carry (a sudo user's inventory sets ``_sudo``).
# ``host.run_shell_command`` in a callback does not apply them by itself.
_ESCALATION_KEYS = (
    "_sudo",
    "_sudo_user",
    "_use_sudo_login",
    "_sudo_password",
    "_preserve_sudo_env",
)


def _run(host_: Any, command: str, timeout: int) -> Any:
    """Run a shell command from a callback as the operations would: with the host's sudo."""
    escalation = {key: host_.data.get(key) for key in _ESCALATION_KEYS}
    return host_.run_shell_command(
        StringCommand(command),
        _timeout=timeout,
        **{key: value for key, value in escalation.items() if value is not None},
    )


def _fail(host_: Any, message: str) -> bool:
    host_.log_styled(message, fg="red")
    return False


@dataclass(frozen=True)
class ImageArchive:
    """An image archive uploaded to the host, and the image ``docker import`` makes of it."""

    what: str  # "smoke image", for messages
    archive: str  # its path on the host
    tag: str
    changes: tuple[str, ...]  # docker import --change instructions


def import_script(images: list[ImageArchive]) -> str:
    """The script that imports the archives the host lacks, one step (templates/smoke/)."""
    return render(
        IMPORT_SCRIPT,
        marker=IMPORT_MARK,
        images=[
            {"archive": q(image.archive), "tag": q(image.tag), "changes": map(q, image.changes)}
            for image in images
        ],
    )


def import_outcomes(output: str) -> dict[str, str]:
    """Tag -> "present", "imported N" (seconds) or "failed", from the script's output."""
    outcomes = {}
    for line in output.splitlines():
        if line.startswith(f"{IMPORT_MARK} "):
            tag, _, outcome = line.removeprefix(f"{IMPORT_MARK} ").partition(" ")
            outcomes[tag] = outcome
    return outcomes


def _import_archives(state: Any, host: Any, images: list[ImageArchive]) -> bool:
    ok, output = _run(host, import_script(images), 1800)
    outcomes = import_outcomes(output.output)
    failed = []
    for image in images:
        outcome = outcomes.get(image.tag, "failed")
        if outcome == "failed":
            failed.append(image)
        elif outcome.startswith("imported"):
            host.log(f"{image.what} {image.tag} imported in {outcome.split()[-1]} s")
    if not ok or failed:
        names = ", ".join(f"{image.what} {image.archive} as {image.tag}" for image in failed)
        return _fail(host, f"Could not import {names or 'the images'}: {output.output}")
    return True


def _pull(state: Any, host: Any, images: list[str]) -> bool:
    for image in dict.fromkeys(images):
        command = f"docker image inspect {q(image)} >/dev/null 2>&1 || docker pull -q {q(image)}"
        ok, output = _run(host, command, 1800)
        if not ok:
            return _fail(host, f"Could not pull {image}: {output.output}")
    return True


def _runner(host_: Any) -> Any:
    """Run a command on the host for a mode's skip condition: (exit status 0, output)."""

    def run(command: str) -> tuple[bool, str]:
        ok, output = _run(host_, command, 60)
        return ok, output.output

    return run


def judge_escapes(mode: Mode, output: str, checks: list[ReportCheck]) -> dict[str, ReportEscape]:
    """The escape outcomes in a mode's output; the ``escape`` check fails unless every
    outcome is the declared one (an inconclusive one never is)."""
    if not mode.expected:
        return {}
    outcomes = escape.measure(output, mode.expected)
    wrong = escape.mismatches(outcomes)
    check = next((check for check in checks if check.name == ESCAPE_STEP.name), None)
    if check is not None and check.status != "skipped":
        if wrong:
            check.status = "failed"
            check.detail = "\n".join(f"FAIL: {line}" for line in wrong) + "\n" + check.detail
        elif check.status == "passed":
            check.detail = f"every one of {len(outcomes)} attempts as declared\n{check.detail}"
    return {
        name: ReportEscape(outcome.outcome, outcome.expected, outcome.evidence)
        for name, outcome in outcomes.items()
    }


def mode_grants(mode: Mode, escapes: dict[str, ReportEscape]) -> str:
    """What the mode grants: generated from the measured outcomes, or the declared ones."""
    if escapes:
        return escape.grants({name: each.outcome for name, each in escapes.items()})
    if mode.expected:
        return "declared (not measured here): " + escape.grants(mode.expected)
    return mode.grants


def summarise(
    mode: Mode,
    checks: list[ReportCheck],
    seconds: float,
    escapes: dict[str, ReportEscape] | None = None,
) -> ModeResult:
    escapes = escapes or {}
    grants = mode_grants(mode, escapes)
    failed = [check for check in checks if check.status == "failed"]
    if not failed:
        return ModeResult(
            "passed", f"{len(checks)} checks passed", seconds, checks, grants, escapes
        )
    first = failed[0]
    lines = first.detail.splitlines()
    cause = lines[0].removeprefix("FAIL: ") if lines else "failed"
    return ModeResult("failed", f"{first.name}: {cause}", seconds, checks, grants, escapes)


def _run_mode(
    state: Any,
    host: Any,
    mode: Mode,
    ctx: Context,
    results: ReportHost,
    plan_note: str | None,
) -> bool:
    started = time.monotonic()
    reason = mode.skip_reason(ctx, _runner(host))
    if reason:
        if plan_note:
            reason += f"; {plan_note}"
        seconds = round(time.monotonic() - started, 1)
        results.modes[mode.name] = ModeResult(
            "skipped", reason, seconds, grants=mode_grants(mode, {})
        )
        host.log_styled(f"{mode.name} skipped: {reason}", fg="yellow")
        return True
    try:
        _ok, output = _run(host, script(mode, ctx), ctx.timeout * 4 + 600)
        text = output.output
    except Exception as error:  # lost connection, timeout: the mode failed, report why
        text = f"{type(error).__name__}: {error}"
    parsed = parse_output(mode, text)
    checks = [ReportCheck(check.name, check.status, check.detail) for check in parsed.checks]
    escapes = judge_escapes(mode, text, checks)
    result = summarise(mode, checks, round(time.monotonic() - started, 1), escapes)
    result.build_seconds = ci_flow.build_seconds(text)
    results.modes[mode.name] = result
    colour = "green" if result.status == "passed" else "red"
    host.log_styled(
        f"{mode.name} {result.status} in {result.seconds} s: {result.reason}", fg=colour
    )
    return True


def _write_report(state: Any, host: Any, report_dir: str, results: ReportHost) -> bool:
    set_build_ratios(results)
    write_host(report_dir, RUN_ID, host.name, results)
    failed = [name for name, mode in results.modes.items() if mode.status == "failed"]
    if failed:
        return _fail(host, f"Smoke tests failed: {', '.join(failed)} (see {report_dir})")
    return True


def _clear_report(state: Any, host: Any, report_dir: str) -> bool:
    clear_other_runs(report_dir, RUN_ID)
    return True


def _build_archive(state: Any, host: Any, what: str, build: Callable[..., Path]) -> bool:
    try:
        build(progress=logger.info)
    except subprocess.CalledProcessError as error:
        command = Path(error.cmd[0]).name
        reason = f"{command} exited with status {error.returncode} (its output is above)"
    except click.ClickException as error:
        reason = error.format_message()
    except OSError as error:
        reason = str(error)
    else:
        return True
    return _fail(host, f"Could not build the {what} archive: {reason}")


def _build_when_missing(what: str, archive: Path, build: Callable[..., Path]) -> Path:
    """ARCHIVE (a current recipe's), built by an operation where it is missing.

    Not built while planning: a dry run (or a plan the user declines) builds nothing and
    writes nothing on this machine; its plan names what a real run would build.
    """
    if not archive.is_file():
        python.call(
            name=f"Build the {what} archive {planned_build(archive)}",
            function=_build_archive,
            what=what,
            build=build,
        )
    return archive


def _upload(what: str, path: Path) -> str:
    """Upload an image archive to the host's cache folder; its path there.

    ``assume_exists``: an archive an earlier operation of this run builds is uploaded then.
    """
    remote = f"{REMOTE_CACHE}/{path.name}"
    files.directory(name="Create the smoke image cache folder", path=REMOTE_CACHE, mode="0700")
    files.put(
        name=f"Upload the {what} archive",
        src=str(path),
        dest=remote,
        mode="0600",
        assume_exists=True,
    )
    return remote


def _upload_image(what: str, path: Path, changes: tuple[str, ...]) -> ImageArchive:
    """Upload an image archive to the host; what importing it needs."""
    return ImageArchive(what, _upload(what, path), image_tag(path), changes)


def _options(specs: tuple[ModeSpec, ...], smoke: Any, docker: Any) -> dict[str, Any]:
    """Every chosen mode's values for Context.options, from the settings."""
    options: dict[str, Any] = {}
    for each in specs:
        options.update(each.options(smoke, docker))
    return options


def _provide(image: ModeImage, imports: list[ImageArchive]) -> str:
    """Build a mode's image where missing and upload it; its tag (imported with IMPORTS) or,
    for an image the mode loads itself, its path on the host."""
    archive = _build_when_missing(image.what, image.archive(), image.build)
    if image.changes is None:
        return _upload(image.what, archive)
    imports.append(_upload_image(image.what, archive, image.changes))
    return imports[-1].tag


# Where every mode's job reaches the host's registry: the docker bridge's gateway.
CI_REGISTRY_ADDRESS = "172.17.0.1"


def ci_registry(registry: dict[str, Any]) -> CiRegistry | None:
    """The registry the CI steps use: the host's own (registry_enabled), at the bridge's
    gateway when its certificate names it (registry_addresses); else no CI steps."""
    if not registry["registry_enabled"]:
        return None
    if CI_REGISTRY_ADDRESS not in registry["registry_addresses"]:
        host.log_styled(
            f"No CI steps: registry_addresses lacks {CI_REGISTRY_ADDRESS}, the address every "
            "mode's job reaches the registry at",
            fg="yellow",
        )
        return None
    return CiRegistry(
        address=f"{CI_REGISTRY_ADDRESS}:{registry['registry_port']}",
        ca_cert=CA_CERT,
        credentials_file=CREDENTIALS_FILE,
    )


@deploy("Smoke-test the Docker-in-Docker modes", data_defaults=SMOKE_SETTINGS.defaults)
def run_smoke_tests() -> None:
    """Run the selected modes on the host and add its results to the report folder."""
    values = SMOKE_SETTINGS.validate(host.data)
    docker_values = DOCKER_SETTINGS.validate(host.data)
    registry_values = REGISTRY_SETTINGS.validate(host.data)
    specs = tuple(spec(name) for name in values["smoke_modes"])  # in the order chosen
    for each in specs:
        each.check_settings(values, docker_values)  # before any change
    report_dir = values["smoke_report_dir"]
    python.call(
        name="Clear the smoke report of earlier runs",
        function=_clear_report,
        report_dir=report_dir,
    )

    archive = values["smoke_image_archive"]
    current_recipe = False
    imports: list[ImageArchive] = []
    if archive:
        path = Path(archive).expanduser()
        current_recipe = path == smoke_image_archive()
        if current_recipe:
            _build_when_missing("smoke image", path, build_smoke_image)
        elif not path.is_file():
            raise DeployError(
                f"smoke_image_archive {archive} does not exist: build it with "
                "`dindkit images build`"
            )
        smoke_image = _upload_image("smoke image", path, IMPORT_CHANGES)
        imports.append(smoke_image)
        cli_image = dind_image = smoke_image.tag
    else:
        cli_image, dind_image = values["smoke_images"]["cli"], values["smoke_images"]["dind"]
        python.call(
            name="Pull the smoke images unless the host has them",
            function=_pull,
            images=[cli_image, dind_image],
        )

    mode_image_refs: dict[str, str] = {}
    chosen = {each.name for each in specs}
    for image in mode_images(tuple(each for each in registry() if each.name in chosen)):
        if image.from_smoke_image and not current_recipe:
            continue  # cut from the current recipe's smoke image only: the mode does without
        mode_image_refs[image.kind] = _provide(image, imports)
    if imports:
        python.call(
            name=f"Import the {' and the '.join(image.what for image in imports)} unless the "
            f"host has {'them' if len(imports) > 1 else 'it'}",
            function=_import_archives,
            images=imports,
        )

    ctx = Context(
        run_id=RUN_ID,
        cli_image=cli_image,
        dind_image=dind_image,
        timeout=values["smoke_timeout"],
        images=mode_image_refs,
        options=_options(specs, values, docker_values),
        ci=ci_registry(registry_values),
        nested_bridge=values["smoke_nested_bridge"],
    )
    notes = {each.name: each.plan_note() for each in specs}
    results = ReportHost()
    for each in specs:
        mode = each.build(ctx)
        python.call(
            name=f"Smoke-test {mode.title}",
            function=_run_mode,
            mode=mode,
            ctx=ctx,
            results=results,
            plan_note=notes[each.name],
        )
    python.call(
        name="Write the smoke report",
        function=_write_report,
        report_dir=report_dir,
        results=results,
    )
