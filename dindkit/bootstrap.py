"""From a fresh VPS to a host ready for every Docker-in-Docker mode (deploys/bootstrap.py).

The bootstrap deploy is a composition: it owns only the first steps (apt index, time sync) and
then calls the other capabilities' deploys in order: Docker with socket permissions (and the
base packages, in Docker's own apt run on a host without Docker), Sysbox where its preflight
passes, the local registry when enabled, the smoke tests and their report.

Every settings table it uses is validated first, so a bad value anywhere stops the run before a
single fact is read. It works as root or as a non-root SSH user with ``_sudo: True`` in the
host data (pyinfra then runs every command through sudo).
"""

from __future__ import annotations

from typing import Any

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.deb import DebPackages

from dindkit.docker import install_docker
from dindkit.facts.reuse import read_once
from dindkit.guard import install_guard
from dindkit.operations import apt as apt_ops
from dindkit.operations import units as units_ops
from dindkit.registry import local_registry
from dindkit.settings import SettingsTable
from dindkit.settings.apt import APT_SETTINGS
from dindkit.settings.bootstrap import BOOTSTRAP_SETTINGS
from dindkit.settings.docker import DOCKER_SETTINGS
from dindkit.settings.guard import GUARD_SETTINGS
from dindkit.settings.registry import REGISTRY_SETTINGS
from dindkit.settings.smoke import SMOKE_SETTINGS
from dindkit.settings.sysbox import SYSBOX_SETTINGS
from dindkit.smoke.deploy import run_smoke_tests
from dindkit.sysbox import install_sysbox, unavailable_reason

# Every table the bootstrap reads, directly or through the deploys it calls.
TABLES: tuple[SettingsTable, ...] = (
    BOOTSTRAP_SETTINGS,
    DOCKER_SETTINGS,
    SYSBOX_SETTINGS,
    SMOKE_SETTINGS,
    REGISTRY_SETTINGS,
    APT_SETTINGS,
    GUARD_SETTINGS,
)

DEFAULTS: dict[str, Any] = {
    name: value for table in TABLES for name, value in table.defaults.items()
}

# Time daemons that conflict with systemd-timesyncd (Debian's packages say so): when one is
# installed, it already keeps the clock and the bootstrap leaves it alone.
OTHER_TIME_DAEMONS = ("chrony", "ntp", "ntpsec", "openntpd")

# apt's index is refreshed at most once a day by the bootstrap; Docker's and Sysbox's deploys
# refresh it themselves when they add a package source.
APT_CACHE_SECONDS = 24 * 3600


def validate(data: Any) -> dict[str, Any]:
    """Normalised values of every table the bootstrap uses; DeployError on the first bad one."""
    values: dict[str, Any] = {}
    for table in TABLES:
        values.update(table.validate(data))
    return values


def sysbox_decision(reason: str | None, required: bool) -> str | None:
    """What to do about Sysbox given its preflight verdict.

    Returns None to install it, or the reason it is skipped; raises DeployError when Sysbox is
    required and cannot be installed.
    """
    if reason is None:
        return None
    if required:
        raise DeployError(
            f"Sysbox is required on this host (sysbox_required) and cannot be installed: {reason}"
        )
    return reason


@deploy("Bootstrap a host for Docker-in-Docker", data_defaults=DEFAULTS)
def bootstrap() -> None:
    """Base packages, time sync, Docker, Sysbox where possible, then the smoke tests."""
    values = validate(host.data)

    # Sysbox's verdict comes from facts that no step changes (distribution, kernel, PID 1,
    # architecture, package source): decide first, so sysbox_required stops a host before
    # anything is installed on it.
    sysbox_skipped = None
    if values["sysbox_state"] == "present":
        sysbox_skipped = sysbox_decision(unavailable_reason(), values["sysbox_required"])

    apt_ops.update(name="Update the apt index (at most once a day)", cache_time=APT_CACHE_SECONDS)
    if values["bootstrap_time_sync"]:
        _time_sync()

    # The base packages come in Docker's own apt run on a host without Docker (one run).
    install_docker(refresh_apt_lists=False, base_packages=tuple(values["bootstrap_base_packages"]))

    if sysbox_skipped is None:
        install_sysbox()  # also the removal, with sysbox_state: absent
    else:
        logger.warning(f"{host.name}: Sysbox skipped: {sysbox_skipped}")

    if values["registry_enabled"]:  # before the smoke tests, which may use it
        local_registry()
    if values["guard_enabled"]:
        install_guard()

    if values["smoke_enabled"]:
        run_smoke_tests()


def time_keeper(installed: Any) -> str | None:
    """The installed time daemon that conflicts with systemd-timesyncd, if any."""
    return next((name for name in OTHER_TIME_DAEMONS if name in installed), None)


def _time_sync() -> None:
    keeper = time_keeper(read_once(DebPackages))
    if keeper is not None:
        host.noop(f"time sync is already provided by {keeper}")
        return
    apt_ops.packages(
        name="Install systemd-timesyncd",
        packages=["systemd-timesyncd"],
        update=False,  # the bootstrap refreshed the index first
        no_recommends=True,
    )
    units_ops.running_and_enabled(
        name="Enable and start systemd-timesyncd", units=["systemd-timesyncd"]
    )
