"""The trixie VM's tests, run in a pytest process of their own beside this session's bookworm
tests (conftest.py: ``WORKER_TESTS``, started by ``demo_run``). Last in line: it waits for that
process and fails with its output. Not collected when the session runs them itself
(``DINDKIT_TEST_SPLIT=0``, or a session without the demo).
"""

from __future__ import annotations

import re

import pytest

from tests.lab.conftest import BACKGROUND, WORKER_DISTRO, WORKER_TESTS, DemoRun

pytestmark = pytest.mark.lab


def test_the_trixie_tests_passed(demo_run: DemoRun) -> None:
    background = BACKGROUND.get(WORKER_DISTRO)
    assert background is not None, f"no {WORKER_DISTRO} worker was started after the demo"
    code, output = background.wait()
    print(output)
    assert code == 0, output[-8000:]
    # Every test this session left to the worker ran there: passed, or skipped with its reason
    # (a check that does not differ between distributions); none failed, none dropped.
    summary = re.findall(r"^=+ (.*) in [\d.]+s", output, re.MULTILINE)
    assert summary, output[-3000:]
    counts = {word: int(number) for number, word in re.findall(r"(\d+) (\w+)", summary[-1])}
    assert not any(counts.get(word) for word in ("failed", "error", "errors")), summary[-1]
    ran = counts.get("passed", 0) + counts.get("skipped", 0)
    assert counts.get("passed") and ran == len(WORKER_TESTS), (summary[-1], WORKER_TESTS)
