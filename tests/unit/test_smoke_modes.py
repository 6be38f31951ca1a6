"""The smoke modes: every mode's script renders, passes shellcheck, and runs against a fake
docker (steps framed, first failure stops, cleanup always runs); skip conditions; parsing."""

from __future__ import annotations

import dataclasses
import getpass
import grp
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dindkit import ci_flow
from dindkit.report import Check
from dindkit.settings.smoke import SMOKE_MODES
from dindkit.smoke import escape, modes
from dindkit.smoke.deploy import judge_escapes, summarise
from dindkit.smoke.modes import guarded, rootless, sysbox, userns
from dindkit.templating import render
from tests import shellcheck

CTX = modes.Context(
    run_id="0a1b2c3d",
    cli_image="dindkit-smoke:abc",
    dind_image="dindkit-smoke:def",
    timeout=45,
    images={"podman": "dindkit-podman:123"},
    options={"user_uid": 1234, "socket_group": "docker", "rootless_user": "alice"},
)


def with_options(ctx: modes.Context, **options: object) -> modes.Context:
    return dataclasses.replace(ctx, options={**ctx.options, **options})


def script(name: str, ctx: modes.Context = CTX) -> str:
    return modes.script(modes.build_mode(name, ctx), ctx)


def body(name: str) -> str:
    """The mode's own part of its script (after the shared library)."""
    return script(name).split("# --- mode ")[1]


@pytest.mark.parametrize("name", SMOKE_MODES)
def test_every_mode_script_passes_shellcheck(name, tmp_path):
    path = tmp_path / f"{name}.sh"
    path.write_text(script(name))
    assert shellcheck.defects(path) == []


@pytest.mark.parametrize("inner", modes.common.INNER_SCRIPTS)
def test_every_inner_script_passes_shellcheck(inner, tmp_path):
    path = tmp_path / f"{inner}.sh"
    path.write_text(modes.common.inner_script(inner))
    assert shellcheck.defects(path) == []


@pytest.mark.parametrize("name", SMOKE_MODES)
def test_every_step_is_a_function_and_every_mode_says_what_it_grants(name):
    mode = modes.build_mode(name, CTX)
    text = script(name)
    for step in mode.steps:
        assert f"\n{step.function}() {{" in text, step
        assert f"run_step {step.name} {step.function}\n" in text
    assert "\ncleanup_mode() {" in text and "trap finish EXIT" in text
    assert mode.grants and "\n" not in mode.grants


@pytest.mark.parametrize("name", SMOKE_MODES)
def test_every_object_is_labelled_for_the_run(name):
    text = script(name)
    assert "LABEL=dindkit.smoke.run=0a1b2c3d" in text
    assert f"PREFIX=dindkit-smoke-0a1b2c3d-{name}" in text
    for line in text.splitlines():
        for created in ("docker run -d", "docker network create", "docker volume create"):
            if created in line:
                assert '--label "$LABEL"' in line, line


def test_dood_runs_non_root_with_the_socket_group():
    text = script("dood")
    assert "USER_UID=1234" in text and "SOCKET_GROUP=docker" in text
    assert '--user "$USER_UID:$USER_UID"' in text and '-v "$SOCKET:$SOCKET"' in text
    assert '"--group-add=$SOCKET_GID"' in text
    assert "--privileged" not in body("dood")
    assert "permission denied" in text


def test_privilege_of_each_dind_container():
    assert 'DAEMON_FLAGS="--privileged $(userns_host_flag)"' in script("dind")
    assert "DAEMON_FLAGS=--runtime=sysbox-runc" in script("sysbox")
    flags = next(line for line in script("userns").splitlines() if line.startswith("DAEMON_"))
    assert "--cap-add SYS_ADMIN --cap-add NET_ADMIN" in flags
    assert "seccomp=unconfined" in flags and "apparmor=unconfined" in flags
    assert "--privileged" not in flags


def test_podman_adds_no_capability_and_runs_non_root():
    text = body("podman")
    assert "--cap-add" not in text and "--privileged " not in text
    assert "PODMAN_UID=1000" in script("podman")
    assert "PODMAN_IMAGE=dindkit-podman:123" in script("podman")
    assert "systempaths=unconfined" in text and "--device /dev/net/tun" in text


def test_rootless_talks_to_the_users_socket_as_the_user():
    text = script("rootless")
    assert "ROOTLESS_USER=alice" in text
    assert 'runuser -u "$ROOTLESS_USER"' in text
    assert "/run/user/$ROOTLESS_UID/docker.sock" in text
    assert "--privileged $USERNS_FLAG" in text and "-v /:/host" in text
    # Without an archive the client is the host's CLI image, copied into the user's store.
    assert "CLIENT_IMAGE=dindkit-smoke:abc" in text and "CLI_ARCHIVE=''" in text


def test_rootless_imports_the_cli_archive_into_the_users_store():
    archive = "/var/cache/dindkit/images/dindkit-cli-0123abcd.tar.gz"
    ctx = dataclasses.replace(CTX, images={"rootless-client": archive})
    text = modes.script(modes.build_mode("rootless", ctx), ctx)
    assert f"CLI_ARCHIVE={archive}" in text and "CLIENT_IMAGE=dindkit-cli:0123abcd" in text
    assert 'docker import - "$CLIENT_IMAGE" <"$CLI_ARCHIVE"' in text
    assert '"$CLIENT_IMAGE" sleep "$KEEP_ALIVE"' in text


# Skip conditions ---------------------------------------------------------------------------


def runner(answers: dict[str, tuple[bool, str]]) -> modes.Runner:
    def run(command: str) -> tuple[bool, str]:
        for start, answer in answers.items():
            if command.startswith(start):
                return answer
        raise AssertionError(command)

    return run


