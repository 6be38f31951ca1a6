"""apt settings, and the apt script itself run on this machine against fake apt-get and dpkg.

The script (templates/apt/apt-steps.sh.j2) is rendered with lock files in a temporary folder;
a lock is held the way apt and dpkg hold theirs (an fcntl lock, by a child python process),
and ``apt-get``/``dpkg`` on PATH are small scripts that record their arguments.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError

from dindkit.operations.apt import UPDATE_STEP, run_step, script
from dindkit.settings.apt import APT_SETTINGS
from tests import shellcheck
from tests.pyinfra_dry import assert_refused_before_any_operation, dry_run

FAKE_APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$CALLS"
case "$*" in *" update"*) [ -n "$FAIL_UPDATE" ] && { echo "E: no mirror"; exit 100; } ;; esac
echo "Setting up something ..."
"""
FAKE_DPKG = """#!/bin/sh
echo "dpkg $*" >> "$CALLS"
if [ "$1" = --audit ]; then
    [ -f "$INTERRUPTED" ] && echo "The following packages are only half configured"
    exit 0
fi
case "$*" in *"--configure -a"*) rm -f "$INTERRUPTED" ;; esac
"""
HOLD = "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
HOLD += "print('held', flush=True); time.sleep(float(sys.argv[2]))"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("apt_lock_timeout", -1),
        ("apt_lock_timeout", "soon"),
        ("apt_lock_timeout", 1.5),
        ("apt_retries", -2),
        ("apt_retries", "x"),
        ("apt_retries", 99),
    ],
)
def test_bad_values_are_refused(key: str, value: object) -> None:
    with pytest.raises(DeployError, match=rf"^Invalid setting {key}=.*allowed: a whole number"):
        APT_SETTINGS.validate({key: value})


def test_defaults_and_strings_from_the_command_line() -> None:
    assert APT_SETTINGS.validate({}) == {"apt_lock_timeout": 300, "apt_retries": 3}
    assert APT_SETTINGS.validate({"apt_lock_timeout": "0"})["apt_lock_timeout"] == 0


@pytest.mark.parametrize("deploy", ["docker", "sysbox", "bootstrap"])
def test_every_apt_deploy_refuses_a_bad_bound_before_any_operation(
    deploy: str, tmp_path: Path
) -> None:
    run = dry_run(deploy, "apt_lock_timeout=-5", cwd=tmp_path)
    assert_refused_before_any_operation(run, "Invalid setting", "apt_lock_timeout=-5")


