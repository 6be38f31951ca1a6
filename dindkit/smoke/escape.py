"""The escape suite: the same attempts in every mode, each ending allowed, blocked or
inconclusive, compared with what the mode declares.

The attempts run inside the mode's job container (templates/smoke/escape/attempts.sh.j2);
the host side (templates/smoke/escape/host.sh.j2, the mode's ``escape`` step) plants the
canaries, relays the attempts' output with ``| `` in front and adds its own verdicts. Here the
two are merged: an attempt is ``allowed`` when the container or the host saw it succeed,
``inconclusive`` when the probe could not run (a tool missing, no report, no verdict), else the
host's verdict, else the container's. A mode passes only when every outcome is the one it
declares; ``inconclusive`` never matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

ALLOWED, BLOCKED, INCONCLUSIVE = "allowed", "blocked", "inconclusive"
OUTCOMES = (ALLOWED, BLOCKED, INCONCLUSIVE)
EVIDENCE_LINES = 14

# Every attempt, in the order they run, and what it reaches when allowed (the grants text).
ATTEMPTS: dict[str, str] = {
    "privileged-host-root": "host root through the daemon (--privileged -v /:/host)",
    "read-host-shadow": "the host's root-only files",
    "write-host-root": "writing to the host's /root",
    "host-proc-sys": "the host's /proc/sys",
    "host-block-device": "the host's block devices",
    "kernel-module": "kernel modules",
    "mount": "mounting filesystems",
    "set-time": "the host's clock",
    "host-pid": "the host's processes",
    "cgroup-escape": "the host's cgroup tree",
    "host-docker-socket": "the host's Docker or containerd socket, unfiltered",
    "host-loopback": "the host's 127.0.0.1",
    "container-root-on-host": "root on the host (the container's root is host root)",
}

_CONTAINER = re.compile(r"^\| @@escape (begin|end) (\S+)(?: (\S+))?\s*$")
_VERDICT = re.compile(r"^@@escape verdict (\S+) (\S+)(?: (.*))?$")


@dataclass
class Outcome:
    outcome: str  # allowed, blocked, inconclusive
    expected: str = ""
    evidence: str = ""

    @property
    def matches(self) -> bool:
        return self.outcome != INCONCLUSIVE and self.outcome == self.expected


def expect(*allowed: str) -> dict[str, str]:
    """A mode's declaration: the attempts it allows, every other one blocked."""
    unknown = sorted(set(allowed) - set(ATTEMPTS))
    if unknown:
        raise ValueError(f"unknown escape attempts: {', '.join(unknown)}")
    return {name: ALLOWED if name in allowed else BLOCKED for name in ATTEMPTS}


def measure(output: str, expected: Mapping[str, str]) -> dict[str, Outcome]:
    """Every attempt's outcome and evidence from a mode script's output."""
    states: dict[str, str] = {}
    lines: dict[str, list[str]] = {}
    verdicts: dict[str, tuple[str, str]] = {}
    current: str | None = None
    for raw in output.splitlines():
        line = raw.rstrip()
        container = _CONTAINER.match(line)
        verdict = _VERDICT.match(line)
        if container and container.group(1) == "begin":
            current = container.group(2)
            lines[current] = []
        elif container and current is not None and current == container.group(2):
            states[current] = container.group(3) or ""
            current = None
        elif verdict:
            verdicts[verdict.group(1)] = (verdict.group(2), verdict.group(3) or "")
        elif current is not None and line.startswith("| "):
            lines[current].append(line[2:])
    return {
        name: _merge(
            states.get(name),
            verdicts.get(name),
            lines.get(name, []),
            expected.get(name, ""),
        )
        for name in ATTEMPTS
    }


def _merge(
    state: str | None, verdict: tuple[str, str] | None, lines: list[str], expected: str
) -> Outcome:
    kept = [line for line in lines if line.strip()][-EVIDENCE_LINES:]
    if verdict:
        kept.append(f"host: {verdict[0]}: {verdict[1]}")
    evidence = "\n".join(kept)
    host = verdict[0] if verdict and verdict[0] in OUTCOMES else None
    if state is None:
        why = "the attempt never reported (the escape step did not get that far)"
        return Outcome(INCONCLUSIVE, expected, "\n".join([why, *kept]))
    if ALLOWED in (state, host):
        outcome = ALLOWED
    elif state == INCONCLUSIVE or host == INCONCLUSIVE:
        outcome = INCONCLUSIVE
    elif host:
        outcome = host
    elif state in OUTCOMES:
        outcome = state
    else:  # "ran", and the host said nothing
        outcome = INCONCLUSIVE
        evidence += "\nno verdict from the host"
    return Outcome(outcome, expected, evidence)


def mismatches(outcomes: Mapping[str, Outcome]) -> list[str]:
    """One line per attempt whose outcome is not the declared one (inconclusive never is)."""
    lines = []
    for name, outcome in outcomes.items():
        if outcome.matches:
            continue
        cause = next(iter(outcome.evidence.splitlines()[-1:]), "")
        if outcome.outcome == INCONCLUSIVE:
            lines.append(f"{name} inconclusive (a probe that did not run proves nothing): {cause}")
        else:
            lines.append(f"{name} {outcome.outcome}, expected {outcome.expected}: {cause}")
    return lines


def grants(outcomes: Mapping[str, str]) -> str:
    """The grants text from outcomes (attempt -> outcome): what is allowed, what is blocked."""
    parts = []
    for outcome in OUTCOMES:
        names = [ATTEMPTS[name] for name, got in outcomes.items() if got == outcome]
        if names:
            parts.append(f"{outcome}: {', '.join(names)}")
    return "; ".join(parts)
