"""pyinfra operations for systemd units.

- ``running_and_enabled``: start and enable units, deciding from one fact for all of them.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pyinfra import host
from pyinfra.api import operation

from dindkit.facts.units import UnitStateDict, UnitStates

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target", ".mount")


def unit_name(unit: str) -> str:
    """``unit`` with ``.service`` added when it names no unit type, as systemctl reads it."""
    return unit if unit.endswith(UNIT_SUFFIXES) else f"{unit}.service"


@operation()
def running_and_enabled(units: Sequence[str]):
    """
    Start the units that are not running and enable those that are not enabled.

    + units: unit names; a name without a type is a service (``auditd``: auditd.service)

    Same result as one ``systemd.service(running=True, enabled=True)`` per unit, in one fact
    read (``UnitStates``) instead of two per unit: this runs on every no-op rerun. The units
    start in one ``systemctl start``, so systemd orders them (docker.socket before
    docker.service).

    **Example:**

    .. code:: python

        running_and_enabled(name="Start Docker", units=["docker.socket", "docker.service"])
    """
    names = [unit_name(unit) for unit in units]
    states = host.get_fact(UnitStates, units=names)
    unknown: UnitStateDict = {"running": False, "enabled": False}
    stopped = [name for name in names if not states.get(name, unknown)["running"]]
    disabled = [name for name in names if not states.get(name, unknown)["enabled"]]
    if not stopped and not disabled:
        host.noop(f"{', '.join(names)} running and enabled")
        return
    if stopped:
        yield f"systemctl start {' '.join(shlex.quote(name) for name in stopped)}"
    if disabled:
        yield f"systemctl enable {' '.join(shlex.quote(name) for name in disabled)}"
