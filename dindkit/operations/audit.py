"""pyinfra operations for the audit rules on Docker's files (``dindkit.audit`` uses them).

- ``docker_watch_rules``: write (or remove) dindkit's rules file in /etc/audit/rules.d,
  watching the Docker paths that exist when the operation runs.
- ``rules_loaded``: load the rules (``augenrules --load``) unless the kernel already holds
  exactly the file's rules for dindkit's key.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.facts.files import FileContents
from pyinfra.operations import files

from dindkit.facts.audit import DockerAuditPaths, LoadedAuditRules, rules_with_key
from dindkit.operations.docker import config_file
from dindkit.templating import render

RULES_TEMPLATE = "etc/audit/rules.d/dindkit-docker.rules.j2"
# /run/containerd appears only when containerd starts, after auditd has loaded its rules at
# boot: a watch inside it would fail there and stop auditctl before the rules that follow.
TMPFILES = "/etc/tmpfiles.d/dindkit-audit.conf"
TMPFILES_TEMPLATE = "etc/tmpfiles.d/dindkit-audit.conf.j2"
CONTAINERD_RUN_DIR = "/run/containerd/"


def rule_lines(text: list[str]) -> list[str]:
    """The rules of a rules file: its lines without comments and blanks."""
    return [line.strip() for line in text if line.strip() and not line.lstrip().startswith("#")]


@operation()
def docker_watch_rules(rules_file: str, key: str, present: bool = True):
    """
    Write an audit rules file watching (``-p wa``) every Docker path of CIS Docker Benchmark
    v1.6 items 1.1.3-1.1.18 that exists on the host, or remove it.

    + rules_file: the file in /etc/audit/rules.d that dindkit owns (root:root 0640)
    + key: the audit key (``-k``) of every rule, for ``ausearch -k``
    + present: False removes the file (and its tmpfiles.d companion)

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
    watches = host.get_fact(DockerAuditPaths)
    yield from config_file._inner(
        dest=rules_file, content=render(RULES_TEMPLATE, watches=watches, key=key), mode="640"
    )
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
    kernel already holds, in order, exactly the rules of ``rules_file`` tagged with ``key``.

    + rules_file: dindkit's rules file (absent: no rule with ``key`` may stay loaded)
    + key: the audit key of dindkit's rules

    augenrules merges every file of rules.d, so the user's own rules are loaded again with
    dindkit's. Nothing happens without auditctl, and only a warning when the rules are locked
    (``-e 2``): they load at the next boot.

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
    wanted = rule_lines(host.get_fact(FileContents, path=rules_file) or [])
    loaded = rules_with_key(status["rules"], key)
    if loaded == wanted:
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
