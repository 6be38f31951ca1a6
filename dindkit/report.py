"""The smoke report: per host and mode a status, a reason, seconds, what the mode grants and
the checks.

Each host's results are written to ``DIR/hosts/<host>.json`` as soon as its smoke tests end,
together with the run id; ``DIR/report.json``, ``DIR/junit.xml`` and ``DIR/report.html`` are
then rebuilt from every host file of the same run, so the last host to finish completes the
report and a report never mixes runs (files of another run are removed first).

report.json::

    {"hosts": {HOST: {"modes": {MODE: {"status": "passed|failed|skipped", "reason": str,
     "seconds": float, "grants": str,
     "checks": [{"name": str, "status": str, "detail": str}],
     "escapes": {ATTEMPT: {"outcome": "allowed|blocked|inconclusive", "expected": str,
                           "evidence": str}},
     "build_seconds": {"cold": float, "warm": float}, "build_x_host": {"cold": float,
     "warm": float}}}}}}

``build_seconds`` are the CI flow's two builds of one fixed context (with the registry on):
cold (nothing cached) and warm (the same context again, every step from the cache);
``build_x_host`` divides them by the dood mode's on the same host, the build on the host's
own daemon (the job's client only sends the context through the socket).

report.html is one self-contained page (templates/report/report.html.j2): a matrix of hosts by
modes, and every check's detail in a ``<details>`` element; no scripts, fonts or images.
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dindkit import templating

STATUSES = ("passed", "failed", "skipped")
OUTCOMES = ("allowed", "blocked", "inconclusive")
HOSTS_DIR = "hosts"
REPORT_JSON = "report.json"
JUNIT_XML = "junit.xml"
REPORT_HTML = "report.html"
HTML_TEMPLATE = "report/report.html.j2"


class ReportError(ValueError):
    """A saved report is missing or malformed; the message names the file and the problem."""


@dataclass
class Check:
    name: str
    status: str
    detail: str = ""


@dataclass
class Escape:
    """One escape attempt of a mode: what it came to, what the mode declares, the evidence."""

    outcome: str  # allowed, blocked, inconclusive
    expected: str = ""
    evidence: str = ""


@dataclass
class ModeResult:
    status: str
    reason: str = ""
    seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)
    # What the mode gives the container on the host: generated from the escape outcomes.
    grants: str = ""
    escapes: dict[str, Escape] = field(default_factory=dict)  # attempt -> its outcome
    # The CI flow's builds, "cold" and "warm", in seconds; and as a multiple of the host's.
    build_seconds: dict[str, float] = field(default_factory=dict)
    build_x_host: dict[str, float] = field(default_factory=dict)


@dataclass
class HostResult:
    modes: dict[str, ModeResult] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(mode.status == "failed" for mode in self.modes.values())


@dataclass
class Report:
    hosts: dict[str, HostResult] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(host.failed for host in self.hosts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"hosts": {name: asdict(host) for name, host in sorted(self.hosts.items())}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls({name: host_from_dict(host) for name, host in data["hosts"].items()})


def host_from_dict(data: dict[str, Any]) -> HostResult:
    return HostResult(
        {
            name: ModeResult(
                status=mode["status"],
                reason=mode.get("reason", ""),
                seconds=float(mode.get("seconds", 0.0)),
                checks=[Check(**check) for check in mode.get("checks", [])],
                grants=mode.get("grants", ""),
                escapes={
                    name: Escape(**escape) for name, escape in mode.get("escapes", {}).items()
                },
                build_seconds=_floats(mode.get("build_seconds", {})),
                build_x_host=_floats(mode.get("build_x_host", {})),
            )
            for name, mode in data["modes"].items()
        }
    )


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {case: float(seconds) for case, seconds in values.items()}


# The mode whose builds run on the host's own daemon: the measure of every other mode's.
HOST_BUILD_MODE = "dood"


def set_build_ratios(host: HostResult) -> None:
    """Each mode's build seconds as a multiple of the host daemon's (the dood mode's)."""
    base = host.modes.get(HOST_BUILD_MODE)
    for mode in host.modes.values():
        mode.build_x_host = {
            case: round(seconds / base.build_seconds[case], 2)
            for case, seconds in mode.build_seconds.items()
            if base and base.build_seconds.get(case)
        }


def build_rows(host: HostResult) -> list[list[str]]:
    """Rows of the build cost (the first row the header), empty where no mode built."""
    modes = {name: mode for name, mode in host.modes.items() if mode.build_seconds}
    if not modes:
        return []
    rows = [["MODE", "COLD S", "X HOST", "WARM S", "X HOST"]]
    for name, mode in modes.items():
        row = [name]
        for case in ("cold", "warm"):
            seconds, ratio = mode.build_seconds.get(case), mode.build_x_host.get(case)
            row += [
                "-" if seconds is None else f"{seconds:.1f}",
                "-" if ratio is None else f"{ratio:.2f}",
            ]
        rows.append(row)
    return rows


# Files ---------------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as out:
        out.write(text)
    os.replace(out.name, path)


def _host_file_name(host: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in host) + ".json"


def clear_other_runs(report_dir: str | Path, run_id: str) -> None:
    """Remove host results of any other run, and the report built from them."""
    report_dir = Path(report_dir)
    hosts = report_dir / HOSTS_DIR
    for path in hosts.glob("*.json") if hosts.is_dir() else ():
        try:
            other = json.loads(path.read_text()).get("run_id")
        except (OSError, ValueError):
            other = None
        if other != run_id:
            path.unlink(missing_ok=True)
    for name in (REPORT_JSON, JUNIT_XML, REPORT_HTML):
        path = report_dir / name
        if path.exists() and report_run(report_dir) != run_id:
            path.unlink()


def report_run(report_dir: str | Path) -> str | None:
    """The run id the report in DIR belongs to."""
    marker = Path(report_dir) / HOSTS_DIR / ".run"
    return marker.read_text().strip() if marker.exists() else None


def write_host(report_dir: str | Path, run_id: str, host: str, result: HostResult) -> Report:
    """Store one host's results and rebuild report.json and junit.xml for this run."""
    report_dir = Path(report_dir)
    clear_other_runs(report_dir, run_id)
    payload = {"run_id": run_id, "host": host, **asdict(result)}
    _write_atomic(report_dir / HOSTS_DIR / _host_file_name(host), json.dumps(payload, indent=2))
    _write_atomic(report_dir / HOSTS_DIR / ".run", run_id + "\n")
    report = Report()
    for path in sorted((report_dir / HOSTS_DIR).glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("run_id") == run_id:
            report.hosts[data["host"]] = host_from_dict(data)
    write_report(report_dir, report)
    return report


def write_report(report_dir: str | Path, report: Report) -> None:
    report_dir = Path(report_dir)
    _write_atomic(report_dir / REPORT_JSON, json.dumps(report.to_dict(), indent=2) + "\n")
    _write_atomic(report_dir / JUNIT_XML, to_junit(report))
    write_html(report_dir, report)


def write_html(report_dir: str | Path, report: Report) -> Path:
    path = Path(report_dir) / REPORT_HTML
    _write_atomic(path, to_html(report))
    return path


def read_report(report_dir: str | Path) -> Report | None:
    """The report in DIR, or None when there is none (no host finished).

    Raises ReportError when report.json is not a report.
    """
    path = Path(report_dir) / REPORT_JSON
    if not path.exists():
        return None
    try:
        return parse_report(path.read_text())
    except (OSError, ValueError) as error:
        raise ReportError(f"{path}: {error}") from None


def parse_report(text: str) -> Report:
    """A report from report.json's text; ValueError says what is wrong, and where."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict):
        raise ValueError('not a dindkit smoke report: no "hosts" object at the top')
    for host_name, host in hosts.items():
        modes = host.get("modes") if isinstance(host, dict) else None
        if not isinstance(modes, dict):
            raise ValueError(f'hosts.{host_name} has no "modes" object')
        for mode_name, mode in modes.items():
            where = f"hosts.{host_name}.modes.{mode_name}"
            status = mode.get("status") if isinstance(mode, dict) else None
            if status not in STATUSES:
                raise ValueError(f"{where}.status is {status!r}, not one of {', '.join(STATUSES)}")
            checks = mode.get("checks", [])
            if not isinstance(checks, list) or not all(
                isinstance(check, dict) and {"name", "status"} <= set(check) for check in checks
            ):
                raise ValueError(f"{where}.checks is not a list of {{name, status, detail}}")
            escapes = mode.get("escapes", {})
            for attempt, escape in escapes.items() if isinstance(escapes, dict) else ():
                outcome = escape.get("outcome") if isinstance(escape, dict) else None
                if outcome not in OUTCOMES:
                    raise ValueError(
                        f"{where}.escapes.{attempt}.outcome is {outcome!r}, "
                        f"not one of {', '.join(OUTCOMES)}"
                    )
            if not isinstance(escapes, dict):
                raise ValueError(f"{where}.escapes is not an object of attempts")
    try:
        return Report.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"unexpected value ({error})") from None


# JUnit ---------------------------------------------------------------------------------------


def _checks_text(mode: ModeResult) -> str:
    return "\n".join(
        f"[{check.status}] {check.name}"
        + (f"\n  {check.detail.replace(chr(10), chr(10) + '  ')}" if check.detail else "")
        for check in mode.checks
    )


def to_junit(report: Report) -> str:
    """One testsuite per host, one testcase per mode (classname ``dindkit.smoke.<host>``)."""
    suites = ET.Element("testsuites", name="dindkit smoke")
    for host_name, host in sorted(report.hosts.items()):
        modes = host.modes
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=host_name,
            tests=str(len(modes)),
            failures=str(sum(mode.status == "failed" for mode in modes.values())),
            errors="0",
            skipped=str(sum(mode.status == "skipped" for mode in modes.values())),
            time=f"{sum(mode.seconds for mode in modes.values()):.1f}",
        )
        for mode_name, mode in modes.items():
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"dindkit.smoke.{host_name}",
                name=mode_name,
                time=f"{mode.seconds:.1f}",
            )
            if mode.status == "failed":
                failure = ET.SubElement(case, "failure", message=mode.reason or "failed")
                failure.text = _checks_text(mode)
            elif mode.status == "skipped":
                ET.SubElement(case, "skipped", message=mode.reason or "skipped")
            if mode.checks:
                ET.SubElement(case, "system-out").text = _checks_text(mode)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


# HTML ----------------------------------------------------------------------------------------


def mode_names(report: Report) -> list[str]:
    """Every mode of the report, in the order the hosts ran them."""
    names: dict[str, None] = {}
    for _, host in sorted(report.hosts.items()):
        names.update(dict.fromkeys(host.modes))
    return list(names)


def counts(report: Report) -> str:
    """``2 passed, 1 failed, 0 skipped (1 host(s))``."""
    total = [mode for host in report.hosts.values() for mode in host.modes.values()]
    tally = ", ".join(
        f"{sum(mode.status == status for mode in total)} {status}" for status in STATUSES
    )
    return f"{tally} ({len(report.hosts)} host(s))"


def to_html(report: Report) -> str:
    """The self-contained HTML page of the report."""
    grants: dict[str, str] = {}  # the first host's sentence for each mode that has one
    for _, host in sorted(report.hosts.items()):
        for name, mode in host.modes.items():
            if mode.grants:
                grants.setdefault(name, mode.grants)
    environment = templating.environment().overlay(autoescape=True)
    return environment.get_template(HTML_TEMPLATE).render(
        hosts=sorted(report.hosts.items()),
        modes=mode_names(report),
        grants=grants,
        summary=counts(report),
        failed=report.failed,
        escape_modes=escape_modes,
        escape_attempts=escape_attempts,
        build_rows=build_rows,
        host_build_mode=HOST_BUILD_MODE,
    )


# Table ---------------------------------------------------------------------------------------


def format_table(report: Report) -> str:
    """A plain-text table: host, mode, status, seconds, reason; failed checks underneath."""
    rows = [("HOST", "MODE", "STATUS", "SECONDS", "REASON")]
    notes: list[str] = []
    for host_name, host in sorted(report.hosts.items()):
        for mode_name, mode in host.modes.items():
            reason = mode.reason.splitlines()[0] if mode.reason else ""
            rows.append((host_name, mode_name, mode.status.upper(), f"{mode.seconds:.1f}", reason))
            for check in mode.checks:
                if check.status == "failed":
                    notes.append(f"{host_name} {mode_name} {check.name}:")
                    notes += [f"    {line}" for line in check.detail.splitlines()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    ]
    lines = [line.rstrip() for line in lines]
    lines.append(counts(report))
    for host_name, host in sorted(report.hosts.items()):
        matrix = escape_matrix(host)
        if matrix:
            lines += [
                "",
                f"Escape attempts on {host_name} (from the job container; "
                "! where the outcome is not the declared one):",
            ]
            lines += _columns(matrix)
        builds = build_rows(host)
        if builds:
            lines += [
                "",
                f"The CI flow's build on {host_name} (cold: nothing cached; warm: the same "
                f"context again; x host: against {HOST_BUILD_MODE}, the host's daemon):",
            ]
            lines += _columns(builds)
    if notes:
        lines += ["", "Failed checks:", *notes]
    return "\n".join(lines)


# Escape matrix -------------------------------------------------------------------------------


def escape_modes(host: HostResult) -> list[str]:
    """The modes of a host that measured or declared escape outcomes."""
    return [name for name, mode in host.modes.items() if mode.escapes]


def escape_attempts(host: HostResult) -> list[str]:
    names: dict[str, None] = {}
    for mode in host.modes.values():
        names.update(dict.fromkeys(mode.escapes))
    return list(names)


def escape_cell(escape: Escape | None) -> str:
    """``allowed``, ``blocked``, ``inconclusive``; ``!`` and the declared one on a mismatch."""
    if escape is None:
        return "-"
    if escape.outcome != escape.expected or escape.outcome == "inconclusive":
        return f"{escape.outcome}! (declared {escape.expected or 'nothing'})"
    return escape.outcome


def escape_matrix(host: HostResult) -> list[list[str]]:
    """Rows of attempts by modes (the first row the header), empty without escapes."""
    modes = escape_modes(host)
    if not modes:
        return []
    rows = [["ATTEMPT", *modes]]
    for attempt in escape_attempts(host):
        rows.append([attempt, *(escape_cell(host.modes[m].escapes.get(attempt)) for m in modes)])
    return rows


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def to_markdown(report: Report, measured: str) -> str:
    """The escape matrix of every host as Markdown tables, under MEASURED (date, commit)."""
    parts = [f"Measured {measured}."]
    for host_name, host in sorted(report.hosts.items()):
        rows = escape_matrix(host)
        skipped = [
            f"`{name}` skipped: {mode.reason}"
            for name, mode in host.modes.items()
            if mode.status == "skipped"
        ]
        parts.append(f"**{host_name}**")
        if rows:
            table = ["| attempt | " + " | ".join(f"`{m}`" for m in rows[0][1:]) + " |"]
            table.append("|---" * len(rows[0]) + "|")
            table += ["| `" + row[0] + "` | " + " | ".join(row[1:]) + " |" for row in rows[1:]]
            parts.append("\n".join(table))
        parts += [f"- {line}" for line in skipped]
        for name, mode in host.modes.items():
            if mode.escapes:
                parts.append(f"- `{name}` grants: {mode.grants}")
    return "\n\n".join(parts) + "\n"
