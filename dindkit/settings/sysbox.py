"""Settings of the Sysbox deploy (deploys/sysbox.py). Owned by the Sysbox capability."""

from __future__ import annotations

from typing import Any

from dindkit.settings import (
    Setting,
    SettingError,
    SettingsTable,
    boolean,
    control_file,
    matching,
    one_of,
    optional,
    sha256,
    url,
)

# Official sysbox-ce packages: version -> architecture -> sha256, as published in the
# "Checksums" section of each release of nestybox/sysbox (0.6.2, 0.6.3, 0.6.4) and, for 0.6.7,
# as pinned by several independent projects (e.g. coder/envbox's Makefile and an AUR
# PKGBUILD) that took them from the release. 0.6.5 and 0.6.6 are left out: no published
# checksum was found for them. Use sysbox_package_url + sysbox_package_sha256 for those.
SYSBOX_PACKAGE_URL = "https://downloads.nestybox.com/sysbox/releases/v{version}/sysbox-ce_{version}-0.linux_{arch}.deb"
SYSBOX_PACKAGES: dict[str, dict[str, str]] = {
    "0.6.2": {
        "amd64": "fd287f2f3b5a072b62c378f9e1eeeeaa2ccad22bb48cb381d30d8c855c51b401",
        "arm64": "64436c12024098a2e3b0cd1647732cb3a1b1415917458f6f3e0a56dbb4c2e737",
    },
    "0.6.3": {
        "amd64": "cfce811006a27305071b1634ca8fe690392f5dcc205612e7b4e5bde411b7701e",
        "arm64": "4b475e7e7eed79708b2707a67d556a5d3c0bdaef0a1f341311d095d1b4b3e271",
    },
    "0.6.4": {
        "amd64": "d034ddd364ee1f226b8b1ce7456ea8a12abc2eb661bdf42d3e603ed2dc741827",
        "arm64": "0ed41cd828cbeadbeceae41ec8c422b415bb1437443eb1fdf571f4973806a90e",
    },
    "0.6.7": {
        "amd64": "b7ac389e5a19592cadf16e0ca30e40919516128f6e1b7f99e1cb4ff64554172e",
        "arm64": "16d80123ba53058cf90f5a68686e297621ea97942602682e34b3352783908f91",
    },
}


def _package_source(values: dict[str, Any]) -> None:
    if values["sysbox_package_url"] and not values["sysbox_package_sha256"]:
        raise SettingError("sysbox_package_url needs sysbox_package_sha256 (its sha256 checksum)")
    if values["sysbox_package_url"] and values["sysbox_package_file"]:
        raise SettingError("set sysbox_package_url or sysbox_package_file, not both")
    if values["sysbox_package_sha256"] and not (
        values["sysbox_package_url"] or values["sysbox_package_file"]
    ):
        raise SettingError(
            "sysbox_package_sha256 is the checksum of sysbox_package_url or sysbox_package_file; "
            "set one of them (pinned versions carry their own checksum)"
        )
    custom = values["sysbox_package_url"] or values["sysbox_package_file"]
    if not custom and values["sysbox_version"] not in SYSBOX_PACKAGES:
        raise SettingError(
            f"sysbox_version {values['sysbox_version']} has no pinned package checksum; pinned: "
            + ", ".join(SYSBOX_PACKAGES)
            + " (or give sysbox_package_url + sysbox_package_sha256, or sysbox_package_file)"
        )


SYSBOX_SETTINGS = SettingsTable(
    capability="sysbox",
    settings=(
        Setting(
            "sysbox_state",
            "present",
            "present installs Sysbox; absent purges it and its daemon.json entries.",
            one_of("present", "absent"),
        ),
        Setting(
            "sysbox_version",
            "0.6.7",
            "Sysbox CE version, looked up in dindkit's pinned table of package URLs and sha256.",
            matching(r"[0-9]+\.[0-9]+\.[0-9]+", "a version such as 0.6.7"),
        ),
        Setting(
            "sysbox_package_url",
            None,
            "Download the .deb from this URL (a mirror) instead of the pinned official one.",
            optional(url),
        ),
        Setting(
            "sysbox_package_sha256",
            None,
            "sha256 of the package at sysbox_package_url or sysbox_package_file.",
            optional(sha256),
        ),
        Setting(
            "sysbox_package_file",
            None,
            "Path on the control machine of a .deb to upload instead of downloading.",
            optional(control_file("a Debian package", (".deb",))),
        ),
        Setting(
            "sysbox_offline",
            False,
            "Never download from Sysbox's site (air-gapped hosts, the lab): use "
            "sysbox_package_file or sysbox_package_url.",
            boolean,
        ),
        Setting(
            "sysbox_preflight_only",
            False,
            "Run the preflight checks and stop.",
            boolean,
        ),
        Setting(
            "sysbox_stop_containers",
            False,
            "Stop running containers when the install needs it (else the deploy stops and "
            "lists them).",
            boolean,
        ),
        Setting(
            "sysbox_required",
            False,
            "In the bootstrap deploy, a failing preflight is an error (else reported and skipped).",
            boolean,
        ),
    ),
    cross_checks=(_package_source,),
)
