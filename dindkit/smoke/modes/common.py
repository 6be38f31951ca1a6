"""What every smoke mode shares: steps, the run context, labels, cleanup and output parsing.

A mode (one module beside this one) is a list of setup steps and checks, each a shell
function in the mode's script template (templates/smoke/<mode>.sh.j2), plus a one-line
``grants`` text and an optional skip condition checked on the host at execution time.
:func:`script` renders the mode into one POSIX shell script (templates/smoke/mode.sh.j2)
that runs on the target: every step prints its output between ``@@dindkit begin NAME`` and
``@@dindkit end NAME RC SECONDS`` lines, the first failure stops the mode, and an EXIT trap
runs the mode's cleanup, sweeps whatever carries the run's label and verifies that nothing
is left. :func:`parse_output` turns that output back into check results.

Every object a mode creates carries the label ``dindkit.smoke.run=<run id>`` and a name
starting with ``dindkit-smoke-<run id>-``; only the cached base images stay.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dindkit import ci_flow
from dindkit.templating import render

SOCKET = "/var/run/docker.sock"
LABEL_KEY = "dindkit.smoke.run"
MARKER = "@@dindkit"
DETAIL_LINES = 12

# Runs a shell command on the target at execution time: (exit status 0, output).
Runner = Callable[[str], tuple[bool, str]]


@dataclass(frozen=True)
class Step:
    """A named step; the mode's template defines it as the shell function ``step_<name>``."""

    name: str

    @property
    def function(self) -> str:
        return "step_" + self.name.replace("-", "_")


@dataclass(frozen=True)
class CiRegistry:
    """The host's registry (registry_enabled) as every mode's job reaches it: the CI steps."""

    address: str  # HOST:PORT: the docker bridge's gateway, which every job's daemon reaches
    ca_cert: str  # on the host, world-readable
    credentials_file: str  # on the host, root-only: username= and password= lines


@dataclass(frozen=True)
class Context:
    """What the modes need to know about the run and the host.

    Per-mode values go through the two mappings, never a field of their own: ``images`` (by
    :attr:`ModeImage.kind`) and ``options`` (what each spec's ``options`` hook takes from the
    settings, by name).
    """

    run_id: str
    cli_image: str
    dind_image: str
    timeout: int = 120
    # A mode's own image by its kind: the tag the host imported it as, or (uploaded only) the
    # archive's path on the host; a missing kind: the mode does without (rootless copies
    # cli_image from the host's store).
    images: Mapping[str, str] = field(default_factory=dict)
    # Per-mode values from the settings, by name (e.g. rootless_user, user_uid).
    options: Mapping[str, Any] = field(default_factory=dict)
    # Prefix of the host paths the escape suite reads and writes (/root, /proc, /sys, /dev):
    # empty on a target; a unit test's folder of stand-ins.
    escape_host_root: str = ""
    # The registry the CI steps push to and pull from; None: no CI steps.
    ci: CiRegistry | None = None
    # The bridge of the daemons the dind-container modes start (dockerd --bip); None: default.
    nested_bridge: str | None = None

    @property
    def prefix(self) -> str:
        return f"dindkit-smoke-{self.run_id}"

    @property
    def label(self) -> str:
        return f"{LABEL_KEY}={self.run_id}"


def never_skipped(ctx: Context, run: Runner) -> str | None:
    return None


@dataclass(frozen=True)
class Mode:
    name: str
    title: str
    grants: str  # what a passing mode hands a container, one line
    setup: tuple[Step, ...]
    checks: tuple[Step, ...]
    # Shell variables the mode's template reads (quoted when rendered).
    values: Mapping[str, object] = field(default_factory=dict)
    # Why the mode cannot run on this host right now (execution time); None: it runs.
    skip_reason: Callable[[Context, Runner], str | None] = never_skipped
    template: str = ""  # templates/smoke/<name>.sh.j2 unless set
    # The escape suite's declared outcome per attempt (dindkit.smoke.escape.expect); the
    # mode's last check, ``escape``, runs the attempts in its job container.
    expected: Mapping[str, str] = field(default_factory=dict)
    # The CI flow's steps (ci_steps(ctx)): after the checks, before the escape attempts.
    ci: tuple[Step, ...] = ()

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.setup + self.checks + self.ci + ((ESCAPE_STEP,) if self.expected else ())


