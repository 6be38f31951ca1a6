"""A broken socket group fails dood with the cause (dindkit's own check, bookworm only).

Every mode's passing run on both distributions is test_demo.py's (the demo's smoke run).
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
