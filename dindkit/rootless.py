"""Rootless Docker for the users in ``docker_rootless_users``, from distribution packages.

``rootless_docker()`` is the deploy; ``install_docker()`` calls it at its end when the setting
lists anyone. Per user: subordinate ID ranges, linger (the user's systemd runs from boot on), and
the user unit docker.service (one file in /etc/systemd/user, enabled per user) running
``dockerd-rootless.sh`` and answering on /run/user/UID/docker.sock. The accounts are checked at
plan time: dindkit creates no user, so what it reads about them does not change during a run.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import DeployError, deploy

from dindkit.facts.rootless import Account, AccountDict
from dindkit.operations import docker as docker_ops
from dindkit.operations import files as file_ops
from dindkit.operations import rootless as rootless_ops
from dindkit.settings.docker import DOCKER_SETTINGS
from dindkit.templating import render

USER_UNIT = "/etc/systemd/user/docker.service"
PACKAGES = ("uidmap", "dbus-user-session", "slirp4netns")
# docker.io only suggests rootlesskit and keeps dockerd-rootless.sh outside PATH;
# docker-ce-rootless-extras ships both in /usr/bin.
SOURCE_PACKAGES = {"distro": ("rootlesskit",), "docker-ce": ("docker-ce-rootless-extras",)}
BIN_DIRS = {"distro": "/usr/share/docker.io/contrib", "docker-ce": "/usr/bin"}


# A login user: UID from Debian's UID_MIN (login.defs) up to below nobody, a home outside the
# system's folders, a shell that lets it log in. System accounts (daemon, www-data, ...) fail
# one of these; rootless dockerd would run, and store images, as a service's identity.
LOGIN_UIDS = range(1000, 65534)
SYSTEM_HOMES = (
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/nonexistent",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var",
)
NO_LOGIN_SHELLS = ("nologin", "false")


def _in_system_folder(home: str) -> bool:
    home = "/" + home.strip("/")
    return any(
        home == folder or (home.startswith(folder.rstrip("/") + "/") and folder != "/")
        for folder in SYSTEM_HOMES
    )


def account_problem(user: str, account: AccountDict | None) -> str | None:
    if account is None:
        return f"{user} does not exist"
    if account["uid"] == 0:
        return f"{user} is root (root's Docker is the system one)"
    if not account["home_exists"]:
        return f"{user} has no home directory ({account['home'] or 'none set'} is missing)"
    if account["uid"] not in LOGIN_UIDS:
        return (
            f"{user} is a system account (UID {account['uid']}; allowed: a login user, UID "
            f"{LOGIN_UIDS.start} to {LOGIN_UIDS.stop - 1})"
        )
    if _in_system_folder(account["home"]):
        return f"{user} is a system account (home {account['home']} is a system folder)"
    if account.get("shell", "").rsplit("/", 1)[-1] in NO_LOGIN_SHELLS:
        return f"{user} is a system account (no login shell: {account['shell']})"
    return None


def check_accounts(
    users: list[str], setting: str = "docker_rootless_users"
) -> dict[str, AccountDict]:
    """The accounts of ``users``, or a DeployError naming ``setting`` and each one that cannot
    run rootless Docker. Read at plan time, before any operation changes the host."""
    accounts = {user: host.get_fact(Account, user=user) for user in users}
    problems = [
        problem for user, account in accounts.items() if (problem := account_problem(user, account))
    ]
    if problems:
        raise DeployError(
            f"{setting}: {'; '.join(problems)} on this host (dindkit sets up rootless "
            "Docker for existing login users with a home; create them first)"
        )
    return {user: account for user, account in accounts.items() if account is not None}


def rootless_packages(values: dict[str, Any]) -> tuple[str, ...]:
    """The packages rootless Docker needs with these settings (none without rootless users)."""
    if not values["docker_rootless_users"]:
        return ()
    return PACKAGES + SOURCE_PACKAGES[values["docker_source"]]


@deploy("Set up rootless Docker", data_defaults=DOCKER_SETTINGS.defaults)
def rootless_docker(install_packages: bool = True) -> None:
    """
    Give each user in ``docker_rootless_users`` a rootless dockerd that starts at boot.

    + install_packages: False when the caller installed ``rootless_packages`` already (the
      Docker deploy does, in the same apt run as Docker on a host without it)

    Settings (``dindkit.settings.docker``) are validated and the accounts checked before any
    operation runs.
    """
    values = DOCKER_SETTINGS.validate(host.data)
    accounts = check_accounts(values["docker_rootless_users"])
    if not accounts:
        return
    source = values["docker_source"]
    if install_packages:
        docker_ops.apt_packages(
            name="Install what rootless Docker needs",
            packages=rootless_packages(values),
        )
    file_ops.config_file(
        name="Install the user unit for rootless dockerd",
        dest=USER_UNIT,
        content=render(
            "etc/systemd/user/docker.service.j2",
            bin_dir=BIN_DIRS[source],
            bridge=values["docker_rootless_bridge"],
        ),
    )
    for user, account in accounts.items():
        rootless_ops.subordinate_ids(
            name=f"Give {user} subordinate UID and GID ranges",
            user=user,
            uid=account["uid"],
        )
        rootless_ops.linger(
            name=f"Let {user}'s systemd run from boot on (linger)",
            user=user,
        )
        rootless_ops.user_dockerd(
            name=f"Enable and start {user}'s rootless dockerd",
            user=user,
            uid=account["uid"],
            home=account["home"],
            wait_seconds=values["docker_daemon_wait_seconds"],
        )
