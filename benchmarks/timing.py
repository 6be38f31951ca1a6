"""Shared by the benchmarks: run a command with a timestamp on every output line, and turn
pyinfra's output into a per-operation table.

pyinfra runs each operation on every host before the next (``--> Starting operation: NAME``),
so an operation's seconds are from its line to the next one (the slowest host's time). Before
the first operation come the connection and the plan (every fact read at plan time). With
``-v`` pyinfra logs one ``Loaded fact`` line per fact it reads: each is one SSH round trip.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dindkit.lab.pyinfra_output import strip_ansi

STARTING = re.compile(r"^--> Starting operation: (?P<name>.*?)\s*$")
RESULTS = re.compile(r"^--> Results:")
LOADING_CONFIG = re.compile(r"^--> Loading config")
LOADED_FACT = re.compile(r"\]\s+Loaded fact (?P<fact>\S+)")
SMOKE_STEP_END = re.compile(r"@@dindkit end (?P<step>\S+) (?P<rc>-?\d+)(?: (?P<seconds>[\d.]+))?")


@dataclass
class TimedRun:
    """A finished command: its exit code, wall seconds and (seconds since start, line) pairs."""

    returncode: int
    seconds: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)


def run_timed(
    command: Sequence[str], echo: bool = False, prefix: str = "", cwd: Path | None = None
) -> TimedRun:
    """Run ``command`` (in ``cwd``), stdout and stderr merged, stamping each line as it comes."""
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        cwd=cwd,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.monotonic() - started, line))
            if echo:
                sys.stdout.write(f"{prefix}{line}")
                sys.stdout.flush()
    return TimedRun(process.returncode, time.monotonic() - started, lines)


def operation_seconds(run: TimedRun) -> list[tuple[str, float]]:
    """(phase or operation, seconds) in run order: connect and plan first, then each operation.
    A command that runs pyinfra after work of its own (the demo: images, labs) starts with a
    row for that work."""
    rows: list[tuple[str, float]] = []
    name, since = "connect and plan (facts read at plan time)", 0.0
    for at, raw in run.lines:
        line = strip_ansi(raw).rstrip()
        if LOADING_CONFIG.match(line) and not rows:
            rows.append(("before pyinfra (the command's own work)", at))
            since = at
            continue
        started = STARTING.match(line)
        if started or RESULTS.match(line):
            rows.append((name, at - since))
            name, since = (started["name"] if started else "results and exit"), at
    rows.append((name, run.seconds - since))
    return rows


def facts_loaded(run: TimedRun) -> list[str]:
    """The facts pyinfra read (needs ``-v``), one per SSH round trip, in order."""
    found = []
    for _, raw in run.lines:
        match = LOADED_FACT.search(strip_ansi(raw))
        if match:
            found.append(match["fact"])
    return found


def print_operations(title: str, run: TimedRun, minimum: float = 0.0) -> None:
    """The per-operation table; rows under ``minimum`` seconds are summed into one line."""
    rows = operation_seconds(run)
    width = max(len(name) for name, _ in rows) if rows else 10
    width = min(width, 90)
    print(f"\n{title}: {run.seconds:.1f} s wall, exit {run.returncode}")
    small = [seconds for _, seconds in rows if seconds < minimum]
    for name, seconds in rows:
        if seconds >= minimum:
            print(f"  {seconds:7.1f}  {name[-width:]}")
    if small:
        print(f"  {sum(small):7.1f}  ({len(small)} operations under {minimum:.0f} s each)")
