"""Settings of the smoke tests (deploys/smoke.py, dindkit smoke). Owned by the smoke capability."""

from __future__ import annotations

from typing import Any

from dindkit.settings import (
    Setting,
    SettingError,
    SettingsTable,
    boolean,
    integer,
    list_of,
    mapping,
    matching,
    one_of,
    optional,
)

SMOKE_MODES = ("dood", "dind", "sysbox", "rootless", "userns", "podman")

# Official images at a pinned tag, pulled the normal way on hosts with registry access.
SMOKE_IMAGE_DEFAULTS = {"cli": "docker:27.3.1-cli", "dind": "docker:27.3.1-dind"}


def images(value: Any) -> dict[str, str]:
    chosen = mapping(value)
    if set(chosen) != set(SMOKE_IMAGE_DEFAULTS):
        raise SettingError("allowed: a mapping with exactly the keys 'cli' and 'dind'")
    return {key: matching(r"\S+", "an image reference")(ref) for key, ref in chosen.items()}


SMOKE_SETTINGS = SettingsTable(
    capability="smoke",
    settings=(
        Setting(
            "smoke_enabled",
            True,
            "Run the smoke tests at the end of the bootstrap deploy.",
            boolean,
        ),
        Setting(
            "smoke_modes",
            list(SMOKE_MODES),
            "Modes to test: " + ", ".join(SMOKE_MODES) + " (docs/modes.md).",
            list_of(one_of(*SMOKE_MODES)),
        ),
        Setting(
            "smoke_images",
            SMOKE_IMAGE_DEFAULTS,
            "Images the smoke tests run: 'cli' (DooD client) and 'dind' (inner daemon).",
            images,
        ),
        Setting(
            "smoke_image_archive",
            None,
            "Image tarball on the control machine (dindkit images build) loaded instead of "
            "pulling; set it where no registry is reachable.",
            optional(matching(r".+", "a path")),
        ),
        Setting(
            "smoke_report_dir",
            "reports/latest",
            "Folder on the control machine for report.json and junit.xml.",
            matching(r".+", "a folder path"),
        ),
        Setting(
            "smoke_timeout",
            120,
            "Seconds a mode may wait for an inner daemon before it fails.",
            integer(10, 1800),
        ),
        Setting(
            "smoke_user_uid",
            1000,
            "Non-root UID the DooD container runs as.",
            integer(1, 65533),
        ),
        Setting(
            "smoke_rootless_user",
            None,
            "User whose rootless Docker socket the rootless mode tests; None: the first of "
            "docker_rootless_users.",
            optional(matching(r"[a-z_][a-z0-9_-]{0,31}", "a user name")),
        ),
    ),
)
