"""The bootstrap deploy on the bookworm lab VM after the demo (test_demo.py) converged it with
every mode's smoke test: a rerun without the smoke tests (they act on every run) changes
nothing, and a non-root user converges it through sudo. The lab reaches no NTP server, so time
sync stays off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dindkit.bootstrap import bootstrap

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def vm(demo_run: Any, lab_vms: Any) -> Any:
    return lab_vms("bookworm")


def _data(report_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap_time_sync": False,
        "smoke_report_dir": str(report_dir),
        "smoke_enabled": False,
        **extra,
    }


def test_without_smoke_a_rerun_changes_nothing(vm: Any, tmp_path: Path) -> None:
    run = vm.deploy("bootstrap", data=_data(tmp_path))
    assert run.returncode == 0, run.output[-3000:]
    assert run.changed_operations == 0, run.changed_operation_names
    assert "apt-get update" not in run.output


SUDO_USER_SETUP = """
id deployer >/dev/null 2>&1 || useradd --create-home --shell /bin/bash deployer
echo 'deployer ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/dindkit-test
chmod 0440 /etc/sudoers.d/dindkit-test
install -d -m 0700 -o deployer -g deployer /home/deployer/.ssh
install -m 0600 -o deployer -g deployer /root/.ssh/authorized_keys /home/deployer/.ssh/
"""


def test_a_non_root_user_through_sudo(vm: Any, tmp_path: Path) -> None:
    # jq is a base package: reinstalling it needs root, so the run proves sudo was used
    # (without it apt-get fails on dpkg's lock).
    vm.ssh(SUDO_USER_SETUP + "DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq jq\n")
    try:
        run = vm.deploy(
            "bootstrap",
            data=_data(tmp_path, ssh_user="deployer", _sudo=True),
        )
        assert run.returncode == 0, run.output[-3000:]
        assert run.changed_operation_names == [
            f"{bootstrap.deploy_name} | Install the base packages"
        ]
    finally:
        vm.ssh("userdel --remove deployer; rm -f /etc/sudoers.d/dindkit-test", check=False)
