"""The lab itself on real VMs: idempotent up, cached image, list/status/ssh, clean down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dindkit.lab
from dindkit.lab.image import ensure_image
from dindkit.lab.state import lab_dir, qemu_name

PREFIX = os.environ.get("DINDKIT_TEST_PREFIX", "test")
DINDKIT = str(Path(sys.executable).with_name("dindkit"))
LabVM = Any  # tests/lab/conftest.py

pytestmark = pytest.mark.lab


def dindkit_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DINDKIT, *arguments],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def vm(lab_vms) -> LabVM:
    return lab_vms("bookworm")


def test_up_on_a_running_lab_does_nothing(vm: LabVM) -> None:
    before = dindkit.lab.get(vm.name)
    result = dindkit_cli("lab", "up", vm.name, "--distro", vm.distro)
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout
    after = dindkit.lab.get(vm.name)
    assert before and after and (before.pid, before.ssh_port) == (after.pid, after.ssh_port)


def test_the_cached_image_is_reused(vm: LabVM) -> None:
    messages: list[str] = []
    image = ensure_image(vm.distro, progress=messages.append)
    assert image.exists()
    assert messages and messages[0].startswith("Reusing the cached")


def test_list_status_and_ssh(vm: LabVM) -> None:
    listed = dindkit_cli("lab", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(vm.name + " "))
    assert "running" in row and vm.distro in row and vm.host in row

    status = dindkit_cli("lab", "status", vm.name)
    assert status.returncode == 0, status.stderr
    assert f"{vm.name}: running" in status.stdout

    ssh = dindkit_cli("lab", "ssh", vm.name, "--", "hostname; id -u")
    assert ssh.returncode == 0, ssh.stderr
    assert ssh.stdout.split() == [vm.host, "0"]


def test_the_guest_is_a_systemd_debian_with_network(vm: LabVM) -> None:
    codename = vm.ssh(". /etc/os-release && echo $VERSION_CODENAME").stdout.strip()
    assert codename == vm.distro
    assert vm.ssh("systemctl is-system-running --wait", check=False).stdout.strip() in (
        "running",
        "degraded",
    )
    assert vm.ssh("stat -fc %T /sys/fs/cgroup").stdout.strip() == "cgroup2fs"
    # apt reaches the Debian mirror through qemu's NAT (its own HTTP method, one small file:
    # a whole `apt-get update` costs minutes under TCG and is exercised by the deploys).
    vm.ssh(
        "/usr/lib/apt/apt-helper download-file "
        f"http://deb.debian.org/debian/dists/{vm.distro}/Release /tmp/dindkit-release "
        "&& grep -q '^Codename: ' /tmp/dindkit-release && rm /tmp/dindkit-release",
        timeout=300,
    )


def test_down_leaves_no_qemu_and_no_overlay() -> None:
    name = f"{PREFIX}-down"
    try:
        lab = dindkit.lab.up(name, "bookworm", memory=1024, cpus=1)
        assert lab.running and lab.overlay.is_file()
        down = dindkit_cli("lab", "down", name)
        assert down.returncode == 0, down.stderr
        assert not lab.running
        assert not lab.overlay.exists() and not lab_dir(name).exists()
        assert (
            qemu_name(name)
            not in subprocess.run(
                ["ps", "-eo", "args"], capture_output=True, text=True, check=True
            ).stdout
        )
        again = dindkit_cli("lab", "down", name)
        assert again.returncode == 0 and "nothing to do" in again.stdout
    finally:
        dindkit.lab.down(name)
