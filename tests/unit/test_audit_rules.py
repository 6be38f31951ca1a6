"""The audit rules file as it reaches a host (exclusions before the tree watch, the backlog
settings), the script that finds the directories to exclude, run here on a fake Docker root, and
doctor's audit cost line. Operations and facts: tests/fixtures/*/dindkit.*.audit.*."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dindkit.doctor import audit_cost_value
from dindkit.facts.audit import DOCKER_AUDIT_ITEMS, DOCKER_DATA_DIRS, EXCLUDE, LoadedAuditRules
from dindkit.facts.doctor import AuditCost
from dindkit.operations.audit import backlog_settings, rule_lines
from dindkit.templating import render

KEY = "dindkit-docker"
WATCHES = [
    {"item": "1.1.3", "path": "/usr/sbin/dockerd"},
    {"item": "1.1.5", "path": "/var/lib/docker"},
    {"item": "1.1.6", "path": "/etc/docker"},
]
EXCLUSIONS = ["/var/lib/docker/overlay2", "/var/lib/docker/165536.165536/overlay2"]


def rules_text(exclusions: list[str], wait: int = 0) -> str:
    return render(
        "etc/audit/rules.d/dindkit-docker.rules.j2",
        watches=WATCHES,
        exclusions=exclusions,
        docker_root="/var/lib/docker",
        key=KEY,
        backlog_limit=16384,
        backlog_wait_time=wait,
    )


def test_exclusions_come_right_before_the_tree_watch_in_auditctl_form() -> None:
    lines = rules_text(EXCLUSIONS).splitlines()
    assert rule_lines(lines) == [
        f"-w /usr/sbin/dockerd -p wa -k {KEY}",
        # auditctl -l prints a never rule exactly so: the loaded rules compare line by line
        f"-a never,exit -S all -F dir=/var/lib/docker/overlay2 -F key={KEY}",
        f"-a never,exit -S all -F dir=/var/lib/docker/165536.165536/overlay2 -F key={KEY}",
        f"-w /var/lib/docker -p wa -k {KEY}",
        f"-w /etc/docker -p wa -k {KEY}",
    ]


def test_backlog_settings_are_in_the_file_but_not_among_its_rules() -> None:
    lines = rules_text([], wait=250).splitlines()
    assert "-b 16384" in lines and "--backlog_wait_time 250" in lines
    assert backlog_settings(lines) == {"backlog_limit": 16384, "backlog_wait_time": 250}
    assert not any("never" in line for line in lines)  # nothing to exclude, no comment either
    assert all(line.startswith("-w ") for line in rule_lines(lines))


def test_backlog_settings_take_the_last_of_each() -> None:
    lines = ["-b 8192", "# -b 1", "--backlog_wait_time 60000", "-b 320", "-w /x -p wa"]
    assert backlog_settings(lines) == {"backlog_limit": 320, "backlog_wait_time": 60000}


def fake_docker_root(root: Path) -> None:
    for name in ("overlay2", "image", "containers", "volumes", "tmp"):
        (root / name).mkdir(parents=True)
    (root / "buildkit").write_text("a file, not a directory\n")
    (root / "vfs").symlink_to(root / "image")
    remap = root / "165536.165536"
    for name in ("overlay2", "vfs", "containers"):
        (remap / name).mkdir(parents=True)
    (root / "plugins.1").mkdir()  # not a remap root: digits.digits only


def test_paths_script_excludes_data_directories_that_exist(tmp_path: Path) -> None:
    fake_docker_root(tmp_path)
    script = render(
        "audit/docker-watch-paths.sh.j2",
        items=DOCKER_AUDIT_ITEMS[:0],
        docker_root=str(tmp_path),
        data_dirs=DOCKER_DATA_DIRS,
    )
    output = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert output == [
        f"{EXCLUDE} {tmp_path}/overlay2",
        f"{EXCLUDE} {tmp_path}/volumes",
        f"{EXCLUDE} {tmp_path}/165536.165536/overlay2",
        f"{EXCLUDE} {tmp_path}/165536.165536/vfs",
    ]


@pytest.mark.parametrize(
    "script",
    [
        render("audit/audit-cost.sh.j2", key=KEY),
        LoadedAuditRules().command(),
    ],
    ids=["audit-cost", "loaded-rules"],
)
def test_scripts_are_shellcheck_clean(script: str) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "-"], input=script, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_audit_cost_key_is_quoted() -> None:
    assert "-k 'a key;reboot'" in AuditCost().command("a key;reboot")


def test_audit_cost_line_names_lost_records_and_held_writers() -> None:
    cost = {
        "events_last_hour": 120,
        "window_minutes": 60,
        "events_per_minute": 2.0,
        "lost": 0,
        "backlog": 3,
        "backlog_limit": 16384,
        "backlog_wait_time": 0,
        "backlog_wait_time_actual": 0,
    }
    assert audit_cost_value(cost) == (
        "2.0 events/min (120 in the last 60 min), lost 0, backlog 3/16384, "
        "backlog waits 0 ticks (wait time 0)"
    )
    assert audit_cost_value({**cost, "lost": 7, "backlog_wait_time_actual": 900}).endswith(
        ": records lost, writers held since boot"
    )
    assert audit_cost_value(None) == "auditctl not installed"
