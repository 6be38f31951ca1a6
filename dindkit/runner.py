"""Run pyinfra the way a user would: its own CLI, in a subprocess.

The CLI uses pyinfra's command line rather than its Python API so that ``dindkit smoke`` and
``pyinfra INVENTORY deploys/smoke.py`` are one code path: same inventory loading, same data
precedence, same output and exit codes.

pyinfra's output (stdout and stderr, in order) is streamed through a life-sign ticker
(dindkit.progress) that knows the running operation from pyinfra's own lines::

    --> Starting operation: Install Docker
        Starting nested operation: Restart Docker
    --> Connecting to hosts...
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dindkit import progress

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OPERATION = re.compile(r"^\s*(?:--> )?Starting (?:[\w ,]+ )?operation: (?P<name>.+?)\s*$")
HEADER = re.compile(r"^--> (?P<name>[A-Z][^:]*?)(?:\.\.\.|:)?\s*$")


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


def running_step(line: str) -> str | None:
    """What pyinfra starts with this output line (an operation or a phase), else None."""
    text = ANSI.sub("", line).rstrip()
    match = OPERATION.match(text) or HEADER.match(text)
    return match["name"] if match else None


def stream_with_life_signs(command: Sequence[str], label: str) -> subprocess.CompletedProcess[str]:
    """Run ``command``, its output (stdout and stderr merged) shown through a ticker."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}  # keep stdout and stderr in order
    with progress.running(label) as ticker:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=environment,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                step = running_step(line)
                if step:
                    ticker.begin(step)
                ticker.line(line)
            code = process.wait()
        except BaseException:
            process.terminate()
            process.wait()
            raise
    return subprocess.CompletedProcess(list(command), code)


def run_pyinfra(
    inventory: str | Path,
    deploy: str | Path,
    data: Mapping[str, Any] | None = None,
    extra: Sequence[str] = (),
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a deploy; output streams to the console with life signs, unless ``capture``."""
    command = pyinfra_command(inventory, deploy, data, extra)
    if capture:
        return subprocess.run(command, text=True, capture_output=True, check=False)
    return stream_with_life_signs(command, f"pyinfra {Path(deploy).name}")
