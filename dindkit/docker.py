"""Docker Engine: packages, daemon.json, socket permissions through systemd, legacy hacks gone.

``install_docker()`` is the deploy (``deploys/docker.py`` calls it; ``install_sysbox`` starts with
it). Settings: ``dindkit.settings.docker``. Facts read here, at plan time, are the ones a run
does not change (distribution, architecture, Docker from snap); everything mutable is decided
inside the operations of ``dindkit.operations.docker``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import Users
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from dindkit.audit import audit_packages, watch_docker_files
from dindkit.facts.docker import DockerPlatform, GroupEntry
from dindkit.facts.reuse import read_once
from dindkit.facts.rootless import (
    SUBORDINATE_ID_FILES,
    Account,
    AccountDict,
    SubordinateIds,
    SubordinateRange,
)
from dindkit.operations import apt as apt_ops
from dindkit.operations import docker as docker_ops
from dindkit.operations import files as file_ops
from dindkit.operations import units as units_ops
from dindkit.rootless import rootless_docker, rootless_packages
from dindkit.settings.apt import APT_SETTINGS
from dindkit.settings.docker import DOCKER_SETTINGS, USERNS_REMAP_RULE
from dindkit.templating import render

SOURCES_FILE = "/etc/apt/sources.list.d/docker.sources"
STALE_SOURCES_LIST = "/etc/apt/sources.list.d/docker.list"
KEYRING = "/etc/apt/keyrings/docker.asc"
SOCKET_DROP_IN = "/etc/systemd/system/docker.socket.d/10-dindkit.conf"

DOCKER_CE_PACKAGES = (
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
)
DOCKER_CE_EXTRAS = ("docker-ce-rootless-extras",)
DISTRO_PACKAGES = ("docker.io",)
# Packages that clash with Docker's own (Docker's install docs list them).
CONFLICTING_WITH_DOCKER_CE = (
    "docker.io",
    "docker-doc",
    "docker-compose",
    "podman-docker",
    "containerd",
    "runc",
)
# Docker's repository ships these architectures.
DOCKER_CE_ARCHITECTURES = ("amd64", "arm64", "armhf", "ppc64el", "s390x")


@dataclass(frozen=True)
class Platform:
    distro: str  # os-release ID, also the repository path: <base>/<distro>
    version: str  # os-release VERSION_ID
    codename: str  # the repository suite
    arch: str = ""  # dpkg architecture
    # docker.io with only these of its recommends (None: with all of them). The others (git,
    # needrestart) bring perl and dozens of packages, minutes of dpkg under emulation, and
    # needrestart scans every process after each apt run. Debian 13 moved the CLI to docker-cli.
    distro_recommends: tuple[str, ...] | None = None


# What dindkit supports, keyed by os-release (ID, VERSION_ID).
SUPPORTED: dict[tuple[str, str], Platform] = {
    ("debian", "12"): Platform(
        "debian", "12", "bookworm", distro_recommends=("apparmor", "xz-utils")
    ),
    ("debian", "13"): Platform(
        "debian", "13", "trixie", distro_recommends=("apparmor", "xz-utils", "docker-cli")
    ),
    ("ubuntu", "22.04"): Platform("ubuntu", "22.04", "jammy"),
    ("ubuntu", "24.04"): Platform("ubuntu", "24.04", "noble"),
}


def supported_names() -> str:
    return ", ".join(f"{p.distro.capitalize()} {p.version}" for p in SUPPORTED.values())


def detect_platform(release: dict[str, Any], arch: str | None, snaps: list[str]) -> Platform:
    """The supported platform described by these facts, or a DeployError saying what was found."""
    meta = release.get("release_meta") or {}
    key = (str(meta.get("ID", "")).lower(), str(meta.get("VERSION_ID", "")))
    found = release.get("name") or key[0] or "an unknown system"
    if key not in SUPPORTED:
        raise DeployError(
            f"dindkit's docker deploy supports {supported_names()}; this host runs {found} "
            f"{key[1] or '(no VERSION_ID in /etc/os-release)'}"
        )
    if "docker" in snaps:
        raise DeployError(
            "Docker is installed from snap on this host; its socket, daemon.json and service "
            "are confined and managed by snapd, which dindkit does not support. Remove it first "
            "(snap remove docker) and re-run"
        )
    return Platform(**{**SUPPORTED[key].__dict__, "arch": arch or ""})


def current_platform() -> Platform:
    """The current host's platform from plan-time facts (they do not change during a run)."""
    facts = host.get_fact(DockerPlatform)
    return detect_platform(facts["release"], facts["arch"], facts["snaps"])


