"""Facts read once per run while nothing has changed on the host.

pyinfra 3 reads a fact again each time code asks for it: one SSH round trip, about 0.15 s on a
lab VM under emulation. The Docker deploy asks for the installed packages in five places and for
the socket group in two, on every no-op rerun. ``read_once`` returns the value read earlier in
this run for the same fact and arguments, as long as no operation has run a command on this
host since; otherwise it reads the fact again. Call it before the operation yields its first
command (the current operation's own commands are not counted until it ends), and do not modify
what it returns: the next caller gets the same object.
"""

from __future__ import annotations

from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from pyinfra import host
from pyinfra.api import FactBase, State
from pyinfra.context import ctx_host

T = TypeVar("T")

# host -> {(fact, arguments): (operations with commands when read, value)}
_READ: WeakKeyDictionary[Any, dict[tuple[Any, ...], tuple[int, Any]]] = WeakKeyDictionary()


def operations_with_commands(state: State, current_host: Any) -> int:
    """How many operations have run commands on this host so far in this run."""
    operations = state.ops.get(current_host, {}).values()
    return sum(1 for data in operations if data.operation_meta.executed)


def read_once(fact: type[FactBase[T]], **arguments: Any) -> T:
    """``host.get_fact(fact, **arguments)``, reused until an operation changes the host."""
    current_host = ctx_host.get()
    state = getattr(current_host, "state", None)
    if not isinstance(state, State):  # outside a pyinfra run (fixture tests): no reuse
        return host.get_fact(fact, **arguments)
    key = (fact, tuple(sorted(arguments.items())))
    changes = operations_with_commands(state, current_host)
    read = _READ.setdefault(current_host, {})
    if key in read and read[key][0] == changes:
        return read[key][1]
    value = host.get_fact(fact, **arguments)
    read[key] = (changes, value)
    return value
