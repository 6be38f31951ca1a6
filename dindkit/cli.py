"""The ``dindkit`` command: a click group, thin over the package and pyinfra.

Subcommands live beside their capability and are imported only when used, so that
``dindkit --help`` and ``dindkit lab list`` stay fast (importing pyinfra is not free).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# command name -> "module:attribute" of a click command or group
COMMANDS = {
    "lab": "dindkit.lab.cli:lab",
    "demo": "dindkit.demo:demo",
    "smoke": "dindkit.smoke.cli:smoke",
    "images": "dindkit.images:images",
    "doctor": "dindkit.doctor:doctor",
    "report": "dindkit.smoke.cli:report",
}

HELP = {
    "lab": "Throwaway Debian VMs built from Debian packages, booted with qemu.",
    "demo": "Lab VM up, provision it, smoke-test every mode, print the report.",
    "smoke": "Smoke-test each Docker-in-Docker mode on an inventory's hosts.",
    "images": "Build the registry-free smoke image from Debian packages.",
    "doctor": "Read-only report of each host's Docker, socket and Sysbox readiness.",
    "report": "Print a saved smoke report again (--html: write its HTML page).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        # Short help without importing every subcommand.
        rows = [(name, HELP[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dindkit")
def main() -> None:
    """Provision hosts for Docker-in-Docker (DooD, DinD, Sysbox) and prove they work."""