def test_rootless_skipped_without_a_user_or_a_socket():
    no_user = modes.Context("r", "c", "d")
    assert "set smoke_rootless_user" in (rootless.skip_reason(no_user, runner({})) or "")
    missing = runner({"id -u": (False, "no such user")})
    assert "does not exist" in (rootless.skip_reason(CTX, missing) or "")
    no_socket = runner({"id -u": (True, "1001\n"), "test -S": (False, "")})
    assert "/run/user/1001/docker.sock" in (rootless.skip_reason(CTX, no_socket) or "")
    ready = runner({"id -u": (True, "1001\n"), "test -S": (True, "")})
    assert rootless.skip_reason(CTX, ready) is None


def test_userns_runs_only_where_the_daemon_remaps_users():
    plain = runner({"docker info": (True, '["name=apparmor","name=seccomp,profile=default"]')})
    assert "docker_userns_remap" in (userns.skip_reason(CTX, plain) or "")
    remapped = runner({"docker info": (True, '["name=seccomp","name=userns"]')})
    assert userns.skip_reason(CTX, remapped) is None


def test_sysbox_skipped_without_the_runtime():
    run = runner({"docker info": (True, '{"runc":{}}')})
    assert "sysbox-runc runtime is not registered" in (sysbox.skip_reason(CTX, run) or "")


# The scripts against a fake docker ------------------------------------------------------------

FAKE_DOCKER = """#!/bin/sh
case "$*" in
  *"@@escape begin"*) echo "docker exec (the escape attempts)" >>"$DOCKER_LOG";;
  *) echo "docker $*" >>"$DOCKER_LOG";;
esac
# The dind container as its flags make it: the host's user namespace, the host's devices.
case "$*" in
  "run -d --name "*"-daemon "*)
    case "$*" in *--privileged* | *--userns=host*) : >"$DOCKER_LOG.host-userns";; esac
    case "$*" in *--privileged* | *--device*) : >"$DOCKER_LOG.host-devices";; esac;;
esac
case "$*" in
  "exec -i -e CI_WORK="*)  # the CI steps: the flow runs here, against the stand-in client
    shift 2
    while [ "$1" = -e ]; do export "$2"; shift 2; done
    export CI_DOCKER="$FAKE_CI_CLIENT" CI_BUSYBOX="$FAKE_BUSYBOX"
    shift  # the job container
    exec "$@";;
  "exec "*" cat "*"/pushed") for last; do :; done; exec cat "$last" 2>/dev/null;;
  "exec "*"@@escape begin"*)  # the job container: the stand-in with the attempts' arguments
    shift 6; exec sh -c "$STAND_IN" stand-in "$@";;
  "exec "*"plain TCP refused"*)  # the TLS client: its script runs here, on this fake
    shift 4; exec sh -c "$1";;
  "--tls=false version")
    [ -n "$PLAIN_TCP" ] && { echo "Server: Docker Engine"; exit 0; }
    echo "Client sent an HTTP request to an HTTPS server."; exit 1;;
  "exec "*" docker info --format {{.ID}}") echo "${INNER_ID-INNER:DAEMON:ID}";;
  "info --format {{.ID}}") echo "$HOST_ID";;
  "inspect --format {{.HostConfig.CapAdd}} {{.HostConfig.Privileged}} "*)
    echo "${CAP_ADD:-[]} ${PRIVILEGED:-false}";;
  *"grep ^Cap /proc/self/status") printf 'CapEff:\\t%s\\n' "${CAP_EFF:-0000000000000000}";;
  "inspect --format {{.State.Pid}} {{.Id}} "*) echo "$JOB_PID $JOB_ID";;
  "info --format {{json .SecurityOptions}}") echo "${SECURITY_OPTIONS:-[]}";;
  "inspect --format {{.RestartCount}} "*) echo "${RESTARTS:-0}";;
  "image inspect --format"*) echo "sha256:0123 4096 bytes";;  # dood's build, on the host
  "image inspect"*) exit 1;;
  *"cat /proc/self/uid_map")
    if [ -e "$DOCKER_LOG.host-userns" ]; then echo "0 0 4294967295"
    else echo "${UID_MAP:-0 100000 65536}"; fi;;
  *"find /dev -type b") [ -e "$DOCKER_LOG.host-devices" ] && echo /dev/vda;;
  "exec "*" docker run --rm --privileged "*)  # guarded: the job socket's answer
    [ -n "$GUARD_RELAXED" ] && exit 0
    echo "${GUARD_ANSWER:-docker: Error response from daemon: $GUARD_REFUSAL}"
    exit 125;;
  "exec "*) [ -n "$FAIL_EXEC" ] && { echo "cannot connect"; exit 1; };;
  "run"*) [ -n "$REFUSE_RUN" ] && { echo "Error response from daemon: refused"; exit 125; };;
esac
case "$*" in
  "run --rm --name "*"--privileged"*) printf '%s' "$PROBE_OUTPUT";;
  "run --rm "*"docker version")  # dood's client without the socket's group
    case "$*" in *--group-add*) ;; *)
      [ -n "$SOCKET_OPEN" ] && { echo "Server: Docker Engine"; exit 0; }
      echo "permission denied while trying to connect to the Docker daemon socket"; exit 1;;
    esac;;
esac
exit 0
"""
# What openssl s_client shows when the daemon wants a client certificate (TLS 1.3).
REFUSED_TLS = "CONNECTED(00000003)\\n0A00045C:SSL routines::tlsv13 alert certificate required"
FAKE_OPENSSL = """#!/bin/sh
printf '%b\\n' "${OPENSSL_OUTPUT:-$REFUSED_TLS}"
"""
# The job socket's refusal (dindkit/jobs_proxy.py), as the docker CLI prints it.
GUARD_REFUSAL = "dindkit job socket: privileged containers are refused (rule privileged)."
# systemd's answer for the job socket unit (guarded): its listening path, JOBS_SOCKET_PATH.
FAKE_SYSTEMCTL = """#!/bin/sh
[ "$1 $2 $3" = "show -P Listen" ] && [ -n "$JOBS_SOCKET_PATH" ] && echo "$JOBS_SOCKET_PATH (Stream)"
exit 0
"""
# The registry's API for the CI steps' deletion: the request is logged; CURL_FAIL refuses it.
FAKE_CURL = """#!/bin/sh
echo "curl $*" >>"$DOCKER_LOG"
[ -z "$CURL_FAIL" ] || { echo "curl: (22) The requested URL returned error: 401"; exit 22; }
"""
FAKE_RUNUSER = """#!/bin/sh
shift 3  # -u USER --
exec "$@"
"""