ESCAPE_STEP = Step("escape")
# templates/smoke/lib-ci.sh.j2 defines step_ci_<stage> for every stage of the flow.
CI_STEPS = tuple(Step(name) for name in ci_flow.SMOKE_STAGES)


def ci_steps(ctx: Context) -> tuple[Step, ...]:
    """The CI flow's steps where the host has a registry, else none."""
    return CI_STEPS if ctx.ci else ()


def ci_values(ctx: Context, mode: str) -> dict[str, object]:
    """The CI steps' script values; a mode's own ``values`` may set CI_ENGINE, CI_DOCKER,
    CI_BUSYBOX and CI_CERT_DIR for its job's client."""
    if ctx.ci is None:
        return {"CI_FLOW": ""}
    return {
        "CI_FLOW": ci_flow.script(ctx.ci.address),
        "CI_REGISTRY": ctx.ci.address,
        "CI_REPOSITORY": f"dindkit/smoke-{mode}",
        "CI_CA_CERT": ctx.ci.ca_cert,
        "CI_CREDENTIALS_FILE": ctx.ci.credentials_file,
        "CI_ENGINE": "docker",
        "CI_DOCKER": "docker",
        "CI_BUSYBOX": "/bin/busybox",
        "CI_CERT_DIR": "",
    }


# What a spec's hooks read: the validated smoke and docker settings (SettingsTable.validate).
Settings = Mapping[str, Any]


@dataclass(frozen=True)
class ModeImage:
    """An image archive a mode needs besides the shared smoke image (dindkit.images builds it).

    The deploy builds it where missing (cached by recipe), uploads it, and either imports it
    (``changes`` set: ``ctx.images[kind]`` is its tag) or leaves it for the mode to load itself
    (``changes`` None: ``ctx.images[kind]`` is its path on the host). The demo builds it while
    the VMs boot.
    """

    kind: str
    what: str  # "podman image", for operation names and messages
    archive: Callable[[], Path]  # where the current recipe's archive lives, built or not
    build: Callable[..., Path]  # build it unless cached (dindkit.images' keyword arguments)
    changes: tuple[str, ...] | None = None  # docker import --change instructions
    # Cut from the current recipe's smoke image: needed only where smoke_image_archive is that
    # archive (with an archive of the user's own the mode does without).
    from_smoke_image: bool = False


def no_settings_check(smoke: Settings, docker: Settings) -> None:
    return None


def no_plan_note() -> str | None:
    return None


def no_options(smoke: Settings, docker: Settings) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ModeSpec:
    """A mode as one self-describing unit: what the deploy, the settings, the CLI and the demo
    need to know about it. Each mode module exports one as ``SPEC``; the registry
    (:func:`dindkit.smoke.modes.registry`) lists them in the order of ``SMOKE_MODES``."""

    name: str
    summary: str  # how the container gets Docker, one line
    build: Callable[[Context], Mode]  # its steps and script values
    expected: Mapping[str, str]  # the escape suite's declared outcome per attempt
    images: tuple[ModeImage, ...] = ()
    # Plan time, before anything changes: refuse settings this mode cannot use (DeployError).
    check_settings: Callable[[Settings, Settings], None] = no_settings_check
    # Plan time: a note added to the mode's skip reason when it is skipped (Sysbox's preflight).
    plan_note: Callable[[], str | None] = no_plan_note
    # The mode's values in Context.options, from the settings.
    options: Callable[[Settings, Settings], dict[str, Any]] = no_options


@dataclass
class CheckResult:
    name: str
    status: str  # passed, failed, skipped
    detail: str = ""


@dataclass
class ModeOutput:
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if check.status == "failed"]


def q(value: object) -> str:
    return shlex.quote(str(value))


def inner_script(name: str) -> str:
    """A script run inside a client container (templates/smoke/inner/<name>.sh.j2)."""
    return render(f"smoke/inner/{name}.sh.j2")


INNER_SCRIPTS = ("build", "wait", "podman")
ESCAPE_ATTEMPTS = "smoke/escape/attempts.sh.j2"


