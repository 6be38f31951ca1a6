"""deploys/docker.py on a busy or broken apt (trixie): the cases a real fresh VPS meets.

(a) another process holds dpkg's frontend lock: with a short ``apt_lock_timeout`` the run stops
with one line naming the holder and the setting, with the default it waits, says so, and
succeeds; (c) dpkg is left interrupted (a package unpacked, not configured): the next run
recovers it and converges; (b) the control side is killed while dpkg installs a package
and the deploy is started again at once: it waits for (or recovers after) the apt-get it left,
converges, and a third run changes nothing.

The module shares the session's trixie VM, which the demo (test_demo.py) converged. Each case
needs a package the deploy installs, any: auditd (docker_audit), quick to reinstall. (b) needs
an install that is still running when the control side is killed: a one-shot dpkg hook holds
the first dpkg run of the deploy for a while (dpkg holds its locks meanwhile), so the kill lands
inside dpkg on any machine. It leaves the VM converged with the default lab data, for the
modules after it.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dindkit.paths import deploy_file, inventory_file
from dindkit.runner import pyinfra_command

pytestmark = pytest.mark.lab

LOCK = "/var/lib/dpkg/lock-frontend"
HELD_AFTER_WAITING = 25  # seconds: one progress line (every 20 s) comes before the lock is free
HOLDER_UNIT = "dindkit-test-apt-lock"
HELD_FLAG = "/run/dindkit-test-apt-lock-held"
HOLDER = "/root/dindkit-test-hold-lock.py"
# Holds dpkg's frontend lock as apt and dpkg take theirs (an fcntl lock; flock(1) would not stop
# apt) until a dindkit apt step has been waiting for argv[2] seconds (at most 10 minutes).
HOLDER_SCRIPT = f"""
import fcntl, subprocess, sys, time
lock = open("{LOCK}", "w")
fcntl.lockf(lock, fcntl.LOCK_EX)
open("{HELD_FLAG}", "w").close()
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    if subprocess.run(["pgrep", "-f", "dindkit.s apt steps"], capture_output=True).returncode == 0:
        break
    time.sleep(0.5)
