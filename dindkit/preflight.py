"""Sysbox preflight: pure functions from host facts to named checks (pass / warn / fail + reason).

Nothing here talks to a host: the deploy (dindkit.sysbox) and ``dindkit doctor`` gather the
facts and hand them in, so every verdict is unit-tested from a table of facts
(tests/unit/test_preflight.py).

Facts recorded from Sysbox's own material (looked up, not copied):

- The sysbox-ce package's preinst (nestybox/sysbox-pkgr, deb/sysbox-ce/sysbox-ce.preinst)
  refuses to install below a per-release kernel: Ubuntu 18.04 5.3, 20.04 5.4, 21.10 5.13,
  22.04 5.15, Debian 10 5.5, Debian 11 5.5. On a release missing from that table it proceeds
  only on kernel 5.5 or newer. Debian 12/13 and Ubuntu 24.04 are such releases: Sysbox's docs
  and issues report them working (Ubuntu 24.04 support was added to sysbox-pkgr after
  nestybox/sysbox#822), so they get the installer's 5.5 floor here.
- Sysbox needs systemd as the process manager (docs/user-guide/install-package.md, host
  requirements) and ships .deb packages for amd64 and arm64 only.
- docs/distro-compat.md: shiftfs is required if the kernel is older than 5.12 (no ID-mapped
  mounts), and recommended below 5.19 (overlayfs on ID-mapped mounts arrived in 5.19).
- Docker from snap is not supported: the package edits /etc/docker/daemon.json and restarts
  the docker systemd unit, neither of which exist for the snap.
- Ubuntu's kernel.apparmor_restrict_unprivileged_userns=1 (default since 24.04) confines user
  namespaces created by *unprivileged* processes. Sysbox's runtime creates the container's
  user namespace as root with CAP_SYS_ADMIN, so the restriction does not apply to it; the
  package itself only flips kernel.unprivileged_userns_clone where that Debian/Ubuntu knob
  exists. Known AppArmor trouble is with fusermount3's profile on Ubuntu 26.04
  (nestybox/sysbox#1005), a release the distribution check already refuses.
- Docker 28.5.2 moved to runc 1.3.3 / containerd 1.7.29, whose procfs hardening breaks
  containers started inside Sysbox 0.6.x containers ("unsafe procfs detected ...
  ip_unprivileged_port_start: invalid cross-device link", nestybox/sysbox#972 and #973,
  Docker 28.5.2 and 29.0.0); Sysbox 0.7.0 carries the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["pass", "warn", "fail"]

# (distribution, release) -> the kernel minimum Sysbox's installer enforces for it.
INSTALLER_KERNEL_MINIMUM: dict[tuple[str, str], tuple[int, int]] = {
    ("Ubuntu", "18.04"): (5, 3),
    ("Ubuntu", "20.04"): (5, 4),
    ("Ubuntu", "22.04"): (5, 15),
    ("Ubuntu", "24.04"): (5, 5),
    ("Debian", "10"): (5, 5),
    ("Debian", "11"): (5, 5),
    ("Debian", "12"): (5, 5),
    ("Debian", "13"): (5, 5),
}
IDMAPPED_MOUNTS_KERNEL = (5, 12)
OVERLAYFS_ON_IDMAPPED_KERNEL = (5, 19)
# uname -m / dpkg architecture -> Sysbox package architecture.
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
# Docker releases from which Sysbox below 0.7.0 breaks nested containers (#972, #973).
DOCKER_RUNC_133 = (28, 5, 2)
SYSBOX_WITH_RUNC_133_FIX = (0, 7, 0)


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    reason: str

    def line(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class HostFacts:
    """What the host preflight needs; every field comes from one fact (dindkit.facts.sysbox)."""

    pid1: str | None
    distribution: str | None
    release: str | None
    kernel: str | None
    arch: str | None
    shiftfs: bool = False
    apparmor_restrict_userns: int | None = None


@dataclass(frozen=True)
class DockerFacts:
    """Facts that only mean something once Docker is installed."""

    snap: bool = False
    version: str | None = None
    running_containers: Sequence[str] = field(default_factory=tuple)


def version_tuple(text: str | None, parts: int = 3) -> tuple[int, ...] | None:
    """Leading numeric parts of a version ("6.1.0-28-cloud-amd64" -> (6, 1, 0))."""
    if not text:
        return None
    match = re.match(r"[0-9]+(?:\.[0-9]+)*", text.strip())
    if not match:
        return None
    numbers = [int(number) for number in match.group(0).split(".")][:parts]
    return tuple(numbers + [0] * (parts - len(numbers)))


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(number) for number in version)


def release_of(distribution: str | None, major: int | None, minor: int | None) -> str | None:
    """The release as Sysbox's table names it: "12" for Debian, "22.04" for Ubuntu."""
    if major is None:
        return None
    if distribution == "Ubuntu":
        return f"{major}.{minor or 0:02d}"
    return str(major)


