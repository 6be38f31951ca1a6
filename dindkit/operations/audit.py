"""pyinfra operations for the audit rules on Docker's files (``dindkit.audit`` uses them).

- ``docker_watch_rules``: write (or remove) dindkit's rules file in /etc/audit/rules.d,
  watching the Docker paths that exist when the operation runs, without the directories of
  layer and volume data, and setting auditd's backlog.
- ``rules_loaded``: load the rules (``augenrules --load``) unless the kernel already holds
  exactly the file's rules for dindkit's key and the backlog settings of /etc/audit/rules.d.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.facts.files import FileContents
from pyinfra.operations import files

from dindkit.facts.audit import (
    BACKLOG_OPTIONS,
    DOCKER_ROOT,
    EXCLUDE,
    DockerAuditPaths,
    LoadedAuditRules,
    rules_with_key,
)
from dindkit.operations.files import config_file
from dindkit.settings import ascii_number
from dindkit.templating import render

RULES_TEMPLATE = "etc/audit/rules.d/dindkit-docker.rules.j2"
# /run/containerd appears only when containerd starts, after auditd has loaded its rules at
# boot: a watch inside it would fail there and stop auditctl before the rules that follow.
TMPFILES = "/etc/tmpfiles.d/dindkit-audit.conf"
TMPFILES_TEMPLATE = "etc/tmpfiles.d/dindkit-audit.conf.j2"
CONTAINERD_RUN_DIR = "/run/containerd/"


def rule_lines(text: list[str]) -> list[str]:
    """The rules of a rules file (what ``auditctl -l`` lists): its ``-w`` and ``-a`` lines,
    without comments, blanks and settings such as ``-b``."""
    return [line.strip() for line in text if line.strip().startswith(("-w ", "-a "))]


def backlog_settings(text: list[str]) -> dict[str, int]:
    """The backlog settings of a rules file (the last of each), by ``auditctl -s``'s names."""
    settings = {}
    for line in text:
        words = line.split()
        number = ascii_number(words[1]) if len(words) >= 2 else None
        if words[0:1] and words[0] in BACKLOG_OPTIONS and number is not None:
            settings[BACKLOG_OPTIONS[words[0]]] = number
    return settings


@operation()
def docker_watch_rules(
    rules_file: str,
    key: str,
    present: bool = True,
    backlog_limit: int = 16384,
    backlog_wait_time: int = 0,
):
    """
    Write an audit rules file watching (``-p wa``) every Docker path of CIS Docker Benchmark
    v1.6 items 1.1.3-1.1.18 that exists on the host, or remove it.

    + rules_file: the file in /etc/audit/rules.d that dindkit owns (root:root 0640)
    + key: the audit key (``-k``) of every rule, for ``ausearch -k``
    + present: False removes the file (and its tmpfiles.d companion)
    + backlog_limit: auditctl ``-b``, the records the kernel queues for auditd
    + backlog_wait_time: ``--backlog_wait_time``, the ticks a writer waits while the backlog is
      full (0: the record is lost, the writer goes on)

    The watch on /var/lib/docker is a tree: writes anywhere below it match. Before it, a
    ``never`` rule per directory of layer, build and volume data that exists
    (``DOCKER_DATA_DIRS``, under /var/lib/docker and each userns-remap root) drops writes
    there: the kernel takes the first matching rule of the exit list. Watches on files are
    matched separately, so no ``never`` rule hides them.

    The paths are looked up when the operation runs (``DockerAuditPaths``), so a first run that
    has just installed Docker watches /run/containerd too. When a watched path lies inside
    /run/containerd, /etc/tmpfiles.d/dindkit-audit.conf creates that directory at boot before
    auditd loads the rules. Load them with ``rules_loaded``; no other file is touched.

    **Example:**

    .. code:: python

        docker_watch_rules(
            name="Watch Docker's files",
            rules_file="/etc/audit/rules.d/dindkit-docker.rules",
            key="dindkit-docker",
        )
    """
    if not present:
        yield from files.file._inner(path=rules_file, present=False)
        yield from files.file._inner(path=TMPFILES, present=False)
        return
    found = host.get_fact(DockerAuditPaths)
    watches = [each for each in found if each["item"] != EXCLUDE]
    exclusions = [each["path"] for each in found if each["item"] == EXCLUDE]
    content = render(
        RULES_TEMPLATE,
        watches=watches,
        exclusions=exclusions,
        docker_root=DOCKER_ROOT,
        key=key,
        backlog_limit=backlog_limit,
        backlog_wait_time=backlog_wait_time,
    )
    yield from config_file._inner(dest=rules_file, content=content, mode="640")
    in_run_dir = [w["path"] for w in watches if w["path"].startswith(CONTAINERD_RUN_DIR)]
    if in_run_dir:
        yield from config_file._inner(
            dest=TMPFILES, content=render(TMPFILES_TEMPLATE, socket=in_run_dir[0])
        )
    else:
        yield from files.file._inner(path=TMPFILES, present=False)


@operation()
def rules_loaded(rules_file: str, key: str):
    """
    Load the audit rules from /etc/audit/rules.d (``augenrules --load``, no reboot) unless the
    kernel already holds, in order, exactly the rules of ``rules_file`` tagged with ``key``,
    and the backlog settings that the files of /etc/audit/rules.d give when merged.

    + rules_file: dindkit's rules file (absent: no rule with ``key`` may stay loaded)
    + key: the audit key of dindkit's rules

    augenrules merges every file of rules.d, so the user's own rules are loaded again with
    dindkit's; the last ``-b`` and ``--backlog_wait_time`` of the merge win, and a warning says
    when another file's value wins over ``rules_file``'s. Nothing happens without auditctl, and
    only a warning when the rules are locked (``-e 2``): they load at the next boot.

    **Example:**

    .. code:: python

        rules_loaded(
            name="Load the audit rules",
            rules_file="/etc/audit/rules.d/dindkit-docker.rules",
            key="dindkit-docker",
        )
    """
    status = host.get_fact(LoadedAuditRules)
    if status is None:
        host.noop("auditctl is not installed: no audit rules to load or unload")
        return
    text = host.get_fact(FileContents, path=rules_file) or []
    wanted = rule_lines(text)
    loaded = rules_with_key(status["rules"], key)
    merged = status.get("rules_d") or {}
    overridden = {
        name: (value, merged[name])
        for name, value in backlog_settings(text).items()
        if merged.get(name, value) != value
    }
    if overridden and getattr(host.state, "is_executing", False):
        logger.warning(
            f"{host.print_prefix}another file of /etc/audit/rules.d sets the audit backlog after "
            f"{rules_file}: "
            + ", ".join(f"{name} {ours} -> {theirs}" for name, (ours, theirs) in overridden.items())
        )
    backlog_differs = [name for name, value in merged.items() if status.get(name) != value]
    if loaded == wanted and not backlog_differs:
        host.noop(f"the kernel holds the {len(wanted)} audit rules of {rules_file}")
        return
    if status["enabled"] == 2:
        if getattr(host.state, "is_executing", False):
            logger.warning(
                f"{host.print_prefix}audit rules are locked (-e 2) until the next boot: "
                f"{rules_file} is loaded then"
            )
        host.noop("audit rules are locked (-e 2): they load at the next boot")
        return
    yield "augenrules --load"
