"""Settings of every apt/dpkg step dindkit runs (dindkit.operations.apt).

Every deploy that installs or removes packages (docker, sysbox, bootstrap) validates this table
first, so a bad bound stops the run before any host is touched.
"""

from __future__ import annotations

from dindkit.settings import Setting, SettingsTable, integer

APT_LOCK_TIMEOUT = 300
APT_RETRIES = 3

APT_SETTINGS = SettingsTable(
    capability="apt",
    settings=(
        Setting(
            "apt_lock_timeout",
            APT_LOCK_TIMEOUT,
            "Seconds an apt/dpkg step waits for dpkg's locks (held by cloud-init, "
            "unattended-upgrades, an earlier run) before it fails naming the holder.",
            integer(0, 86400),
        ),
        Setting(
            "apt_retries",
            APT_RETRIES,
            "How often apt retries a failed download (apt-get update and packages; "
            "Acquire::Retries).",
            integer(0, 20),
        ),
    ),
)

# For the image builds on the control machine (mmdebstrap runs apt there): the same retries,
# and the option file mmdebstrap leaves in the image removed again, so the image does not change.
MMDEBSTRAP_RETRY_OPTIONS = (
    f'--aptopt=Acquire::Retries "{APT_RETRIES}"',
    '--customize-hook=rm -f "$1"/etc/apt/apt.conf.d/99mmdebstrap',
)
