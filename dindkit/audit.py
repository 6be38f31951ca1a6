"""Audit rules on Docker's files: CIS Docker Benchmark v1.6 items 1.1.3-1.1.18.

``watch_docker_files()`` is the deploy; ``install_docker()`` ends with it. Settings
``docker_audit``, ``docker_audit_rules_file``, ``docker_audit_backlog_limit`` and
``docker_audit_backlog_wait_time`` (``dindkit.settings.docker``). The paths are decided on the
host when the rules are written (``dindkit.operations.audit``), after Docker has started: the
directories of layer and volume data it created then are left out of the watch.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import deploy

from dindkit.operations import audit as audit_ops
from dindkit.operations import docker as docker_ops
from dindkit.operations import units as units_ops
from dindkit.settings.docker import DOCKER_SETTINGS

# Every rule dindkit writes carries this key: `ausearch -k dindkit-docker`.
AUDIT_KEY = "dindkit-docker"


def audit_packages(values: dict[str, Any]) -> tuple[str, ...]:
    """The packages the audit rules need with these settings."""
    return ("auditd",) if values["docker_audit"] else ()


@deploy("Watch Docker's files with auditd", data_defaults=DOCKER_SETTINGS.defaults)
def watch_docker_files(install_packages: bool = True) -> None:
    """
    Install auditd and load rules watching Docker's files, or remove them (docker_audit=false).

    + install_packages: False when the caller installed ``audit_packages`` already (the Docker
      deploy does, in the same apt run as Docker on a host without it)

    Other files in /etc/audit/rules.d are never touched; auditd stays installed when the rules
    are removed.
    """
    values = DOCKER_SETTINGS.validate(host.data)
    rules_file = values["docker_audit_rules_file"]
    present = values["docker_audit"]
    if present:
        if install_packages:
            docker_ops.apt_packages(name="Install auditd", packages=audit_packages(values))
        units_ops.running_and_enabled(name="Enable and start auditd", units=["auditd"])
    audit_ops.docker_watch_rules(
        name=f"{'Write' if present else 'Remove'} the audit rules on Docker's files",
        rules_file=rules_file,
        key=AUDIT_KEY,
        present=present,
        backlog_limit=values["docker_audit_backlog_limit"],
        backlog_wait_time=values["docker_audit_backlog_wait_time"],
    )
    audit_ops.rules_loaded(
        name="Load the audit rules (augenrules --load) unless the kernel holds them",
        rules_file=rules_file,
        key=AUDIT_KEY,
    )
