"""pyinfra operations for Docker Engine that pyinfra does not ship.

- ``daemon_json``: merge keys into /etc/docker/daemon.json, keeping every key it is not told
  about (reusable: the sysbox deploy registers its runtime with it).
- ``socket_group``: the group that owns docker.sock, with a fixed GID when asked.
- ``group_members``: existing users added to that group.
- ``apt_key``: download a repository key on the target and install it only if its fingerprint
  is the expected one.
- ``apt_packages``: an alias of ``dindkit.operations.apt.packages`` (dpkg's locks, retries).
- ``remove_legacy_socket_hacks``: remove chmod/chown docker.sock lines, keeping backups.
- ``restart_docker``: restart dockerd (and its socket) in systemd's order, then wait until
  ``docker info`` answers.
- ``wait_for_docker``: only that wait (after a package install started dockerd).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from pyinfra import host, logger
from pyinfra.api import OperationError, operation
from pyinfra.facts.server import Users
from pyinfra.operations import files
from pyinfra.operations.util.files import get_timestamp

from dindkit.facts.docker import (
    AptKeyFingerprints,
    DaemonJson,
    GroupEntry,
    LegacySocketHack,
    LegacySocketHacks,
)
from dindkit.facts.reuse import read_once
from dindkit.operations import apt as apt_ops
from dindkit.templating import render_io

DAEMON_JSON = "/etc/docker/daemon.json"
DAEMON_JSON_TEMPLATE = "etc/docker/daemon.json.j2"


def merge_daemon_options(
    current: Mapping[str, Any] | None,
    set_keys: Mapping[str, Any] | None = None,
    remove_keys: Iterable[str] = (),
) -> dict[str, Any]:
    """``current`` with ``set_keys`` set (whole top-level keys) and ``remove_keys`` gone."""
    merged = dict(current or {})
    merged.update(set_keys or {})
    for key in remove_keys:
        merged.pop(key, None)
    return merged


@operation()
def daemon_json(
    set_keys: Mapping[str, Any] | None = None,
    remove_keys: Iterable[str] = (),
    path: str = DAEMON_JSON,
):
    """
    Set and remove top-level keys of Docker's daemon.json, keeping every other key.

    + set_keys: keys to set; a value replaces the key's whole old value
    + remove_keys: keys to remove if present
    + path: the daemon configuration file

    The current file is read when the operation runs; it is rewritten (root:root 0644, sorted
    keys) only when the merged content differs from it, so ``op.did_change`` tells whether
    dockerd needs a restart. Invalid JSON on the target stops the run rather than being
    overwritten.

    **Example:**

    .. code:: python

        daemon_json(
            name="Register the sysbox-runc runtime",
            set_keys={"runtimes": {"sysbox-runc": {"path": "/usr/bin/sysbox-runc"}}},
        )
    """
    remove_keys = list(remove_keys)
    current = host.get_fact(DaemonJson, path=path)
    merged = merge_daemon_options(current, set_keys, remove_keys)
    if current is None and not merged:
        host.noop(f"{path} is absent and there is nothing to set")
        return
    if merged == current:
        # Same content (formatting aside): leave the file alone, only its owner and mode.
        yield from files.file._inner(path=path, user="root", group="root", mode="644", touch=False)
        return
    yield from files.put._inner(
        src=render_io(DAEMON_JSON_TEMPLATE, options=merged),
        dest=path,
        user="root",
        group="root",
        mode="644",
    )


def gid_mismatch(group: str, current: int, wanted: int) -> str:
    return (
        f"group {group} exists with GID {current}, but docker_socket_gid={wanted}: dindkit "
        "does not renumber an existing group (files and containers keep the old GID). Set "
        f"docker_socket_gid={current}, or change it by hand (groupmod -g {wanted} {group}) "
        "and re-run"
    )


def missing_users(missing: Iterable[str]) -> str:
    return (
        f"docker_users names users that do not exist on this host: {', '.join(missing)} "
        "(dindkit adds existing users to the socket group; create them first)"
    )


@operation()
def socket_group(group: str, gid: int | None = None):
    """
    Make sure the group that owns docker.sock exists, with ``gid`` when given.

    + group: group name
    + gid: the GID it must have (None: any)

    A group that already exists with another GID is an error, not changed: files and running
    containers (``--group-add``) refer to the old number, and renumbering a group is a manual
    decision (``groupmod -g``, then ``find / -gid OLD``).

    **Example:**

    .. code:: python

        socket_group(name="Create the docker group", group="docker", gid=2375)
    """
    entry = read_once(GroupEntry, group=group)
    if entry is None:
        gid_argument = f" --gid {int(gid)}" if gid is not None else ""
        yield f"groupadd --system{gid_argument} {shlex.quote(group)}"
        return
    if gid is not None and entry["gid"] != gid:
        raise OperationError(gid_mismatch(group, entry["gid"], gid))
    host.noop(f"group {group} exists with GID {entry['gid']}")


@operation()
def group_members(group: str, users: Iterable[str]):
    """
    Add existing users to a group (never removes anyone, never creates users).

    + group: the group
    + users: user names; every one must already exist

    **Example:**

    .. code:: python

        group_members(name="Let alice use Docker", group="docker", users=["alice"])
    """
    users = list(users)
    known = read_once(Users)
    missing = [user for user in users if user not in known]
    if missing:
        raise OperationError(missing_users(missing))
    entry = read_once(GroupEntry, group=group)
    members = set(entry["members"]) if entry else set()
    to_add = [user for user in users if user not in members and group not in known[user]["groups"]]
    if not to_add:
        host.noop(f"{', '.join(users) or 'no users'} already in group {group}")
        return
    for user in to_add:
        yield f"gpasswd --add {shlex.quote(user)} {shlex.quote(group)}"


def apt_key_command(url: str, fingerprint: str, dest: str) -> str:
    """Shell command: download a key, refuse it unless its only primary key is ``fingerprint``."""
    script = (
        'set -e; tmp=$(mktemp); gnupg=$(mktemp -d); trap \'rm -rf "$tmp" "$gnupg"\' EXIT; '
        f'curl -fsSL --retry 3 -o "$tmp" {shlex.quote(url)}; '
        # gpg in a throwaway home, so root's ~/.gnupg stays as it was
        'found=$(gpg --homedir "$gnupg" --show-keys --with-colons "$tmp" 2>/dev/null'
        ' | awk -F: \'$1 == "pub" {want = 1; next} want && $1 == "fpr" {print $10; want = 0}\''
        " | tr '\\n' ' ' | sed 's/ $//'); "
        f'if [ "$found" != {shlex.quote(fingerprint)} ]; then '
        "printf \"refusing the key from %s: its fingerprint is '%s', expected %s\\n\" "
        f'{shlex.quote(url)} "$found" {shlex.quote(fingerprint)} >&2; exit 1; fi; '
        # A new file beside the old one, renamed over it: apt never reads half a key.
        f'install -D -m 0644 -o root -g root "$tmp" {shlex.quote(dest + ".dindkit-new")}; '
        f"mv -f {shlex.quote(dest + '.dindkit-new')} {shlex.quote(dest)}"
    )
    return f"sh -c {shlex.quote(script)}"


@operation()
def apt_key(url: str, fingerprint: str, dest: str):
    """
    Install an apt repository key after checking its fingerprint, on the target.

    + url: where the key is downloaded from (by the target, with curl)
    + fingerprint: the primary key fingerprint it must have (40 hex digits)
    + dest: the keyring file apt's ``Signed-By`` points to

    The key is downloaded to a temporary file; unless it holds exactly one primary key with
    ``fingerprint`` it is deleted and the operation fails. Nothing is done when ``dest``
    already holds exactly that key.

    **Example:**

    .. code:: python

        apt_key(
            name="Install Docker's repository key",
            url="https://download.docker.com/linux/debian/gpg",
            fingerprint="9DC858229FC7DD38854AE2D88D81803C0EBFCD88",
            dest="/etc/apt/keyrings/docker.asc",
        )
    """
    fingerprint = fingerprint.replace(" ", "").upper()
    if host.get_fact(AptKeyFingerprints, path=dest) == [fingerprint]:
        host.noop(f"{dest} holds the key {fingerprint}")
        return
    yield apt_key_command(url, fingerprint, dest)


# Every apt step lives in dindkit.operations.apt; this name stays for existing callers.
apt_packages = apt_ops.packages


def _backup_and_remove(path: str, hacks: list[LegacySocketHack], timestamp: str) -> str:
    quoted = shlex.quote(path)
    backup = shlex.quote(f"{path}.dindkit-{timestamp}.bak")
    deletions = ";".join(f"{hack['line_number']}d" for hack in hacks)
    return f"cp -p {quoted} {backup} && sed -i {shlex.quote(deletions)} {quoted}"


@operation()
def remove_legacy_socket_hacks():
    """
    Remove lines that chmod/chown docker.sock from rc.local, crontabs and systemd units.

    Each edited file keeps a copy beside it (``<file>.dindkit-<timestamp>.bak``); every removed
    line is logged. Socket permissions come from docker.socket instead (see the docker deploy).
    Nothing is done when no such line exists (``dindkit.facts.docker.LegacySocketHacks``).

    **Example:**

    .. code:: python

        remove_legacy_socket_hacks(name="Remove chmod 666 docker.sock hacks")
    """
    hacks = host.get_fact(LegacySocketHacks)
    if not hacks:
        host.noop("no chmod/chown of docker.sock in rc.local, crontabs or units")
        return
    by_path: dict[str, list[LegacySocketHack]] = {}
    for hack in hacks:
        by_path.setdefault(hack["path"], []).append(hack)
    timestamp = get_timestamp()
    executing = getattr(host.state, "is_executing", False)
    for path, path_hacks in by_path.items():
        if executing:
            for hack in path_hacks:
                logger.warning(
                    f"{host.print_prefix}removing legacy socket hack from {path} line "
                    f"{hack['line_number']}: {hack['line'].strip()}"
                )
        yield _backup_and_remove(path, path_hacks, timestamp)
    if any(path.endswith(".service") for path in by_path):
        yield "systemctl daemon-reload"


def _wait_command(seconds: int) -> str:
    script = (
        f"i=0; until docker info >/dev/null 2>&1; do i=$((i + 1)); if [ $i -ge {int(seconds)} ];"
        f" then echo 'dockerd did not answer docker info within {int(seconds)} s' >&2;"
        " systemctl status --no-pager docker.service >&2; exit 1; fi; sleep 1; done"
    )
    return f"sh -c {shlex.quote(script)}"


@operation(is_idempotent=False)
def restart_docker(socket: bool = False, wait_seconds: int = 60):
    """
    Restart dockerd, and docker.socket first when ``socket``; then wait until it answers.

    + socket: also restart docker.socket (after its drop-in or group changed)
    + wait_seconds: how long ``docker info`` may take to answer before the run fails

    systemd keeps the socket open while docker.service runs, so both are stopped together and
    started socket first. Use with ``_if=`` on the operations that changed the configuration.

    **Example:**

    .. code:: python

        restart_docker(name="Restart Docker", _if=daemon_config.did_change)
    """
    if socket:
        yield "systemctl stop docker.service docker.socket"
        yield "systemctl start docker.socket docker.service"
    else:
        yield "systemctl restart docker.service"
    yield _wait_command(wait_seconds)


@operation(is_idempotent=False)
def wait_for_docker(wait_seconds: int = 60):
    """
    Wait until ``docker info`` answers (a bounded poll), failing the run after ``wait_seconds``.

    + wait_seconds: how long ``docker info`` may take to answer

    **Example:**

    .. code:: python

        wait_for_docker(name="Wait for dockerd", _if=install.did_change)
    """
    yield _wait_command(wait_seconds)