# The escape suite against stand-ins -----------------------------------------------------------

HOST_ID = "HOST:DAEMON:ID"
JOB_PID, JOB_ID = "4242", "c0ffee1234"
HOST_PIDNS = "pid:[4026531836]"
# Attempts the job container judges itself (the kernel said yes or no).
CONTAINER_JUDGED = {"host-proc-sys", "kernel-module", "mount", "set-time"}
# What a stand-in job container does where an attempt succeeds. Arguments as the attempts
# get them: $1 canary, $2 marker, $3 root device, $4 listener port, $5 cgroup name.
SUCCEEDS = {
    "privileged-host-root": 'cat "$1"; echo privileged-host-root >>"$2"',
    "read-host-shadow": 'cat "$1"',
    "write-host-root": 'echo write-host-root >>"$2"',
    "host-block-device": (
        'echo "sha256=$(dd if="$FAKE_ROOT/dev/block/$3" bs=512 skip=2 count=1 2>/dev/null'
        " | sha256sum | cut -d' ' -f1)\""
    ),
    "host-pid": 'echo "pidns=$(readlink "$FAKE_ROOT/proc/1/ns/pid")"',
    "cgroup-escape": 'mkdir "$FAKE_ROOT/sys/fs/cgroup/$5"',
    # through the socket REACHED_SOCKET (default: the host's root socket), by device:inode
    "host-docker-socket": (
        'echo "daemon-id=$HOST_ID via $(stat -L -c %d:%i'
        ' "${REACHED_SOCKET:-$FAKE_ROOT/var/run/docker.sock}")"'
    ),
    "host-loopback": (
        "python3 -c 'import socket, sys; "
        's = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); '
        'print(s.recv(200).decode())\' "$4"'
    ),
    "container-root-on-host": ('printf "Uid:\\t0\\t0\\t0\\t0\\n" >"$FAKE_ROOT/proc/4242/status"'),
}


def stand_in(outcomes: Mapping[str, str]) -> str:
    """A job container whose attempts come out as OUTCOMES (attempt -> outcome) say."""
    lines = []
    for name in escape.ATTEMPTS:
        outcome = outcomes[name]
        state = outcome if name in CONTAINER_JUDGED or outcome == "inconclusive" else "ran"
        action = {
            "allowed": SUCCEEDS.get(name, "echo done"),
            "blocked": "echo 'Permission denied'",
            "inconclusive": "echo 'sh: probe: not found'",
        }[outcome]
        lines += [f"echo '@@escape begin {name}'", action, f"echo '@@escape end {name} {state}'"]
    return "\n".join(lines)


def fake_host(root: Path) -> None:
    """The host paths the escape suite reads, as a host where nothing leaked shows them."""
    (root / "root").mkdir(parents=True)
    (root / "proc/1/ns").mkdir(parents=True)
    (root / "proc/1/ns/pid").symlink_to(HOST_PIDNS)
    job = root / "proc" / JOB_PID
    job.mkdir()
    (job / "status").write_text("Uid:\t101000\t101000\t101000\t101000\n")
    (job / "cgroup").write_text(f"0::/system.slice/docker-{JOB_ID}.scope\n")
    (job / "uid_map").write_text("         0     100000      65536\n")
    (root / "sys/fs/cgroup").mkdir(parents=True)
    (root / "sys/fs/cgroup/cgroup.controllers").write_text("cpu memory\n")
    (root / "dev/block").mkdir(parents=True)
    (root / "dev/block/0:0").write_bytes(os.urandom(4096))
    (root / "var/run").mkdir(parents=True)
    (root / "var/run/docker.sock").touch()  # the root socket, told apart by device:inode


def run_script(
    tmp_path: Path,
    mode: modes.Mode,
    ctx: modes.Context = CTX,
    attempts: Mapping[str, str] | None = None,
    **env: str,
) -> tuple[int, str, str]:
    """The mode's script against a fake docker; the escape attempts' job container is a
    stand-in whose outcomes are ATTEMPTS (default: as the mode declares)."""
    host_root = tmp_path / "host"
    fake_host(host_root)
    ctx = dataclasses.replace(ctx, escape_host_root=str(host_root))
    outcomes = {**mode.expected, **(attempts or {})}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (
        ("docker", FAKE_DOCKER),
        ("runuser", FAKE_RUNUSER),
        ("openssl", FAKE_OPENSSL),
        ("systemctl", FAKE_SYSTEMCTL),
        ("curl", FAKE_CURL),
    ):
        fake = bin_dir / name
        fake.write_text(text)
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "docker.log"
    log.touch()
    process = subprocess.run(
        ["sh", "-c", modes.script(mode, ctx)],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "DOCKER_LOG": str(log),
            "STAND_IN": stand_in(outcomes) if outcomes else "exit 0",
            "FAKE_ROOT": str(host_root),
            "HOST_ID": HOST_ID,
            "JOB_PID": JOB_PID,
            "JOB_ID": JOB_ID,
            "REFUSED_TLS": REFUSED_TLS,
            "GUARD_REFUSAL": GUARD_REFUSAL,
            **env,
        },
        timeout=60,
    )
    return process.returncode, process.stdout, log.read_text()


def checks_of(mode: modes.Mode, output: str) -> dict[str, modes.CheckResult]:
    return {check.name: check for check in modes.parse_output(mode, output).checks}


