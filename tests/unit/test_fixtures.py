"""Fixture cases for dindkit's own operations and facts, in pyinfra's test style.

Each JSON file is one case; this module only loads and runs them.

``tests/fixtures/operations/<dotted.operation.path>/<case>.json``::

    {"args": [...], "kwargs": {...},
     "facts": {"<fact>": value, "<fact>": {"<arg=value,arg=value>": value}},
     "commands": [...],                 # what the operation yields, in order
     "noop_description": "...",         # the host.noop(...) message; required when no commands
     "exception": {"name": "OperationError", "message": "..."}}   # optional

``<fact>`` is ``files.File`` for pyinfra's facts (the module under pyinfra.facts) or the full
path (``dindkit.facts.docker.DaemonJson``) for any other. A fact read with arguments is looked up
by its keyword arguments, sorted, as ``name=value`` joined by ``,`` (positional arguments are
named after the fact's ``command()`` parameters). Commands appear as the shell string, as
``["upload", "<text>", "<dest>"]`` for a file upload, ``["function", "<name>"]``, or, for a
script rendered from a template, ``{"template": "<path under templates/>", "context": {...}}``.

``tests/fixtures/facts/<dotted.fact.path>/<case>.json``::

    {"arg": <positional argument | list of them | {"kwargs": {...}}>,
     "command": "<the shell command>", "output": ["<line>", ...], "fact": <processed value>}
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from pyinfra.api import Config, FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.context import ctx_host, ctx_state

from dindkit.templating import render
from tests.checkout import project_file

FIXTURES = project_file("tests", "fixtures")


def _cases(kind: str) -> list[Any]:
    return [
        pytest.param(path.parent.name, path, id=f"{path.parent.name}/{path.stem}")
        for path in sorted((FIXTURES / kind).glob("*/*.json"))
    ]


def _import(dotted: str, default_package: str) -> Any:
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name.startswith("dindkit") and not module_name.startswith("pyinfra"):
        module_name = f"{default_package}.{module_name}"
    return getattr(importlib.import_module(module_name), attribute)


def fact_key(fact_cls: type) -> str:
    module = fact_cls.__module__.removeprefix("pyinfra.facts.")
    return f"{module}.{fact_cls.__name__}"


def args_key(fact_cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    names = [name for name in inspect.signature(fact_cls.command).parameters if name != "self"]
    named = dict(zip(names, args, strict=False)) | kwargs
    return ",".join(f"{name}={value}" for name, value in sorted(named.items()))


def _normalise_key(key: str) -> str:
    return ",".join(sorted(part.strip() for part in key.split(",") if part.strip()))


class FakeState:
    """Just enough of pyinfra's State for an operation generator run outside a deploy."""

    def __init__(self) -> None:
        self.config = Config()
        self.print_noop_info = False

    def get_temp_filename(self, *args: Any, **kwargs: Any) -> str:
        return "_tempfile_"


class FakeHost:
    """A host whose facts come from the case: a missing fact fails the test by name."""

    name = "fixture-host"
    print_prefix = ""
    in_op = True
    in_callback_op = False
    current_op_global_arguments: dict[str, Any] = {}

    def __init__(self, facts: dict[str, Any], data: dict[str, Any], state: FakeState) -> None:
        self.facts = facts
        self.data = data
        self.state = state
        self.noop_description: str | None = None

    def noop(self, description: str) -> None:
        self.noop_description = description

    def get_temp_filename(self, *args: Any, **kwargs: Any) -> str:
        return "_tempfile_"

    def get_fact(self, fact_cls: type, *args: Any, **kwargs: Any) -> Any:
        kwargs = {key: value for key, value in kwargs.items() if not key.startswith("_")}
        key = fact_key(fact_cls)
        if key not in self.facts:
            raise KeyError(f"the case has no fact {key!r} (asked with {args} {kwargs})")
        value = self.facts[key]
        if not args and not kwargs:
            return value
        wanted = _normalise_key(args_key(fact_cls, args, kwargs))
        by_args = {_normalise_key(k): v for k, v in value.items()}
        if wanted not in by_args:
            raise KeyError(f"the case has no fact {key!r} for {wanted!r}")
        return by_args[wanted]


def command_as_json(command: Any) -> Any:
    if isinstance(command, str):
        return command.strip()
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        src = command.src
        if hasattr(src, "read"):
            src.seek(0)
            data = src.read()
            data = data.decode() if isinstance(data, bytes) else data
        else:
            data = str(src)
        return ["upload", data, command.dest]
    if isinstance(command, FunctionCommand):
        return ["function", command.function.__name__]
    raise AssertionError(f"unexpected command type {type(command).__name__}: {command!r}")


def expected_command(command: Any) -> Any:
    if isinstance(command, dict):
        return render(command["template"], **command["context"])
    return command


@pytest.mark.parametrize(("operation", "case_path"), _cases("operations"))
def test_operation(operation: str, case_path: Path) -> None:
    case = json.loads(case_path.read_text())
    op = _import(operation, "pyinfra.operations")
    state = FakeState()
    host = FakeHost(case.get("facts", {}), case.get("data", {}), state)
    exception = case.get("exception")

    # Timestamps (backup names) are fixed, as in pyinfra's own cases.
    module = importlib.import_module(op.__module__)
    stamp = {"new": lambda: "a-timestamp"}
    with (
        ctx_state.use(state),
        ctx_host.use(host),
        patch("pyinfra.operations.files.get_timestamp", **stamp),
        patch.object(module, "get_timestamp", **stamp, create=True),
    ):
        try:
            commands = [
                command_as_json(command)
                for command in op._inner(*case.get("args", []), **case.get("kwargs", {}))
            ]
        except Exception as error:
            if not exception:
                raise
            assert type(error).__name__ == exception["name"]
            assert str(error) == exception["message"]
            return
    assert not exception, f"expected {exception['name']}, got commands {commands}"
    expected = [expected_command(command) for command in case["commands"]]
    assert commands == expected, json.dumps(commands, indent=2)
    # A case that expects no commands states the noop message (null: the op stays silent).
    if "noop_description" in case or not commands:
        assert host.noop_description == case.get("noop_description", "<missing in the case>")


@pytest.mark.parametrize(("fact", "case_path"), _cases("facts"))
def test_fact(fact: str, case_path: Path) -> None:
    case = json.loads(case_path.read_text())
    fact_cls = _import(fact, "pyinfra.facts")
    instance = fact_cls()
    arg = case.get("arg")
    args: list[Any]
    kwargs: dict[str, Any] = {}
    if isinstance(arg, dict) and set(arg) == {"kwargs"}:
        args, kwargs = [], arg["kwargs"]
    elif isinstance(arg, list):
        args = arg
    else:
        args = [] if arg is None else [arg]

    if "command" in case:
        command = instance.command(*args, **kwargs)
        if isinstance(command, StringCommand):
            command = command.get_raw_value()
        assert command == case["command"]
    output = case.get("output", [])
    # As pyinfra does: the default when the command printed nothing, else process the lines.
    processed = instance.process(output) if output else instance.default()
    assert processed == case["fact"]
