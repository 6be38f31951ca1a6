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
class Context:
    """What the modes need to know about the run and the host."""

    run_id: str
    cli_image: str
    dind_image: str
    podman_image: str = ""
    user_uid: int = 1000
    socket_group: str = "docker"
    timeout: int = 120
    rootless_user: str | None = None
    # The rootless user's socket; None: /run/user/<uid>/docker.sock.
    rootless_socket: str | None = None
    # The client image's archive on the target, for modes with their own image store
    # (rootless); empty: they copy cli_image from the host's store.
    cli_archive: str = ""
    # Prefix of the host paths the escape suite reads and writes (/root, /proc, /sys, /dev):
    # empty on a target; a unit test's folder of stand-ins.
    escape_host_root: str = ""

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

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.setup + self.checks + ((ESCAPE_STEP,) if self.expected else ())


ESCAPE_STEP = Step("escape")


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
    values = {"CLI_IMAGE": ctx.cli_image, "DIND_IMAGE": ctx.dind_image}
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
        **fields,  # type: ignore[arg-type]
    )
