"""Rootless Docker and userns-remap from deploys/docker.py with the lab's defaults
(docker_rootless_users: [dindkit], docker_userns_remap: "default") on Debian 12 and 13.

On the session's converged VMs (daemon.json keys set by hand before the deploy, conftest.py's
``USER_STATE``). Both distros: the user's rootless dockerd answers the user on
/run/user/UID/docker.sock, the system dockerd remaps (dockremap with subordinate ranges) and kept
the hand-set key, a rerun changes nothing and restarts neither daemon. Bookworm only (a slow
path): remapping off and on again restarts dockerd once each time and keeps the key. That both
survive a reboot is test_docker_deploy.py's (one reboot per distro for the whole suite).
"""

from __future__ import annotations

import json
import shlex

import pytest

from tests.lab.conftest import HAND_SET_LABELS, LabVM

pytestmark = pytest.mark.lab

DISTROS = ["bookworm", "trixie"]
USER = "dindkit"  # the lab image's user (dindkit.lab.image.LAB_USER)
HAND_KEY, HAND_VALUE = "labels", HAND_SET_LABELS
SYSTEM_DOCKERD_PID = "systemctl show -p MainPID --value docker.service"
USER_DOCKERD_PIDS = f"pgrep -u {USER} -x dockerd"
SECURITY_OPTIONS = "--format '{{json .SecurityOptions}}'"


def as_user(vm: LabVM, command: str, check: bool = True):
    return vm.ssh(f"runuser -u {USER} -- sh -c {shlex.quote(command)}", check=check)


def user_socket(vm: LabVM) -> str:
    return f"/run/user/{vm.ssh(f'id -u {USER}').stdout.strip()}/docker.sock"


def rootless_info(vm: LabVM) -> list[str]:
    return json.loads(
        as_user(vm, f"docker -H unix://{user_socket(vm)} info {SECURITY_OPTIONS}").stdout
    )


def system_info(vm: LabVM) -> list[str]:
    return json.loads(vm.ssh(f"docker info {SECURITY_OPTIONS}").stdout)


def daemon_json(vm: LabVM) -> dict:
    return json.loads(vm.ssh("cat /etc/docker/daemon.json").stdout)


def journal_cursor(vm: LabVM) -> str:
    shown = vm.ssh("journalctl -q -n 0 --show-cursor").stdout
    return shown.strip().removeprefix("-- cursor: ")


def dockerd_starts_since(vm: LabVM, cursor: str) -> int:
    """How often systemd started docker.service since the journal cursor."""
    log = vm.ssh(f"journalctl -q -u docker.service --after-cursor='{cursor}' -o cat").stdout
    return sum(
        1
        for line in log.splitlines()
        if line.startswith("Started") and "Docker Application" in line
    )


@pytest.fixture(scope="module", params=DISTROS)
def converged(request: pytest.FixtureRequest, converged_vm) -> LabVM:
    vm: LabVM = converged_vm(request.param)
    return vm


def test_rootless_daemon_answers_the_user(converged: LabVM) -> None:
    vm = converged
    assert "name=rootless" in " ".join(rootless_info(vm))
    owner, mode = vm.ssh(f"stat -c '%U %a' {user_socket(vm)}").stdout.split()
    assert owner == USER and int(mode, 8) & 0o007 == 0, (owner, mode)
    # Its own image store in the user's home, not the system one.
    root_dir = as_user(
        vm, f"docker -H unix://{user_socket(vm)} info --format '{{{{.DockerRootDir}}}}'"
    )
    assert root_dir.stdout.strip() == f"/home/{USER}/.local/share/docker"
    assert vm.ssh(f"loginctl show-user {USER} -p Linger").stdout.strip() == "Linger=yes"


def test_remapping_on_and_hand_set_key_kept(converged: LabVM) -> None:
    vm = converged
    assert "name=userns" in " ".join(system_info(vm))
    options = daemon_json(vm)
    assert options["userns-remap"] == "default"
    assert options[HAND_KEY] == HAND_VALUE and options["live-restore"] is True
    # dockerd created dockremap and its ranges; the remapped store sits beside the default one.
    uid = vm.ssh("id -u dockremap").stdout.strip()
    for path in ("/etc/subuid", "/etc/subgid"):
        assert vm.ssh(f"grep -c '^dockremap:' {path}").stdout.strip() == "1", path
    start = vm.ssh("grep '^dockremap:' /etc/subuid | cut -d: -f2").stdout.strip()
    assert vm.ssh(f"test -d /var/lib/docker/{start}.{start}", check=False).returncode == 0, uid


def test_rerun_changes_nothing(converged: LabVM) -> None:
    vm = converged
    before = vm.ssh(f"{SYSTEM_DOCKERD_PID}; {USER_DOCKERD_PIDS}").stdout
    run = vm.deploy("docker")
    assert run.changed_operations == 0, run.changed_operation_names
    assert vm.ssh(f"{SYSTEM_DOCKERD_PID}; {USER_DOCKERD_PIDS}").stdout == before


@pytest.mark.parametrize("converged", ["bookworm"], indirect=True)
def test_remap_off_then_on_restarts_dockerd_once_each(converged: LabVM) -> None:
    vm = converged
    back_to_defaults = False
    try:
        # Ends with the lab's own value ("default"): nothing to restore unless a round failed.
        for remap, wanted in ((None, False), ("default", True)):
            pid = vm.ssh(SYSTEM_DOCKERD_PID).stdout.strip()
            cursor = journal_cursor(vm)
            vm.deploy("docker", {"docker_userns_remap": remap})
            assert vm.ssh(SYSTEM_DOCKERD_PID).stdout.strip() != pid
            assert dockerd_starts_since(vm, cursor) == 1
            assert ("name=userns" in " ".join(system_info(vm))) is wanted
            options = daemon_json(vm)
            assert ("userns-remap" in options) is wanted
            assert options[HAND_KEY] == HAND_VALUE
        back_to_defaults = True
    finally:
        if not back_to_defaults:
            vm.deploy("docker")  # the lab's defaults, for the other modules
