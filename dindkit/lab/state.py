"""Where the lab keeps its files, and the record of each lab.

``<cache>/labs/<name>/`` holds a lab's ``lab.json`` (the record below), its SSH key, its qcow2
overlay, qemu's pid file and the serial console log. The cache folder (``dindkit.cache``) is
``$DINDKIT_CACHE`` or ``~/.cache/dindkit``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from dindkit.cache import cache_dir

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
STATE_FILE = "lab.json"


def labs_dir() -> Path:
    return cache_dir() / "labs"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"bad lab name {name!r}: use 1-32 lowercase letters, digits and inner dashes"
        )
    return name


def qemu_name(name: str) -> str:
    """qemu's ``-name`` of a lab: how its process is recognised."""
    return f"dindkit-lab-{name}"


def lab_dir(name: str) -> Path:
    return labs_dir() / check_name(name)


def pid_alive(pid: int | None, marker: str) -> bool:
    """True if ``pid`` runs with ``marker`` as one of its arguments (pids get reused)."""
    if not pid:
        return False
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return marker.encode() in arguments


@dataclass
class Lab:
    """A lab VM as recorded in its state file."""

    name: str
    distro: str
    ssh_port: int
    key_path: Path
    pid: int | None
    overlay: Path
    serial_log: Path
    image: Path
    memory: int
    cpus: int
    accel: str
    started_at: float

    @property
    def host(self) -> str:
        """Its name in inventories/lab.py."""
        return f"lab-{self.name}"

    @property
    def running(self) -> bool:
        return pid_alive(self.pid, marker=qemu_name(self.name))

    def ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.key_path),
            "-p",
            str(self.ssh_port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
        ]

    def ssh_command(self, cmd: str | list[str] | None = None) -> list[str]:
        """``ssh`` as root into the lab, running ``cmd`` (a shell string or argv) if given."""
        command = ["ssh", *self.ssh_options(), "root@127.0.0.1"]
        if cmd is None:
            return command
        if not isinstance(cmd, str):
            cmd = shlex.join(cmd)
        return [*command, "--", cmd]

    def to_json(self) -> str:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Lab:
        data: dict[str, Any] = json.loads(text)
        known = {field.name for field in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in PATH_FIELDS:
            values[key] = Path(values[key])
        return cls(**values)


PATH_FIELDS = ("key_path", "overlay", "serial_log", "image")


def save(lab: Lab) -> None:
    path = lab_dir(lab.name) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(lab.to_json())
    temporary.replace(path)


def load(name: str) -> Lab | None:
    path = lab_dir(name) / STATE_FILE
    try:
        return Lab.from_json(path.read_text())
    except FileNotFoundError:
        return None


def forget(name: str) -> None:
    (lab_dir(name) / STATE_FILE).unlink(missing_ok=True)


def all_labs() -> list[Lab]:
    """Every recorded lab, running or not, sorted by name."""
    labs = []
    if labs_dir().is_dir():
        for path in sorted(labs_dir().glob(f"*/{STATE_FILE}")):
            try:
                labs.append(Lab.from_json(path.read_text()))
            except (ValueError, TypeError, OSError):
                continue
    return labs
