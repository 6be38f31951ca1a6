"""``dindkit doctor``: Docker source naming and the table, from a recorded report."""

from __future__ import annotations

from dindkit.doctor import FIELDS, docker_source, format_report

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
