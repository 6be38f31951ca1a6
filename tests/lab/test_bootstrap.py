"""The bootstrap deploy on the bookworm lab VM after the demo (test_demo.py) converged it with
every mode's smoke test: a rerun without the smoke tests (they act on every run) changes
nothing. The lab reaches no NTP server, so time sync stays off. The bootstrap through sudo, as a
non-root user, is test_vagrant.py's (the trigger's run as ``vagrant``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