def script(mode: Mode, ctx: Context) -> str:
    """The shell script that runs a mode on the target."""
    values: dict[str, object] = {
        "RUN_ID": ctx.run_id,
        "LABEL": ctx.label,
        "PREFIX": f"{ctx.prefix}-{mode.name}",
        "SOCKET": SOCKET,
        "TIMEOUT": ctx.timeout,
        "KEEP_ALIVE": ctx.timeout * 4 + 600,
        **{f"INNER_{name.upper()}": inner_script(name) for name in INNER_SCRIPTS},
        "ESCAPE_ATTEMPTS": render(ESCAPE_ATTEMPTS),
        "ESCAPE_HOST_ROOT": ctx.escape_host_root,
        **ci_values(ctx, mode.name),
        **mode.values,
    }
    return render(
        "smoke/mode.sh.j2",
        mode=mode,
        marker=MARKER,
        values=[(key, q(value)) for key, value in values.items()],
        body=mode.template or f"smoke/{mode.name}.sh.j2",
    )


_LINE = re.compile(rf"^{MARKER} (begin|end) (\S+)(?: ([0-9]+))?(?: ([0-9]+))?$")


def parse_output(mode: Mode, output: str) -> ModeOutput:
    """Check results from a mode script's output; steps it never reached are skipped."""
    results: dict[str, CheckResult] = {}
    current: str | None = None
    lines: list[str] = []
    for line in output.splitlines():
        match = _LINE.match(line.rstrip())
        if match and match.group(1) == "begin":
            current, lines = match.group(2), []
        elif match and match.group(1) == "end" and current == match.group(2):
            rc = int(match.group(3) or 1)
            name = match.group(2)
            if match.group(4):
                lines.append(f"[{match.group(4)} s]")
            results[name] = CheckResult(name, "passed" if rc == 0 else "failed", _detail(lines, rc))
            current = None
        elif current is not None:
            lines.append(line)
    if current is not None:  # cut off (timeout, lost connection)
        results[current] = CheckResult(current, "failed", _detail(lines, None))
    names = [step.name for step in mode.steps] + ["cleanup"]
    checks = [
        results.get(name) or CheckResult(name, "skipped", "not run: an earlier step failed")
        for name in names
    ]
    if "cleanup" not in results:
        checks[-1] = CheckResult("cleanup", "failed", "the cleanup never reported back")
    return ModeOutput(checks)


def _detail(lines: list[str], rc: int | None) -> str:
    kept = [line for line in lines if line.strip()]
    failures = [line for line in kept if line.startswith("FAIL: ")]
    tail = kept[-DETAIL_LINES:]
    if rc is None:
        tail.append("(output ended before the step finished)")
    elif rc != 0:
        tail.append(f"(exit status {rc})")
    # A FAIL line names the cause: put it first even when the tail would cut it off.
    return "\n".join([*failures, *(line for line in tail if line not in failures)])


def docker_info(run: Runner, template: str, docker: str = "docker") -> tuple[bool, str]:
    """``docker info --format TEMPLATE`` on the target."""
    return run(f"{docker} info --format {q(template)}")


def remaps_users(run: Runner) -> bool | None:
    """Whether the host's daemon runs with userns-remap (None: docker info failed)."""
    ok, output = docker_info(run, "{{json .SecurityOptions}}")
    return "name=userns" in output if ok else None


def dind_container_mode(
    ctx: Context,
    name: str,
    title: str,
    grants: str,
    extra_checks: tuple[Step, ...] = (),
    **fields: object,
) -> Mode:
    """A dind container and a client container beside it (templates/smoke/lib-daemon.sh.j2)."""
    values = {
        "CLI_IMAGE": ctx.cli_image,
        "DIND_IMAGE": ctx.dind_image,
        # The inner daemon's flags: its bridge off the host's docker0 (smoke_nested_bridge).
        "DIND_ARGS": f"--bip={ctx.nested_bridge}" if ctx.nested_bridge else "",
        # The host's registry trust, for the inner daemon's pushes and pulls.
        "CI_TRUST_DIR": "/etc/docker/certs.d" if ctx.ci else "",
    }
    values.update(fields.pop("values", {}))  # type: ignore[call-overload]
    return Mode(
        name=name,
        title=title,
        grants=grants,
        setup=(Step("start-daemon"), Step("daemon-ready-tls")),
        # The mode's own checks first: they need only the daemon container.
        checks=(
            *extra_checks,
            Step("tls-required"),
            Step("inner-build"),
            Step("inner-run"),
            Step("isolated-from-host"),
        ),
        values=values,
        ci=ci_steps(ctx),
        **fields,  # type: ignore[arg-type]
    )
