"""Run pyinfra the way a user would: its own CLI, in a subprocess.

The CLI uses pyinfra's command line rather than its Python API so that ``dindkit smoke`` and
``pyinfra INVENTORY deploys/smoke.py`` are one code path: same inventory loading, same data
precedence, same output and exit codes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def data_arguments(data: Mapping[str, Any]) -> list[str]:
    """``--data key=value`` pairs; non-strings as JSON, which pyinfra's --data parses."""
    arguments: list[str] = []
    for key, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value)
        arguments += ["--data", f"{key}={text}"]
    return arguments


def pyinfra_command(
    inventory: str | Path,
    deploy: str | Path,
    data: Mapping[str, Any] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pyinfra",
        "-y",
        *extra,
        *data_arguments(data or {}),
        str(inventory),
        str(deploy),
    ]


def run_pyinfra(
    inventory: str | Path,
    deploy: str | Path,
    data: Mapping[str, Any] | None = None,
    extra: Sequence[str] = (),
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a deploy; output streams to the terminal unless ``capture``."""
    return subprocess.run(
        pyinfra_command(inventory, deploy, data, extra),
        text=True,
        capture_output=capture,
        check=False,
    )
