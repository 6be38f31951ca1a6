"""The shellcheck judge (tests/shellcheck.py) catches broken scripts, whatever its version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import shellcheck

CLEAN = 'name=$1\nprintf "%s\\n" "$name"\n'


def test_a_clean_script_has_no_defect(tmp_path: Path) -> None:
    path = tmp_path / "clean.sh"
    path.write_text("#!/bin/sh\n" + CLEAN)
    assert shellcheck.defects(path) == []
    assert shellcheck.defects(CLEAN, shell="sh") == []


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("name=$1\nrm -rf /tmp/$name\n", 2086),  # info, but a defect: unquoted
        ('if [ "$1" ]; then\n  echo yes\n', 1046),  # error: no fi
        ('cd "$1"\nunused=1\n', 2034),  # warning: a variable never used
        ("echo `date`\n", 2006),  # style, but a defect: backticks
    ],
    ids=["unquoted", "syntax", "unused-variable", "backticks"],
)
def test_a_broken_script_is_caught(script: str, code: int) -> None:
    found = shellcheck.defects(script, shell="sh")
    assert any(f": SC{code} (" in line for line in found), found


def test_a_new_info_level_name_is_advice_but_a_warning_is_a_defect() -> None:
    """Judged by level and code, not by the names one shellcheck version knows: 0.10's SC2329
    (a function never invoked) and a future info code are advice; any warning fails."""

    def finding(level: str, code: int) -> dict:
        return {"level": level, "code": code, "line": 1, "message": "m"}

    assert not shellcheck.is_defect(finding("info", 2329))
    assert not shellcheck.is_defect(finding("info", 9999))
    assert not shellcheck.is_defect(finding("style", 9998))
    assert shellcheck.is_defect(finding("warning", 9997))
    assert shellcheck.is_defect(finding("error", 1000))
    assert shellcheck.is_defect(finding("info", 2086))
