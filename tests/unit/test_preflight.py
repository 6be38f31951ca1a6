"""The Sysbox preflight as a table: facts in, each check's verdict and message out."""

from __future__ import annotations

import pytest

from dindkit.preflight import (
    DockerFacts,
    HostFacts,
    check_containers,
    docker_checks,
    failure_message,
    host_checks,
    release_of,
    version_tuple,
)


def facts(**changes: object) -> HostFacts:
    base: dict[str, object] = {
        "pid1": "systemd",
        "distribution": "Debian",
        "release": "12",
        "kernel": "6.1.0-28-cloud-amd64",
        "arch": "x86_64",
        "shiftfs": False,
        "apparmor_restrict_userns": None,
    }
    base.update(changes)
    return HostFacts(**base)  # type: ignore[arg-type]


def verdicts(host: HostFacts) -> dict[str, str]:
    return {check.name: check.verdict for check in host_checks(host)}


def reasons(host: HostFacts) -> dict[str, str]:
    return {check.name: check.reason for check in host_checks(host)}


# distribution, release, kernel, shiftfs -> expected verdicts of (distribution, kernel, id-mapping)
MATRIX = [
    # Debian 10: installer floor 5.5; stock 4.19 fails, backports 5.10 needs shiftfs (< 5.12)
    ("Debian", "10", "4.19.0-27-amd64", False, ("pass", "fail", "fail")),
    ("Debian", "10", "5.10.0-0.deb10.30-amd64", False, ("pass", "pass", "fail")),
    ("Debian", "10", "5.10.0-0.deb10.30-amd64", True, ("pass", "pass", "pass")),
    # Debian 11: 5.10 stock (no ID-mapped mounts), 5.12+ from backports
    ("Debian", "11", "5.10.0-32-amd64", False, ("pass", "pass", "fail")),
    ("Debian", "11", "5.4.0", False, ("pass", "fail", "fail")),
    ("Debian", "11", "6.1.0-0.deb11.21-amd64", False, ("pass", "pass", "pass")),
    # Debian 12 (6.1) and 13 (6.12): everything passes
    ("Debian", "12", "6.1.0-28-cloud-amd64", False, ("pass", "pass", "pass")),
    ("Debian", "13", "6.12.48+deb13-cloud-amd64", False, ("pass", "pass", "pass")),
    # Ubuntu 20.04: installer floor 5.4; 5.4 needs shiftfs (Ubuntu kernels carry it)
    ("Ubuntu", "20.04", "5.4.0-200-generic", True, ("pass", "pass", "pass")),
    ("Ubuntu", "20.04", "5.4.0-200-generic", False, ("pass", "pass", "fail")),
    ("Ubuntu", "20.04", "5.3.18", True, ("pass", "fail", "pass")),
    ("Ubuntu", "20.04", "5.15.0-120-generic", False, ("pass", "pass", "warn")),
    # Ubuntu 22.04: installer floor 5.15; 5.15 < 5.19 warns without shiftfs
    ("Ubuntu", "22.04", "5.14.0", False, ("pass", "fail", "warn")),
    ("Ubuntu", "22.04", "5.15.0-120-generic", False, ("pass", "pass", "warn")),
    ("Ubuntu", "22.04", "5.15.0-120-generic", True, ("pass", "pass", "pass")),
    ("Ubuntu", "22.04", "6.8.0-49-generic", False, ("pass", "pass", "pass")),
    # Ubuntu 24.04 (6.8)
    ("Ubuntu", "24.04", "6.8.0-45-generic", False, ("pass", "pass", "pass")),
    # ID-mapping boundaries: 5.12 and 5.19
    ("Debian", "12", "5.11.22", False, ("pass", "pass", "fail")),
    ("Debian", "12", "5.12.0", False, ("pass", "pass", "warn")),
    ("Debian", "12", "5.18.19", False, ("pass", "pass", "warn")),
    ("Debian", "12", "5.19.0", False, ("pass", "pass", "pass")),
    # Not supported: Debian 9, Ubuntu 23.10, Fedora
    ("Debian", "9", "4.9.0", False, ("fail", "fail", "fail")),
    ("Ubuntu", "23.10", "6.5.0", False, ("fail", "pass", "pass")),
    ("Fedora", "40", "6.8.5", False, ("fail", "pass", "pass")),
]


@pytest.mark.parametrize(("distribution", "release", "kernel", "shiftfs", "expected"), MATRIX)
def test_distribution_kernel_matrix(
    distribution: str, release: str, kernel: str, shiftfs: bool, expected: tuple[str, ...]
) -> None:
    got = verdicts(
        facts(distribution=distribution, release=release, kernel=kernel, shiftfs=shiftfs)
    )
    assert (got["distribution"], got["kernel"], got["id-mapping"]) == expected


