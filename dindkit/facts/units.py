"""Facts about systemd units (``dindkit.operations.units`` decides from them)."""

from __future__ import annotations

import shlex
from typing import TypedDict

from pyinfra.api import FactBase

# As pyinfra's SystemdStatus and SystemdEnabled count a unit running or enabled.
RUNNING_SUBSTATES = ("running", "waiting", "exited", "listening", "mounted")
ENABLED_FILE_STATES = ("enabled", "static")


class UnitStateDict(TypedDict):
    running: bool
    enabled: bool


class UnitStates(FactBase[dict[str, UnitStateDict]]):
    """
    Whether each of these systemd units runs and is enabled, in ONE command for all of them
    (pyinfra's ``systemd.service`` reads SystemdStatus and SystemdEnabled: two round trips per
    unit). A unit systemd does not know is neither.

    .. code:: python

        {"docker.socket": {"running": True, "enabled": True},
         "docker.service": {"running": True, "enabled": False}}
    """

    default = dict

    def command(self, units: list[str]) -> str:
        names = " ".join(shlex.quote(unit) for unit in units)
        return f"systemctl show --property Id,SubState,UnitFileState -- {names}"

    def process(self, output: list[str]) -> dict[str, UnitStateDict]:
        states: dict[str, UnitStateDict] = {}
        block: dict[str, str] = {}
        for line in [*output, ""]:  # systemctl separates the units with a blank line
            key, sep, value = line.strip().partition("=")
            if sep:
                block[key] = value
                continue
            if block.get("Id"):
                states[block["Id"]] = {
                    "running": block.get("SubState") in RUNNING_SUBSTATES,
                    "enabled": block.get("UnitFileState") in ENABLED_FILE_STATES,
                }
            block = {}
        return states
