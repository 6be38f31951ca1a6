"""The smoke modes as data: each mode is setup steps, checks and cleanup commands.

A mode becomes one POSIX shell script (templates/smoke/mode.sh.j2) that runs on the target:
every step and check prints its output between ``@@dindkit begin NAME`` and
``@@dindkit end NAME RC`` lines, the first failure stops the mode, and an EXIT trap runs the
cleanup commands (also on failure or a signal) and then verifies that nothing labelled with
the run's id is left. :func:`parse_output` turns that output back into check results.

Every object a mode creates carries the label ``dindkit.smoke.run=<run id>`` and a name
starting with ``dindkit-smoke-<run id>-``; only the cached base images stay.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from dindkit.templating import render

SOCKET = "/var/run/docker.sock"
LABEL_KEY = "dindkit.smoke.run"
MARKER = "@@dindkit"
DETAIL_LINES = 12

# Run inside a client container: a FROM scratch image around a static binary (busybox from
# Debian's busybox-static; in the official Alpine-based images the static docker CLI).
# Arguments: $1 label, $2 tag.
_BUILD_SCRIPT = r"""set -e
ctx=$(mktemp -d)
if [ -e /lib/ld-musl-x86_64.so.1 ]; then
  bin=/usr/local/bin/docker; cmd='["/docker", "--version"]'
else
  bin=/bin/busybox; cmd='["/busybox", "echo", "dindkit-smoke-ok"]'
fi
cp "$bin" "$ctx/"
printf 'FROM scratch\nCOPY %s /\nCMD %s\n' "${bin##*/}" "$cmd" >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build --force-rm --label "$1" -t "$2" "$ctx"
rm -rf "$ctx"
"""

# Bounded readiness wait for a daemon, inside a client container. $1: seconds.
_WAIT_SCRIPT = r"""deadline=$(( $(date +%s) + $1 ))
until docker version >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "no answer after $1 s:"; docker version; exit 1
  fi
  sleep 1
done
echo "answered after $(( $1 - deadline + $(date +%s) )) s"
docker info --format \
  'daemon {{.ServerVersion}}, storage driver {{.Driver}}, cgroup v{{.CgroupVersion}}'
"""


@dataclass(frozen=True)
class Step:
    """A named shell command run on the target; it passes when it exits 0."""

    name: str
    command: str


@dataclass(frozen=True)
class Mode:
    name: str
    title: str
    setup: tuple[Step, ...]
    checks: tuple[Step, ...]
    cleanup: tuple[str, ...]

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.setup + self.checks


@dataclass(frozen=True)
class Context:
    """What the modes need to know about the run and the host."""

    run_id: str
    cli_image: str
    dind_image: str
    user_uid: int = 1000
    socket_group: str = "docker"
    timeout: int = 120

    @property
    def prefix(self) -> str:
        return f"dindkit-smoke-{self.run_id}"

    @property
    def label(self) -> str:
        return f"{LABEL_KEY}={self.run_id}"


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


def _sh(script: str, *args: object) -> str:
    """``sh -c SCRIPT sh ARGS...`` as one quoted argument list."""
    return " ".join(["sh", "-c", q(script), "sh", *(q(arg) for arg in args)])


def _sweep(ctx: Context) -> tuple[str, ...]:
    """Remove whatever still carries the run's label (in dependency order)."""
    label = q(f"label={ctx.label}")
    return (
        f"docker ps -aq --filter {label} | xargs -r docker rm -f -v",
        f"docker image ls -q --filter {label} | xargs -r docker image rm -f",
        f"docker volume ls -q --filter {label} | xargs -r docker volume rm -f",
        f"docker network ls -q --filter {label} | xargs -r docker network rm",
    )


def verify_clean(ctx: Context) -> Step:
    label = q(f"label={ctx.label}")
    return Step(
        "cleanup",
        f"left=$(docker ps -aq --filter {label}; docker volume ls -q --filter {label}; "
        f"docker network ls -q --filter {label}; docker image ls -q --filter {label}); "
        'if [ -n "$left" ]; then echo "left behind:" $left; exit 1; fi; '
        f"echo 'nothing labelled {ctx.label} is left'",
    )


# DooD ------------------------------------------------------------------------------------


