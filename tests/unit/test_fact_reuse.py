"""dindkit.facts.reuse: a fact is read once per run until an operation runs a command."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.deb import DebPackages

from dindkit.facts.docker import GroupEntry
from dindkit.facts.reuse import read_once


def _run_on_one_host() -> tuple[State, Any]:
    inventory = Inventory((["target"], {}))
    state = State(inventory, Config())
    return state, inventory.get_host("target")


def _operation(state: State, host: Any, name: str, commands: list[str] | None) -> None:
    """An operation that ended with these commands (None: not run yet)."""
    meta = SimpleNamespace(executed=bool(commands))
    state.ops[host][name] = SimpleNamespace(operation_meta=meta)


def test_a_fact_is_read_again_only_after_an_operation_ran_commands() -> None:
    state, host = _run_on_one_host()
    reads: list[tuple[type, dict[str, Any]]] = []

    def get_fact(fact: type, **arguments: Any) -> Any:
        reads.append((fact, arguments))
        return {"read": len(reads)}

    with ctx_state.use(state), ctx_host.use(host), patch.object(host, "get_fact", get_fact):
        first = read_once(DebPackages)
        assert read_once(DebPackages) is first
        # Other arguments are another read; the same arguments are not.
        docker = read_once(GroupEntry, group="docker")
        assert read_once(GroupEntry, group="docker") is docker
        assert read_once(GroupEntry, group="audit") is not docker
        assert len(reads) == 3

        _operation(state, host, "no-op", commands=[])
        _operation(state, host, "later", commands=None)
        assert read_once(DebPackages) is first  # nothing ran: still the same host

        _operation(state, host, "install", commands=["apt-get install -y docker.io"])
        again = read_once(DebPackages)
        assert again == {"read": 4}
        assert read_once(DebPackages) is again
    assert [fact for fact, _ in reads] == [DebPackages, GroupEntry, GroupEntry, DebPackages]


def test_outside_a_pyinfra_run_every_call_reads() -> None:
    host = SimpleNamespace(state=None, get_fact=lambda fact, **arguments: object())
    with ctx_host.use(host):
        assert read_once(DebPackages) is not read_once(DebPackages)