def test_script_passes_every_step_and_cleans_up(tmp_path):
    mode = modes.build_mode("dind", CTX)
    code, output, calls = run_script(tmp_path, mode)
    assert code == 0, output
    parsed = modes.parse_output(mode, output)
    assert [c.status for c in parsed.checks] == ["passed"] * (len(mode.steps) + 1)
    assert parsed.checks[-1].name == "cleanup"
    assert "docker rm -f -v dindkit-smoke-0a1b2c3d-dind-client" in calls
    assert "docker network rm dindkit-smoke-0a1b2c3d-dind-net" in calls
    assert "--privileged" in calls and "--userns=host" not in calls
    # The stand-in behaved as dind declares: the host's verdicts agree, the escape check passes.
    checks = [Check(c.name, c.status, c.detail) for c in parsed.checks]
    escapes = judge_escapes(mode, output, checks)
    assert {name: e.outcome for name, e in escapes.items()} == dict(mode.expected), output
    assert checks[-2].name == "escape" and checks[-2].status == "passed"
    assert not list((tmp_path / "host/root").iterdir())  # canary and marker removed


def test_script_stops_at_the_first_failure_and_still_cleans_up(tmp_path):
    mode = modes.build_mode("dind", CTX)
    code, output, calls = run_script(tmp_path, mode, FAIL_EXEC="1")
    assert code == 1
    checks = checks_of(mode, output)
    assert checks["start-daemon"].status == "passed"
    assert checks["daemon-ready-tls"].status == "failed"
    assert "cannot connect" in checks["daemon-ready-tls"].detail
    assert "--- daemon log:" in checks["daemon-ready-tls"].detail
    assert checks["inner-build"].status == "skipped"
    assert checks["cleanup"].status == "passed"
    assert "docker volume rm -f dindkit-smoke-0a1b2c3d-dind-data" in calls


@pytest.mark.parametrize("name", ["dind", "userns", "sysbox"])
def test_a_dind_container_whose_dockerd_exited_is_started_again_and_says_so(name, tmp_path):
    """CI on be6e1d1: under load dockerd gave up on its containerd and the check waited 180 s
    on a container that had exited."""
    mode = modes.build_mode(name, CTX)
    code, output, calls = run_script(tmp_path / "once", mode, RESTARTS="1")
    assert code == 0, output
    assert f"--name dindkit-smoke-0a1b2c3d-{name}-daemon --label " in calls
    assert " --restart on-failure:2 " in calls
    detail = checks_of(mode, output)["daemon-ready-tls"].detail
    assert "the dind container was started again 1 time(s): its dockerd had exited" in detail
    code, output, _ = run_script(tmp_path / "never", mode)
    assert "started again" not in checks_of(mode, output)["daemon-ready-tls"].detail


def test_on_a_remapping_daemon_dind_uses_the_host_namespace_and_says_so(tmp_path):
    mode = modes.build_mode("dind", CTX)
    code, output, calls = run_script(tmp_path, mode, SECURITY_OPTIONS='["name=userns"]')
    assert code == 0, output
    assert "--privileged --userns=host" in calls
    detail = checks_of(mode, output)["start-daemon"].detail
    assert "the daemon remaps users: the dind container runs with --userns=host" in detail


def test_on_a_remapping_daemon_dood_uses_the_host_namespace_and_says_so():
    text = body("dood")
    assert "USERNS_FLAG=$(userns_host_flag)" in text
    assert "docker run $detach $USERNS_FLAG" in text
    assert "the daemon remaps users: the client runs with $USERNS_FLAG" in text


def test_userns_uid_map_check_fails_on_an_identity_map(tmp_path):
    mode = modes.build_mode("userns", CTX)
    code, output, _ = run_script(tmp_path, mode, UID_MAP="0 0 4294967295")
    assert code == 1
    check = checks_of(mode, output)["uid-map-not-identity"]
    assert check.status == "failed"
    assert check.detail.startswith("FAIL: root in the container is host root")
    (tmp_path / "ok").mkdir()
    code, output, _ = run_script(tmp_path / "ok", mode)
    assert checks_of(mode, output)["uid-map-not-identity"].status == "passed", output


def test_rootless_escalation_is_reported(tmp_path):
    path = tmp_path / "docker.sock"
    socket.socket(socket.AF_UNIX).bind(str(path))
    ctx = with_options(CTX, rootless_user=getpass.getuser(), rootless_socket=str(path))
    mode = modes.build_mode("rootless", ctx)
    probe = "read /etc/shadow\nwrote to /root\nprobed\n"
    code, output, _ = run_script(tmp_path, mode, ctx, PROBE_OUTPUT=probe)
    check = checks_of(mode, output)["no-escalation"]
    assert code == 1 and check.status == "failed", output
    assert check.detail.startswith("FAIL: escalation: a --privileged -v /:/host container")
    assert "read /etc/shadow,wrote to /root" in check.detail
    (tmp_path / "ok").mkdir()
    code, output, _ = run_script(tmp_path / "ok", mode, ctx, PROBE_OUTPUT="probed\n")
    assert checks_of(mode, output)["no-escalation"].status == "passed", output


def job_socket(folder: Path, mode: int = 0o660) -> Path:
    """A listening unix socket standing in for the job socket, in a group that is not root's."""
    path = folder / "jobs.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    os.chown(path, -1, 4242 if os.geteuid() == 0 else os.getgid())
    path.chmod(mode)
    return path


def test_guarded_works_through_the_job_socket_and_cleans_up(tmp_path):
    mode = modes.build_mode("guarded", CTX)
    sock = job_socket(tmp_path)
    code, output, calls = run_script(tmp_path, mode, JOBS_SOCKET_PATH=str(sock))
    assert code == 0, output
    parsed = modes.parse_output(mode, output)
    assert [c.status for c in parsed.checks] == ["passed"] * (len(mode.steps) + 1), output
    client = next(line for line in calls.splitlines() if line.startswith("docker run -d"))
    assert f"-v {sock}:/var/run/docker.sock" in client and "--group-add" in client
    assert "--user 1234:1234" in client and "--privileged" not in client
    # the job asks for a privileged container; the guard's refusal names its rule
    assert (
        "refused by the guard's rule privileged"
        in checks_of(mode, output)["refused-by-the-guard"].detail
    )
    checks = [Check(c.name, c.status, c.detail) for c in parsed.checks]
    escapes = judge_escapes(mode, output, checks)
    assert {name: e.outcome for name, e in escapes.items()} == dict(mode.expected), output