def check_systemd(pid1: str | None) -> Check:
    if pid1 == "systemd":
        return Check("systemd", "pass", "systemd is PID 1")
    found = pid1 or "unknown"
    return Check(
        "systemd",
        "fail",
        f"Sysbox needs systemd as PID 1 (its services are systemd units); PID 1 here is {found!r}",
    )


def _supported_list() -> str:
    by_distribution: dict[str, list[str]] = {}
    for distribution, release in INSTALLER_KERNEL_MINIMUM:
        by_distribution.setdefault(distribution, []).append(release)
    return "; ".join(f"{name} {', '.join(releases)}" for name, releases in by_distribution.items())


def check_distribution(distribution: str | None, release: str | None) -> Check:
    found = f"{distribution or 'unknown'} {release or ''}".strip()
    if (distribution or "", release or "") in INSTALLER_KERNEL_MINIMUM:
        return Check("distribution", "pass", f"{found} has a Sysbox package")
    return Check(
        "distribution",
        "fail",
        f"Sysbox packages support {_supported_list()}; found {found}",
    )


def check_kernel_minimum(
    distribution: str | None, release: str | None, kernel: str | None
) -> Check:
    minimum = INSTALLER_KERNEL_MINIMUM.get((distribution or "", release or ""), (5, 5))
    current = version_tuple(kernel, 2)
    if current is None:
        return Check("kernel", "fail", f"cannot read the kernel version ({kernel!r})")
    if current < minimum:
        return Check(
            "kernel",
            "fail",
            f"Sysbox's installer needs kernel {_dotted(minimum)} or newer on "
            f"{distribution} {release}; this host runs {kernel}",
        )
    return Check("kernel", "pass", f"kernel {kernel} >= {_dotted(minimum)}")


def check_id_mapping(kernel: str | None, shiftfs: bool) -> Check:
    current = version_tuple(kernel, 2)
    if current is None:
        return Check("id-mapping", "fail", f"cannot read the kernel version ({kernel!r})")
    if current >= OVERLAYFS_ON_IDMAPPED_KERNEL:
        return Check(
            "id-mapping",
            "pass",
            f"kernel {kernel} has ID-mapped mounts, also on overlayfs (>= 5.19)",
        )
    if current >= IDMAPPED_MOUNTS_KERNEL:
        if shiftfs:
            return Check(
                "id-mapping",
                "pass",
                f"kernel {kernel} has ID-mapped mounts (>= 5.12) and the shiftfs module",
            )
        return Check(
            "id-mapping",
            "warn",
            f"kernel {kernel} has ID-mapped mounts (>= 5.12) but not on overlayfs (5.19+) and "
            "no shiftfs module: Sysbox works, with slower container starts (it copies and "
            "chowns image layers); kernel 5.19 or newer is recommended",
        )
    if shiftfs:
        return Check(
            "id-mapping",
            "pass",
            f"kernel {kernel} lacks ID-mapped mounts (< 5.12); the shiftfs module stands in",
        )
    return Check(
        "id-mapping",
        "fail",
        f"kernel {kernel} lacks ID-mapped mounts (need 5.12+) and the shiftfs module is not "
        "available: upgrade the kernel (5.19+ recommended) or install shiftfs",
    )


