"""The CI flow script (templates/registry/ci-flow.sh.j2) run for real against a stand-in client
(tests/unit/fake_registry_client.py): every step passes with a client that behaves, and each
check fails where the client misbehaves the way it guards against."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dindkit import ci_flow

FAKE = Path(__file__).with_name("fake_registry_client.py")


def _run(
    tmp_path: Path,
    *steps: str,
    engine: str = "docker",
    fault: str = "",
    stdin: str = "",
    **env: str,
) -> subprocess.CompletedProcess[str]:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF stand-in")
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    script = ci_flow.script(
        "reg.test:5000",
        docker=f"{sys.executable} {FAKE}",
        engine=engine,
        busybox=str(busybox),
        payload_kib=4,
    )
    environment = {
        **os.environ,
        "FAKE_CLIENT_STATE": str(state),
        "FAKE_CLIENT_FAULT": fault,
        "CI_USERNAME": "dindkit",
        "CI_PASSWORD": "s3cret",
        **env,
    }
    return subprocess.run(
        ["sh", "-c", script, "ci-flow", *steps],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_every_step_passes_with_a_client_that_behaves(tmp_path: Path, engine: str) -> None:
    result = _run(tmp_path, engine=engine)
    assert result.returncode == 0, result.stdout + result.stderr
    found = ci_flow.steps(result.stdout)
    assert list(found) == list(ci_flow.STEPS)
    assert {status for status, _ in found.values()} == {"passed"}
    assert "printed the build argument ci-value-run-" in found["run"][1]
    assert set(ci_flow.build_seconds(result.stdout)) == {"cold", "warm"}


def test_steps_one_at_a_time_keep_their_state_in_ci_work(tmp_path: Path) -> None:
    work = str(tmp_path / "work")
    for step in ci_flow.STEPS:
        result = _run(tmp_path, step, CI_WORK=work)
        assert result.returncode == 0, (step, result.stdout + result.stderr)
        assert ci_flow.steps(result.stdout)[step][0] == "passed"


def test_the_login_reads_the_credential_file_from_stdin(tmp_path: Path) -> None:
    def login_from_stdin(lines: str) -> subprocess.CompletedProcess[str]:
        blank = {"CI_USERNAME": "", "CI_PASSWORD": "", "CI_CREDENTIALS": "-"}
        return _run(tmp_path, "login", stdin=lines, CI_WORK=str(tmp_path / "work"), **blank)

    good = login_from_stdin("username=dindkit\npassword=s3cret\n")
    assert ci_flow.steps(good.stdout)["login"][0] == "passed", good.stdout
    bad = login_from_stdin("username=dindkit\npassword=wrong\n")
    assert bad.returncode == 1
    assert ci_flow.steps(bad.stdout)["login"][0] == "failed"
    assert "incorrect username or password" in bad.stdout


@pytest.mark.parametrize(
    ("fault", "step", "message"),
    [
        ("wrong-digest", "digest", "pulled another digest"),
        ("no-cache", "rebuild", "did not come from the cache"),
        ("push", "push", "no basic auth credentials"),
        ("run", "run", "expected ci-value-run-"),
    ],
)
def test_each_check_fails_where_the_client_misbehaves(
    tmp_path: Path, fault: str, step: str, message: str
) -> None:
    result = _run(tmp_path, fault=fault)
    assert result.returncode == 1
    found = ci_flow.steps(result.stdout)
    assert found[step][0] == "failed", result.stdout
    assert list(found)[-1] == step  # the first failure ends the flow
    assert message in result.stdout


def test_without_a_credential_the_login_fails_and_says_why(tmp_path: Path) -> None:
    result = _run(tmp_path, CI_USERNAME="", CI_PASSWORD="", CI_CREDENTIALS="/nonexistent")
    assert ci_flow.steps(result.stdout)["login"][0] == "failed"
    assert "no credential" in result.stdout
