"""``dindkit report DIR``: the saved table again, --html, and one line for a bad folder."""

from __future__ import annotations

from click.testing import CliRunner

from dindkit import report as r
from dindkit.cli import main


def saved(tmp_path, status: str = "passed"):
    result = r.HostResult({"dood": r.ModeResult(status, f"dood {status}", 1.5)})
    r.write_host(tmp_path, "run1", "lab-a", result)
    (tmp_path / r.REPORT_HTML).unlink()


def invoke(*arguments: str):
    return CliRunner().invoke(main, ["report", *arguments])


def test_prints_the_saved_table_and_exits_0(tmp_path) -> None:
    saved(tmp_path)
    result = invoke(str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "lab-a  dood  PASSED  1.5      dood passed" in result.stdout
    assert "1 passed, 0 failed, 0 skipped (1 host(s))" in result.stdout
    assert f"Report: {tmp_path / 'report.json'}, {tmp_path / 'junit.xml'}\n" in result.stdout
    assert not (tmp_path / r.REPORT_HTML).exists()  # only with --html


def test_html_writes_the_page_and_a_failed_mode_exits_1(tmp_path) -> None:
    saved(tmp_path, "failed")
    result = invoke(str(tmp_path), "--html")
    assert result.exit_code == 1
    assert "FAILED" in result.stdout and str(tmp_path / r.REPORT_HTML) in result.stdout
    assert "dood failed" in (tmp_path / r.REPORT_HTML).read_text()


def test_a_folder_without_a_report(tmp_path) -> None:
    result = invoke(str(tmp_path))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"dindkit report: {tmp_path / 'report.json'}: no such file (no smoke report in this "
        "folder)\n"
    )
    missing = invoke(str(tmp_path / "nope"))
    assert missing.exit_code == 2
    assert missing.stderr == f"dindkit report: {tmp_path / 'nope'}: no such folder\n"


def test_a_malformed_report_json(tmp_path) -> None:
    (tmp_path / "report.json").write_text('{"hosts": {"h": {"modes": {"dood": {}}}}}')
    result = invoke(str(tmp_path))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"dindkit report: {tmp_path / 'report.json'}: hosts.h.modes.dood.status is None, "
        "not one of passed, failed, skipped\n"
    )


def test_markdown_prints_the_escape_matrix_with_when_it_was_measured(tmp_path) -> None:
    escapes = {"mount": r.Escape("blocked", "blocked", "exit 32")}
    result = r.HostResult({"podman": r.ModeResult("passed", "ok", 1.5, escapes=escapes)})
    r.write_host(tmp_path, "run1", "lab-a", result)
    printed = invoke(str(tmp_path), "--markdown", "--measured", "on 2026-12-06 at abc1234")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.startswith("Measured on 2026-12-06 at abc1234.\n")
    assert "| `mount` | blocked |" in printed.stdout and "HOST" not in printed.stdout
    default = invoke(str(tmp_path), "--markdown")
    assert default.stdout.startswith("Measured on 20") and " UTC." in default.stdout
