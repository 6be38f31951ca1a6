"""Settings of the bootstrap deploy (deploys/bootstrap.py). Owned by the bootstrap capability."""

from __future__ import annotations

from dindkit.settings import Setting, SettingsTable, boolean, list_of, matching

BOOTSTRAP_SETTINGS = SettingsTable(
    capability="bootstrap",
    settings=(
        Setting(
            "bootstrap_base_packages",
            ["ca-certificates", "curl", "gnupg", "jq", "iptables"],
            "Packages every host gets first.",
            list_of(matching(r"[a-z0-9][a-z0-9+.-]+", "Debian package names")),
        ),
        Setting(
            "bootstrap_time_sync",
            True,
            "Enable systemd-timesyncd (TLS and apt need a correct clock).",
            boolean,
        ),
    ),
)
