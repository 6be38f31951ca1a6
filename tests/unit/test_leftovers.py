"""The session's check for processes the tests leave running (tests/conftest.py) sees them."""

from __future__ import annotations

import subprocess

from tests.conftest import processes_of_this_session


def test_a_process_the_tests_start_is_seen_until_it_ends() -> None:
    # start_new_session: a daemon's way of leaving its parent's group; the mark still follows.
    with subprocess.Popen(["sleep", "300"], start_new_session=True) as process:
        try:
            assert processes_of_this_session().get(process.pid) == "sleep 300"
        finally:
            process.kill()
    assert process.pid not in processes_of_this_session()
