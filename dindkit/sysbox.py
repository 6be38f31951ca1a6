"""The Sysbox deploy: preflight, pinned package install, verification and removal.

Order matters, because deploys/sysbox.py installs Docker first:

1. ``check_before_docker()`` validates the settings, runs the host preflight (systemd, distro,
   kernel, ID mapping, architecture, AppArmor) and checks that a package source exists. Any
   failure stops the host with one DeployError before Docker is touched.
2. Docker's deploy runs.
3. ``install_sysbox()`` checks Docker itself (snap, version clash, running containers) inside
   an operation, when the run gets there; then downloads (or uploads) the .deb, verifies its
   sha256, installs its dependencies and the package, all only when the installed version
   differs; and verifies the services and the runtime.

``unavailable_reason()`` is the plan-time verdict other capabilities use (bootstrap skips
Sysbox with it; the smoke tests use it as their skip reason).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.server import Arch, KernelVersion, LinuxDistribution
from pyinfra.operations import files

from dindkit.facts.docker import DaemonJson
from dindkit.facts.reuse import read_once
from dindkit.facts.sysbox import (
    AppArmorRestrictUserns,
    DockerServerVersion,
    Pid1Comm,
    RunningContainers,
    ShiftfsModule,
    SnapDocker,
    SysboxVersion,
)
from dindkit.operations import apt as apt_ops
from dindkit.operations import docker as docker_ops
from dindkit.operations import sysbox as sysbox_ops
from dindkit.operations import units as units_ops
from dindkit.preflight import (
    ARCHITECTURES,
    Check,
    DockerFacts,
    HostFacts,
    check_containers,
    docker_checks,
    failure_message,
    format_checks,
    host_checks,
    release_of,
)
from dindkit.settings.apt import APT_SETTINGS
from dindkit.settings.sysbox import SYSBOX_PACKAGE_URL, SYSBOX_PACKAGES, SYSBOX_SETTINGS

# What the sysbox-ce package declares it depends on (its debian/control), installed from the
# distribution first so that a package installed with dpkg-style tools finds them.
PACKAGE_DEPENDENCIES = ["jq", "fuse", "rsync", "iptables", "lsb-release"]
DOWNLOAD_DIR = "/var/tmp/dindkit"
# What Sysbox's package writes into /etc/docker/daemon.json (its postinst, sysbox-pkgr):
# the runtime, and a bridge address and address pool chosen to avoid common LAN ranges.
SYSBOX_RUNTIME = "sysbox-runc"
SYSBOX_DAEMON_DEFAULTS: dict[str, Any] = {
    "bip": "172.20.0.1/16",
    "default-address-pools": [{"base": "172.25.0.0/16", "size": 24}],
}
SYSBOX_DAEMON_ENTRIES: dict[str, Any] = {
    "runtimes": {SYSBOX_RUNTIME: {"path": "/usr/bin/sysbox-runc"}},
    **SYSBOX_DAEMON_DEFAULTS,
}
OFFLINE_REASON = (
    "no Sysbox package source is available offline: set sysbox_package_file (a .deb on the "
    "control machine) or sysbox_package_url + sysbox_package_sha256 (a mirror)"
)


@dataclass(frozen=True)
class PackageSource:
    version: str
    sha256: str
    url: str | None = None  # downloaded on the target
    local_file: str | None = None  # uploaded from the control machine

    @property
    def target_path(self) -> str:
        return f"{DOWNLOAD_DIR}/sysbox-ce_{self.version}_{self.sha256[:12]}.deb"

    @property
    def origin(self) -> str:
        return self.url or self.local_file or "?"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_source(values: dict[str, Any], arch: str | None) -> PackageSource | str:
    """Where the package comes from, or why there is no source (a one-line reason)."""
    version = values["sysbox_version"]
    if values["sysbox_package_file"]:
        path = Path(values["sysbox_package_file"]).expanduser()
        if not path.is_file():
            return f"sysbox_package_file {path} does not exist on the control machine"
        actual = file_sha256(path)
        expected = values["sysbox_package_sha256"]
        if expected and expected != actual:
            return (
                f"sysbox_package_file {path} has sha256 {actual}, not the "
                f"sysbox_package_sha256 {expected}"
            )
        return PackageSource(version, actual, local_file=str(path))
    if values["sysbox_package_url"]:
        return PackageSource(
            version, values["sysbox_package_sha256"], url=values["sysbox_package_url"]
        )
    if values["sysbox_offline"]:
        return OFFLINE_REASON
    package_arch = ARCHITECTURES.get(arch or "")
    sha256 = SYSBOX_PACKAGES.get(version, {}).get(package_arch or "")
    if not package_arch or not sha256:
        return f"no pinned Sysbox {version} package for architecture {arch}"
    url = SYSBOX_PACKAGE_URL.format(version=version, arch=package_arch)
    return PackageSource(version, sha256, url=url)


def host_facts() -> HostFacts:
    """What the host checks read; the bootstrap and the smoke deploy read them once per run."""
    distro = read_once(LinuxDistribution)
    return HostFacts(
        pid1=read_once(Pid1Comm),
        distribution=distro["name"],
        release=release_of(distro["name"], distro["major"], distro["minor"]),
        kernel=read_once(KernelVersion),
        arch=read_once(Arch),
        shiftfs=read_once(ShiftfsModule),
        apparmor_restrict_userns=read_once(AppArmorRestrictUserns),
    )


def host_preflight() -> list[Check]:
    return host_checks(host_facts())


def unavailable_reason() -> str | None:
    """Why Sysbox cannot be installed on the current host (plan time), None if it can."""
    try:
        values = SYSBOX_SETTINGS.validate(host.data)
    except DeployError as error:
        return str(error)
    checks = host_preflight()
    message = failure_message(checks)
    if message:
        return message
    source = package_source(values, read_once(Arch))
    return source if isinstance(source, str) else None


def check_before_docker() -> bool:
    """Stop the host before Docker is installed when Sysbox cannot follow.

    Returns whether the Docker deploy should run (not for ``sysbox_preflight_only``).
    """
    values = SYSBOX_SETTINGS.validate(host.data)
    APT_SETTINGS.validate(host.data)  # read by every apt step (dindkit.operations.apt)
    if values["sysbox_state"] == "absent":
        return True
    if values["sysbox_preflight_only"]:
        return False
    _installable_source(values)
    return True


def _installable_source(values: dict[str, Any]) -> PackageSource:
    """The package to install, or a DeployError listing every failed host check / no source."""
    message = failure_message(host_preflight())
    if message:
        raise DeployError(message)
    source = package_source(values, read_once(Arch))
    if isinstance(source, str):
        raise DeployError(source)
    return source


def _preflight_report(values: dict[str, Any]) -> None:
    """``sysbox_preflight_only``: every check, Docker's too from the current state; no change."""
    running = host.get_fact(RunningContainers)
    docker = DockerFacts(
        snap=host.get_fact(SnapDocker),
        version=host.get_fact(DockerServerVersion),
        running_containers=running,
    )
    checks = [
        *host_preflight(),
        *docker_checks(docker, values["sysbox_version"]),
        check_containers(running, values["sysbox_stop_containers"]),
    ]
    logger.info(f"{host.name}: Sysbox preflight\n{format_checks(checks)}")
    message = failure_message(checks)
    if message:
        raise DeployError(message)


