"""Reading pyinfra's console output: how many operations changed something on a host.

pyinfra 3 prints, for each operation, one line per host: ``[host] Success`` when the operation
changed something, ``[host] No changes`` when it did not, ``[host] Error`` when it failed. At the
end a "Results" table repeats the counts (columns Operation, Hosts, Success, Error, No Change;
"-" for zero), summed up in a "Grand total" row. The per-host lines are the primary source;
the grand total is the fallback when they are absent (and is per host only with ``--limit``).
"""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
GRAND_TOTAL = re.compile(r"^\s*Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")
STARTING = re.compile(r"^--> Starting operation: (?P<name>.*?)\s*$")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def _count(cell: str) -> int:
    return 0 if cell == "-" else int(cell)


def _statuses(lines: list[str], host: str | None) -> list[tuple[str, str]]:
    """(operation name, status) for each per-host status line, in order."""
    host_pattern = re.escape(host) if host else r"[^\]\s]+"
    status = re.compile(rf"^\s*\[{host_pattern}\]\s+(Success|No changes|Error)\b")
    found = []
    operation = ""
    for line in lines:
        started = STARTING.match(line)
        if started:
            operation = started["name"]
        elif match := status.match(line):
            found.append((operation, match.group(1)))
    return found


def changed_operation_names(output: str, host: str | None = None) -> list[str]:
    """Names of the operations that reported a change on ``host``, in run order."""
    lines = strip_ansi(output).splitlines()
    return [name for name, status in _statuses(lines, host) if status == "Success"]


def changed_operations(output: str, host: str | None = None) -> int:
    """Operations that reported a change on ``host`` (on any host if None)."""
    lines = strip_ansi(output).splitlines()
    statuses = _statuses(lines, host)
    if statuses:
        return sum(1 for _, status in statuses if status == "Success")
    for line in reversed(lines):
        match = GRAND_TOTAL.match(line)
        if match:
            return _count(match.group(2))
    raise ValueError("no pyinfra operation results found in the output")
