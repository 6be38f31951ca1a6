"""``dindkit doctor``: Docker source naming and the table, from a recorded report."""

from __future__ import annotations

from dindkit.doctor import (
    FIELDS,
    _audit_value,
    _value,
    audit_status,
    daemon_option_status,
    docker_source,
    file_mode_status,
    format_report,
)

REPORT = {
    "host": "lab-x",
    "distribution": "Debian 12",
    "kernel": "6.1.0-28-cloud-amd64",
    "architecture": "x86_64",
    "cgroup": 2,
    "iptables": "nf_tables",
    "docker_version": "20.10.24+dfsg1",
    "docker_source": "distro",
    "storage_driver": "overlay2",
    "runtimes": ["io.containerd.runc.v2", "runc"],
    "socket": {"owner": "root", "group": "docker", "mode": "0660"},
    "sysbox_version": None,
    "sysbox_ready": True,
    "sysbox_preflight": [{"name": "systemd", "verdict": "pass", "reason": "systemd is PID 1"}],
    "legacy_socket_hacks": [
        {"path": "/etc/rc.local", "line_number": 3, "line": "chmod 666 /var/run/docker.sock"}
    ],
}


def test_docker_source() -> None:
    assert docker_source(["docker-ce"], snap=False) == "docker-ce"
    assert docker_source(["docker.io"], snap=False) == "distro"
    assert docker_source([], snap=True) == "snap"
    assert docker_source([], snap=False) == "none"


def test_table_has_every_field() -> None:
    table = format_report([REPORT])
    for _, label in FIELDS:
        assert label in table
    assert "Socket owner:group mode  root:docker 0660" in table
    assert "/etc/rc.local:3: chmod 666 /var/run/docker.sock" in table
    assert "Sysbox installed         not installed" in table
    assert "    PASS  systemd: systemd is PID 1" in table


def test_audit_status_counts_dindkit_rules_only() -> None:
    status = {
        "enabled": 1,
        "rules": ["-w /etc/docker -p wa -k dindkit-docker", "-w /etc/passwd -p wa -k identity"],
    }
    audit = audit_status(status, "dindkit-docker", wanted=True)
    assert (audit["count"], audit["ok"]) == (1, True)
    assert audit_status(status, "dindkit-docker", wanted=False)["ok"] is False
    missing = audit_status(None, "dindkit-docker", wanted=True)
    assert (missing["auditctl"], missing["ok"]) == (False, False)
    assert _audit_value(audit) == "1 loaded (key dindkit-docker), docker_audit=true"
    assert _audit_value(missing).endswith(": NOT as configured")


def test_daemon_options_compare_file_and_running_daemon() -> None:
    expected = {"icc": False, "log-driver": "journald", "userland-proxy": False}
    rows = daemon_option_status(
        expected,
        {"icc": False, "log-driver": "journald", "userland-proxy": False},
        {"icc": True, "log-driver": "journald", "live-restore": True},
    )
    assert [row["ok"] for row in rows] == [False, True, True]  # icc not applied: no restart yet
    assert "in_effect" not in rows[2]  # docker info does not show userland-proxy
    text = _value({"daemon_options": rows}, "daemon_options")
    assert text == "differs: icc expected false, daemon.json false, running true"
    assert daemon_option_status(expected, None, None)[0]["ok"] is False


def test_file_modes_against_cis_section_3() -> None:
    modes = [
        {"path": "/run/docker.sock", "owner": "root", "group": "docker", "mode": "0660"},
        {"path": "/etc/docker", "owner": "root", "group": "root", "mode": "0700"},  # stricter
        {"path": "/etc/docker/daemon.json", "owner": "root", "group": "root", "mode": "0666"},
        {"path": "/lib/systemd/system/docker.socket", "owner": "x", "group": "root", "mode": "644"},
    ]
    rows = file_mode_status(modes, "docker", "0660")
    assert [row["ok"] for row in rows] == [True, True, False, False]
    assert file_mode_status(modes[:1], "dood", "0660")[0]["ok"] is False
    text = _value({"file_modes": rows}, "file_modes")
    assert "/etc/docker/daemon.json root:root 0666 (expected root:root 0644)" in text
    assert _value({"file_modes": rows[:2]}, "file_modes") == "ok (2 files)"
