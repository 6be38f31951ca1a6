"""The host tools the lab needs, and one clear error when some are missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import click

# tool -> Debian package that provides it
RUN_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
BUILD_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "qemu-img": "qemu-utils",
}


class MissingTools(click.ClickException):
    """Raised with the list of missing tools and the apt command that installs them."""


def missing_tools(
    build: bool = False, which: Callable[..., str | None] = shutil.which
) -> dict[str, str]:
    """Missing tool -> package, for running labs (and building images if ``build``)."""
    wanted = dict(RUN_TOOLS)
    if build:
        wanted.update(BUILD_TOOLS)
    # mkfs.ext4 lives in /sbin, which a non-root PATH may lack.
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    return {
        tool: package for tool, package in sorted(wanted.items()) if not which(tool, path=search)
    }


def missing_tools_message(missing: dict[str, str]) -> str:
    packages = " ".join(sorted(set(missing.values())))
    return (
        f"the lab needs these host tools, which are missing: {', '.join(sorted(missing))}. "
        f"Install them with: sudo apt-get install -y {packages}"
    )


def require_tools(build: bool = False) -> None:
    missing = missing_tools(build=build)
    if missing:
        raise MissingTools(missing_tools_message(missing))
