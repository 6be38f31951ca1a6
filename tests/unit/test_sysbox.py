"""Sysbox settings cross-checks, package sources and daemon.json removal, without a host."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError

from dindkit.settings.sysbox import SYSBOX_PACKAGES, SYSBOX_SETTINGS
from dindkit.sysbox import (
    OFFLINE_REASON,
    SYSBOX_DAEMON_ENTRIES,
    PackageSource,
    package_source,
    sysbox_daemon_entries,
)

SHA = "a" * 64


def values(**data: Any) -> dict[str, Any]:
    return SYSBOX_SETTINGS.validate(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"sysbox_package_url": "http://10.0.2.2:8000/x.deb"},
            "Invalid settings for sysbox: sysbox_package_url needs sysbox_package_sha256 "
            "(its sha256 checksum)",
        ),
        (
            {
                "sysbox_package_url": "http://m/x.deb",
                "sysbox_package_sha256": SHA,
                "sysbox_package_file": "x.deb",
            },
            "Invalid settings for sysbox: set sysbox_package_url or sysbox_package_file, not both",
        ),
        (
            {"sysbox_package_sha256": SHA},
            "Invalid settings for sysbox: sysbox_package_sha256 is the checksum of "
            "sysbox_package_url or sysbox_package_file; set one of them (pinned versions carry "
            "their own checksum)",
        ),
        (
            {"sysbox_version": "0.6.5"},
            "Invalid settings for sysbox: sysbox_version 0.6.5 has no pinned package checksum; "
            "pinned: 0.6.2, 0.6.3, 0.6.4, 0.6.7 (or give sysbox_package_url + "
            "sysbox_package_sha256, or sysbox_package_file)",
        ),
        (
            {"sysbox_version": "latest"},
            "Invalid setting sysbox_version='latest': allowed: a version such as 0.6.7",
        ),
        (
            {"sysbox_package_sha256": "abc", "sysbox_package_url": "http://m/x.deb"},
            "Invalid setting sysbox_package_sha256='abc': allowed: a sha256 checksum, "
            "64 hexadecimal digits",
        ),
        (
            {"sysbox_state": "latest"},
            "Invalid setting sysbox_state='latest': allowed: 'present', 'absent'",
        ),
        (
            {"sysbox_stop_containers": "maybe"},
            "Invalid setting sysbox_stop_containers='maybe': allowed: true or false",
        ),
    ],
)
def test_bad_settings(data: dict[str, Any], message: str) -> None:
    with pytest.raises(DeployError) as error:
        values(**data)
    assert str(error.value) == message


def test_unpinned_version_is_fine_with_a_mirror() -> None:
    got = values(
        sysbox_version="0.6.6", sysbox_package_url="http://m/x.deb", sysbox_package_sha256=SHA
    )
    assert got["sysbox_version"] == "0.6.6"


def test_pinned_table_has_both_architectures() -> None:
    assert "0.6.7" in SYSBOX_PACKAGES
    for version, by_arch in SYSBOX_PACKAGES.items():
        assert set(by_arch) == {"amd64", "arm64"}, version
        assert all(len(sha) == 64 for sha in by_arch.values())


def test_pinned_source() -> None:
    source = package_source(values(), "aarch64")
    assert source == PackageSource(
        "0.6.7",
        SYSBOX_PACKAGES["0.6.7"]["arm64"],
        url="https://downloads.nestybox.com/sysbox/releases/v0.6.7/sysbox-ce_0.6.7-0.linux_arm64.deb",
    )
    assert package_source(values(), "riscv64") == (
        "no pinned Sysbox 0.6.7 package for architecture riscv64"
    )


def test_offline_without_a_source() -> None:
    assert package_source(values(sysbox_offline=True), "x86_64") == OFFLINE_REASON
    assert OFFLINE_REASON == (
        "no Sysbox package source is available offline: set sysbox_package_file (a .deb on the "
        "control machine) or sysbox_package_url + sysbox_package_sha256 (a mirror)"
    )


def test_offline_with_a_mirror() -> None:
    source = package_source(
        values(
            sysbox_offline=True,
            sysbox_package_url="http://10.0.2.2:8000/sysbox.deb",
            sysbox_package_sha256=SHA,
        ),
        "x86_64",
    )
    assert isinstance(source, PackageSource)
    assert source.url == "http://10.0.2.2:8000/sysbox.deb" and source.sha256 == SHA


def test_local_file_checksum_computed_and_checked(tmp_path: Path) -> None:
    deb = tmp_path / "sysbox-ce.deb"
    content = b"!<arch>\ndebian-binary   a stand-in: only its first bytes and checksum matter"
    deb.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    source = package_source(values(sysbox_offline=True, sysbox_package_file=str(deb)), "x86_64")
    assert isinstance(source, PackageSource)
    assert source.sha256 == digest and source.local_file == str(deb)
    assert source.target_path == f"/var/tmp/dindkit/sysbox-ce_0.6.7_{digest[:12]}.deb"
    wrong = package_source(
        values(sysbox_package_file=str(deb), sysbox_package_sha256=SHA), "x86_64"
    )
    assert (
        wrong
        == f"sysbox_package_file {deb} has sha256 {digest}, not the sysbox_package_sha256 {SHA}"
    )
    missing = package_source(values(sysbox_package_file=str(tmp_path / "no.deb")), "x86_64")
    assert (
        missing
        == f"sysbox_package_file {tmp_path / 'no.deb'} does not exist on the control machine"
    )


def test_daemon_json_removal_keeps_the_users_entries() -> None:
    # Exactly what Sysbox wrote: all of it goes.
    assert sysbox_daemon_entries(dict(SYSBOX_DAEMON_ENTRIES)) == (
        {},
        ["runtimes", "bip", "default-address-pools"],
    )
    # The user's own runtime, bip and pools stay.
    current = {
        "runtimes": {
            "sysbox-runc": {"path": "/usr/bin/sysbox-runc"},
            "crun": {"path": "/usr/bin/crun"},
        },
        "bip": "10.200.0.1/24",
        "default-address-pools": [{"base": "10.201.0.0/16", "size": 24}],
        "live-restore": True,
    }
    assert sysbox_daemon_entries(current) == ({"runtimes": {"crun": {"path": "/usr/bin/crun"}}}, [])
    assert sysbox_daemon_entries(None) == ({}, [])
    assert sysbox_daemon_entries({"live-restore": True}) == ({}, [])


@pytest.mark.skipif(
    Path("/proc/1/comm").read_text().strip() == "systemd"
    if Path("/proc/1/comm").exists()
    else True,
    reason="needs a machine whose PID 1 is not systemd",
)
def test_local_dry_run_without_systemd_stops_with_one_line(tmp_path: Path) -> None:
    from tests.pyinfra_dry import dry_run

    run = dry_run("sysbox", cwd=tmp_path)
    assert run.returncode != 0
    output = run.output
    last = output.strip().splitlines()[-1]
    assert "Sysbox preflight failed: systemd: Sysbox needs systemd as PID 1" in last
    assert "Traceback" not in output
    assert "Starting operation" not in output