def dood(ctx: Context) -> Mode:
    """The host's socket in a non-root container that gets the socket's group.

    One client container (no network: the socket is a file) serves every positive check
    through ``docker exec``; the negative check starts the same container without the group.
    """
    tag = f"{ctx.prefix}-dood:latest"
    client, nogroup, inner = (f"{ctx.prefix}-dood-{n}" for n in ("client", "nogroup", "inner"))
    group = q(ctx.socket_group)

    def container(name: str, *command: str, group_add: bool = True, detach: bool = False) -> str:
        parts = [
            "docker run -d" if detach else "docker run --rm",
            f"--name {q(name)}",
            f"--label {q(ctx.label)}",
            "--network none",
            f"-v {SOCKET}:{SOCKET}",
            f"--user {ctx.user_uid}:{ctx.user_uid}",
            '--group-add "$SOCKET_GID"' if group_add else "",
            "-e HOME=/tmp",
            q(ctx.cli_image),
            *command,
        ]
        return " ".join(part for part in parts if part)

    def in_client(*command: str) -> str:
        return f"docker exec {q(client)} " + " ".join(command)

    socket_check = (
        f"[ -S {SOCKET} ] || {{ echo 'FAIL: no Docker socket at {SOCKET}'; exit 1; }}; "
        f"mode=$(stat -c %a {SOCKET}); name=$(stat -c %G {SOCKET}); "
        f"expected=$(getent group {group} | cut -d: -f3); "
        f'echo "{SOCKET}: mode $mode, group $name (gid $SOCKET_GID); '
        f'docker_socket_group {ctx.socket_group} has gid ${{expected:-none}}"; '
        'if [ "$SOCKET_GID" = 0 ]; then '
        f"echo 'FAIL: the socket belongs to group root (gid 0), not docker_socket_group "
        f"{ctx.socket_group}: a non-root container would need the root group'; exit 1; fi; "
        'if [ "$SOCKET_GID" != "$expected" ]; then '
        f'echo "FAIL: socket group $name (gid $SOCKET_GID) is not docker_socket_group '
        f"{ctx.socket_group} (gid ${{expected:-missing}}): check docker.socket's SocketGroup\"; "
        "exit 1; fi; "
        'case "$mode" in *[2367]) echo "FAIL: the socket is world-writable"; exit 1;; esac'
    )
    refused = (
        "if out=$("
        + container(nogroup, "docker", "version", group_add=False)
        + ' 2>&1); then echo "$out"; echo "FAIL: uid '
        + str(ctx.user_uid)
        + ' without the socket group reached the daemon: the socket is open to everyone"; '
        'exit 1; fi; echo "$out" | tail -n 3; '
        'case "$out" in *"permission denied"*) echo "refused as expected";; '
        '*) echo "FAIL: failed, but not with permission denied"; exit 1;; esac'
    )
    return Mode(
        name="dood",
        title="DooD: the host's Docker socket in a non-root container",
        setup=(
            Step("socket-group", socket_check),
            Step(
                "start-client", container(client, "sleep", str(ctx.timeout * 4 + 600), detach=True)
            ),
        ),
        checks=(
            Step("docker-version", in_client("docker", "version", "--format", q(_VERSION_FORMAT))),
            Step("build", in_client(_sh(_BUILD_SCRIPT, ctx.label, tag))),
            Step(
                "image-on-host",
                f"docker image inspect --format '{{{{.Id}}}} {{{{.Size}}}} bytes' {q(tag)}",
            ),
            Step(
                "run",
                in_client(
                    "docker run --rm --network none",
                    f"--name {q(inner)} --label {q(ctx.label)} {q(tag)}",
                ),
            ),
            Step("refused-without-group", refused),
        ),
        cleanup=(
            f"docker rm -f {q(client)} {q(nogroup)} {q(inner)}",
            f"docker image rm -f {q(tag)}",
        ),
    )


_VERSION_FORMAT = (
    "client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})"
)


# DinD and Sysbox -------------------------------------------------------------------------


