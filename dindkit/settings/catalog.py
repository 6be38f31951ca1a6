"""Every capability's settings table, in the order the README lists them."""

from dindkit.settings import SettingsTable
from dindkit.settings.apt import APT_SETTINGS
from dindkit.settings.bootstrap import BOOTSTRAP_SETTINGS
from dindkit.settings.docker import DOCKER_SETTINGS
from dindkit.settings.guard import GUARD_SETTINGS
from dindkit.settings.registry import REGISTRY_SETTINGS
from dindkit.settings.smoke import SMOKE_SETTINGS
from dindkit.settings.sysbox import SYSBOX_SETTINGS

ALL_TABLES: tuple[SettingsTable, ...] = (
    DOCKER_SETTINGS,
    SYSBOX_SETTINGS,
    SMOKE_SETTINGS,
    REGISTRY_SETTINGS,
    BOOTSTRAP_SETTINGS,
    APT_SETTINGS,
    GUARD_SETTINGS,
)
