"""Operations of the Sysbox deploy: Docker readiness, package fetch/verify/install, removal.

State that Docker's deploy may have just changed (is Docker a snap, which version runs, which
containers run, is the runtime registered) is read here, inside operations, when they run, and
not in the deploy code (which runs before Docker is installed). While pyinfra only plans
(``--dry``, or the change check before execution), such checks say so and wait for the run.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import OperationError, operation

from dindkit.facts.sysbox import (
    DockerRuntimes,
    DockerServerVersion,
    RunningContainers,
    SnapDocker,
    SysboxServices,
    SysboxVersion,
)
from dindkit.operations import apt as apt_ops
from dindkit.preflight import DockerFacts, check_containers, docker_checks, failure_message

SYSBOX_PACKAGE = "sysbox-ce"


def _executing() -> bool:
    # Unit tests' fake state has no execution phase: they see the operation as it runs.
    return bool(getattr(host.state, "is_executing", True))


@operation()
def docker_ready(sysbox_version: str, stop_containers: bool = False):
    """
    Check that Docker suits Sysbox before the package reconfigures it: Docker not from snap,
    no known version clash, no running containers (or stop them).

    + sysbox_version: the Sysbox version about to be installed
    + stop_containers: stop running containers instead of refusing

    A failed check stops the host with every failed check in one message.

    .. code:: python

        sysbox.docker_ready(name="Check Docker is ready for Sysbox", sysbox_version="0.6.7")
    """
    if not _executing():
        host.noop("Docker is checked for Sysbox when the deploy runs")
        return
    running = host.get_fact(RunningContainers)
    facts = DockerFacts(
        snap=host.get_fact(SnapDocker),
        version=host.get_fact(DockerServerVersion),
        running_containers=running,
    )
    checks = [*docker_checks(facts, sysbox_version), check_containers(running, stop_containers)]
    message = failure_message(checks)
    if message:
        raise OperationError(message)
    if running:
        yield "docker stop " + " ".join(shlex.quote(name) for name in running)
    else:
        host.noop("Docker is native and no containers are running")


@operation(is_idempotent=False)
def package_downloaded(url: str, path: str):
    """
    Download a Sysbox package on the target with curl (fails on HTTP errors).

    + url: where the .deb is
    + path: where to put it on the target

    .. code:: python

        sysbox.package_downloaded(url="https://mirror.example/sysbox-ce.deb", path="/tmp/x.deb")
    """
    quoted = shlex.quote(path)
    yield (
        f'mkdir -p "$(dirname {quoted})" && '
        f"curl --fail --silent --show-error --location --retry 2 --output {quoted}.part "
        f"{shlex.quote(url)} && mv {quoted}.part {quoted} "
        f"|| {{ rm -f {quoted}.part; echo 'could not download the Sysbox package from '"
        f"{shlex.quote(url)} >&2; exit 1; }}"
    )


@operation(is_idempotent=False)
def package_verified(path: str, sha256: str, source: str):
    """
    Refuse a package whose sha256 differs from the expected one (and delete it).

    + path: the downloaded or uploaded .deb on the target
    + sha256: the expected checksum
    + source: where it came from, for the error message

    .. code:: python

        sysbox.package_verified(path="/tmp/x.deb", sha256="ab...", source="https://...")
    """
    quoted = shlex.quote(path)
    message = f"sha256 mismatch for the Sysbox package from {source}: expected {sha256}, got "
    yield (
        f'actual=$(sha256sum {quoted} | cut -d" " -f1); '
        f'if [ "$actual" != {shlex.quote(sha256)} ]; then rm -f {quoted}; '
        f'echo {shlex.quote(message)}"$actual; refusing to install it" >&2; exit 1; fi'
    )


@operation()
def package_installed(path: str, version: str):
    """
    Install a verified Sysbox .deb with apt (which also pulls its dependencies), unless that
    version is already installed; the .deb is removed afterwards.

    + path: the verified .deb on the target
    + version: the Sysbox version the .deb holds

    .. code:: python

        sysbox.package_installed(path="/tmp/x.deb", version="0.6.7")
    """
    installed = host.get_fact(SysboxVersion)
    if installed == version:
        host.noop(f"Sysbox {version} is already installed")
        return
    yield apt_ops.command(apt_ops.run_step("install", path))
    yield f"rm -f {shlex.quote(path)}"


@operation()
def package_removed():
    """
    Purge the sysbox-ce package (its services, sysctl files and the sysbox user's config).

    .. code:: python

        sysbox.package_removed(name="Purge Sysbox")
    """
    installed = host.get_fact(SysboxVersion)
    if installed is None:
        host.noop("Sysbox is not installed")
        return
    yield apt_ops.command(apt_ops.run_step("purge", SYSBOX_PACKAGE))


@operation()
def verified():
    """
    Check Sysbox works: sysbox, sysbox-mgr and sysbox-fs active, Docker lists sysbox-runc.

    Reads state only; a failure stops the host and names what is wrong.

    .. code:: python

        sysbox.verified(name="Verify Sysbox runs and Docker has the sysbox-runc runtime")
    """
    if not _executing():
        host.noop("Sysbox is verified when the deploy runs")
        return
    problems = []
    services = host.get_fact(SysboxServices)
    inactive = [f"{unit} is {state}" for unit, state in services.items() if state != "active"]
    if inactive or not services:
        problems.append("services not active: " + (", ".join(inactive) or "none found"))
    runtimes = host.get_fact(DockerRuntimes)
    if "sysbox-runc" not in runtimes:
        problems.append(
            "docker info does not list the sysbox-runc runtime (runtimes: "
            + (", ".join(runtimes) or "none")
            + ")"
        )
    if problems:
        raise OperationError("Sysbox is installed but not working: " + "; ".join(problems))
    host.noop("sysbox, sysbox-mgr and sysbox-fs are active; Docker lists sysbox-runc")
    yield from ()  # an operation is a generator, even one that only checks