def check_architecture(arch: str | None) -> Check:
    package_arch = ARCHITECTURES.get(arch or "")
    if package_arch:
        return Check("architecture", "pass", f"{arch} ({package_arch} package)")
    return Check(
        "architecture",
        "fail",
        f"Sysbox packages exist for amd64 (x86_64) and arm64 (aarch64); this host is "
        f"{arch or 'unknown'}",
    )


def check_apparmor_userns(distribution: str | None, restrict: int | None) -> Check:
    if restrict is None:
        return Check(
            "apparmor-userns", "pass", "no AppArmor restriction of unprivileged user namespaces"
        )
    if restrict == 0:
        return Check(
            "apparmor-userns",
            "pass",
            "kernel.apparmor_restrict_unprivileged_userns=0 (not restricted)",
        )
    return Check(
        "apparmor-userns",
        "pass",
        "kernel.apparmor_restrict_unprivileged_userns=1 only confines user namespaces made by "
        "unprivileged processes; Sysbox creates them as root, so it needs no change here",
    )


def host_checks(facts: HostFacts) -> list[Check]:
    """Checks that need no Docker: run before anything is installed."""
    return [
        check_systemd(facts.pid1),
        check_distribution(facts.distribution, facts.release),
        check_kernel_minimum(facts.distribution, facts.release, facts.kernel),
        check_id_mapping(facts.kernel, facts.shiftfs),
        check_architecture(facts.arch),
        check_apparmor_userns(facts.distribution, facts.apparmor_restrict_userns),
    ]


def check_docker_native(snap: bool) -> Check:
    if snap:
        return Check(
            "docker-native",
            "fail",
            "Docker is installed from snap; Sysbox needs Docker installed natively (docker-ce "
            "or the distribution's docker.io): `snap remove docker` first",
        )
    return Check("docker-native", "pass", "Docker is not a snap")


def check_versions(docker_version: str | None, sysbox_version: str) -> Check:
    docker = version_tuple(docker_version)
    sysbox = version_tuple(sysbox_version)
    if docker is None:
        return Check("versions", "pass", "Docker not installed yet: no known clash to check")
    if sysbox is not None and docker >= DOCKER_RUNC_133 and sysbox < SYSBOX_WITH_RUNC_133_FIX:
        return Check(
            "versions",
            "warn",
            f"Docker {docker_version} (runc 1.3.3+) with Sysbox {sysbox_version}: containers "
            "started inside Sysbox containers fail with 'unsafe procfs detected' "
            "(nestybox/sysbox#972, #973); use Sysbox 0.7.0 or newer, or Docker older than 28.5.2",
        )
    return Check(
        "versions", "pass", f"Docker {docker_version} with Sysbox {sysbox_version}: no known clash"
    )


def docker_checks(facts: DockerFacts, sysbox_version: str) -> list[Check]:
    """Checks that need Docker installed: run after the Docker deploy."""
    return [check_docker_native(facts.snap), check_versions(facts.version, sysbox_version)]


def check_containers(running: Sequence[str], stop_containers: bool) -> Check:
    if not running:
        return Check("containers", "pass", "no containers running")
    names = ", ".join(running)
    if stop_containers:
        return Check(
            "containers", "warn", f"will stop running containers (sysbox_stop_containers): {names}"
        )
    return Check(
        "containers",
        "fail",
        f"containers are running ({names}); the Sysbox package reconfigures and restarts "
        "Docker: stop them first or set sysbox_stop_containers: true",
    )


def failures(checks: Iterable[Check]) -> list[Check]:
    return [check for check in checks if check.verdict == "fail"]


def failure_message(checks: Iterable[Check]) -> str | None:
    """One line naming every failed check, or None when nothing failed."""
    failed = failures(checks)
    if not failed:
        return None
    return "Sysbox preflight failed: " + "; ".join(check.line() for check in failed)


def format_checks(checks: Iterable[Check]) -> str:
    return "\n".join(
        f"  {check.verdict.upper():4}  {check.name}: {check.reason}" for check in checks
    )
