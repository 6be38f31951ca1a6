"""``run_and_report``: runs pyinfra, prints the table of this run only, the exit status."""

from __future__ import annotations

import os
import subprocess

import pytest

from dindkit import report as r
from dindkit.smoke import cli


def fake_pyinfra(monkeypatch, status: str, code: int = 0, write: bool = True) -> list:
    calls = []

    def run(inventory, deploy, data, extra):
        calls.append((inventory, deploy, data, extra))
        if write:
            result = r.HostResult({"dood": r.ModeResult(status, f"dood {status}", 1.0)})
            r.write_host(data["smoke_report_dir"], os.environ[cli.RUN_ID_ENV], "h1", result)
        return subprocess.CompletedProcess([], code)

    monkeypatch.setattr(cli, "run_pyinfra", run)
    return calls


def test_passed_run_prints_the_table_and_exits_0(monkeypatch, tmp_path, capsys):
    calls = fake_pyinfra(monkeypatch, "passed")
    code = cli.run_and_report("inv.py", "deploys/smoke.py", {"smoke_modes": ["dood"]}, tmp_path)
    assert code == 0
    assert calls[0][2] == {"smoke_modes": ["dood"], "smoke_report_dir": str(tmp_path)}
    assert calls[0][3] == []
    assert "h1    dood  PASSED  1.0      dood passed" in capsys.readouterr().out
    assert cli.RUN_ID_ENV not in os.environ


def test_failed_mode_exits_non_zero_even_if_pyinfra_did_not(monkeypatch, tmp_path):
    fake_pyinfra(monkeypatch, "failed")
    assert cli.run_and_report("inv.py", "d.py", {}, tmp_path, limit="h1") == 1


def test_a_stale_report_is_never_shown(monkeypatch, tmp_path, capsys):
    r.write_host(tmp_path, "older", "h1", r.HostResult({"dood": r.ModeResult("passed")}))
    fake_pyinfra(monkeypatch, "passed", code=2, write=False)
    assert cli.run_and_report("inv.py", "d.py", {}, tmp_path) == 2
    assert "No smoke report" in capsys.readouterr().out


def test_modes_option_rejects_unknown_modes():
    with pytest.raises(Exception, match="allowed"):
        cli._modes(None, None, "dood,lxc")  # type: ignore[arg-type]
    assert cli._modes(None, None, "dood, dind") == ["dood", "dind"]  # type: ignore[arg-type]