def docker_ce_version(version: str, platform: Platform) -> str:
    """Docker's apt version string for a release number (27.3.1), as its install docs pin it."""
    if ":" in version or "-" in version:
        return version  # already a full apt version
    return f"5:{version}-1~{platform.distro}.{platform.version}~{platform.codename}"


def docker_ce_repository(values: dict[str, Any], platform: Platform) -> None:
    """Docker's apt repository: a checked key, the sources file, fresh lists when they changed."""
    if platform.arch not in DOCKER_CE_ARCHITECTURES:
        raise DeployError(
            f"Docker's apt repository has no packages for {platform.arch}; it ships "
            f"{', '.join(DOCKER_CE_ARCHITECTURES)}. Use docker_source=distro"
        )
    stale = files.file(
        name="Remove a stale docker.list that would clash with docker.sources",
        path=STALE_SOURCES_LIST,
        present=False,
    )
    apt_ops.packages(
        name="Install what fetching and checking the repository key needs",
        packages=["ca-certificates", "curl", "gnupg"],
    )
    repo = f"{values['docker_apt_repo_base']}/{platform.distro}"
    key = docker_ops.apt_key(
        name="Install Docker's repository key after checking its fingerprint",
        url=f"{repo}/gpg",
        fingerprint=values["docker_apt_key_fingerprint"],
        dest=KEYRING,
    )
    sources = apt_ops.sources_file(
        name="Add Docker's apt repository",
        content=render(
            "etc/apt/sources.list.d/docker.sources.j2",
            uri=repo,
            suite=platform.codename,
            arch=platform.arch,
            keyring=KEYRING,
        ),
        dest=SOURCES_FILE,
    )
    apt_ops.update(
        name="Refresh apt's lists after the repository changed",
        _if=any_changed(stale, key, sources),
    )


def _docker_ce(
    values: dict[str, Any], platform: Platform, refresh_apt_lists: bool, extras: tuple[str, ...]
) -> Any:
    docker_ce_repository(values, platform)
    # Only now, with a trusted repository in place, remove what clashes with its packages.
    apt_ops.packages(
        name="Remove packages that conflict with Docker's own",
        packages=CONFLICTING_WITH_DOCKER_CE,
        present=False,
    )
    packages = list(DOCKER_CE_PACKAGES)
    if values["docker_version"]:
        pin = docker_ce_version(values["docker_version"], platform)
        packages = [f"{name}={pin}" if name.startswith("docker-ce") else name for name in packages]
    return apt_ops.packages(
        name="Install Docker Engine from Docker's repository",
        packages=packages + list(extras),
        update=refresh_apt_lists,
    )


def _distro(platform: Platform, refresh_apt_lists: bool, extras: tuple[str, ...]) -> Any:
    apt_ops.packages(
        name="Remove Docker's own packages (docker_source=distro)",
        packages=DOCKER_CE_PACKAGES + DOCKER_CE_EXTRAS,
        present=False,
    )
    files.file(
        name="Remove Docker's repository (docker_source=distro)",
        path=SOURCES_FILE,
        present=False,
    )
    kept = platform.distro_recommends
    return apt_ops.packages(
        name="Install Docker Engine from the distribution (docker.io)",
        packages=DISTRO_PACKAGES + (kept or ()) + extras,
        update=refresh_apt_lists,
        no_recommends=kept is not None,
    )


