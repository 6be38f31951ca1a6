"""``dindkit doctor INVENTORY``: a read-only report of each host's Docker and Sysbox readiness.

Why the pyinfra CLI and a deploy file rather than pyinfra's Python API: the inventory is a
pyinfra inventory (a Python file with host data, SSH options, groups), and only pyinfra's CLI
loads it exactly as ``pyinfra INVENTORY deploys/x.py`` does. deploys/doctor.py plans no
operation; it reads facts (at plan time, on the control machine's side of the connection) and
writes one JSON file per host. The CLI runs it with ``--dry`` as well, so even a mistake in it
could not change a host. The table and ``--json`` are made from those files.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

FIELDS = (
    ("distribution", "Distribution"),
    ("kernel", "Kernel"),
    ("architecture", "Architecture"),
    ("cgroup", "cgroup version"),
    ("iptables", "iptables backend"),
    ("docker_version", "Docker version"),
    ("docker_source", "Docker source"),
    ("storage_driver", "Storage driver"),
    ("runtimes", "Runtimes"),
    ("socket", "Socket owner:group mode"),
    ("sysbox_version", "Sysbox installed"),
    ("legacy_socket_hacks", "chmod-666 leftovers"),
    ("audit", "Audit rules (dindkit)"),
    ("audit_cost", "Audit cost"),
    ("daemon_options", "Daemon options"),
    ("file_modes", "Docker files owner/mode"),
)

# CIS Docker Benchmark section 3: owner, group and the most a mode may allow.
FILE_MODE_LIMITS = {
    "/run/containerd/containerd.sock": ("root", "root", "0660"),
    "/etc/docker": ("root", "root", "0755"),
}
FILE_MODE_DEFAULT = ("root", "root", "0644")  # daemon.json, /etc/default/docker, units


def docker_source(packages: list[str], snap: bool) -> str:
    """docker-ce, distro (docker.io / moby-engine), snap or none."""
    if snap:
        return "snap"
    if "docker-ce" in packages:
        return "docker-ce"
    if packages:
        return "distro"
    return "none"


def audit_status(status: Any, key: str, wanted: bool) -> dict[str, Any]:
    """dindkit's loaded audit rules (``auditctl -l`` lines with its key) against docker_audit."""
    from dindkit.facts.audit import rules_with_key

    rules = rules_with_key(status["rules"], key) if status else []
    return {
        "key": key,
        "wanted": wanted,
        "auditctl": status is not None,
        "enabled": status["enabled"] if status else None,
        "rules": rules,
        "count": len(rules),
        "ok": bool(rules) == wanted,
    }