@pytest.mark.parametrize(
    ("weakening", "env", "check", "detail"),
    [
        ("no job socket", {}, "socket-group", "FAIL: no job socket"),
        ("a world-writable job socket", {"mode": "0o666"}, "socket-group", "world-writable"),
        (
            "the guard's privileged rule relaxed",
            {"GUARD_RELAXED": "1"},
            "refused-by-the-guard",
            "FAIL: a --privileged container started through the job socket",
        ),
        (
            "refused by dockerd, not by the guard",
            {"GUARD_ANSWER": "Error response from daemon: privileged mode is incompatible"},
            "refused-by-the-guard",
            "FAIL: refused, but not by the guard's privileged rule",
        ),
    ],
)
def test_guarded_checks_fail_on_a_weakened_host(tmp_path, weakening, env, check, detail):
    mode = modes.build_mode("guarded", CTX)
    env = dict(env)
    if weakening != "no job socket":
        env["JOBS_SOCKET_PATH"] = str(job_socket(tmp_path, int(env.pop("mode", "0o660"), 8)))
    code, output, _ = run_script(tmp_path, mode, **env)
    result = checks_of(mode, output)[check]
    assert code == 1 and result.status == "failed", output
    assert detail in result.detail, result.detail


@pytest.mark.parametrize(
    ("reached", "privileged", "outcome", "detail"),
    [
        ("job", "blocked", "blocked", "only through {job}, which refused the privileged container"),
        ("job", "allowed", "allowed", "through {job}, which let a privileged container through"),
        ("root", "blocked", "allowed", "through its root socket /var/run/docker.sock"),
        ("other", "blocked", "allowed", "through a socket that filters nothing known"),
    ],
)
def test_guarded_host_socket_verdict_tells_the_job_socket_from_the_others(
    tmp_path, reached, privileged, outcome, detail
):
    """The host's daemon answers through every socket: the host judges which socket it was."""
    mode = modes.build_mode("guarded", CTX)
    sock = job_socket(tmp_path)
    other = tmp_path / "unfiltered.sock"
    other.touch()
    socket_path = {"job": str(sock), "root": "", "other": str(other)}[reached]
    attempts = {"host-docker-socket": "allowed", "privileged-host-root": privileged}
    env = {"JOBS_SOCKET_PATH": str(sock), "REACHED_SOCKET": socket_path}
    _, output, _ = run_script(tmp_path, mode, attempts=attempts, **env)
    checks = [Check(c.name, c.status, c.detail) for c in modes.parse_output(mode, output).checks]
    verdict = judge_escapes(mode, output, checks)["host-docker-socket"]
    assert verdict.outcome == outcome, output
    assert detail.format(job=sock) in verdict.evidence, verdict.evidence


def test_guarded_escape_fails_when_the_privileged_container_gets_through(tmp_path):
    mode = modes.build_mode("guarded", CTX)
    sock = job_socket(tmp_path)
    attempts = {"privileged-host-root": "allowed", "read-host-shadow": "allowed"}
    code, output, _ = run_script(tmp_path, mode, attempts=attempts, JOBS_SOCKET_PATH=str(sock))
    checks = [Check(c.name, c.status, c.detail) for c in modes.parse_output(mode, output).checks]
    escapes = judge_escapes(mode, output, checks)
    assert escapes["privileged-host-root"].outcome == "allowed"
    escape_check = next(c for c in checks if c.name == "escape")
    assert code == 0  # the step ran; the verdict is the host's and the declaration's
    assert escape_check.status == "failed", output
    assert escape_check.detail.startswith("FAIL: privileged-host-root allowed, expected blocked")


def test_guarded_skipped_without_the_job_socket_unit():
    missing = runner({"systemctl is-enabled": (False, "")})
    assert "guard_enabled" in (guarded.skip_reason(CTX, missing) or "")
    assert guarded.skip_reason(CTX, runner({"systemctl is-enabled": (True, "enabled\n")})) is None


# Parsing --------------------------------------------------------------------------------------


def test_parse_output_marks_a_cut_off_step_failed():
    mode = modes.build_mode("dood", CTX)
    output = (
        "@@dindkit begin socket-group\nok\n@@dindkit end socket-group 0\n"
        "@@dindkit begin start-client\nhalf"
    )
    checks = checks_of(mode, output)
    assert checks["socket-group"].status == "passed"
    assert checks["start-client"].status == "failed"
    assert "ended before" in checks["start-client"].detail
    assert checks["run"].status == "skipped"
    assert checks["cleanup"].status == "failed"


def test_fail_lines_lead_the_detail_and_the_reason():
    mode = modes.build_mode("dood", CTX)
    noise = "\n".join(f"line {n}" for n in range(30))
    output = (
        "@@dindkit begin socket-group\nFAIL: socket group root (gid 0) is not docker\n"
        f"{noise}\n@@dindkit end socket-group 1\n@@dindkit begin cleanup\n@@dindkit end cleanup 0\n"
    )
    parsed = modes.parse_output(mode, output)
    first = parsed.checks[0]
    assert first.detail.splitlines()[0] == "FAIL: socket group root (gid 0) is not docker"
    assert first.detail.splitlines()[-1] == "(exit status 1)"
    checks = [Check(c.name, c.status, c.detail) for c in parsed.checks]
    result = summarise(mode, checks, 3.0)
    assert result.status == "failed"
    assert result.reason == "socket-group: socket group root (gid 0) is not docker"
    # No attempt measured: the grants say what the mode declares, and that it is not measured.
    assert result.grants.startswith("declared (not measured here): allowed: host root through")


