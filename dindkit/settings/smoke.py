"""Settings of the smoke tests (deploys/smoke.py, dindkit smoke). Owned by the smoke capability."""

from __future__ import annotations

from typing import Any

from dindkit.settings import (
    Setting,
    SettingError,
    SettingsTable,
    allows,
    boolean,
    bridge_address,
    control_file,
    control_folder,
    integer,
    list_of,
    mapping,
    matching,
    one_of_current,
    optional,
    user_name,
)

# The registry of smoke modes, in the order they run: one name a mode, each the module
# dindkit/smoke/modes/<name>.py that exports its spec (dindkit.smoke.modes.registry). Every
# other list of modes (these settings, the CLI's choices, the deploy, the demo) is read from
# here; settings import no capability, so the names live on this side.
SMOKE_MODES = ("dood", "guarded", "dind", "sysbox", "rootless", "userns", "podman")

# Official images at a pinned tag, pulled the normal way on hosts with registry access.
SMOKE_IMAGE_DEFAULTS = {"cli": "docker:27.3.1-cli", "dind": "docker:27.3.1-dind"}


# Docker's reference grammar, simplified: [registry[:port]/]path[:tag][@sha256:digest], with
# lowercase path components (it also keeps shell syntax out of the mode scripts).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = (
    rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
image_reference = matching(
    IMAGE_REFERENCE, "an image reference such as docker:27.3.1-cli or registry:5000/team/img:tag"
)


def images(value: Any) -> dict[str, str]:
    chosen = mapping(value)
    if set(chosen) != set(SMOKE_IMAGE_DEFAULTS):
        raise SettingError("allowed: a mapping with exactly the keys 'cli' and 'dind'")
    return {key: image_reference(ref) for key, ref in chosen.items()}


allows(images, "a mapping with exactly the keys `cli` and `dind`, each an image reference")


# Read when a value is checked: the registry as it stands then.
mode_name = one_of_current(lambda: SMOKE_MODES)


# What the import script on the target reads (docker import: a root filesystem tarball).
IMAGE_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


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
            list_of(mode_name, at_least=1),
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
            optional(control_file("an image archive", IMAGE_ARCHIVE_SUFFIXES)),
        ),
        Setting(
            "smoke_report_dir",
            "reports/latest",
            "Folder on the control machine for report.json and junit.xml.",
            control_folder,
        ),
        Setting(
            "smoke_timeout",
            120,
            "Seconds a mode may wait for an inner daemon before it fails.",
            integer(10, 1800),
        ),
        Setting(
            "smoke_nested_bridge",
            "10.250.0.1/24",
            "The bridge of the daemons the dind, userns and sysbox modes start (dockerd "
            "--bip): off the host's 172.17.0.0/16, so that the host's registry stays reachable "
            "at 172.17.0.1; unset: dockerd's default.",
            optional(bridge_address),
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
            optional(user_name),
        ),
    ),
)
