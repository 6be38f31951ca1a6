"""The running machines of dindkit's Vagrantfile as pyinfra hosts (for inventories/vagrant.py).

pyinfra's own ``@vagrant`` connector does the same for every running machine; this module adds
what dindkit's deploys need: ``_sudo`` (Vagrant logs in as the non-root user ``vagrant``),
host-key settings for throwaway VMs, groups by distribution, and ``VAGRANT_MACHINES`` to pick
some machines only. With ``DINDKIT_VAGRANT_LOCAL_BOX=1`` (the boxes of ``dindkit lab box``, on a
machine without downloads) the hosts also get :func:`offline_data`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dindkit.images import smoke_image_archive
from dindkit.report import format_table, read_report

HostEntry = tuple[str, dict[str, Any]]

# `vagrant ssh-config` key -> (pyinfra host data key, cast)
_SSH_KEYS: dict[str, tuple[str, Any]] = {
    "HostName": ("ssh_hostname", str),
    "Port": ("ssh_port", int),
    "User": ("ssh_user", str),
    "IdentityFile": ("ssh_key", str),
}

# Data every Vagrant machine gets: vagrant is not root, and each `vagrant up` of a destroyed
# machine brings a new host key on the same address.
HOST_DATA: dict[str, Any] = {
    "ssh_strict_host_key_checking": "off",
    "ssh_known_hosts_file": "/dev/null",
    "_sudo": True,
}


LOCAL_BOX_VARIABLE = "DINDKIT_VAGRANT_LOCAL_BOX"


def offline_data() -> dict[str, Any]:
    """Host data for a machine that downloads nothing: Debian's docker.io, Sysbox only from an
    offline package, no time sync (no NTP server), the smoke image from the local archive."""
    return {
        "docker_source": "distro",
        "sysbox_offline": True,
        "bootstrap_time_sync": False,
        "smoke_image_archive": str(smoke_image_archive()),
    }


def running_machines(status_output: str) -> list[str]:
    """Machine names in the state ``running`` from ``vagrant status --machine-readable``."""
    names = []
    for line in status_output.splitlines():
        fields = line.split(",", 3)
        if len(fields) == 4 and fields[2] == "state" and fields[3].strip() == "running":
            names.append(fields[1])
    return names


def wanted_machines(running: list[str], selection: str) -> list[str]:
    """The running machines named in ``selection`` (comma-separated; empty means all)."""
    chosen = {name.strip() for name in selection.split(",") if name.strip()}
    return [name for name in running if not chosen or name in chosen]


def hosts_from_ssh_config(ssh_config: str) -> list[HostEntry]:
    """pyinfra (name, data) pairs from ``vagrant ssh-config`` output."""
    hosts: list[HostEntry] = []
    for line in ssh_config.splitlines():
        line = line.strip()
        if not line:
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "Host":
            hosts.append((value, dict(HOST_DATA)))
        elif hosts and key in _SSH_KEYS:
            data_key, cast = _SSH_KEYS[key]
            hosts[-1][1][data_key] = cast(shlex.split(value)[0] if value else value)
    return hosts


def groups(hosts: list[HostEntry]) -> dict[str, list[str]]:
    """Host names grouped by distribution, from the machine name (debian12 -> debian)."""
    grouped: dict[str, list[str]] = {}
    for name, _ in hosts:
        distribution = re.sub(r"[0-9]+$", "", name) or name
        grouped.setdefault(distribution, []).append(name)
    return grouped


# The inventory only reads (`vagrant status`, `vagrant ssh-config`), so a failure is tried again
# for a while before it counts: a machine another Vagrant process holds (the `vagrant up` whose
# trigger runs this) is locked until that process's step ends. With --machine-readable, Vagrant
# reports its errors on standard output (`error-exit` lines), not on standard error.
READ_RETRIES, READ_PAUSE = 30, 2.0


def _vagrant(*arguments: str, cwd: Path) -> str:
    for attempt in range(READ_RETRIES):
        if attempt:
            time.sleep(READ_PAUSE)
        result = subprocess.run(
            ["vagrant", *arguments],
            cwd=cwd,
            env={**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout
        if attempt + 1 == READ_RETRIES:
            break
        said = vagrant_error(result.stdout, result.stderr).splitlines()[0][:200]
        print(
            f"vagrant {arguments[0]} failed ({said}); trying again in {READ_PAUSE:.0f} s "
            f"({attempt + 1}/{READ_RETRIES})",
            file=sys.stderr,
        )
    raise RuntimeError(
        f"vagrant {' '.join(arguments)} failed {READ_RETRIES} times, {READ_PAUSE:.0f} s apart; "
        f"the last: {vagrant_error(result.stdout, result.stderr)}"
    )


def vagrant_error(stdout: str, stderr: str) -> str:
    """What a failed vagrant command said: standard error, else its machine-readable
    ``error-exit`` lines (Vagrant escapes their line ends and commas), else its output."""
    if stderr.strip():
        return stderr.strip()
    errors = [
        line.split(",", 4)[-1].replace("\\n", "\n").replace("%!(VAGRANT_COMMA)", ",")
        for line in stdout.splitlines()
        if line.count(",") >= 4 and line.split(",", 3)[2] == "error-exit"
    ]
    return "\n".join(errors) or stdout.strip()[-2000:] or "(it printed nothing)"


def inventory(vagrant_dir: Path, selection: str = "", offline: bool = False) -> list[HostEntry]:
    """(name, data) of the running machines of the Vagrantfile in ``vagrant_dir``.

    ``offline`` adds :func:`offline_data` to every host.
    """
    running = running_machines(_vagrant("status", "--machine-readable", cwd=vagrant_dir))
    names = wanted_machines(running, selection)
    if not names:
        return []
    hosts = hosts_from_ssh_config(_vagrant("ssh-config", *names, cwd=vagrant_dir))
    if offline:
        for _, data in hosts:
            data.update(offline_data())
    return hosts


def report_table(report_dir: str | Path) -> str:
    """The smoke table of the report in ``report_dir`` (printed by the Vagrantfile's trigger)."""
    report = read_report(report_dir)
    if report is None or not report.hosts:
        return f"No smoke report in {report_dir}."
    return format_table(report)


if __name__ == "__main__":  # python -m dindkit.vagrant REPORT_DIR
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dindkit.vagrant REPORT_DIR")
    print(report_table(sys.argv[1]))