def test_summarise_passed():
    mode = modes.build_mode("podman", CTX)
    checks = [Check(s.name, "passed") for s in mode.steps]
    result = summarise(mode, checks, 1.5)
    assert (result.status, result.seconds) == ("passed", 1.5)
    assert result.grants == "declared (not measured here): blocked: " + ", ".join(
        escape.ATTEMPTS.values()
    )


# Weakenings: a stand-in job container that behaves as a weakened host would ----------------


def escape_run(tmp_path: Path, name: str, attempts: Mapping[str, str]) -> tuple[Check, Any]:
    mode = modes.build_mode(name, CTX)
    code, output, _ = run_script(tmp_path, mode, attempts=attempts)
    checks = [Check(c.name, c.status, c.detail) for c in modes.parse_output(mode, output).checks]
    escapes = judge_escapes(mode, output, checks)
    result = summarise(mode, checks, 1.0, escapes)
    return next(check for check in checks if check.name == "escape"), (result, escapes, code)


@pytest.mark.parametrize("attempt", [name for name in escape.ATTEMPTS if name != "mount"])
def test_every_attempt_turns_the_mode_red_when_it_gets_through(attempt, tmp_path):
    """userns declares every attempt but mount blocked; the stand-in lets one through."""
    check, (result, escapes, code) = escape_run(tmp_path, "userns", {attempt: "allowed"})
    assert escapes[attempt].outcome == "allowed", escapes[attempt].evidence
    assert code == 0  # the step ran; the verdict is the host's and the declaration's
    assert check.status == "failed"
    assert check.detail.startswith(f"FAIL: {attempt} allowed, expected blocked: ")
    assert result.status == "failed" and result.reason.startswith(f"escape: {attempt} allowed")
    assert escape.ATTEMPTS[attempt] in result.grants.split("; blocked: ")[0]
    # The host's canary and marker count whoever got them: the privileged route reads and writes.
    through = {"privileged-host-root": {"read-host-shadow", "write-host-root"}}
    others = {name: e.outcome for name, e in escapes.items() if name != attempt}
    assert others == {
        name: "allowed" if name in through.get(attempt, ()) else outcome
        for name, outcome in userns.EXPECTED.items()
        if name != attempt
    }
    assert not list((tmp_path / "host/root").iterdir())  # canary and marker removed


def test_a_declared_allowance_that_is_blocked_is_red_too(tmp_path):
    """The matrix documents the mode: a declared "allowed" that is blocked is a wrong claim."""
    check, (result, escapes, _) = escape_run(tmp_path, "userns", {"mount": "blocked"})
    assert result.status == "failed"
    assert escapes["mount"].outcome == "blocked"
    assert check.status == "failed"
    assert check.detail.startswith("FAIL: mount blocked, expected allowed")


def test_a_probe_that_cannot_run_is_inconclusive_and_fails_the_mode(tmp_path):
    check, (result, escapes, _) = escape_run(tmp_path, "userns", {"kernel-module": "inconclusive"})
    assert escapes["kernel-module"].outcome == "inconclusive"
    assert check.status == "failed"
    assert check.detail.startswith(
        "FAIL: kernel-module inconclusive (a probe that did not run proves nothing)"
    )
    assert result.status == "failed"


def failed_check(mode: modes.Mode, output: str) -> modes.CheckResult:
    failed = modes.parse_output(mode, output).failed
    assert failed, output
    return failed[0]


@pytest.mark.parametrize(
    ("name", "weakening", "check", "fail"),
    [
        ("dind", {"PLAIN_TCP": "1"}, "tls-required", "FAIL: the daemon answered plain TCP"),
        (
            "dind",
            {"OPENSSL_OUTPUT": 'HTTP/1.1 200 OK\n{"ApiVersion":"1.41"}'},
            "tls-required",
            "FAIL: the daemon answered TLS without a client certificate",
        ),
        (
            "userns",
            {"OPENSSL_OUTPUT": "connect:errno=111"},
            "tls-required",
            "FAIL: inconclusive: the TLS attempt without a client certificate got no refusal",
        ),
        ("sysbox", {"INNER_ID": HOST_ID}, "no-host-socket", "FAIL: the dind container's socket"),
        ("sysbox", {"INNER_ID": ""}, "no-host-socket", "FAIL: inconclusive: no daemon ID"),
    ],
)
def test_every_daemon_check_turns_red_on_its_weakening(name, weakening, check, fail, tmp_path):
    mode = modes.build_mode(name, CTX)
    code, output, _ = run_script(tmp_path, mode, **weakening)
    failed = failed_check(mode, output)
    assert code == 1 and failed.name == check, output
    assert failed.detail.startswith(fail), failed.detail
    (tmp_path / "as-built").mkdir()  # and without the weakening the check passes
    code, output, _ = run_script(tmp_path / "as-built", mode)
    assert checks_of(mode, output)[check].status == "passed", output


@pytest.mark.parametrize(
    ("flag", "check", "fail"),
    [
        ("--privileged", "uid-map-not-identity", "FAIL: root in the container is host root"),
        ("--userns=host", "uid-map-not-identity", "FAIL: root in the container is host root"),
        ("--device /dev/vda", "no-host-devices", "FAIL: the container sees host block devices"),
    ],
)
def test_userns_turns_red_when_its_container_gets_host_privileges(flag, check, fail, tmp_path):
    """The fake daemon gives the dind container what its flags ask for."""
    mode = userns.build(CTX, daemon_flags=f"{userns.DAEMON_FLAGS} {flag}")
    code, output, _ = run_script(tmp_path, mode)
    failed = failed_check(mode, output)
    assert code == 1 and failed.name == check, output
    assert failed.detail.startswith(fail), failed.detail


