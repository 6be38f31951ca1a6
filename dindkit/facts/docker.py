"""Facts about a host's Docker Engine set-up.

- ``DockerPlatform``: os-release, dpkg architecture and snap packages in one round trip.
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

from dindkit.settings import ascii_number

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


class PlatformDict(TypedDict):
    release: dict[str, Any]  # {"name": NAME, "release_meta": {os-release key: value}}
    arch: str | None  # dpkg's architecture, None without dpkg
    snaps: list[str]  # installed snap names, empty without snapd


ARCH_MARK = "@@dindkit arch"
SNAPS_MARK = "@@dindkit snaps"


class DockerPlatform(FactBase[PlatformDict]):
    """
    What the docker deploy decides its platform from, read in ONE command (pyinfra's
    LinuxDistribution, DebArch and SnapPackages are three round trips): /etc/os-release,
    ``dpkg --print-architecture`` and the names of installed snaps.

    .. code:: python

        {"release": {"name": "Debian GNU/Linux", "release_meta": {"ID": "debian",
         "VERSION_ID": "12"}}, "arch": "amd64", "snaps": []}
    """

    def command(self) -> str:
        return (
            f"cat /etc/os-release 2>/dev/null; echo '{ARCH_MARK}'; "
            "dpkg --print-architecture 2>/dev/null || true; "
            f"echo '{SNAPS_MARK}'; "
            "if command -v snap >/dev/null 2>&1; then snap list 2>/dev/null"
            " | awk 'NR > 1 {print $1}'; fi"
        )

    def process(self, output: list[str]) -> PlatformDict:
        sections: dict[str, list[str]] = {"release": [], ARCH_MARK: [], SNAPS_MARK: []}
        current = "release"
        for line in output:
            if line.strip() in (ARCH_MARK, SNAPS_MARK):
                current = line.strip()
            elif line.strip():
                sections[current].append(line.strip())
        meta: dict[str, str] = {}
        for line in sections["release"]:
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                words = shlex.split(value, posix=True) if value else [""]
                meta[key] = " ".join(words)
        arch = sections[ARCH_MARK][0] if sections[ARCH_MARK] else None
        return {
            "release": {"name": meta.get("NAME", ""), "release_meta": meta},
            "arch": arch,
            "snaps": sections[SNAPS_MARK],
        }


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
        name, _password, gid_text, members = output[0].split(":", 3)
        gid = ascii_number(gid_text)
        if gid is None:  # not a group entry
            return None
        return {
            "name": name,
            "gid": gid,
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
        # gpg in a throwaway home: with the user's own it creates ~/.gnupg (a keybox, a
        # trustdb) on the target, on a dry run too.
        return (
            f"! test -f {quoted} || {{ gnupg=$(mktemp -d) || exit 1; "
            f'gpg --homedir "$gnupg" --show-keys --with-colons {quoted} 2>/dev/null'
            ' | awk -F: \'$1 == "pub" {want = 1; next} want && $1 == "fpr" '
            '{print $10; want = 0}\'; rm -rf "$gnupg"; }'
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
            line_number = ascii_number(number)
            if line_number is None or line.lstrip().startswith("#"):
                continue
            hacks.append({"path": path, "line_number": line_number, "line": line})
        return hacks
