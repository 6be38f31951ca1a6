"""The job socket: a policy proxy in front of dockerd for jobs one does not fully trust.

``install_guard()`` is the deploy (``deploys/guard.py`` calls it; the bootstrap calls it when
``guard_enabled`` is true). It writes the proxy program (``dindkit/jobs_proxy.py``, the file the
unit tests run), its policy from the settings (``dindkit.settings.guard``) and two systemd units:
``dindkit-jobs.socket`` creates the job socket (its own group, mode 0660) and starts
``dindkit-jobs.service`` on the first connection, a hardened service under a dynamic user in
Docker's socket group. Design and the bypass table: docs/guarded.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server, systemd
from pyinfra.operations.util import any_changed

from dindkit import jobs_proxy
from dindkit.facts.files import FileDigest
from dindkit.facts.reuse import read_once
from dindkit.operations import apt as apt_ops
from dindkit.operations import docker as docker_ops
from dindkit.operations import files as file_ops
from dindkit.operations import units as units_ops
from dindkit.settings.apt import APT_SETTINGS
from dindkit.settings.docker import DOCKER_SETTINGS
from dindkit.settings.guard import GUARD_SETTINGS
from dindkit.templating import render

PROGRAM = "/usr/local/lib/dindkit/jobs-proxy.py"
POLICY_FILE = "/etc/dindkit/jobs-proxy.json"
SOCKET_UNIT = "dindkit-jobs.socket"
SERVICE_UNIT = "dindkit-jobs.service"
UNIT_DIR = "/etc/systemd/system/"


def proxy_source() -> str:
    """The program the target runs: the very file the unit tests start."""
    return Path(jobs_proxy.__file__).read_text()


def policy(values: dict[str, Any]) -> dict[str, Any]:
    """What the proxy reads from its policy file (dindkit/jobs_proxy.py, ``Policy``)."""
    return {
        "upstream": values["guard_upstream_socket"],
        "owner": values["guard_owner"],
        "bind_allowlist": values["guard_bind_allowlist"],
        "allowed_capabilities": values["guard_allowed_capabilities"],
        "relaxed_rules": values["guard_relaxed_rules"],
        "max_body_bytes": values["guard_max_body_bytes"],
        "max_connections": values["guard_max_connections"],
    }


def unit_files(values: dict[str, Any], docker_group: str) -> dict[str, str]:
    """Path on the target -> content, for the two units."""
    common = {"policy_file": POLICY_FILE}
    return {
        UNIT_DIR + SOCKET_UNIT: render(
            "etc/systemd/system/dindkit-jobs.socket.j2",
            socket_path=values["guard_socket_path"],
            socket_group=values["guard_socket_group"],
            socket_mode=values["guard_socket_mode"],
            **common,
        ),
        UNIT_DIR + SERVICE_UNIT: render(
            "etc/systemd/system/dindkit-jobs.service.j2",
            program=PROGRAM,
            upstream_socket=values["guard_upstream_socket"],
            docker_group=docker_group,
            memory_max=values["guard_memory_max"],
            tasks_max=values["guard_max_connections"] * 2 + 16,
            nofile=values["guard_max_connections"] * 4 + 64,
            **common,
        ),
    }


@deploy("Serve the job socket", data_defaults=GUARD_SETTINGS.defaults)
def install_guard() -> None:
    """
    Serve the job socket: the proxy, its policy, its socket and service units, started.

    Settings (``dindkit.settings.guard``; Docker's socket group from ``dindkit.settings.docker``)
    are validated before any fact is read. Docker must be installed (``deploys/docker.py``).
    """
    values = GUARD_SETTINGS.validate(host.data)
    docker_group = DOCKER_SETTINGS.validate(host.data)["docker_socket_group"]
    APT_SETTINGS.validate(host.data)

    apt_ops.packages(name="Install python3 for the job socket's proxy", packages=["python3"])
    group = docker_ops.socket_group(
        name=f"Create the job socket's group {values['guard_socket_group']}",
        group=values["guard_socket_group"],
        gid=values["guard_socket_gid"],
    )
    program = file_ops.config_file(
        name="Install the job socket's proxy", dest=PROGRAM, content=proxy_source()
    )
    policy_file = file_ops.config_file(
        name="Write the job socket's policy",
        dest=POLICY_FILE,
        content=render("etc/dindkit/jobs-proxy.json.j2", policy=policy(values)),
    )
    units = unit_files(values, docker_group)
    # A first install only starts the socket (below): nothing to re-create or restart yet.
    installed_before = read_once(FileDigest, path=UNIT_DIR + SOCKET_UNIT) is not None
    socket_unit = file_ops.config_file(
        name="Write the job socket's socket unit",
        dest=UNIT_DIR + SOCKET_UNIT,
        content=units[UNIT_DIR + SOCKET_UNIT],
    )
    service_unit = file_ops.config_file(
        name="Write the job socket's service unit",
        dest=UNIT_DIR + SERVICE_UNIT,
        content=units[UNIT_DIR + SERVICE_UNIT],
    )
    systemd.daemon_reload(
        name="Reload systemd units after the job socket's units changed",
        _if=any_changed(socket_unit, service_unit),
    )
    if installed_before:
        # The service holds the listening socket: it stops first, the next connection starts it.
        server.shell(
            name="Re-create the job socket for its new path, group or mode",
            commands=[f"systemctl stop {SERVICE_UNIT}", f"systemctl restart {SOCKET_UNIT}"],
            _if=any_changed(socket_unit, group),
        )
        server.shell(
            name="Restart the job socket's proxy for its new program or policy",
            commands=[f"systemctl try-restart {SERVICE_UNIT}"],
            _if=any_changed(program, policy_file, service_unit),
        )
    units_ops.running_and_enabled(name="Enable and start the job socket", units=[SOCKET_UNIT])