@deploy("Install Sysbox", data_defaults=SYSBOX_SETTINGS.defaults)
def install_sysbox() -> None:
    """Sysbox CE from a pinned, checksummed package, or its removal (sysbox_state: absent)."""
    values = SYSBOX_SETTINGS.validate(host.data)
    APT_SETTINGS.validate(host.data)
    if values["sysbox_state"] == "absent":
        _remove()
        return
    if values["sysbox_preflight_only"]:
        _preflight_report(values)
        return

    source = _installable_source(values)

    # Nothing but this deploy installs sysbox-ce, so the version read now is the one the
    # operations below will find: download and install only when it differs.
    if host.get_fact(SysboxVersion) != source.version:
        _install(source, values["sysbox_stop_containers"])

    units_ops.running_and_enabled(name="Enable and start Sysbox", units=["sysbox"])
    sysbox_ops.verified(name="Verify Sysbox runs and Docker lists the sysbox-runc runtime")


def _install(source: PackageSource, stop_containers: bool) -> None:
    sysbox_ops.docker_ready(
        name="Check Docker is ready for Sysbox",
        sysbox_version=source.version,
        stop_containers=stop_containers,
    )
    files.directory(name=f"Create {DOWNLOAD_DIR}", path=DOWNLOAD_DIR, mode="0700")
    if source.local_file:
        files.put(
            name=f"Upload the Sysbox {source.version} package",
            src=source.local_file,
            dest=source.target_path,
            mode="0600",
        )
    else:
        assert source.url is not None
        sysbox_ops.package_downloaded(
            name=f"Download the Sysbox {source.version} package",
            url=source.url,
            path=source.target_path,
        )
    sysbox_ops.package_verified(
        name="Verify the Sysbox package's sha256",
        path=source.target_path,
        sha256=source.sha256,
        source=source.origin,
    )
    apt_ops.packages(
        name="Install Sysbox's dependencies",
        packages=PACKAGE_DEPENDENCIES,
        no_recommends=True,
        cache_time=24 * 3600,
    )
    sysbox_ops.package_installed(
        name=f"Install Sysbox {source.version}",
        path=source.target_path,
        version=source.version,
    )


def sysbox_daemon_entries(current: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """What removing Sysbox changes in daemon.json: (keys to set, keys to remove).

    The runtime entry goes (other runtimes stay); bip and default-address-pools go only when
    they still hold what Sysbox's installer wrote, else they are the user's own.
    """
    current = current or {}
    set_keys: dict[str, Any] = {}
    remove_keys: list[str] = []
    runtimes = current.get("runtimes")
    if isinstance(runtimes, dict) and SYSBOX_RUNTIME in runtimes:
        others = {name: value for name, value in runtimes.items() if name != SYSBOX_RUNTIME}
        if others:
            set_keys["runtimes"] = others
        else:
            remove_keys.append("runtimes")
    for key, written in SYSBOX_DAEMON_DEFAULTS.items():
        if current.get(key) == written:
            remove_keys.append(key)
    return set_keys, remove_keys


def _remove() -> None:
    # Read before the purge: the plan needs to know which entries are Sysbox's.
    set_keys, remove_keys = sysbox_daemon_entries(host.get_fact(DaemonJson))
    sysbox_ops.package_removed(name="Purge the Sysbox package")
    if not set_keys and not remove_keys:
        host.noop("daemon.json holds no Sysbox entries")
        return
    config = docker_ops.daemon_json(
        name="Remove Sysbox's entries from daemon.json",
        set_keys=set_keys,
        remove_keys=remove_keys,
    )
    docker_ops.restart_docker(
        name="Restart Docker without the sysbox-runc runtime",
        _if=config.did_change,
    )
