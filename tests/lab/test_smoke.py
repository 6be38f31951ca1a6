"""Smoke tests on lab VMs: dood and dind pass, sysbox is skipped with its reason, a run leaves
Docker's objects as they were (but the cached smoke image), and a broken socket group fails
dood with the cause.

Each smoke run costs minutes under TCG: one full run per distribution (their Docker differs),
the broken group (dindkit's own check) on bookworm only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dindkit.paths import deploy_file, inventory_file

pytestmark = pytest.mark.lab

ALL_MODES = ("dood", "dind", "sysbox", "rootless", "userns", "podman")
# What a run of every mode gives on a lab host: no Sysbox package reaches the lab.
EVERY_MODE_ON_A_LAB_HOST = {
    "dood": "passed",
    "dind": "passed",
    "sysbox": "skipped",
    "rootless": "passed",
    "userns": "passed",
    "podman": "passed",
}

# What must be the same before and after smoke runs (only the cached base image may be new).
INVENTORY_COMMANDS = (
    "docker ps -a --format '{{.ID}} {{.Names}} {{.Status}}'",
    "docker volume ls -q",
    "docker network ls --format '{{.Name}}'",
    "docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}'",
)


def docker_objects(vm: Any) -> list[str]:
    return [vm.ssh(command).stdout for command in INVENTORY_COMMANDS]


def assert_every_mode_said_what_it_proved(modes: dict[str, Any]) -> None:
    """The details a passing run of all six modes carries on a lab host (remapping on)."""
    assert "sysbox-runc" in modes["sysbox"]["reason"]
    assert all(mode["grants"] for mode in modes.values())
    # The daemon remaps users: the privileged modes said how they still run.
    assert "--userns=host" in modes["dind"]["checks"][0]["detail"]
    assert "--userns=host" in modes["dood"]["checks"][1]["detail"]
    podman = {check["name"]: check["detail"] for check in modes["podman"]["checks"]}
    assert "CapEff is 0" in podman["no-capabilities"]
    rootless = {check["name"]: check["detail"] for check in modes["rootless"]["checks"]}
    assert "can neither read the host's" in rootless["no-escalation"]


def smoke(
    vm: Any, report_dir: Path, modes: tuple[str, ...] = ("dood", "dind", "sysbox")
) -> tuple[int, str, dict[str, Any]]:
    """``dindkit smoke inventories/lab.py --limit HOST --modes ...``: exit code, output, modes."""
    process = subprocess.run(
        [
            str(Path(sys.executable).parent / "dindkit"),
            "smoke",
            str(inventory_file("lab")),
            "--limit",
            vm.host,
            "--modes",
            ",".join(modes),
            "--report-dir",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = process.stdout + process.stderr
    print(output)
    report = json.loads((report_dir / "report.json").read_text())
    return process.returncode, output, report["hosts"][vm.host]["modes"]


# Every mode on bookworm runs in test_demo.py (the demo's VM, the same checks); here trixie.
@pytest.fixture(scope="module")
def vm(converged_vm: Any) -> Any:
    return converged_vm("trixie")


def test_every_mode_passes_sysbox_skipped_and_nothing_is_left(vm: Any, tmp_path: Path) -> None:
    """One run of all six modes: the lab inventory gives a rootless user and remapping, so the
    unprivileged modes pass beside the privileged ones (which add --userns=host)."""
    *before, images_before = docker_objects(vm)
    code, output, modes = smoke(vm, tmp_path / "first", ALL_MODES)
    assert code == 0, output[-6000:]
    assert {name: mode["status"] for name, mode in modes.items()} == EVERY_MODE_ON_A_LAB_HOST, (
        output[-6000:]
    )
    assert_every_mode_said_what_it_proved(modes)
    assert "HOST" in output and "PASSED" in output  # the table
    *after, images_after = docker_objects(vm)
    assert after == before
    # Only the smoke images may be new (loaded once, then cached on the host).
    new_images = set(images_after.splitlines()) - set(images_before.splitlines())
    assert all(line.startswith(("dindkit-smoke:", "dindkit-podman:")) for line in new_images), (
        new_images
    )


def test_socket_with_another_group_fails_dood_with_the_cause(
    converged_vm: Any, tmp_path: Path
) -> None:
    vm = converged_vm("bookworm")
    vm.ssh("chgrp root /run/docker.sock")
    try:
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "pyinfra",
                "-y",
                "--limit",
                vm.host,
                "--data",
                f"smoke_report_dir={tmp_path}",
                "--data",
                "smoke_modes=dood",
                str(inventory_file("lab")),
                str(deploy_file("smoke")),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    finally:
        vm.ssh("systemctl restart docker.socket docker")
    assert process.returncode != 0, process.stdout[-3000:]
    mode = json.loads((tmp_path / "report.json").read_text())["hosts"][vm.host]["modes"]["dood"]
    print(json.dumps(mode, indent=1))
    assert mode["status"] == "failed", mode
    socket_check = mode["checks"][0]
    assert socket_check["name"] == "socket-group" and socket_check["status"] == "failed"
    assert "group root" in socket_check["detail"] and "gid 0" in socket_check["detail"]
    assert "socket-group" in mode["reason"]
    vm.ssh("stat -c %G /run/docker.sock | grep -qx docker")
