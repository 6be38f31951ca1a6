"""The smoke report: report.json's exact structure, JUnit parsed back, runs never mixed, the
HTML page's content, malformed reports named with their problem."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from dindkit import report as r


def host(*modes: tuple[str, str]) -> r.HostResult:
    result = r.HostResult()
    for name, status in modes:
        checks = [] if status == "skipped" else [r.Check("first", status, "line 1\nline 2")]
        result.modes[name] = r.ModeResult(status, f"{name} is {status}", 2.5, checks)
    return result


def validate_report_json(data: dict) -> None:
    assert set(data) == {"hosts"}
    for modes in data["hosts"].values():
        assert set(modes) == {"modes"}
        for mode in modes["modes"].values():
            assert set(mode) == {
                "status",
                "reason",
                "seconds",
                "grants",
                "checks",
                "escapes",
                "build_seconds",
                "build_x_host",
            }
            assert isinstance(mode["grants"], str)
            for escape in mode["escapes"].values():
                assert set(escape) == {"outcome", "expected", "evidence"}
                assert escape["outcome"] in r.OUTCOMES
            assert mode["status"] in r.STATUSES
            assert isinstance(mode["reason"], str)
            assert isinstance(mode["seconds"], int | float)
            for check in mode["checks"]:
                assert set(check) == {"name", "status", "detail"}
                assert check["status"] in r.STATUSES


def test_hosts_complete_the_report_together(tmp_path):
    r.write_host(tmp_path, "run1", "lab-a", host(("dood", "passed"), ("sysbox", "skipped")))
    r.write_host(tmp_path, "run1", "lab-b", host(("dood", "failed"), ("dind", "passed")))
    data = json.loads((tmp_path / "report.json").read_text())
    validate_report_json(data)
    assert sorted(data["hosts"]) == ["lab-a", "lab-b"]
    assert data["hosts"]["lab-b"]["modes"]["dood"]["status"] == "failed"
    assert data["hosts"]["lab-a"]["modes"]["dood"]["checks"][0] == {
        "name": "first",
        "status": "passed",
        "detail": "line 1\nline 2",
    }
    report = r.read_report(tmp_path)
    assert report is not None and report.failed


def test_junit_has_one_testcase_per_host_and_mode(tmp_path):
    r.write_host(tmp_path, "run1", "lab-a", host(("dood", "passed"), ("sysbox", "skipped")))
    r.write_host(tmp_path, "run1", "lab-b", host(("dood", "failed"), ("dind", "passed")))
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert sorted((c.get("classname"), c.get("name")) for c in cases) == [
        ("dindkit.smoke.lab-a", "dood"),
        ("dindkit.smoke.lab-a", "sysbox"),
        ("dindkit.smoke.lab-b", "dind"),
        ("dindkit.smoke.lab-b", "dood"),
    ]
    by_key = {(c.get("classname"), c.get("name")): c for c in cases}
    skipped = by_key[("dindkit.smoke.lab-a", "sysbox")].find("skipped")
    assert skipped is not None and skipped.get("message") == "sysbox is skipped"
    failure = by_key[("dindkit.smoke.lab-b", "dood")].find("failure")
    assert failure is not None and failure.get("message") == "dood is failed"
    assert "[failed] first" in (failure.text or "")
    assert by_key[("dindkit.smoke.lab-a", "dood")].find("failure") is None
    suite_b = root.find("./testsuite[@name='lab-b']")
    assert suite_b is not None
    assert (suite_b.get("tests"), suite_b.get("failures"), suite_b.get("skipped")) == (
        "2",
        "1",
        "0",
    )
    assert float(suite_b.get("time") or 0) == 5.0


def test_a_new_run_never_shows_results_of_an_old_one(tmp_path):
    r.write_host(tmp_path, "old", "lab-a", host(("dood", "failed")))
    r.write_host(tmp_path, "old", "lab-b", host(("dood", "failed")))
    r.clear_other_runs(tmp_path, "new")
    assert r.read_report(tmp_path) is None
    r.write_host(tmp_path, "new", "lab-a", host(("dood", "passed")))
    report = r.read_report(tmp_path)
    assert report is not None
    assert list(report.hosts) == ["lab-a"] and not report.failed
    assert r.report_run(tmp_path) == "new"


def test_clear_keeps_the_current_run(tmp_path):
    r.write_host(tmp_path, "run1", "lab-a", host(("dood", "passed")))
    r.clear_other_runs(tmp_path, "run1")
    assert r.read_report(tmp_path) is not None


def test_table_lists_every_mode_and_the_failed_checks():
    report = r.Report({"lab-a": host(("dood", "failed"), ("sysbox", "skipped"))})
    table = r.format_table(report)
    lines = table.splitlines()
    assert lines[0].split() == ["HOST", "MODE", "STATUS", "SECONDS", "REASON"]
    assert lines[1].split()[:4] == ["lab-a", "dood", "FAILED", "2.5"]
    assert "sysbox is skipped" in lines[2]
    assert "0 passed, 1 failed, 1 skipped (1 host(s))" in table
    assert "lab-a dood first:" in table and "    line 2" in table


def test_round_trip_through_dict():
    report = r.Report({"h": host(("dind", "passed"))})
    assert r.Report.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_grants_round_trip_and_default_to_empty():
    report = r.Report({"h": r.HostResult({"dood": r.ModeResult("passed", grants="root")})})
    data = json.loads(json.dumps(report.to_dict()))
    assert data["hosts"]["h"]["modes"]["dood"]["grants"] == "root"
    assert r.Report.from_dict(data) == report
    del data["hosts"]["h"]["modes"]["dood"]["grants"]  # a report of an older dindkit
    assert r.Report.from_dict(data).hosts["h"].modes["dood"].grants == ""


def test_html_is_written_beside_report_json(tmp_path):
    r.write_host(tmp_path, "run1", "lab-a", host(("dood", "passed"), ("sysbox", "skipped")))
    page = (tmp_path / r.REPORT_HTML).read_text()
    assert "lab-a" in page and "sysbox is skipped" in page
    r.clear_other_runs(tmp_path, "run2")
    assert not (tmp_path / r.REPORT_HTML).exists()


def test_html_matrix_has_a_cell_per_host_and_mode_with_its_status():
    report = r.Report(
        {
            "lab-a": host(("dood", "passed"), ("dind", "failed")),
            "lab-b": host(("dood", "skipped")),
        }
    )
    report.hosts["lab-a"].modes["dood"].grants = "root on the host"
    page = r.to_html(report)
    cells = re.findall(r'<td class="status (\w+)">\s*<a href="#([^"]+)">', page)
    assert cells == [("passed", "lab-a-dood"), ("failed", "lab-a-dind"), ("skipped", "lab-b-dood")]
    assert page.count('<td class="none">not run</td>') == 1  # lab-b has no dind
    assert 'id="lab-a-dind"' in page and "grants: root on the host" in page
    assert "<dt>dood</dt>" in page and "<dt>dind</dt>" not in page  # only known grants
    assert '<details open=""' not in page and "<details open>" in page  # the failed check


def test_html_escapes_output_and_loads_nothing_from_elsewhere():
    report = r.Report({"h": host(("dood", "failed"))})
    report.hosts["h"].modes["dood"].checks[0].detail = "<script>alert(1)</script> & co"
    page = r.to_html(report)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    for external in ("<script", "<link", "<img", "src=", "url(", "http:", "https:", "@import"):
        assert external not in page, external


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[]", 'no "hosts" object'),
        ('{"hosts": {"h": {}}}', 'hosts.h has no "modes" object'),
        (
            '{"hosts": {"h": {"modes": {"dood": {"status": "green"}}}}}',
            "hosts.h.modes.dood.status is 'green', not one of passed, failed, skipped",
        ),
        (
            '{"hosts": {"h": {"modes": {"dood": {"status": "passed", "checks": [1]}}}}}',
            "hosts.h.modes.dood.checks is not a list",
        ),
        (
            '{"hosts": {"h": {"modes": {"dood": {"status": "passed", "seconds": "x"}}}}}',
            "unexpected value",
        ),
    ],
)
def test_a_malformed_report_names_the_file_and_the_problem(tmp_path, text, problem):
    (tmp_path / r.REPORT_JSON).write_text(text)
    with pytest.raises(r.ReportError) as raised:
        r.read_report(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / r.REPORT_JSON}: ")
    assert problem in str(raised.value)


def escape_host() -> r.HostResult:
    blocked = r.Escape("blocked", "blocked", "$ cat /root/x\ncat: Permission denied\nexit 1")
    return r.HostResult(
        {
            "dood": r.ModeResult(
                "passed",
                "9 checks passed",
                20.0,
                grants="allowed: host root through the daemon; blocked: kernel modules",
                escapes={
                    "privileged-host-root": r.Escape("allowed", "allowed", "host: read <token>"),
                    "kernel-module": blocked,
                },
            ),
            "podman": r.ModeResult(
                "failed",
                "escape: kernel-module inconclusive",
                30.0,
                escapes={
                    "privileged-host-root": blocked,
                    "kernel-module": r.Escape("inconclusive", "blocked", "no rmmod <here>"),
                },
            ),
            "sysbox": r.ModeResult("skipped", "no sysbox-runc", 1.0),
        }
    )


def test_the_escape_matrix_round_trips_and_prints_with_mismatches_marked():
    report = r.Report({"h": escape_host()})
    again = r.parse_report(json.dumps(report.to_dict()))
    assert again == report
    table = r.format_table(report)
    assert "Escape attempts on h" in table
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("ATTEMPT"))
    assert header.split() == ["ATTEMPT", "dood", "podman"]
    row = next(line for line in lines if line.startswith("kernel-module"))
    assert row.split()[1:3] == ["blocked", "inconclusive!"] and "(declared blocked)" in row
    markdown = r.to_markdown(report, "on 2026-12-06 at abc1234")
    assert markdown.startswith("Measured on 2026-12-06 at abc1234.")
    assert "| attempt | `dood` | `podman` |" in markdown
    assert "| `privileged-host-root` | allowed | blocked |" in markdown
    assert "- `sysbox` skipped: no sysbox-runc" in markdown
    assert "- `dood` grants: allowed: host root through the daemon" in markdown


def test_html_shows_the_escape_matrix_with_the_evidence_one_click_away():
    page = r.to_html(r.Report({"h": escape_host()}))
    assert "<h2>Escape attempts on h</h2>" in page
    assert '<td class="allowed"><a href="#h-dood-privileged-host-root">allowed</a></td>' in page
    assert '<td class="inconclusive mismatch"><a href="#h-podman-kernel-module">' in page
    assert '<details id="h-podman-kernel-module" open>' in page
    assert "no rmmod &lt;here&gt;" in page  # evidence escaped


def test_a_malformed_escape_outcome_is_named():
    data = r.Report({"h": escape_host()}).to_dict()
    data["hosts"]["h"]["modes"]["dood"]["escapes"]["kernel-module"]["outcome"] = "maybe"
    with pytest.raises(ValueError, match=re.escape("h.modes.dood.escapes.kernel-module.outcome")):
        r.parse_report(json.dumps(data))


def test_build_cost_is_relative_to_the_host_daemon_and_shown_everywhere(tmp_path):
    result = r.HostResult(
        {
            "dood": r.ModeResult("passed", build_seconds={"cold": 10.0, "warm": 2.0}),
            "dind": r.ModeResult("passed", build_seconds={"cold": 25.0, "warm": 3.0}),
            "podman": r.ModeResult("passed", build_seconds={"cold": 40.0}),
            "sysbox": r.ModeResult("skipped", "no sysbox-runc"),
        }
    )
    r.set_build_ratios(result)
    assert result.modes["dood"].build_x_host == {"cold": 1.0, "warm": 1.0}
    assert result.modes["dind"].build_x_host == {"cold": 2.5, "warm": 1.5}
    assert result.modes["podman"].build_x_host == {"cold": 4.0}  # its warm build did not pass
    assert result.modes["sysbox"].build_x_host == {}
    assert r.build_rows(result)[2] == ["dind", "25.0", "2.50", "3.0", "1.50"]
    assert r.build_rows(result)[3] == ["podman", "40.0", "4.00", "-", "-"]
    whole = r.Report({"lab-a": result})
    table = r.format_table(whole)
    assert "The CI flow's build on lab-a" in table and "\ndind    25.0    2.50" in table
    html = r.to_html(whole)
    assert "What the CI flow's build costs on lab-a" in html and "<td>2.50</td>" in html
    again = r.parse_report(json.dumps(whole.to_dict()))
    assert again.hosts["lab-a"].modes["dind"].build_x_host == {"cold": 2.5, "warm": 1.5}


def test_without_the_host_daemon_s_build_there_is_no_ratio():
    result = r.HostResult(
        {"dind": r.ModeResult("passed", build_seconds={"cold": 25.0, "warm": 3.0})}
    )
    r.set_build_ratios(result)
    assert result.modes["dind"].build_x_host == {}
    assert r.build_rows(result)[1] == ["dind", "25.0", "-", "3.0", "-"]
