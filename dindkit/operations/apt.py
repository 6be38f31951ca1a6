"""Every apt/dpkg step dindkit runs on a target, in one place that knows about dpkg's locks.

- ``packages``: install (refreshing apt's lists first) or remove packages.
- ``update``: refresh apt's lists, at most every ``cache_time`` seconds when given.
- ``command``: the same script for an operation that runs its own apt-get steps (a local .deb).
- ``sources_file``: write an apt sources file atomically (a new file, then a rename).

Whatever runs is one script (templates/apt/apt-steps.sh.j2) sent as one command: it waits for
dpkg's locks up to ``apt_lock_timeout`` seconds (a progress line every 20 s naming the holder),
recovers an interrupted dpkg (``dpkg --configure -a``), then runs apt-get with
``Acquire::Retries=apt_retries``. Nothing runs, and nothing is read beyond the package list,
when there is nothing to do. The script's lines are printed as they come (``LiveCommand``);
apt's own output goes to a temporary file and is shown only when a step fails.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.util import get_file_sha1
from pyinfra.connectors.util import CommandOutput
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File, Sha1File
from pyinfra.facts.server import Date
from pyinfra.operations import files
from pyinfra.operations.util.packaging import ensure_packages

from dindkit.facts.reuse import read_once
from dindkit.settings.apt import APT_SETTINGS
from dindkit.templating import render

TEMPLATE = "apt/apt-steps.sh.j2"
# What apt and dpkg lock, in the order they take them.
LOCK_FILES = (
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/apt/lists/lock",
    "/var/cache/apt/archives/lock",
)
# dpkg's journal: files here mean a dpkg run was interrupted.
DPKG_UPDATES = "/var/lib/dpkg/updates"
# Touched after every successful update (apt itself leaves it alone on Debian); read by
# ``cache_time``, as pyinfra's apt.update does.
UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"
REPORT_EVERY = 20


class LiveCommand(StringCommand):
    """A shell command whose output pyinfra prints as it arrives (the lock wait's progress)."""

    def execute(self, state: Any, host: Any, connector_arguments: Any) -> Any:
        connector_arguments.update(self.connector_arguments)
        status, output = host.run_shell_command(
            self, print_output=True, print_input=state.print_input, **connector_arguments
        )
        # Already printed: pyinfra would print a failed command's output a second time.
        return status, output if status or state.print_output else CommandOutput([])


def script(
    steps: Sequence[str],
    lock_timeout: int,
    retries: int,
    lock_files: Sequence[str] = LOCK_FILES,
    dpkg_updates: str = DPKG_UPDATES,
    update_stamp: str = UPDATE_STAMP,
    report_every: int = REPORT_EVERY,
) -> str:
    """The script that runs ``steps`` (``update`` or ``run <apt-get arguments>``)."""
    return render(
        TEMPLATE,
        steps=steps,
        lock_timeout=int(lock_timeout),
        retries=int(retries),
        lock_files=[shlex.quote(path) for path in lock_files],
        dpkg_updates=shlex.quote(dpkg_updates),
        update_stamp=shlex.quote(update_stamp),
        report_every=int(report_every),
    )


def run_step(*arguments: str) -> str:
    """A step that runs ``apt-get <arguments>`` (after waiting for the locks)."""
    return " ".join(["run", *(shlex.quote(argument) for argument in arguments)])


UPDATE_STEP = "update"


def command(*steps: str) -> LiveCommand:
    """The one command for ``steps``, with this host's ``apt_*`` settings."""
    values = APT_SETTINGS.validate(host.data)
    return LiveCommand(
        script(steps, lock_timeout=values["apt_lock_timeout"], retries=values["apt_retries"])
    )


def _lists_fresh(cache_time: int | None) -> bool:
    """Were apt's lists refreshed less than ``cache_time`` seconds ago (by the stamp)?"""
    if not cache_time:
        return False
    stamp = host.get_fact(File, path=UPDATE_STAMP)
    mtime = stamp.get("mtime") if stamp else None
    if mtime is None:
        return False
    # As pyinfra's apt.update: the stamp's mtime is naive UTC; so is the host's clock here.
    now = datetime.fromtimestamp(host.get_fact(Date).timestamp(), UTC).replace(tzinfo=None)
    return bool(mtime > now - timedelta(seconds=cache_time))


@operation()
def packages(
    packages: Iterable[str],
    present: bool = True,
    update: bool = True,
    cache_time: int | None = None,
    no_recommends: bool = False,
    purge: bool = False,
):
    """
    Install or remove apt packages, waiting for dpkg's locks and recovering dpkg first.

    + packages: package names, ``name=version`` to pin
    + present: False removes them
    + update: refresh apt's lists before installing (never when nothing is to be installed)
    + cache_time: skip that refresh when the lists are younger than this many seconds
    + no_recommends: do not install recommended packages
    + purge: remove with their configuration files

    Nothing runs when every package is already as asked, so a rerun adds no command.

    **Example:**

    .. code:: python

        packages(name="Install Docker", packages=["docker.io"])
    """
    verb = "install" if present else ("purge" if purge else "remove")
    changes = list(
        ensure_packages(
            host,
            list(packages),
            read_once(DebPackages),
            present,
            install_command=verb,
            uninstall_command=verb,
            version_join="=",
        )
    )
    if not changes:
        return
    options = ["--no-install-recommends"] if present and no_recommends else []
    steps = [run_step(verb, *options, *shlex.split(change)[1:]) for change in changes]
    if present and update and not _lists_fresh(cache_time):
        steps.insert(0, UPDATE_STEP)
    yield command(*steps)


@operation(is_idempotent=False)
def update(cache_time: int | None = None):
    """
    Refresh apt's lists (after waiting for dpkg's locks), with retries.

    + cache_time: do nothing when the lists are younger than this many seconds

    **Example:**

    .. code:: python

        update(name="Refresh apt's lists after the repository changed", _if=sources.did_change)
    """
    if _lists_fresh(cache_time):
        host.noop("apt's lists are fresh")
        return
    yield command(UPDATE_STEP)


@operation()
def sources_file(content: str, dest: str, mode: str = "644"):
    """
    Write an apt sources file (root:root) atomically: apt never reads half of it.

    + content: the file's text
    + dest: the file under /etc/apt/sources.list.d
    + mode: its mode

    The content goes to a hidden file in /etc/apt (same filesystem, a name apt does not read),
    which is then renamed over ``dest``. pyinfra's files.put writes ``dest`` in place.

    **Example:**

    .. code:: python

        sources_file(name="Add Docker's apt repository", content=text,
                     dest="/etc/apt/sources.list.d/docker.sources")
    """
    src = StringIO(content)
    if get_file_sha1(src) == host.get_fact(Sha1File, path=dest):
        yield from files.file._inner(path=dest, user="root", group="root", mode=mode, touch=False)
        return
    staged = os.path.join(os.path.dirname(os.path.dirname(dest)), f".{os.path.basename(dest)}.new")
    yield FileUploadCommand(src, staged, remote_temp_filename=host.get_temp_filename(staged))
    yield StringCommand("chown", "root:root", QuoteString(staged))
    yield StringCommand("chmod", QuoteString(mode), QuoteString(staged))
    yield StringCommand("mv", "-f", QuoteString(staged), QuoteString(dest))
