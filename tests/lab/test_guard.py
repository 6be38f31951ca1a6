"""The job socket on a converged bookworm VM: deploys/guard.py with --dry changes nothing, then
converges, then changes nothing; the real docker CLI in a job container that has only the job
socket runs the CI flow and is refused every escape (benchmarks/guard.py's proof)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dindkit.paths import deploy_file, inventory_file
from dindkit.runner import pyinfra_command
from tests.lab.conftest import LabVM

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from guard import prove

# Opt-in (make lab-extra), not yet in make lab: see docs/development.md.
pytestmark = [pytest.mark.lab, pytest.mark.extra]


def test_guard_converges_and_refuses_every_escape(converged_vm) -> None:
    vm: LabVM = converged_vm("bookworm")
    dry = subprocess.run(
        pyinfra_command(
            inventory_file("lab"), deploy_file("guard"), extra=["--limit", vm.host, "--dry"]
        ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert vm.ssh("test -e /etc/systemd/system/dindkit-jobs.socket", check=False).returncode != 0

    first = vm.deploy("guard")
    assert first.changed_operations > 0
    again = vm.deploy("guard")
    assert again.changed_operations == 0, again.changed_operation_names
    assert vm.ssh("stat -c '%a %U %G' /run/dindkit/jobs.sock").stdout.split() == [
        "660",
        "root",
        "docker-jobs",
    ]

    rows = prove(vm.lab)
    assert len(rows) >= 50, rows
    wrong = [row for row in rows if row[1] != row[2]]
    assert not wrong, "\n".join("\t".join(row) for row in wrong)
    journal = vm.ssh("journalctl -u dindkit-jobs.service --no-pager -o cat").stdout
    assert "refused rule=privileged pid=" in journal
