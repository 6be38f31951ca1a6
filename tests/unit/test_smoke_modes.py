"""Command construction of each smoke mode, and the mode script run against a fake docker."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from dindkit.report import Check
from dindkit.smoke import modes
from dindkit.smoke.deploy import summarise

CTX = modes.Context(
    run_id="0a1b2c3d",
    cli_image="dindkit-smoke:abc",
    dind_image="dindkit-smoke:def",
    user_uid=1234,
    socket_group="docker",
    timeout=45,
)


def step(mode: modes.Mode, name: str) -> str:
    return next(s.command for s in mode.steps if s.name == name)


def test_dood_runs_non_root_with_the_socket_group_and_refuses_without_it():
    mode = modes.dood(CTX)
    client = step(mode, "start-client")
    assert "-v /var/run/docker.sock:/var/run/docker.sock" in client
    assert "--user 1234:1234" in client
    assert '--group-add "$SOCKET_GID"' in client
    assert "--privileged" not in client
    assert "dindkit-smoke:abc" in client
    assert step(mode, "docker-version").startswith("docker exec dindkit-smoke-0a1b2c3d-dood-client")
    refused = step(mode, "refused-without-group")
    assert "--group-add" not in refused
    assert "--user 1234:1234" in refused and "/var/run/docker.sock" in refused
    assert "permission denied" in refused
    assert "FROM scratch" in step(mode, "build")
    assert "docker image inspect" in step(mode, "image-on-host")
    assert mode.steps[0].name == "socket-group"


def test_dood_socket_check_compares_with_the_configured_group():
    check = step(modes.dood(CTX), "socket-group")
    assert "getent group docker" in check
    assert '"$SOCKET_GID" = 0' in check


def test_dind_is_privileged_with_tls_and_a_data_volume():
    mode = modes.dind(CTX)
    start = step(mode, "start-daemon")
    assert "--privileged" in start
    assert "-e DOCKER_TLS_CERTDIR=/certs" in start
    assert "dindkit-smoke-0a1b2c3d-dind-data:/var/lib/docker" in start
    assert "-e DOCKER_HOST=tcp://docker:2376 -e DOCKER_TLS_VERIFY=1" in start
    assert "--network-alias docker" in start
    assert "dindkit-smoke:def" in start and "dindkit-smoke:abc" in start
    assert "45" in step(mode, "daemon-ready-tls")
    assert "sleep 1" in step(mode, "daemon-ready-tls")  # a bounded poll, not one long sleep
    assert "docker image inspect" in step(mode, "isolated-from-host")


def test_sysbox_uses_the_runtime_without_privileged():
    mode = modes.sysbox(CTX)
    start = step(mode, "start-daemon")
    assert "--runtime=sysbox-runc" in start
    assert "--privileged" not in start
    names = [s.name for s in mode.steps]
    assert "uid-map-not-identity" in names and "no-host-socket" in names


@pytest.mark.parametrize("name", modes.BUILDERS)
def test_every_object_is_named_and_labelled_for_the_run(name):
    mode = modes.build_mode(name, CTX)
    text = " ".join(s.command for s in mode.steps) + " ".join(mode.cleanup)
    assert "--label dindkit.smoke.run=0a1b2c3d" in text
    for created in ("docker run", "docker volume create", "docker network create"):
        for chunk in text.split(created)[1:]:
            assert chunk.lstrip().startswith(("-", "--")), chunk[:40]
    assert all("dindkit-smoke-0a1b2c3d" in command for command in mode.cleanup)


@pytest.mark.parametrize("name", modes.BUILDERS)
def test_script_is_valid_posix_shell(name, tmp_path):
    path = tmp_path / "mode.sh"
    path.write_text(modes.script(modes.build_mode(name, CTX), CTX))
    subprocess.run(["sh", "-n", str(path)], check=True)


FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >>"$DOCKER_LOG"
case "$1 $2" in
  "image inspect") exit 1;;
  "exec "*) [ -n "$FAIL_EXEC" ] && { echo "cannot connect"; exit 1; };;
esac
exit 0
"""


def run_script(tmp_path: Path, mode: modes.Mode, **env: str) -> tuple[int, str, str]:
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(FAKE_DOCKER)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "docker.log"
    log.touch()
    process = subprocess.run(
        ["sh", "-c", modes.script(mode, CTX)],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PATH": f"{fake.parent}:{os.environ['PATH']}",
            "DOCKER_LOG": str(log),
            **env,
        },
        timeout=60,
    )
    return process.returncode, process.stdout, log.read_text()


def test_script_passes_every_step_and_cleans_up(tmp_path):
    mode = modes.dind(CTX)
    code, output, calls = run_script(tmp_path, mode)
    assert code == 0, output
    parsed = modes.parse_output(mode, output)
    assert [c.status for c in parsed.checks] == ["passed"] * (len(mode.steps) + 1)
    assert parsed.checks[-1].name == "cleanup"
    assert "docker rm -f -v dindkit-smoke-0a1b2c3d-dind-client" in calls
    assert "docker network rm dindkit-smoke-0a1b2c3d-dind-net" in calls


def test_script_stops_at_the_first_failure_and_still_cleans_up(tmp_path):
    mode = modes.dind(CTX)
    code, output, calls = run_script(tmp_path, mode, FAIL_EXEC="1")
    assert code == 1
    checks = {c.name: c for c in modes.parse_output(mode, output).checks}
    assert checks["start-daemon"].status == "passed"
    assert checks["daemon-ready-tls"].status == "failed"
    assert "cannot connect" in checks["daemon-ready-tls"].detail
    assert "--- daemon log:" in checks["daemon-ready-tls"].detail
    assert checks["inner-build"].status == "skipped"
    assert checks["cleanup"].status == "passed"
    assert "docker volume rm -f dindkit-smoke-0a1b2c3d-dind-data" in calls


def test_parse_output_marks_a_cut_off_step_failed():
    mode = modes.dood(CTX)
    output = (
        "@@dindkit begin socket-group\nok\n@@dindkit end socket-group 0\n"
        "@@dindkit begin docker-version\nhalf"
    )
    checks = {c.name: c for c in modes.parse_output(mode, output).checks}
    assert checks["socket-group"].status == "passed"
    assert checks["docker-version"].status == "failed"
    assert "ended before" in checks["docker-version"].detail
    assert checks["run"].status == "skipped"
    assert checks["cleanup"].status == "failed"


def test_fail_lines_lead_the_detail_and_the_reason():
    mode = modes.dood(CTX)
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


def test_summarise_passed():
    mode = modes.dood(CTX)
    checks = [Check(s.name, "passed") for s in mode.steps]
    result = summarise(mode, checks, 1.5)
    assert (result.status, result.seconds) == ("passed", 1.5)
