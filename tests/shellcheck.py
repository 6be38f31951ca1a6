"""shellcheck, judged by code: every shell script dindkit renders goes through ``defects``.

A finding is a defect when shellcheck rates it an error or a warning, or when its code is one
of the info and style codes listed below (quoting, scope and dead-code findings: real bugs in a
script run as root). Other info and style findings are advice: they do not fail a test, so that
a newer shellcheck's new info-level name (0.10's SC2329, "function never invoked", which the
smoke library's on-demand functions raise) is not taken for a broken script.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

DEFECT_LEVELS = frozenset({"error", "warning"})
DEFECT_CODES = frozenset(
    {
        2006,  # `...` instead of $(...)
        2015,  # A && B || C is not if-then-else
        2016,  # an expansion in single quotes that was meant to expand
        2030,  # a variable changed in a subshell ...
        2031,  # ... and read outside it, unchanged
        2059,  # a variable in printf's format
        2086,  # an unquoted expansion: word splitting and globbing
        2162,  # read without -r mangles backslashes
        2295,  # an unquoted expansion inside ${..#..} is a pattern
        2317,  # a command that can never run
    }
)


def findings(script: str | Path, shell: str | None = None) -> list[dict]:
    """shellcheck's findings on a script (its text, or a file), as its json1 format has them."""
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    command = ["shellcheck", "--format=json1", *([f"--shell={shell}"] if shell else [])]
    if isinstance(script, Path):
        result = subprocess.run([*command, str(script)], capture_output=True, text=True)
    else:
        result = subprocess.run([*command, "-"], input=script, capture_output=True, text=True)
    # 0: nothing found, 1: findings; anything else means shellcheck did not check the script.
    assert result.returncode in (0, 1), f"shellcheck failed: {result.stderr}"
    comments: list[dict] = json.loads(result.stdout)["comments"]
    assert comments or result.returncode == 0, result.stdout
    return comments


def is_defect(finding: dict) -> bool:
    return finding["level"] in DEFECT_LEVELS or finding["code"] in DEFECT_CODES


def defects(script: str | Path, shell: str | None = None) -> list[str]:
    """The defects shellcheck finds in a script, one line each with the script's line (empty:
    the script is clean)."""
    lines = [*(script.read_text() if isinstance(script, Path) else script).splitlines(), ""]
    return [
        f"line {f['line']}: SC{f['code']} ({f['level']}): {f['message']}: "
        f"{lines[min(f['line'], len(lines)) - 1].strip()}"
        for f in findings(script, shell)
        if is_defect(f)
    ]
