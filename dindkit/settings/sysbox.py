"""Settings of the Sysbox deploy (deploys/sysbox.py). Owned by the Sysbox capability."""

from __future__ import annotations

from typing import Any

from dindkit.settings import (
    Setting,
    SettingError,
    SettingsTable,
    boolean,
    matching,
    one_of,
    optional,
    sha256,
    url,
)


def _package_source(values: dict[str, Any]) -> None:
    if values["sysbox_package_url"] and not values["sysbox_package_sha256"]:
        raise SettingError("sysbox_package_url needs sysbox_package_sha256 (its sha256 checksum)")
    if values["sysbox_package_url"] and values["sysbox_package_file"]:
        raise SettingError("set sysbox_package_url or sysbox_package_file, not both")


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
            optional(matching(r".+\.deb", "a path to a .deb file")),
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
