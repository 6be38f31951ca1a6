"""Shared test set-up. VM tests carry the ``lab`` marker (see pyproject.toml).

Tests stop what they start: every process the session starts inherits DINDKIT_TEST_SESSION,
and a session without lab tests fails when one of them outlives it (daemons such as gpg-agent
included, whoever their parent is by then).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.checkout import CHECKOUT

SESSION_MARK = f"DINDKIT_TEST_SESSION={uuid.uuid4().hex}"
os.environ["DINDKIT_TEST_SESSION"] = SESSION_MARK.partition("=")[2]


def processes_of_this_session() -> dict[int, str]:
    """pid -> command line of the live processes that carry this session's mark, but pytest."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        try:
            if SESSION_MARK.encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if command:  # a zombie has none
            found[pid] = command
    return found


@pytest.fixture(scope="session")
def checkout() -> Path:
    """The checkout the tests run from (tests/checkout.py), not where dindkit was imported."""
    return CHECKOUT


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Torn down last: the unit suite leaves no process behind (lab sessions may keep VMs)."""
    yield
    if any(item.get_closest_marker("lab") for item in request.session.items):
        return
    deadline = time.monotonic() + 10  # a process told to stop may take a moment to exit
    while (left := processes_of_this_session()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes the tests started are still running: {left}"
