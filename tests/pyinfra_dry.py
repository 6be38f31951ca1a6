"""``pyinfra -y --dry @local deploys/NAME.py --data KEY=VALUE ...`` as the unit tests run it.

The deploy is the one of the dindkit under test (``dindkit.paths.deploy_file``: the installed
copy in a wheel run), run from a scratch folder: ``python -m`` puts the working folder first on
sys.path, and the checkout's dindkit/ must not shadow the wheel. ``--dry`` against this machine:
facts are read here, no operation runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dindkit.paths import deploy_file


@dataclass(frozen=True)
class DryRun:
    returncode: int
    output: str  # stdout, then stderr


def dry_run(
    deploy: str,
    *data: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> DryRun:
    """Run ``deploys/<deploy>.py`` with ``--data`` for each of ``data`` (``KEY=VALUE``)."""
    command = [sys.executable, "-m", "pyinfra", "-y", "--dry", "@local", str(deploy_file(deploy))]
    command += [argument for item in data for argument in ("--data", item)]
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return DryRun(result.returncode, result.stdout + result.stderr)


def assert_refused_before_any_operation(run: DryRun, *fragments: str) -> str:
    """The run stopped with one ``pyinfra error`` line holding every fragment, no traceback and
    no operation prepared (so no host was touched beyond connecting). Returns that line."""
    errors = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert run.returncode != 0, run.output
    assert len(errors) == 1, run.output
    assert all(fragment in errors[0] for fragment in fragments), run.output
    assert "Traceback" not in run.output and "Starting operation" not in run.output, run.output
    return errors[0]
