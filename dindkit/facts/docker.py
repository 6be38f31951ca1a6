"""Facts about a host's Docker Engine set-up.

- ``DaemonJson``: /etc/docker/daemon.json as a dict (None when absent or empty).
- ``GroupEntry``: one group's name, GID and members from the group database (None if absent).
- ``AptKeyFingerprints``: primary-key fingerprints in an OpenPGP key file (empty if absent).
- ``LegacySocketHacks``: lines that chmod/chown/chgrp docker.sock outside systemd's socket unit
  (rc.local, crontabs, other units). ``dindkit doctor`` reuses it; the docker deploy removes them.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, TypedDict

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

# Files where the "chmod 666 /var/run/docker.sock" advice usually ends up. Globs are expanded by
# the remote shell; Debian keeps users' crontabs in /var/spool/cron/crontabs.
LEGACY_HACK_FILES = (
    "/etc/rc.local",
    "/etc/crontab",
    "/etc/cron.d/*",
    "/var/spool/cron/crontabs/*",
    "/etc/systemd/system/*.service",
)
# An extended regular expression (grep -E) for a command that changes the socket's permissions.
LEGACY_HACK_PATTERN = r"(chmod|chown|chgrp|setfacl)[^#]*docker\.sock"


class DaemonJson(FactBase[Any]):
    """
    The parsed content of Docker's daemon configuration, or ``None`` when the file is missing
    or empty. Invalid JSON fails the fact with the file's path and the parser's complaint.

    .. code:: python

        {"live-restore": True, "runtimes": {"sysbox-runc": {"path": "/usr/bin/sysbox-runc"}}}
    """

    def command(self, path: str = "/etc/docker/daemon.json") -> str:
        self.path = path
        quoted = shlex.quote(path)
        return f"! test -f {quoted} || cat {quoted}"

    def process(self, output: list[str]) -> Any:
        text = "\n".join(output).strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as error:
            raise FactProcessError(
                f"{getattr(self, 'path', 'daemon.json')} is not valid JSON ({error}); "
                "fix or remove it, dindkit will not guess what it meant"
            ) from None


class GroupDict(TypedDict):
    name: str
    gid: int
    members: list[str]


class GroupEntry(FactBase[GroupDict | None]):
    """
    One group from the group database (``getent group``), or ``None`` when it does not exist.

    .. code:: python

        {"name": "docker", "gid": 998, "members": ["alice"]}
    """

    def command(self, group: str) -> str:
        return f"getent group {shlex.quote(group)} || true"

    def process(self, output: list[str]) -> GroupDict | None:
        name, _password, gid, members = output[0].split(":", 3)
        return {
            "name": name,
            "gid": int(gid),
            "members": [member for member in members.split(",") if member],
        }


class AptKeyFingerprints(FactBase[list[str]]):
    """
    Fingerprints (uppercase hex) of the primary keys in an OpenPGP key file, armored or binary;
    empty when the file does not exist.

    .. code:: python

        ["9DC858229FC7DD38854AE2D88D81803C0EBFCD88"]
    """

    default = list

    def requires_command(self, path: str) -> str:
        return "gpg"

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"! test -f {quoted} || gpg --show-keys --with-colons {quoted} 2>/dev/null"
            ' | awk -F: \'$1 == "pub" {want = 1; next} want && $1 == "fpr" '
            "{print $10; want = 0}'"
        )

    def process(self, output: list[str]) -> list[str]:
        return [line.strip().upper() for line in output if line.strip()]


class LegacySocketHack(TypedDict):
    path: str
    line_number: int
    line: str


class LegacySocketHacks(FactBase[list[LegacySocketHack]]):
    """
    Lines that change /var/run/docker.sock's permissions by hand (``chmod 666``, ``chown``,
    ``chgrp``, ``setfacl``) in /etc/rc.local, /etc/crontab, /etc/cron.d/*, users' crontabs
    and /etc/systemd/system/*.service. Socket permissions belong in docker.socket (dindkit's
    drop-in); these lines fight it at every boot. Comment lines are ignored.

    .. code:: python

        [{"path": "/etc/rc.local", "line_number": 3, "line": "chmod 666 /var/run/docker.sock"}]
    """

    default = list

    def command(self) -> str:
        return (
            "grep -HnE "
            + shlex.quote(LEGACY_HACK_PATTERN)
            + " "
            + " ".join(LEGACY_HACK_FILES)
            + " 2>/dev/null || true"
        )

    def process(self, output: list[str]) -> list[LegacySocketHack]:
        hacks: list[LegacySocketHack] = []
        for row in output:
            path, _, rest = row.partition(":")
            number, _, line = rest.partition(":")
            if not number.isdigit() or line.lstrip().startswith("#"):
                continue
            hacks.append({"path": path, "line_number": int(number), "line": line})
        return hacks