def test_rootless_probe_that_cannot_run_is_inconclusive_and_fails(tmp_path):
    path = tmp_path / "docker.sock"
    socket.socket(socket.AF_UNIX).bind(str(path))
    ctx = with_options(CTX, rootless_user=getpass.getuser(), rootless_socket=str(path))
    mode = modes.build_mode("rootless", ctx)
    code, output, _ = run_script(tmp_path, mode, ctx, PROBE_OUTPUT="")
    failed = failed_check(mode, output)
    assert code == 1 and failed.name == "no-escalation"
    assert failed.detail.startswith("FAIL: inconclusive: the --privileged -v /:/host probe")


def test_a_docker_that_refuses_every_run_fails_every_mode(tmp_path):
    for name in ("dood", "dind", "rootless", "userns", "podman"):
        mode = modes.build_mode(name, CTX)
        (tmp_path / name).mkdir()
        _, output, _ = run_script(tmp_path / name, mode, REFUSE_RUN="1")
        result = summarise(
            mode,
            [Check(c.name, c.status, c.detail) for c in modes.parse_output(mode, output).checks],
            1.0,
        )
        assert result.status == "failed", (name, output)


def socket_for_dood(tmp_path: Path, mode: int, base: modes.Context = CTX) -> tuple[modes.Mode, str]:
    """dood on a socket of ours: group a non-root group, permissions MODE."""
    group = next(each for each in grp.getgrall() if each.gr_gid != 0)
    path = tmp_path / "docker.sock"
    socket.socket(socket.AF_UNIX).bind(str(path))
    os.chown(path, -1, group.gr_gid)
    path.chmod(mode)
    ctx = with_options(base, socket_group=group.gr_name)
    dood = modes.build_mode("dood", ctx)
    return dataclasses.replace(dood, values={**dood.values, "SOCKET": str(path)}), group.gr_name


def test_dood_turns_red_on_a_world_writable_socket_or_one_open_to_all(tmp_path):
    (tmp_path / "0660").mkdir()
    mode, _ = socket_for_dood(tmp_path / "0660", 0o660)
    code, output, _ = run_script(tmp_path / "0660", mode)
    assert checks_of(mode, output)["socket-group"].status == "passed", output
    assert checks_of(mode, output)["refused-without-group"].status == "passed", output
    (tmp_path / "0666").mkdir()
    mode, _ = socket_for_dood(tmp_path / "0666", 0o666)
    code, output, _ = run_script(tmp_path / "0666", mode)
    failed = failed_check(mode, output)
    assert failed.name == "socket-group" and "FAIL: the socket is world-writable" in failed.detail
    (tmp_path / "open").mkdir()
    mode, _ = socket_for_dood(tmp_path / "open", 0o660)
    code, output, _ = run_script(tmp_path / "open", mode, SOCKET_OPEN="1")
    assert code == 1
    failed = failed_check(mode, output)
    assert failed.name == "refused-without-group"
    assert failed.detail.startswith("FAIL: uid 1234 without the socket group reached the daemon")


@pytest.mark.parametrize(
    ("weakening", "check", "fail"),
    [
        ({"CAP_ADD": "[SYS_ADMIN]"}, "start-container", "FAIL: the container has added capab"),
        ({"PRIVILEGED": "true"}, "start-container", "FAIL: the container has added capab"),
        ({"CAP_EFF": "00000000a80425fb"}, "no-capabilities", "FAIL: the container's process has"),
    ],
)
def test_podman_turns_red_when_its_container_gets_capabilities(weakening, check, fail, tmp_path):
    mode = modes.build_mode("podman", CTX)
    code, output, _ = run_script(tmp_path, mode, **weakening)
    failed = failed_check(mode, output)
    assert code == 1 and failed.name == check, output
    assert failed.detail.startswith(fail), failed.detail
    (tmp_path / "as-built").mkdir()
    code, output, _ = run_script(tmp_path / "as-built", mode)
    assert checks_of(mode, output)[check].status == "passed", output


def test_busybox_date_that_refuses_but_exits_0_is_blocked(tmp_path):
    """Found in the lab (rootless): busybox date says "can't set date" and exits 0. The
    attempts run here as nobody (every attempt refused, nothing touched), with that busybox."""
    shared = Path(tempfile.mkdtemp(prefix="dindkit-escape-test-"))  # nobody reaches it
    shared.chmod(0o755)
    bin_dir = shared / "bin"
    bin_dir.mkdir()
    fakes = {
        "busybox": '[ "$1 $2" = "date -s" ] && { echo "date: can\'t set date: Operation not '
        'permitted"; exit 0; }\n[ "$1" = date ] && { echo "2026-12-06 14:00:00"; exit 0; }\n'
        "exit 127",
        "date": 'echo "busybox date"',  # not GNU date
    }
    for name, text in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{text}\n")
        (bin_dir / name).chmod(0o755)
    bin_dir.chmod(0o755)
    args = ["/nonexistent/canary", "/nonexistent/marker", "0:0", "1", "cg", "l", "img", "bb", "n"]
    command = ["sh", "-c", render(modes.common.ESCAPE_ATTEMPTS), "attempts", *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "nobody", "--", *command]
    output = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        timeout=60,
        cwd="/",
    ).stdout
    shutil.rmtree(shared)
    assert "@@escape end set-time blocked" in output, output
    assert "can't set date" in output


# The CI steps (with the registry on) against a stand-in client -------------------------------

FAKE_CI_CLIENT = Path(__file__).with_name("fake_registry_client.py")