def _check_accounts(group: str, gid: int | None, users: list[str]) -> None:
    """Refuse, before anything runs, what the operations would refuse anyway: dindkit neither
    renumbers an existing group nor creates users, so these facts do not change during a run."""
    entry = read_once(GroupEntry, group=group)
    if entry is not None and entry["gid"] == 0:
        raise DeployError(
            f"docker_socket_group={group} has GID 0 on this host, root's group; allowed: a "
            "group other than root's (every member of the socket group is root on this host)"
        )
    if entry is not None and gid is not None and entry["gid"] != gid:
        raise DeployError(docker_ops.gid_mismatch(group, entry["gid"], gid))
    if users:
        known = read_once(Users)
        missing = [user for user in users if user not in known]
        if missing:
            raise DeployError(docker_ops.missing_users(missing))


def daemon_keys(values: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Keys to set in daemon.json and keys to remove: "userns-remap" follows its setting."""
    remap = values["docker_userns_remap"]
    if remap is None:
        return dict(values["docker_daemon_options"]), ("userns-remap",)
    return {**values["docker_daemon_options"], "userns-remap": remap}, ()


def remap_problem(
    remap: str, account: AccountDict | None, ranges: dict[str, list[SubordinateRange]]
) -> str | None:
    """Why dockerd could not remap to ``remap`` (None: it can). Without ranges in both files
    dockerd starts without remapping or not at all; a UID 0 user maps containers' root to root."""
    if account is None:
        return (
            f"docker_userns_remap names a user that does not exist on this host: {remap} "
            '(use "default" to let dockerd create dockremap, or create the user first)'
        )
    if account["uid"] == 0:
        return (
            f"docker_userns_remap={remap} has UID 0, so containers' root would be root; "
            + USERNS_REMAP_RULE
        )
    missing = [
        path
        for path in SUBORDINATE_ID_FILES
        if not any(entry["owner"] in (remap, str(account["uid"])) for entry in ranges.get(path, []))
    ]
    if missing:
        return (
            f"docker_userns_remap={remap} has no range in {' and '.join(missing)} on this host "
            "(dockerd would start without remapping, or not at all): add ranges "
            f'(usermod --add-subuids ... --add-subgids ... {remap}) or use "default"'
        )
    return None


def _check_remap_user(remap: str | None, rootless_users: list[str]) -> None:
    """Refuse at plan time a remap user dockerd cannot use; "default" it creates itself. A user
    in docker_rootless_users gets its ranges in this run."""
    if remap in (None, "default"):
        return
    account = host.get_fact(Account, user=remap)
    if account is not None and remap in rootless_users:
        return  # checked as a rootless user, and given its ranges in this run
    problem = remap_problem(remap, account, read_once(SubordinateIds))
    if problem:
        raise DeployError(problem)


@deploy("Install Docker Engine", data_defaults=DOCKER_SETTINGS.defaults)
def install_docker(refresh_apt_lists: bool = True, base_packages: tuple[str, ...] = ()) -> None:
    """
    Install Docker Engine and give /run/docker.sock the permissions the settings ask for.

    + refresh_apt_lists: False when the caller refreshed apt's lists earlier in the run (the
      bootstrap does), so the package install does not run ``apt-get update`` a second time
    + base_packages: packages the caller needs on the host anyway (the bootstrap's). They come
      in Docker's own apt run when docker.io is installed fresh, else in one run before it
      (Docker's repository needs gnupg and ca-certificates first).

    Settings (``dindkit.settings.docker``) are validated before any fact is read.
    """
    values = DOCKER_SETTINGS.validate(host.data)
    APT_SETTINGS.validate(host.data)  # read by every apt step (dindkit.operations.apt)
    platform = current_platform()
    # On a host without Docker, what rootless Docker, the audit rules and the caller need comes
    # in Docker's own apt run (one apt and dpkg start, one round of triggers): "installed" then
    # still means a fresh Docker. On a host with Docker, each part installs its own packages.
    docker_source = values["docker_source"]
    engine = DOCKER_CE_PACKAGES if docker_source == "docker-ce" else DISTRO_PACKAGES
    fresh = not set(engine) <= set(read_once(DebPackages))
    joins_docker = fresh and docker_source == "distro"
    if base_packages and not joins_docker:
        apt_ops.packages(
            name="Install the base packages",
            packages=list(base_packages),
            update=refresh_apt_lists,
            no_recommends=True,
        )
    group = values["docker_socket_group"]
    _check_accounts(group, values["docker_socket_gid"], values["docker_users"])
    _check_remap_user(values["docker_userns_remap"], values["docker_rootless_users"])

    # Everything dockerd reads at start is in place BEFORE the package is installed: the
    # package's postinst reloads systemd and starts docker.socket and docker.service once, with
    # their final configuration, so a first run needs no restart. The group comes first:
    # docker.socket fails with status=216/GROUP if its SocketGroup does not exist.
    group_op = docker_ops.socket_group(
        name=f"Create the socket group {group}",
        group=group,
        gid=values["docker_socket_gid"],
    )
    hacks = docker_ops.remove_legacy_socket_hacks(
        name="Remove chmod/chown docker.sock hacks (rc.local, crontabs, units)",
    )
    set_keys, remove_keys = daemon_keys(values)
    daemon = docker_ops.daemon_json(
        name="Merge dindkit's options into /etc/docker/daemon.json",
        set_keys=set_keys,
        remove_keys=remove_keys,
    )
    drop_in = file_ops.config_file(
        name="Set the socket's mode and group in a docker.socket drop-in",
        dest=SOCKET_DROP_IN,
        content=render(
            "etc/systemd/system/docker.socket.d/10-dindkit.conf.j2",
            socket_mode=values["docker_socket_mode"],
            socket_group=group,
        ),
    )
    systemd.daemon_reload(
        name="Reload systemd units after the drop-in changed",
        _if=drop_in.did_change,
    )
    extras = rootless_packages(values) + audit_packages(values) if fresh else ()
    if joins_docker:
        extras = tuple(base_packages) + extras
    if docker_source == "docker-ce":
        installed = _docker_ce(values, platform, refresh_apt_lists, extras)
    else:
        installed = _distro(platform, refresh_apt_lists, extras)

    # A daemon that was already running restarts for what changed; a fresh install does not.
    socket_changed = any_changed(drop_in, group_op, hacks)
    docker_ops.restart_docker(
        name="Restart docker.socket and docker.service for the new socket permissions",
        socket=True,
        wait_seconds=values["docker_daemon_wait_seconds"],
        _if=lambda: socket_changed() and not installed.did_change(),
    )
    docker_ops.restart_docker(
        name="Restart docker.service for the new daemon.json",
        wait_seconds=values["docker_daemon_wait_seconds"],
        _if=lambda: daemon.did_change() and not socket_changed() and not installed.did_change(),
    )
    units_ops.running_and_enabled(
        name="Enable and start docker.socket and docker.service",
        units=["docker.socket", "docker.service"],
    )
    docker_ops.wait_for_docker(
        name="Wait until the newly installed dockerd answers docker info",
        wait_seconds=values["docker_daemon_wait_seconds"],
        _if=installed.did_change,
    )
    if values["docker_users"]:
        docker_ops.group_members(
            name=f"Add docker_users to {group}",
            group=group,
            users=values["docker_users"],
        )
    if values["docker_rootless_users"]:
        rootless_docker(install_packages=not fresh)
    watch_docker_files(install_packages=not fresh)
