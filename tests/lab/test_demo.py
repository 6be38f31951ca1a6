"""`dindkit demo --down` on bookworm: the main job of the project, end to end. Every smoke mode
runs here on bookworm (test_smoke.py runs them on trixie)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dindkit.lab
from dindkit.lab.state import lab_dir, qemu_name
from tests.lab.test_smoke import EVERY_MODE_ON_A_LAB_HOST, assert_every_mode_said_what_it_proved

pytestmark = pytest.mark.lab

PREFIX = os.environ.get("DINDKIT_TEST_PREFIX", "test")
DINDKIT = str(Path(sys.executable).with_name("dindkit"))
CPUS = os.environ.get("DINDKIT_TEST_CPUS", "2")
MEMORY = os.environ.get("DINDKIT_TEST_MEMORY", "3072")


def modes(report: dict, host: str) -> dict[str, dict]:
    """mode name -> its result, from report.json ({"hosts": {HOST: {"modes": {MODE: ...}}}})."""
    assert list(report["hosts"]) == [host]
    return report["hosts"][host]["modes"]


def test_demo_down_on_bookworm(tmp_path: Path) -> None:
    name = f"{PREFIX}-demo"
    report_dir = tmp_path / "report"
    try:
        command = [DINDKIT, "demo", "--distro", "bookworm", "--name", name, "--down"]
        command += ["--report-dir", str(report_dir), "--cpus", CPUS, "--memory", MEMORY]
        result = subprocess.run(
            command,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
        print(result.stdout)
        assert result.returncode == 0, result.stdout[-4000:]
        report = json.loads((report_dir / "report.json").read_text())
        assert (report_dir / "junit.xml").is_file()
        results = modes(report, f"lab-{name}")
        statuses = {mode: entry["status"] for mode, entry in results.items()}
        assert statuses == EVERY_MODE_ON_A_LAB_HOST, result.stdout[-4000:]
        assert_every_mode_said_what_it_proved(results)
        assert results["sysbox"]["reason"]
        assert not lab_dir(name).exists()
        assert (
            qemu_name(name)
            not in subprocess.run(
                ["ps", "-eo", "args"], capture_output=True, text=True, check=True
            ).stdout
        )
    finally:
        dindkit.lab.down(name)
