"""Where dindkit's shipped files live.

In a checkout, templates/, deploys/ and inventories/ sit beside the package; in an installed
wheel they are copied inside it (see pyproject.toml). Everything that needs them asks here.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


TEMPLATES_DIR = _shipped("templates")
DEPLOYS_DIR = _shipped("deploys")
INVENTORIES_DIR = _shipped("inventories")


def deploy_file(capability: str) -> Path:
    """The entry script for a capability, e.g. ``deploy_file("smoke")``."""
    return DEPLOYS_DIR / f"{capability}.py"


def inventory_file(name: str) -> Path:
    """A shipped inventory, e.g. ``inventory_file("lab")``."""
    return INVENTORIES_DIR / f"{name}.py"