def daemon_option_status(
    expected: dict[str, Any], configured: dict[str, Any] | None, in_effect: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Each option dindkit sets: expected, in daemon.json, and applied by dockerd where
    ``docker info`` shows it (log-driver, live-restore, icc)."""
    rows = []
    for option, value in expected.items():
        row: dict[str, Any] = {
            "option": option,
            "expected": value,
            "configured": (configured or {}).get(option),
        }
        row["ok"] = row["configured"] == value
        if in_effect is not None and option in in_effect:
            row["in_effect"] = in_effect[option]
            row["ok"] = row["ok"] and in_effect[option] == value
        rows.append(row)
    return rows


def file_mode_status(
    modes: Sequence[Any], socket_group: str, socket_mode: str
) -> list[dict[str, Any]]:
    """Docker's sockets, configuration and units against CIS section 3 (mode: at most)."""
    limits = {**FILE_MODE_LIMITS, "/run/docker.sock": ("root", socket_group, socket_mode)}
    rows = []
    for entry in modes:
        owner, group, mode = limits.get(entry["path"], FILE_MODE_DEFAULT)
        ok = (entry["owner"], entry["group"]) == (owner, group) and int(entry["mode"], 8) & ~int(
            mode, 8
        ) == 0
        rows.append({**entry, "expected": f"{owner}:{group} {mode}", "ok": ok})
    return rows


def collect() -> None:
    """Gather the facts of the current host into ``<doctor_output_dir>/<host>.json``."""
    from pyinfra import host
    from pyinfra.facts.server import Arch, KernelVersion, LinuxDistribution

    from dindkit.audit import AUDIT_KEY
    from dindkit.facts.audit import LoadedAuditRules
    from dindkit.facts.docker import DaemonJson, LegacySocketHacks
    from dindkit.facts.doctor import (
        AuditCost,
        CgroupVersion,
        DockerDaemonInEffect,
        DockerFileModes,
        DockerPackages,
        DockerSocket,
        DockerStorageDriver,
        IptablesBackend,
    )
    from dindkit.facts.sysbox import (
        DockerRuntimes,
        DockerServerVersion,
        RunningContainers,
        SnapDocker,
        SysboxVersion,
    )
    from dindkit.preflight import DockerFacts, docker_checks, failure_message
    from dindkit.settings.docker import DOCKER_SETTINGS
    from dindkit.settings.sysbox import SYSBOX_SETTINGS
    from dindkit.sysbox import host_preflight

    output_dir = host.data.get("doctor_output_dir")
    if not output_dir:
        from pyinfra.api.exceptions import DeployError

        raise DeployError("deploys/doctor.py needs --data doctor_output_dir=DIR")
    docker = DOCKER_SETTINGS.validate(host.data)  # what dindkit would set, to compare with
    distro = host.get_fact(LinuxDistribution)
    snap = host.get_fact(SnapDocker)
    docker_version = host.get_fact(DockerServerVersion)
    sysbox_version = host.data.get("sysbox_version") or SYSBOX_SETTINGS.defaults["sysbox_version"]
    checks = [
        *host_preflight(),
        *docker_checks(DockerFacts(snap=snap, version=docker_version), str(sysbox_version)),
    ]
    socket = host.get_fact(DockerSocket)
    file_modes = host.get_fact(DockerFileModes)
    report: dict[str, Any] = {
        "host": host.name,
        "distribution": " ".join(
            str(part) for part in (distro["name"], distro["release_meta"].get("VERSION_ID")) if part
        )
        or None,
        "kernel": host.get_fact(KernelVersion),
        "architecture": host.get_fact(Arch),
        "cgroup": host.get_fact(CgroupVersion),
        "iptables": host.get_fact(IptablesBackend),
        "docker_version": docker_version,
        "docker_source": docker_source(host.get_fact(DockerPackages), snap),
        "storage_driver": host.get_fact(DockerStorageDriver),
        "runtimes": host.get_fact(DockerRuntimes),
        "socket": socket,
        "running_containers": host.get_fact(RunningContainers),
        "sysbox_version": host.get_fact(SysboxVersion),
        "sysbox_preflight": [
            {"name": check.name, "verdict": check.verdict, "reason": check.reason}
            for check in checks
        ],
        "sysbox_ready": failure_message(checks) is None,
        "legacy_socket_hacks": host.get_fact(LegacySocketHacks),
        "audit": audit_status(host.get_fact(LoadedAuditRules), AUDIT_KEY, docker["docker_audit"]),
        "audit_cost": host.get_fact(AuditCost, key=AUDIT_KEY),
        "daemon_options": daemon_option_status(
            docker["docker_daemon_options"],
            host.get_fact(DaemonJson),
            host.get_fact(DockerDaemonInEffect),
        ),
        "file_modes": file_mode_status(
            file_modes,
            docker["docker_socket_group"],
            docker["docker_socket_mode"],
        ),
    }
    path = Path(output_dir) / f"{host.name}.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def _value(report: dict[str, Any], key: str) -> str:
    value = report.get(key)
    if key == "socket":
        return f"{value['owner']}:{value['group']} {value['mode']}" if value else "absent"
    if key == "runtimes":
        return ", ".join(value) if value else "none"
    if key == "legacy_socket_hacks":
        if not value:
            return "none"
        return "; ".join(
            f"{hack['path']}:{hack['line_number']}: {hack['line'].strip()}" for hack in value
        )
    if key == "sysbox_version":
        return value or "not installed"
    if key == "audit":
        return _audit_value(value)
    if key == "audit_cost":
        return audit_cost_value(value)
    if key == "daemon_options":
        bad = [row for row in value or [] if not row["ok"]]
        if not bad:
            return f"as expected ({len(value or [])} options)"
        return "differs: " + "; ".join(
            f"{row['option']} expected {json.dumps(row['expected'])}, daemon.json "
            f"{json.dumps(row['configured'])}"
            + (f", running {json.dumps(row['in_effect'])}" if "in_effect" in row else "")
            for row in bad
        )
    if key == "file_modes":
        bad = [row for row in value or [] if not row["ok"]]
        if not bad:
            return f"ok ({len(value or [])} files)"
        return "; ".join(
            f"{row['path']} {row['owner']}:{row['group']} {row['mode']} "
            f"(expected {row['expected']})"
            for row in bad
        )
    return "unknown" if value is None else str(value)


def _audit_value(audit: dict[str, Any] | None) -> str:
    if not audit:
        return "unknown"
    if not audit["auditctl"]:
        state = "auditctl not installed"
    else:
        state = f"{audit['count']} loaded (key {audit['key']})"
    wanted = "docker_audit=true" if audit["wanted"] else "docker_audit=false"
    return f"{state}, {wanted}{'' if audit['ok'] else ': NOT as configured'}"


def audit_cost_value(cost: dict[str, Any] | None) -> str:
    """dindkit's audit events per minute, lost records and backlog waits, in one line."""
    if not cost:
        return "auditctl not installed"
    line = (
        f"{cost['events_per_minute']} events/min ({cost['events_last_hour']} in the last "
        f"{cost['window_minutes']} min), lost {cost['lost']}, backlog {cost['backlog']}/"
        f"{cost['backlog_limit']}, backlog waits {cost['backlog_wait_time_actual']} ticks "
        f"(wait time {cost['backlog_wait_time']})"
    )
    troubles = [
        what
        for what, count in (
            ("records lost", cost["lost"]),
            ("writers held", cost["backlog_wait_time_actual"]),
        )
        if count
    ]
    return line + (f": {', '.join(troubles)} since boot" if troubles else "")


def format_report(reports: list[dict[str, Any]]) -> str:
    """One block per host: the fields, then every preflight check."""
    width = max(len(label) for _, label in FIELDS)
    blocks = []
    for report in reports:
        lines = [f"== {report['host']}"]
        lines += [f"  {label:<{width}}  {_value(report, key)}" for key, label in FIELDS]
        lines.append(
            f"  {'Sysbox preflight':<{width}}  {'ready' if report['sysbox_ready'] else 'NOT ready'}"
        )
        for check in report["sysbox_preflight"]:
            lines.append(f"    {check['verdict'].upper():4}  {check['name']}: {check['reason']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


@click.command()
@click.argument("inventory")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.option("--limit", "limit", default=None, help="Only this host (or group).")
def doctor(inventory: str, as_json: bool, limit: str | None) -> None:
    """Read-only report of each host's Docker, socket and Sysbox readiness."""
    from dindkit.paths import deploy_file
    from dindkit.runner import run_pyinfra

    with tempfile.TemporaryDirectory(prefix="dindkit-doctor-") as output_dir:
        extra = ["--dry"] + (["--limit", limit] if limit else [])
        result = run_pyinfra(
            inventory,
            deploy_file("doctor"),
            data={"doctor_output_dir": output_dir},
            extra=extra,
            capture=True,
        )
        reports = [json.loads(path.read_text()) for path in sorted(Path(output_dir).glob("*.json"))]
    if result.returncode != 0 or not reports:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise click.ClickException("pyinfra could not gather the facts (output above)")
    if as_json:
        click.echo(json.dumps(reports, indent=2, sort_keys=True))
    else:
        click.echo(format_report(reports))
