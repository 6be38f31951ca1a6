"""pyinfra operations for rootless Docker that pyinfra does not ship.

- ``subordinate_ids``: a user's ranges in /etc/subuid and /etc/subgid, added after the ranges
  already there (existing entries are never changed).
- ``linger``: ``loginctl enable-linger``, so the user's systemd instance runs from boot on.
- ``user_dockerd``: the user's rootless dockerd unit enabled, started (or restarted) and
  answering on /run/user/UID/docker.sock.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import File

from dindkit.facts.rootless import (
    SUBORDINATE_ID_FILES,
    RootlessDockerd,
    SubordinateIds,
    SubordinateRange,
    runtime_dir,
    user_socket,
)
from dindkit.templating import render

SUBUID, SUBGID = SUBORDINATE_ID_FILES
# Where useradd starts its ranges; also the size it gives each user.
FIRST_SUBORDINATE_ID = 100000
SUBORDINATE_COUNT = 65536
LINGER_DIR = "/var/lib/systemd/linger"
USER_DOCKERD_SCRIPT = "rootless/user-dockerd.sh.j2"


def _owns(entry: SubordinateRange, user: str, uid: int) -> bool:
    return entry["owner"] in (user, str(uid))


def free_range_start(ranges: list[SubordinateRange]) -> int:
    """The first ID after every existing range (and not below useradd's first one)."""
    ends = [entry["start"] + entry["count"] for entry in ranges]
    return max([FIRST_SUBORDINATE_ID, *ends])


@operation()
def subordinate_ids(user: str, uid: int, count: int = SUBORDINATE_COUNT):
    """
    Give a user subordinate UID and GID ranges unless it has them (rootless Docker maps its
    containers' IDs into them through newuidmap and newgidmap).

    + user: the account name
    + uid: its UID (the files may name the owner by UID)
    + count: how many IDs a new range holds (rootless Docker needs 65536)

    A user with a range of ``count`` IDs or more (by name or UID) keeps it. A new range starts
    after every range in the file, so it overlaps none of them; ``usermod`` appends it and
    leaves the other lines alone.

    **Example:**

    .. code:: python

        subordinate_ids(name="Give alice subordinate IDs", user="alice", uid=1000)
    """
    options = []
    in_files = host.get_fact(SubordinateIds)
    for option, path in (("--add-subuids", SUBUID), ("--add-subgids", SUBGID)):
        ranges = in_files.get(path, [])
        if any(_owns(entry, user, uid) and entry["count"] >= count for entry in ranges):
            continue
        start = free_range_start(ranges)
        options.append(f"{option} {start}-{start + count - 1}")
    if not options:
        host.noop(f"{user} has subordinate UID and GID ranges")
        return
    yield f"usermod {' '.join(options)} {shlex.quote(user)}"


@operation()
def linger(user: str):
    """
    Let a user's systemd instance (user@UID.service) run without a login, from boot on.

    + user: the account name

    **Example:**

    .. code:: python

        linger(name="Keep alice's services running", user="alice")
    """
    if host.get_fact(File, path=f"{LINGER_DIR}/{user}") is not None:
        host.noop(f"{user} lingers")
        return
    yield f"loginctl enable-linger {shlex.quote(user)}"


def user_dockerd_script(user: str, uid: int, home: str, restart: bool, wait_seconds: int) -> str:
    """The shell script that brings a user's rootless dockerd up (templates/rootless/)."""
    return render(
        USER_DOCKERD_SCRIPT,
        user=shlex.quote(user),
        home=shlex.quote(home),
        runtime_dir=shlex.quote(runtime_dir(uid)),
        socket=shlex.quote(user_socket(uid)),
        restart=restart,
        wait_seconds=int(wait_seconds),
    )


@operation()
def user_dockerd(
    user: str,
    uid: int,
    home: str,
    wait_seconds: int = 60,
):
    """
    Enable and start a user's rootless dockerd (the user unit docker.service) and wait until
    it answers the user on /run/user/UID/docker.sock.

    + user: the account name; it lingers already (``linger``)
    + uid: its UID
    + home: its home directory
    + wait_seconds: how long the user's systemd and then dockerd may take to answer

    Nothing is done when the unit is enabled, the daemon answers and runs from the current
    unit file; a unit file changed since it started restarts it.
    Commands run as the user through ``runuser`` with XDG_RUNTIME_DIR pointing at the runtime
    directory that linger keeps, so no login session is needed.

    **Example:**

    .. code:: python

        user_dockerd(
            name="Start alice's rootless dockerd",
            user="alice", uid=1000, home="/home/alice",
        )
    """
    state = host.get_fact(RootlessDockerd, user=user, uid=uid, home=home)
    if state["enabled"] and state["answering"] and not state["stale"]:
        host.noop(f"{user}'s rootless dockerd is enabled and answers on {user_socket(uid)}")
        return
    script = user_dockerd_script(user, uid, home, state["stale"], wait_seconds)
    yield f"sh -c {shlex.quote(script)}"