def _daemon_mode(
    ctx: Context, name: str, title: str, run_flags: str, extra_checks: tuple[Step, ...]
) -> Mode:
    """A dind container (TLS as docker:dind sets it up) and a client container beside it."""
    p = ctx.prefix + "-" + name
    daemon, client, network = f"{p}-daemon", f"{p}-client", f"{p}-net"
    data, certs = f"{p}-data", f"{p}-certs"
    tag = f"{p}-inner:latest"
    label = q(ctx.label)

    def in_client(script: str, *args: object) -> str:
        return f"docker exec {q(client)} " + _sh(script, *args)

    start = (
        f"docker network create --label {label} {q(network)} >/dev/null && "
        f"docker volume create --label {label} {q(data)} >/dev/null && "
        f"docker volume create --label {label} {q(certs)} >/dev/null && "
        f"docker run -d --name {q(daemon)} --label {label} {run_flags} "
        f"--network {q(network)} --network-alias docker -e DOCKER_TLS_CERTDIR=/certs "
        f"-v {q(data)}:/var/lib/docker -v {q(certs)}:/certs/client {q(ctx.dind_image)} && "
        f"docker run -d --name {q(client)} --label {label} --network {q(network)} "
        "-e DOCKER_HOST=tcp://docker:2376 -e DOCKER_TLS_VERIFY=1 "
        f"-e DOCKER_CERT_PATH=/certs/client -v {q(certs)}:/certs/client:ro "
        f"{q(ctx.cli_image)} sleep {ctx.timeout * 4 + 600}"
    )
    wait = (
        in_client(_WAIT_SCRIPT, ctx.timeout)
        + f" || {{ echo '--- daemon log:'; docker logs --tail 20 {q(daemon)} 2>&1; exit 1; }}"
    )
    no_plain = in_client(
        "if DOCKER_TLS_VERIFY= DOCKER_CERT_PATH=/nonexistent docker --tls=false version "
        ">/tmp/out 2>&1; then cat /tmp/out; echo 'FAIL: the daemon answered plain TCP'; "
        "exit 1; fi; tail -n 1 /tmp/out; echo 'plain TCP without a client certificate refused'"
    )
    return Mode(
        name=name,
        title=title,
        setup=(Step("start-daemon", start), Step("daemon-ready-tls", wait)),
        checks=(
            Step("tls-required", no_plain),
            Step("inner-build", in_client(_BUILD_SCRIPT, ctx.label, tag)),
            Step("inner-run", in_client(f"docker run --rm --network none {q(tag)}")),
            Step(
                "isolated-from-host",
                f"if docker image inspect {q(tag)} >/dev/null 2>&1; then "
                f"echo 'FAIL: {tag} (built inside) is on the host'; exit 1; fi; "
                f"echo '{tag} is only inside the inner daemon'",
            ),
            *extra_checks,
        ),
        cleanup=(
            f"docker rm -f -v {q(client)} {q(daemon)}",
            f"docker volume rm -f {q(data)} {q(certs)}",
            f"docker network rm {q(network)}",
        ),
    )


def dind(ctx: Context) -> Mode:
    return _daemon_mode(
        ctx,
        "dind",
        "DinD: a privileged dind container, TLS on 2376",
        "--privileged",
        (),
    )


def sysbox(ctx: Context) -> Mode:
    daemon = f"{ctx.prefix}-sysbox-daemon"
    uid_map = (
        f'map=$(docker exec {q(daemon)} cat /proc/self/uid_map); echo "uid_map: $map"; '
        "set -- $map; "
        'if [ "$1 $2" = "0 0" ]; then echo "FAIL: root in the container is host root"; '
        "exit 1; fi"
    )
    no_socket = (
        f"mounts=$(docker inspect --format '{{{{range .Mounts}}}}{{{{.Source}}}} "
        f'{{{{end}}}}\' {q(daemon)}); echo "mounts: $mounts"; '
        'case "$mounts" in *docker.sock*) echo "FAIL: the host socket is mounted"; exit 1;; esac'
    )
    return _daemon_mode(
        ctx,
        "sysbox",
        "Sysbox: the dind image under sysbox-runc, without --privileged",
        "--runtime=sysbox-runc",
        (Step("uid-map-not-identity", uid_map), Step("no-host-socket", no_socket)),
    )


BUILDERS = {"dood": dood, "dind": dind, "sysbox": sysbox}


def build_mode(name: str, ctx: Context) -> Mode:
    return BUILDERS[name](ctx)


def script(mode: Mode, ctx: Context) -> str:
    """The shell script that runs a mode on the target."""
    return render(
        "smoke/mode.sh.j2",
        mode=mode,
        ctx=ctx,
        socket=SOCKET,
        marker=MARKER,
        steps=[(step.name, q(step.command)) for step in mode.steps],
        cleanup=[*mode.cleanup, *_sweep(ctx)],
        verify=q(verify_clean(ctx).command),
    )


_LINE = re.compile(rf"^{MARKER} (begin|end) (\S+)(?: (\d+))?(?: (\d+))?$")


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