time.sleep(float(sys.argv[1]))
"""


# A package the docker deploy installs (docker_audit) with nothing depending on it.
QUICK_PACKAGE = "auditd"
# (b): dpkg's pre-invoke hook, which sleeps once (while the flag exists) inside dpkg's run.
SLOW_DPKG_CONF = "/etc/dpkg/dpkg.cfg.d/dindkit-test-slow-dpkg"
SLOW_DPKG_FLAG = "/run/dindkit-test-slow-dpkg"
SLOW_DPKG_SECONDS = 60


def remove_package(name: str) -> str:
    """Remove ``name`` if installed (a fresh VM has no apt lists: apt-get would not know it)."""
    return (
        f"if dpkg-query -W -f '${{Status}}' {name} 2>/dev/null | grep -q 'ok installed'; "
        f"then apt-get remove -y {name}; fi"
    )


def status(vm: Any, name: str) -> str:
    return vm.ssh(f"dpkg-query -W -f '${{Status}}' {name}").stdout


def hold(vm: Any, seconds_after_waiting: int) -> str:
    """Start the holder; returns its PID once it holds the lock."""
    vm.ssh(f"cat > {HOLDER} <<'PY'\n{HOLDER_SCRIPT}\nPY")
    vm.ssh(
        f"rm -f {HELD_FLAG}; systemd-run --quiet --collect --unit={HOLDER_UNIT} "
        f"python3 {HOLDER} {seconds_after_waiting} && "
        f"timeout 60 sh -c 'until [ -e {HELD_FLAG} ]; do sleep 0.2; done'"
    )
    return vm.ssh(f"systemctl show -p MainPID --value {HOLDER_UNIT}").stdout.strip()


def release(vm: Any) -> None:
    vm.ssh(f"systemctl stop {HOLDER_UNIT} 2>/dev/null || true")


# dpkg as apt runs it to unpack or configure (not the dpkg -l of pyinfra's facts).
DPKG_BY_APT = '"^/usr/bin/dpkg .*--status-fd" >/dev/null'
WAITING = re.compile(r"dindkit apt: waiting for dpkg's lock: (?P<file>\S+) held by (?P<pid>\d+) ")


# On trixie: dindkit's own logic, the same on both distributions; the trixie VM's tests run
# beside the bookworm VM's (conftest.py), and this module is the longest of them.
@pytest.fixture(scope="module", params=["trixie"])
def vm(lab_vms: Any, request: pytest.FixtureRequest) -> Any:
    return lab_vms(request.param)


def _lines(output: str, text: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if text in line]


def _docker_works(vm: Any) -> None:
    vm.ssh("systemctl is-active docker.service && docker info --format '{{.ServerVersion}}'")
    vm.ssh(f"systemctl is-active {QUICK_PACKAGE}.service")
    assert vm.ssh("dpkg --audit").stdout.strip() == ""


def test_a_waits_for_a_held_lock_and_names_the_holder(vm: Any) -> None:
    # auditd is missing: the deploy has a package to install, behind the lock.
    vm.ssh(remove_package(QUICK_PACKAGE))
    try:
        holder = hold(vm, 60)
        short = vm.deploy("docker", data={"apt_lock_timeout": 5}, check=False)
        release(vm)
        assert short.returncode != 0
        gave_up = _lines(short.output, "dindkit apt: gave up waiting for dpkg's lock")
        assert len(gave_up) == 1, short.output[-3000:]
        assert f"{LOCK} held by {holder} (" in gave_up[0]
        assert f"python3 {HOLDER} 60)" in gave_up[0]
        assert gave_up[0].endswith("(apt_lock_timeout=5 sets the wait)"), gave_up
        print(f"with apt_lock_timeout=5: {gave_up[0]}")

        holder = hold(vm, HELD_AFTER_WAITING)
        run = vm.deploy("docker")
        still_held = vm.ssh(f"systemctl is-active {HOLDER_UNIT}", check=False).returncode == 0
    finally:
        release(vm)
    print("\n".join(["the deploy said:", *_lines(run.output, "dindkit apt:")]))
    waiting = [WAITING.search(line) for line in _lines(run.output, "waiting for dpkg's lock")]
    assert waiting and all(match and match["pid"] == holder for match in waiting), run.output
    assert all(match and match["file"] == LOCK for match in waiting)
    # At most one progress line every 20 s of the wait, and the wait ended with the holder.
    waited = int(re.findall(r"dpkg's lock is free after (\d+) s", run.output)[0])
    assert waited >= HELD_AFTER_WAITING - 1 and len(waiting) <= waited // 20 + 1
    assert not still_held
    assert status(vm, QUICK_PACKAGE) == "install ok installed"
    _docker_works(vm)


def test_c_interrupted_dpkg_is_recovered(vm: Any) -> None:
    # What a dpkg killed half-way leaves: a package unpacked but not configured.
    deb = f"{QUICK_PACKAGE}_*.deb"
    vm.ssh(
        f"cd /root && rm -f {deb} && apt-get download {QUICK_PACKAGE} && "
        f"apt-get remove -y {QUICK_PACKAGE} && dpkg --unpack {deb} && rm {deb}"
    )
    assert status(vm, QUICK_PACKAGE) == "install ok unpacked"
    assert vm.ssh("dpkg --audit").stdout.strip(), f"dpkg --audit should report {QUICK_PACKAGE}"

    run = vm.deploy("docker")
    print("\n".join(["the deploy said:", *_lines(run.output, "dindkit apt:")]))
    assert _lines(run.output, "dindkit apt: dpkg was interrupted"), run.output[-3000:]
    assert _lines(run.output, "dpkg --configure -a recovered the interrupted packages")
    assert status(vm, QUICK_PACKAGE) == "install ok installed"
    _docker_works(vm)
    rerun = vm.deploy("docker")
    assert rerun.changed_operations == 0, rerun.changed_operation_names


def test_b_killed_control_side_then_rerun_converges(vm: Any, tmp_path: Path) -> None:
    vm.ssh(remove_package(QUICK_PACKAGE))
    hook = f"test ! -e {SLOW_DPKG_FLAG} || {{ rm -f {SLOW_DPKG_FLAG}; sleep {SLOW_DPKG_SECONDS}; }}"
    vm.ssh(f"echo 'pre-invoke \"{hook}\"' > {SLOW_DPKG_CONF} && touch {SLOW_DPKG_FLAG}")
    log = tmp_path / "killed.log"
    command = pyinfra_command(
        inventory_file("lab"), deploy_file("docker"), extra=["--limit", vm.host]
    )
    try:
        with log.open("w") as out:
            killed = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            try:
                # dpkg has started (and sleeps in its hook) once the flag is gone.
                vm.ssh(
                    f"timeout 600 sh -c 'until [ ! -e {SLOW_DPKG_FLAG} ] && "
                    f"pgrep -f {DPKG_BY_APT}; do sleep 0.2; done'",
                    timeout=660,
                )
            finally:
                killed.send_signal(signal.SIGKILL)
                killed.wait()
    finally:
        vm.ssh(f"rm -f {SLOW_DPKG_CONF} {SLOW_DPKG_FLAG}")
    remote = vm.ssh("pgrep -a -x apt-get || true").stdout.strip()
    print(f"killed the control side while dpkg ran; apt-get on the VM: {remote or 'gone'}")

    # The orphaned dpkg may still sleep in its hook, then install: more than the default wait.
    rerun = vm.deploy("docker", data={"apt_lock_timeout": 600})
    waited = _lines(rerun.output, "dindkit apt: waiting for dpkg's lock")
    recovered = _lines(rerun.output, "dindkit apt: dpkg was interrupted")
    print("\n".join(["the rerun said:", *_lines(rerun.output, "dindkit apt:")]))
    # The apt-get of the killed run either still ran (the rerun waits for it) or died half-way
    # (the rerun recovers dpkg); either way the rerun met it and dealt with it.
    assert waited or recovered, rerun.output[-3000:]
    if waited:  # the apt-get left behind, or its dpkg if apt-get died of the closed pipe
        holder = waited[0].split(" held by ", 1)[1]
        assert "apt-get" in holder or "dpkg" in holder, waited
    _docker_works(vm)
    third = vm.deploy("docker")
    assert third.changed_operations == 0, third.changed_operation_names
