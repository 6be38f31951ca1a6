"""Facts about rootless Docker for a user.

- ``Account``: one user's UID, GID and home from the passwd database, and whether the home
  exists (None when there is no such user).
- ``SubordinateIds``: the ranges of /etc/subuid and /etc/subgid.
- ``RootlessDockerd``: the user's rootless dockerd: enabled, up to date with its unit file,
  answering on the user's socket.
"""

from __future__ import annotations

import shlex
from typing import TypedDict

from pyinfra.api import FactBase

from dindkit.settings import ascii_number

SUBORDINATE_ID_FILES = ("/etc/subuid", "/etc/subgid")
FILE_MARK = "@@dindkit file"
# Where `systemctl --user enable docker.service` links the unit, relative to the home.
USER_UNIT_WANTED_BY = ".config/systemd/user/default.target.wants/docker.service"


def runtime_dir(uid: int) -> str:
    return f"/run/user/{int(uid)}"


def user_socket(uid: int) -> str:
    return f"{runtime_dir(uid)}/docker.sock"


class AccountDict(TypedDict):
    name: str
    uid: int
    gid: int
    home: str
    home_exists: bool
    shell: str


class Account(FactBase[AccountDict | None]):
    """
    A user from the passwd database (``getent passwd``), or ``None`` when it does not exist
    (or its entry is not one: an ID in other than ASCII digits).

    .. code:: python

        {"name": "alice", "uid": 1000, "gid": 1000, "home": "/home/alice", "home_exists": True,
         "shell": "/bin/bash"}
    """

    def command(self, user: str) -> str:
        quoted = shlex.quote(user)
        return (
            f'entry=$(getent passwd {quoted}) || exit 0; echo "$entry"; '
            'home=$(echo "$entry" | cut -d: -f6); '
            'if [ -n "$home" ] && [ -d "$home" ]; then echo home-exists; fi'
        )

    def process(self, output: list[str]) -> AccountDict | None:
        fields = output[0].split(":", 6)
        if len(fields) != 7:
            return None
        name, _password, uid_text, gid_text, _gecos, home, shell = fields
        uid, gid = ascii_number(uid_text), ascii_number(gid_text)
        if uid is None or gid is None:
            return None
        return {
            "name": name,
            "uid": uid,
            "gid": gid,
            "home": home,
            "home_exists": "home-exists" in output[1:],
            "shell": shell.strip(),
        }


class SubordinateRange(TypedDict):
    owner: str  # a user name or a UID, as the file has it
    start: int
    count: int


class SubordinateIds(FactBase[dict[str, list[SubordinateRange]]]):
    """
    The ranges in /etc/subuid and /etc/subgid (``owner:start:count`` lines), by file, in one
    command; a file that is absent has none. Malformed lines are skipped, as newuidmap skips them.

    .. code:: python

        {"/etc/subuid": [{"owner": "alice", "start": 100000, "count": 65536}], "/etc/subgid": []}
    """

    @staticmethod
    def default() -> dict[str, list[SubordinateRange]]:
        return {path: [] for path in SUBORDINATE_ID_FILES}

    def command(self) -> str:
        files = " ".join(SUBORDINATE_ID_FILES)
        return (
            f'for file in {files}; do echo "{FILE_MARK} $file"; '
            '! test -f "$file" || cat "$file"; done'
        )

    def process(self, output: list[str]) -> dict[str, list[SubordinateRange]]:
        ranges = self.default()
        current: list[SubordinateRange] | None = None
        for line in output:
            if line.startswith(f"{FILE_MARK} "):
                current = ranges.setdefault(line[len(FILE_MARK) + 1 :].strip(), [])
                continue
            parts = line.strip().split(":")
            if current is None or len(parts) != 3:
                continue
            start, count = ascii_number(parts[1]), ascii_number(parts[2])
            if start is not None and count is not None:
                current.append({"owner": parts[0], "start": start, "count": count})
        return ranges


class RootlessDockerdDict(TypedDict):
    enabled: bool  # wanted by the user's default.target, so it starts with the user's systemd
    stale: bool  # the unit file changed since the user's systemd loaded it (NeedDaemonReload)
    answering: bool  # a rootless dockerd answers the user on /run/user/UID/docker.sock


class RootlessDockerd(FactBase[RootlessDockerdDict]):
    """
    A user's rootless dockerd (the user unit docker.service): enabled in the user's systemd,
    loaded from an older unit file, and answering ``docker info`` (run as the user on the
    user's socket) with the security option ``name=rootless``.

    .. code:: python

        {"enabled": True, "stale": False, "answering": True}
    """

    def command(self, user: str, uid: int, home: str) -> str:
        as_user = (
            f"runuser -u {shlex.quote(user)} -- env XDG_RUNTIME_DIR={shlex.quote(runtime_dir(uid))}"
        )
        wanted = shlex.quote(f"{home}/{USER_UNIT_WANTED_BY}")
        host = shlex.quote(f"unix://{user_socket(uid)}")
        return (
            f"if [ -e {wanted} ]; then echo enabled; fi; "
            f"{as_user} systemctl --user show -p NeedDaemonReload docker.service 2>/dev/null; "
            f"if {as_user} docker -H {host} info --format '{{{{json .SecurityOptions}}}}' "
            "2>/dev/null | grep -q name=rootless; then echo answering; fi"
        )

    def process(self, output: list[str]) -> RootlessDockerdDict:
        lines = {line.strip() for line in output}
        return {
            "enabled": "enabled" in lines,
            "stale": "NeedDaemonReload=yes" in lines,
            "answering": "answering" in lines,
        }

    @staticmethod
    def default() -> RootlessDockerdDict:
        return {"enabled": False, "stale": False, "answering": False}