class Target:
    """A folder with lock files, dpkg's journal, and fake apt-get/dpkg first on PATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.locks = [root / "lock-frontend", root / "lock"]
        for lock in self.locks:
            lock.touch()
        (root / "updates").mkdir()
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for name, text in (("apt-get", FAKE_APT_GET), ("dpkg", FAKE_DPKG)):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        self.calls = root / "calls"
        self.interrupted = root / "interrupted"
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "CALLS": str(self.calls),
            "INTERRUPTED": str(self.interrupted),
        }

    def script(self, steps: list[str], lock_timeout: int = 30) -> str:
        return script(
            steps,
            lock_timeout=lock_timeout,
            retries=2,
            lock_files=[str(lock) for lock in self.locks],
            dpkg_updates=str(self.root / "updates"),
            update_stamp=str(self.root / "periodic" / "stamp"),
            report_every=1,
        )

    def run(self, steps: list[str], lock_timeout: int = 30, **env: str):
        return subprocess.run(
            ["sh", "-c", self.script(steps, lock_timeout)],
            capture_output=True,
            text=True,
            env={**self.env, **env},
            timeout=60,
        )

    def hold(self, lock: Path, seconds: float) -> subprocess.Popen[str]:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(lock), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        return holder

    def apt_calls(self) -> list[str]:
        lines = self.calls.read_text().splitlines() if self.calls.exists() else []
        return [line for line in lines if line.startswith("apt-get")]


@pytest.fixture
def target(tmp_path: Path) -> Target:
    return Target(tmp_path)


STEPS = [UPDATE_STEP, run_step("install", "--no-install-recommends", "docker.io")]


def test_free_locks_run_the_steps_with_retries_and_say_nothing(target: Target) -> None:
    result = target.run(STEPS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    calls = target.apt_calls()
    assert len(calls) == 2 and calls[0].endswith(" update") and calls[1].endswith(" docker.io")
    assert all("-o Acquire::Retries=2" in call for call in calls)
    assert all("-o DPkg::Lock::Timeout=30" in call for call in calls)
    assert (target.root / "periodic" / "stamp").exists()


def test_waits_for_a_held_lock_naming_its_holder(target: Target) -> None:
    holder = target.hold(target.locks[1], 3)
    started = time.monotonic()
    result = target.run(STEPS)
    holder.wait()
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed >= 2
    waiting = [line for line in result.stdout.splitlines() if "waiting for dpkg's lock" in line]
    assert waiting, result.stdout
    assert f"{target.locks[1]} held by {holder.pid} (" in waiting[0]
    # The first line comes at the first look, not after a report interval; on a loaded machine
    # that look (a scan of /proc) can itself take seconds, so the count is bounded, not exact.
    first_wait = re.search(r"; waited (\d+) s of 30 s$", waiting[0])
    assert first_wait, waiting[0]
    assert 0 <= int(first_wait[1]) <= elapsed, (waiting[0], elapsed)
    assert "dpkg's lock is free after" in result.stdout
    assert len(target.apt_calls()) == 2  # nothing ran while the lock was held


def test_gives_up_after_the_bound_naming_holder_and_setting(target: Target) -> None:
    holder = target.hold(target.locks[0], 30)
    try:
        result = target.run(STEPS, lock_timeout=2)
    finally:
        holder.kill()
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("dindkit apt: gave up waiting for dpkg's lock after ")
    assert f"held by {holder.pid} (" in last and "(apt_lock_timeout=2 sets the wait)" in last
    assert target.apt_calls() == []


def test_a_flock_is_not_dpkgs_lock(target: Target) -> None:
    if not shutil.which("flock"):
        pytest.skip("flock(1) is not installed here")
    with subprocess.Popen(["flock", str(target.locks[0]), "sleep", "30"]) as holder:
        try:
            result = target.run(STEPS, lock_timeout=1)
        finally:
            holder.kill()
    assert result.returncode == 0 and "waiting" not in result.stdout


def test_interrupted_dpkg_is_recovered_before_installing(target: Target) -> None:
    target.interrupted.touch()
    result = target.run(STEPS)
    assert result.returncode == 0, result.stderr
    assert "dpkg was interrupted (The following packages are only half configured)" in (
        result.stdout
    )
    assert "dpkg --configure -a recovered the interrupted packages" in result.stdout
    calls = target.calls.read_text().splitlines()
    configure = next(i for i, call in enumerate(calls) if "--configure -a" in call)
    assert configure < calls.index(target.apt_calls()[0])


def test_dpkg_journal_counts_as_interrupted(target: Target) -> None:
    (target.root / "updates" / "0001").write_text("")
    result = target.run(STEPS)
    assert result.returncode == 0 and "running dpkg --configure -a" in result.stdout


def test_a_failing_update_ends_with_one_clear_line_and_apts_own(target: Target) -> None:
    result = target.run(STEPS, FAIL_UPDATE="1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "E: no mirror" in lines
    assert lines[-1] == "dindkit apt: apt-get update failed (apt_retries=2 retries per download)"
    assert len(target.apt_calls()) == 1  # nothing installed after it


def test_script_is_shellcheck_clean(target: Target) -> None:
    path = target.root / "apt-steps.sh"
    path.write_text(target.script(STEPS))
    assert shellcheck.defects(path) == []