def test_messages_for_failures() -> None:
    got = reasons(facts(distribution="Debian", release="10", kernel="4.19.0-27-amd64"))
    assert got["kernel"] == (
        "Sysbox's installer needs kernel 5.5 or newer on Debian 10; this host runs 4.19.0-27-amd64"
    )
    assert got["id-mapping"].startswith(
        "kernel 4.19.0-27-amd64 lacks ID-mapped mounts (need 5.12+) and the shiftfs module is "
        "not available"
    )
    got = reasons(facts(distribution="Ubuntu", release="23.10", kernel="6.5.0"))
    assert got["distribution"] == (
        "Sysbox packages support Ubuntu 18.04, 20.04, 22.04, 24.04; Debian 10, 11, 12, 13; "
        "found Ubuntu 23.10"
    )
    warn = reasons(facts(kernel="5.15.0"))["id-mapping"]
    assert "not on overlayfs (5.19+)" in warn and "5.19 or newer is recommended" in warn


def test_no_systemd() -> None:
    checks = host_checks(facts(pid1="process_api"))
    assert failure_message(checks) == (
        "Sysbox preflight failed: systemd: Sysbox needs systemd as PID 1 (its services are "
        "systemd units); PID 1 here is 'process_api'"
    )


def test_every_failure_is_listed_in_one_message() -> None:
    checks = host_checks(facts(pid1="init", arch="riscv64", kernel="4.19.0", release="10"))
    message = failure_message(checks)
    assert message is not None and "\n" not in message
    for name in ("systemd:", "kernel:", "id-mapping:", "architecture:"):
        assert name in message


@pytest.mark.parametrize(
    ("arch", "verdict"),
    [("x86_64", "pass"), ("amd64", "pass"), ("aarch64", "pass"), ("arm64", "pass"),
     ("riscv64", "fail"), ("armv7l", "fail"), (None, "fail")],
)  # fmt: skip
def test_architectures(arch: str | None, verdict: str) -> None:
    assert verdicts(facts(arch=arch))["architecture"] == verdict


def test_architecture_message() -> None:
    assert reasons(facts(arch="armv7l"))["architecture"] == (
        "Sysbox packages exist for amd64 (x86_64) and arm64 (aarch64); this host is armv7l"
    )


@pytest.mark.parametrize("restrict", [None, 0, 1])
def test_apparmor_userns_restriction_does_not_block_sysbox(restrict: int | None) -> None:
    host = facts(
        distribution="Ubuntu", release="24.04", kernel="6.8.0", apparmor_restrict_userns=restrict
    )
    assert verdicts(host)["apparmor-userns"] == "pass"
    if restrict == 1:
        assert "Sysbox creates them as root" in reasons(host)["apparmor-userns"]


def test_all_pass_on_lab_distributions() -> None:
    for release, kernel in (("12", "6.1.0-28-cloud-amd64"), ("13", "6.12.48+deb13-cloud-amd64")):
        checks = host_checks(facts(release=release, kernel=kernel))
        assert failure_message(checks) is None
        assert all(check.verdict == "pass" for check in checks), checks


def test_snap_docker_fails() -> None:
    checks = docker_checks(DockerFacts(snap=True, version="24.0.5"), "0.6.7")
    message = failure_message(checks)
    assert message == (
        "Sysbox preflight failed: docker-native: Docker is installed from snap; Sysbox needs "
        "Docker installed natively (docker-ce or the distribution's docker.io): "
        "`snap remove docker` first"
    )


@pytest.mark.parametrize(
    ("docker", "sysbox", "verdict"),
    [
        (None, "0.6.7", "pass"),
        ("20.10.24+dfsg1", "0.6.7", "pass"),
        ("28.5.1", "0.6.7", "pass"),
        ("28.5.2", "0.6.7", "warn"),
        ("29.0.0", "0.6.4", "warn"),
        ("29.1.2", "0.7.0", "pass"),
    ],
)
def test_docker_sysbox_version_clash(docker: str | None, sysbox: str, verdict: str) -> None:
    check = docker_checks(DockerFacts(version=docker), sysbox)[1]
    assert check.verdict == verdict
    if verdict == "warn":
        assert "nestybox/sysbox#972, #973" in check.reason


def test_running_containers() -> None:
    check = check_containers(["web", "db"], stop_containers=False)
    assert check.verdict == "fail"
    assert check.reason == (
        "containers are running (web, db); the Sysbox package reconfigures and restarts Docker: "
        "stop them first or set sysbox_stop_containers: true"
    )
    assert check_containers(["web"], stop_containers=True).verdict == "warn"
    assert check_containers([], stop_containers=False).verdict == "pass"


def test_release_and_versions() -> None:
    assert release_of("Ubuntu", 22, 4) == "22.04"
    assert release_of("Debian", 12, None) == "12"
    assert release_of("Debian", None, None) is None
    assert version_tuple("6.12.48+deb13-cloud-amd64") == (6, 12, 48)
    assert version_tuple("5.15") == (5, 15, 0)
    assert version_tuple("") is None