def ci_context(tmp_path: Path, ctx: modes.Context = CTX) -> modes.Context:
    credentials = tmp_path / "credentials"
    credentials.write_text("username=dindkit\npassword=s3cret\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    registry = modes.common.CiRegistry("172.17.0.1:5000", str(ca), str(credentials))
    return dataclasses.replace(ctx, ci=registry, nested_bridge="10.250.0.1/24")


def ci_env(tmp_path: Path, **env: str) -> dict[str, str]:
    (tmp_path / "client").mkdir()
    (tmp_path / "busybox").write_bytes(b"\x7fELF stand-in")
    return {
        "FAKE_BUSYBOX": str(tmp_path / "busybox"),
        "FAKE_CI_CLIENT": f"{sys.executable} {FAKE_CI_CLIENT}",
        "FAKE_CLIENT_STATE": str(tmp_path / "client"),
        "CI_WORK": str(tmp_path / "ci-work"),
        "CI_USER_CA": str(tmp_path / "user-home/.config/docker/certs.d/172.17.0.1:5000/ca.crt"),
        **env,
    }


def ci_mode(name: str, tmp_path: Path) -> tuple[modes.Mode, modes.Context, dict[str, str]]:
    """Mode NAME with the registry on, and what its script needs to pass on the fakes."""
    ctx, env = ci_context(tmp_path), ci_env(tmp_path)
    if name == "dood":
        mode, _ = socket_for_dood(tmp_path, 0o660, ctx)
        return mode, ctx, env
    if name == "guarded":
        env["JOBS_SOCKET_PATH"] = str(job_socket(tmp_path))
    if name == "rootless":
        path = tmp_path / "docker.sock"
        socket.socket(socket.AF_UNIX).bind(str(path))
        ctx = with_options(ctx, rootless_user=getpass.getuser(), rootless_socket=str(path))
        env["PROBE_OUTPUT"] = "probed\n"
    mode = modes.build_mode(name, ctx)
    if name == "podman":  # reads the container's /proc/PID/status on this machine: not here
        checks = tuple(step for step in mode.checks if step.name != "not-root-on-host")
        mode = dataclasses.replace(mode, checks=checks)
    return mode, ctx, env


@pytest.mark.parametrize("name", SMOKE_MODES)
def test_with_the_registry_every_mode_runs_the_ci_flow_in_its_job(name, tmp_path):
    mode, ctx, env = ci_mode(name, tmp_path)
    ci = [step.name for step in mode.steps if step.name.startswith("ci-")]
    assert ci == list(ci_flow.SMOKE_STAGES)
    assert mode.steps[-1].name == "escape"  # the attempts still come last
    code, output, calls = run_script(tmp_path, mode, ctx, **env)
    checks = checks_of(mode, output)
    assert code == 0, output
    assert all(checks[step].status == "passed" for step in ci), output
    flow = ci_flow.steps("\n".join(checks[stage].detail for stage in ci))
    assert list(flow) == list(ci_flow.STEPS) and {s for s, _ in flow.values()} == {"passed"}
    assert "printed the build argument ci-value-run-" in checks["ci-pull"].detail
    assert set(ci_flow.build_seconds(output)) == {"cold", "warm"}
    # the pushed manifest is deleted in the registry, with the CA, the credential on stdin
    delete = next(line for line in calls.splitlines() if line.startswith("curl "))
    assert "-X DELETE https://172.17.0.1:5000/v2/dindkit/smoke-" + name in delete
    assert "-K -" in delete and "s3cret" not in calls
    assert not (tmp_path / "user-home/.config/docker/certs.d/172.17.0.1:5000").exists()


def test_the_modes_hand_the_registry_ca_to_their_jobs_daemon(tmp_path):
    ctx = ci_context(tmp_path)
    dind = script("dind", ctx)
    assert "CI_TRUST_DIR=/etc/docker/certs.d" in dind and "DIND_ARGS=--bip=10.250.0.1/24" in dind
    assert (
        '${CI_TRUST_DIR:+-v "$CI_TRUST_DIR:/etc/docker/certs.d:ro"} "$DIND_IMAGE" $DIND_ARGS'
        in dind
    )
    podman = script("podman", ctx)
    assert "CI_ENGINE=podman" in podman and "CI_CERT_DIR=/etc/dindkit-ci-certs" in podman
    assert "target=$CI_CERT_DIR/ca.crt,readonly" in podman
    # without the registry: no CI step, no CA, no --cert-dir
    plain = modes.build_mode("podman", CTX)
    assert not [step for step in plain.steps if step.name.startswith("ci-")]
    assert "CI_FLOW=''" in script("podman") and "\nCI_CERT_DIR=" not in script("podman")
    assert "CI_TRUST_DIR=''" in script("dind")


@pytest.mark.parametrize("name", ["dood", "rootless", "podman", "dind"])
def test_with_the_registry_every_mode_script_passes_shellcheck(name, tmp_path):
    path = tmp_path / f"{name}.sh"
    path.write_text(script(name, ci_context(tmp_path)))
    assert shellcheck.defects(path) == []


@pytest.mark.parametrize(
    ("fault", "failed"),
    [("wrong-digest", "ci-pull"), ("no-cache", "ci-rebuild"), ("push", "ci-push")],
)
def test_a_ci_step_fails_where_the_client_misbehaves_and_the_push_is_still_deleted(
    fault, failed, tmp_path
):
    mode, ctx, env = ci_mode("dood", tmp_path)
    code, output, calls = run_script(tmp_path, mode, ctx, **env, FAKE_CLIENT_FAULT=fault)
    checks = checks_of(mode, output)
    assert code == 1
    assert checks[failed].status == "failed", output
    assert checks["ci-cleanup"].status == "skipped" and checks["escape"].status == "skipped"
    assert checks["cleanup"].status == "passed"
    pushed = fault == "wrong-digest"  # the push had happened: the exit deletes it
    deleted = [line for line in calls.splitlines() if line.startswith("curl ") and "DELETE" in line]
    assert bool(deleted) is pushed, calls


def test_the_ci_cleanup_fails_when_the_registry_refuses_the_deletion(tmp_path):
    mode, ctx, env = ci_mode("dood", tmp_path)
    code, output, _ = run_script(tmp_path, mode, ctx, **env, CURL_FAIL="1")
    check = checks_of(mode, output)["ci-cleanup"]
    assert code == 1 and check.status == "failed", output
    assert "401" in check.detail
