"""Audit rules on Docker's files: bad settings refused with their rule, the fact's script and the
rules file as they reach a host. Operations and facts: tests/fixtures/*/dindkit.*.audit.*."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError

from dindkit.facts.audit import DOCKER_AUDIT_ITEMS, AuditItem, DockerAuditPaths, rules_with_key
from dindkit.settings.docker import DOCKER_SETTINGS
from dindkit.templating import render
from tests import shellcheck

# Bad values of the audit settings (tests/unit/test_settings_docker.py checks every row has one).
BAD_AUDIT_SETTINGS = [
    ({"docker_audit": "maybe"}, "Invalid setting docker_audit='maybe': allowed: true or false"),
    ({"docker_audit": 1}, "docker_audit=1: allowed: true or false"),
    (
        {"docker_audit_rules_file": "/etc/audit/dindkit.rules"},
        "Invalid setting docker_audit_rules_file='/etc/audit/dindkit.rules': allowed: a file "
        "directly in /etc/audit/rules.d/ whose name ends in .rules (augenrules reads only those)",
    ),
    ({"docker_audit_rules_file": "/tmp/dindkit.rules"}, "directly in /etc/audit/rules.d/"),
    ({"docker_audit_rules_file": "/etc/audit/rules.d/dindkit.conf"}, "ends in .rules"),
    ({"docker_audit_rules_file": "/etc/audit/rules.d/../audit.rules"}, "directly in"),
    ({"docker_audit_rules_file": "/etc/audit/rules.d/sub/x.rules"}, "directly in"),
    ({"docker_audit_rules_file": "/etc/audit/rules.d/.rules"}, "directly in"),
    ({"docker_audit_rules_file": ["/etc/audit/rules.d/x.rules"]}, "directly in"),
    (
        {"docker_audit_rules_file": "/etc/audit/rules.d/audit.rules"},
        "other than the distribution's own /etc/audit/rules.d/audit.rules",
    ),
    (
        {"docker_audit_backlog_limit": 100},
        "Invalid setting docker_audit_backlog_limit=100: allowed: a whole number from 1024 to "
        "1048576",
    ),
    (
        {"docker_audit_backlog_wait_time": -1},
        "Invalid setting docker_audit_backlog_wait_time=-1: allowed: a whole number from 0 to "
        "60000",
    ),
    ({"docker_audit_backlog_wait_time": "soon"}, "docker_audit_backlog_wait_time='soon'"),
]


@pytest.mark.parametrize(
    ("data", "message"), BAD_AUDIT_SETTINGS, ids=[str(d) for d, _ in BAD_AUDIT_SETTINGS]
)
def test_bad_audit_setting_is_refused(data: dict, message: str) -> None:
    with pytest.raises(DeployError) as error:
        DOCKER_SETTINGS.validate(data)
    assert message in str(error.value)


def test_audit_defaults() -> None:
    values = DOCKER_SETTINGS.validate({"docker_audit": "false"})
    assert values["docker_audit"] is False
    assert DOCKER_SETTINGS.validate({})["docker_audit"] is True
    assert (
        DOCKER_SETTINGS.validate({})["docker_audit_rules_file"]
        == "/etc/audit/rules.d/dindkit-docker.rules"
    )


def test_items_cover_cis_1_1_3_to_1_1_18() -> None:
    assert [item.number for item in DOCKER_AUDIT_ITEMS] == [f"1.1.{n}" for n in range(3, 19)]


def test_paths_script_is_shellcheck_clean() -> None:
    assert shellcheck.defects(DockerAuditPaths().command(), shell="sh") == []


def test_paths_script_prints_exactly_the_items_that_exist(tmp_path: Path) -> None:
    """The fact's script run here over items in a scratch folder (so the outcome does not depend
    on what this host has): a present path is printed, a missing one is not, a binary is found
    in a bin directory with its symlink's target; ``process`` keeps what exists, drops blanks."""
    present, missing = tmp_path / "etc-docker", tmp_path / "absent"
    present.mkdir()
    shell = next(Path(d) / "sh" for d in ("/usr/bin", "/bin") if (Path(d) / "sh").exists())
    items = (
        AuditItem("1", "path", str(present)),
        AuditItem("2", "path", str(missing)),
        AuditItem("3", "binary", "sh"),
        AuditItem("4", "binary", "dindkit-no-such-binary"),
    )
    docker_root = tmp_path / "lib-docker"  # layer data here and under a userns-remap root
    (docker_root / "overlay2").mkdir(parents=True)
    (docker_root / "165536.165536" / "overlay2").mkdir(parents=True)
    script = render(
        "audit/docker-watch-paths.sh.j2",
        items=items,
        docker_root=docker_root,
        data_dirs=("overlay2", "buildkit"),
    )
    output = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert f"1 {present}" in output and not [line for line in output if line.startswith("2 ")]
    assert f"3 {shell}" in output
    if shell.is_symlink():
        assert f"3 {shell.resolve()}" in output
    assert not [line for line in output if line.startswith("4 ")]
    excluded = sorted(line for line in output if line.startswith("exclude "))
    assert excluded == [
        f"exclude {docker_root}/165536.165536/overlay2",
        f"exclude {docker_root}/overlay2",
    ]  # buildkit does not exist here: no rule for it
    watches = DockerAuditPaths().process([*output, f"5 {tmp_path}/with blank"])
    assert {"item": "1", "path": str(present)} in watches and len(watches) == len(output)
    assert all(Path(watch["path"]).exists() for watch in watches), watches


def test_paths_script_on_this_host_agrees_with_the_file_system() -> None:
    """The real items, run here: a "path" item is printed if and only if it exists (on a host
    without Docker that is "none of them", which this still checks)."""
    output = subprocess.run(
        ["sh", "-c", DockerAuditPaths().command()], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    printed = {path for _, _, path in (line.partition(" ") for line in output)}
    for item in DOCKER_AUDIT_ITEMS:
        if item.kind == "path":
            assert (item.name in printed) == Path(item.name).exists(), item
    for watch in DockerAuditPaths().process(output):
        assert Path(watch["path"]).exists(), watch


def test_rules_file_has_one_watch_per_path() -> None:
    watches = [
        {"item": "1.1.3", "path": "/usr/sbin/dockerd"},
        {"item": "1.1.6", "path": "/etc/docker"},
    ]
    text = render(
        "etc/audit/rules.d/dindkit-docker.rules.j2",
        watches=watches,
        key="k",
        exclusions=[],
        docker_root="/var/lib/docker",
        backlog_limit=16384,
        backlog_wait_time=0,
    )
    rules = [line for line in text.splitlines() if line.startswith("-w")]
    assert rules == ["-w /usr/sbin/dockerd -p wa -k k", "-w /etc/docker -p wa -k k"]


def test_rules_with_key_matches_the_key_only() -> None:
    rules = [
        "-w /etc/docker -p wa -k dindkit-docker",
        "-w /etc/passwd -p wa -k identity",
        "-w /etc/x -p wa -k dindkit-docker-extra",
        "-a always,exit -F arch=b64 -S mount -F key=dindkit-docker",
    ]
    assert rules_with_key(rules, "dindkit-docker") == [rules[0], rules[3]]
