"""Every setting of every table against values it must refuse and values it must accept.

A refused value stops validation with a ``DeployError`` of one line that starts with
``Invalid setting <name>=<value>`` and says what is allowed. ``{tmp}`` in a value is a scratch
folder that is also the working directory (files made by ``_scratch_files``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pyinfra.api.exceptions import DeployError

from dindkit.lab.cli import lab
from dindkit.settings import SettingsTable, allowed_text
from dindkit.settings.catalog import ALL_TABLES
from tests.pyinfra_dry import assert_refused_before_any_operation, dry_run

HOSTILE = ["$(touch /tmp/pwned)", "a; rm -rf /", "`id`", "a'b", 'a"b', "a\nb"]
NON_ASCII_NUMBERS = ["\uff11\uff12", "\u0661\u0662", "\u00b2"]  # fullwidth, Arabic-Indic, ²
NOT_BOOLEAN = ["maybe", 2, "\uff11", [], {"yes": True}]
HEX64 = "ab" * 32
# Not a bridge address: a network, no prefix, the host's docker0, too narrow or wide, the
# broadcast address, IPv6.
NOT_A_BRIDGE = ["10.250.0.0/24", "10.250.0.1", "172.17.5.1/24", "10.250.0.1/31"]
NOT_A_BRIDGE += ["10.250.0.1/4", "10.250.0.255/24", "fd00::1/64", 42, *HOSTILE]

BAD: dict[str, list[Any]] = {
    # apt
    "apt_lock_timeout": [-1, 86401, "5s", True, 1.5, *NON_ASCII_NUMBERS],
    "apt_retries": [-1, 21, "three", True, 2.0, *NON_ASCII_NUMBERS],
    # bootstrap
    "bootstrap_base_packages": [
        "Curl",
        ["curl; rm -rf /"],
        ["curl", "curl"],
        "$(touch /tmp/pwned)",
        42,
        [""],
    ],
    "bootstrap_time_sync": NOT_BOOLEAN,
    # docker
    "docker_source": ["snap", "Docker-CE", 1, ["distro"], "distro; id"],
    "docker_version": ["latest", "27.3.1; rm -rf /", "$(id)", "\uff12\uff17.3.1", " 27.3.1", 27],
    "docker_apt_repo_base": [
        "ftp://mirror.example/linux",
        "https://mirror.example/linux/$(touch /tmp/pwned)",
        "https://mirror.example/`id`",
        "https://mirror.example/a b",
        'https://mirror.example/";id;"',
        "file:///etc",
        "https://mirror.example/linux\nEvil: 1",
        "https://",
    ],
    "docker_apt_key_fingerprint": [
        "9dc858229fc7dd38854ae2d88d81803c0ebfcd88",
        "9DC8 5822 9FC7 DD38 854A  E2D8 8D81 803C 0EBF CD88",
        "9DC858229FC7DD38854AE2D88D81803C0EBFCD8",
        "\uff19" * 40,
        "$(id)",
    ],
    "docker_daemon_options": [
        "live-restore",
        {"hosts": ["tcp://0.0.0.0:2375"]},
        {"userns-remap": "default"},
        {"live-restore": "yes"},
        {"icc": 0},
        {"userland-proxy": "false"},
        {"no-new-privileges": 1},
        {"log-opts": {"max-file": 3}},
        {"log-opts": "max-size=10m"},
        {"log-driver": ["journald"]},
        {"storage-driver": 2},
        {"registry-mirrors": "https://mirror.example"},
        {"registry-mirrors": ["https://mirror.example/$(id)"]},
        {"insecure-registries": "10.0.0.1:5000"},
        {"max-concurrent-downloads": "3"},
        {"max-concurrent-downloads": 0},
        {"default-ulimits": {"nofile": {"Name": "nofile", "Hard": "64000", "Soft": 64000}}},
        {"default-ulimits": {"nofile": 64000}},
        {"log-level": "verbose"},
        {"data-root": "relative/docker"},
        {1: True},
    ],
    "docker_audit": NOT_BOOLEAN,
    "docker_audit_rules_file": [
        "/etc/audit/rules.d/audit.rules",
        "/etc/audit/rules.d/dindkit.conf",
        "/etc/audit/dindkit.rules",
        "/etc/audit/rules.d/../dindkit.rules",
        "/etc/audit/rules.d/$(id).rules",
    ],
    "registry_enabled": ["maybe", 2, "", "yes please"],
    "registry_port": [80, 1023, 65536, "5000/tcp", True, *NON_ASCII_NUMBERS],
    "registry_data_dir": ["/", "var/lib/registry", "/var/../etc", "/srv/reg istry", "/srv/$(id)"],
    "registry_addresses": [
        "https://127.0.0.1",
        ["127.0.0.1:5000"],
        ["reg/path"],
        ["127.0.0.1", "127.0.0.1"],
        ["::1"],
    ],
    "registry_username": ["9lives", "Dindkit", "a b", "x;id", ""],
    "registry_wait_seconds": [0, 4, 601, "60s", *NON_ASCII_NUMBERS],
    "registry_mirror_enabled": ["maybe", 2, "", "yes please"],
    "registry_mirror_address": ["http://172.17.0.1", "172.17.0.1:5001", "a/b", "", "x;id"],
    "registry_mirror_port": [22, 1023, 65536, "5001/tcp", *NON_ASCII_NUMBERS],
    "registry_readonly_port": [22, 1023, 65536, "5002/tcp", *NON_ASCII_NUMBERS],
    "registry_mirror_data_dir": ["/", "relative", "/srv/../etc", "/srv/a b"],
    "registry_mirror_upstream": [
        "http://127.0.0.1:5000",
        "https://127.0.0.1:5000/v2",
        "https://user:pw@127.0.0.1",
        "127.0.0.1:5000",
        "https://$(id)",
    ],
    "guard_enabled": ["maybe", 2, "", "yes please"],
    "guard_socket_path": ["/tmp/jobs.sock", "/run/docker.sock", "run/jobs.sock", "/run/a b.sock"],
    "guard_socket_group": ["root", "Docker Jobs", "jobs;id", "", 0],
    "guard_socket_gid": [0, -1, 70000, "1OO", *NON_ASCII_NUMBERS],
    "guard_socket_mode": ["0666", "0606", "0777", "rw", 438],
    "guard_upstream_socket": ["docker.sock", "", "/run/$(id).sock", 5],
    "guard_bind_allowlist": [["/"], "srv/cache", ["/srv/../etc"], ["/var"], ["/etc/ssl"]],
    "guard_allowed_capabilities": [["SYS_ADMIN"], "cap_sys_module", ["FLY"], ["SYS_PTRACE;id"]],
    "guard_relaxed_rules": [["privilegd"], ["duplicate-key"], "nope", [""]],
    "guard_owner": ["Jobs!", "", "a b", "$(id)"],
    "guard_max_body_bytes": [10, 65535, 67108865, "1M", *NON_ASCII_NUMBERS],
    "guard_max_connections": [0, 7, 4097, "many", *NON_ASCII_NUMBERS],
    "guard_memory_max": ["1K", "lots", -1, "256 M"],
    "docker_audit_backlog_limit": [0, 1023, 1048577, "16k", True, -1, *NON_ASCII_NUMBERS],
    "docker_audit_backlog_wait_time": [-1, 60001, "0s", 1.5, True, *NON_ASCII_NUMBERS],
    "docker_daemon_wait_seconds": [0, 4, 601, "60s", True, *NON_ASCII_NUMBERS],
    "docker_socket_group": [
        "root",
        "sudo",
        "users",
        "adm",
        "Docker Users",
        "docker;id",
        0,
        *HOSTILE,
    ],
    "docker_socket_gid": [0, "0", 70000, -5, "abc", True, *NON_ASCII_NUMBERS],
    "docker_socket_mode": [666, 0o666, "0666", "0662", "rw", "0440", "4660"],
    "docker_users": ["Bad User", ["ok", "bad name"], ["alice", "alice"], 5, *HOSTILE],
    "docker_rootless_bridge": NOT_A_BRIDGE,
    "docker_rootless_users": ["root", ["root"], "Bad User", ["alice", "alice"], *HOSTILE],
    "docker_userns_remap": ["root", "1000:1000", True, "Root", "a b", *HOSTILE],
    # smoke
    "smoke_enabled": NOT_BOOLEAN,
    "smoke_modes": [[], "", ["dood", "dood"], ["bogus"], "dood,nope", 3, ["dood; id"]],
    "smoke_images": [
        {"cli": "docker:27.3.1-cli"},
        {"cli": "docker:27; id", "dind": "docker:27.3.1-dind"},
        {"cli": "$(id)", "dind": "docker:27.3.1-dind"},
        {"cli": "Docker:27", "dind": "docker:27.3.1-dind"},
        "docker:27.3.1-cli",
        {"cli": "docker:27.3.1-cli", "dind": "docker:27.3.1-dind", "extra": "x"},
    ],
    "smoke_image_archive": [
        "/etc/shadow",
        "/etc/dindkit.tar.gz",
        "/root/.ssh/id_ed25519.tar.gz",
        "~/.ssh/keys.tar.gz",
        "../../../../etc/x.tar.gz",
        "{tmp}/not-an-archive.tar.gz",
        "{tmp}/shadow-link.tar.gz",
        "{tmp}/folder.tar.gz",
        "{tmp}/image.zip",
        "{tmp}/.hidden/image.tar.gz",
        5,
    ],
    "smoke_report_dir": [
        "/etc",
        "/",
        "../../../..",
        "/usr/local/reports",
        "/var/lib/dindkit",
        ".git/reports",
        "{tmp}/a-file",
        "",
        5,
    ],
    "smoke_timeout": [9, 1801, "2 minutes", True, *NON_ASCII_NUMBERS],
    "smoke_nested_bridge": NOT_A_BRIDGE,
    "smoke_user_uid": [0, 65534, "root", True, *NON_ASCII_NUMBERS],
    "smoke_rootless_user": ["root", "Bad User", 5, *HOSTILE],
    # sysbox
    "sysbox_state": ["installed", "Present", True, "absent; id"],
    "sysbox_version": ["latest", "0.6", "0.6.7; id", "\uff10.6.7", 0.6],
    "sysbox_package_url": [
        "ftp://mirror.example/sysbox.deb",
        "https://mirror.example/$(id).deb",
        "https://mirror.example/a b.deb",
        "file:///tmp/sysbox.deb",
    ],
    "sysbox_package_sha256": ["abc", "z" * 64, "$(id)", "\uff41" * 64, HEX64 + "0"],
    "sysbox_package_file": [
        "/etc/shadow",
        "/etc/sysbox.deb",
        "~/.ssh/sysbox.deb",
        "{tmp}/not-an-archive.tar.gz",
        "{tmp}/fake.deb",
        5,
    ],
    "sysbox_offline": NOT_BOOLEAN,
    "sysbox_preflight_only": NOT_BOOLEAN,
    "sysbox_stop_containers": NOT_BOOLEAN,
    "sysbox_required": NOT_BOOLEAN,
}

# Values that must still pass, with the other settings they need (cross-checks).
GOOD: dict[str, list[Any]] = {
    "apt_lock_timeout": [0, 300, "600", " 42 "],
    "apt_retries": [0, 3, "20"],
    "bootstrap_base_packages": [[], ["curl", "libc6-dev", "g++"], "curl,jq"],
    "bootstrap_time_sync": [True, False, "yes", "off"],
    "docker_source": ["docker-ce", "distro"],
    "docker_version": ["27.3.1", "5:27.3.1-1~debian.12~bookworm", ""],
    "docker_apt_repo_base": [
        "https://download.docker.com/linux",
        "http://10.0.2.2:8080/docker/",
        "https://[::1]:3142/download.docker.com/linux",
        "https://mirror.example/~docker/a+b%20c",
    ],
    "docker_apt_key_fingerprint": ["9DC858229FC7DD38854AE2D88D81803C0EBFCD88"],
    "docker_daemon_options": [
        {},
        {"live-restore": True, "log-opts": {"max-size": "10m", "max-file": "3"}},
        {"registry-mirrors": ["https://mirror.example"], "insecure-registries": ["10.0.0.1:5000"]},
        {"default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}}},
        {"storage-driver": "overlay2", "max-concurrent-downloads": 3, "bip": "10.9.0.1/24"},
        {"some-future-key": {"anything": [1, "two"]}},  # unknown: passed through untouched
    ],
    "docker_audit": [True, "false"],
    "docker_audit_rules_file": ["/etc/audit/rules.d/dindkit-docker.rules"],
    "registry_enabled": [True, "no"],
    "registry_port": [5000, "1024", 65535],
    "registry_data_dir": ["/var/lib/docker-registry", "/srv/registry/"],
    "registry_addresses": [["127.0.0.1"], ["127.0.0.1", "ci.example.org"]],
    "registry_username": ["dindkit", "ci_push"],
    "registry_wait_seconds": [5, "600"],
    "registry_mirror_enabled": [False, "off"],
    "registry_mirror_address": ["172.17.0.1", "mirror.example.org"],
    "registry_mirror_port": [5001, "65535"],
    "registry_readonly_port": [5002, "65534"],
    "registry_mirror_data_dir": ["/var/lib/docker-registry-mirror"],
    "registry_mirror_upstream": ["https://registry-1.docker.io", "https://127.0.0.1:5000/"],
    "guard_enabled": [False, "yes"],
    "guard_socket_path": ["/run/dindkit/jobs.sock"],
    "guard_socket_group": ["docker-jobs", "ci_jobs"],
    "guard_socket_gid": [None, 2376, "65533"],
    "guard_socket_mode": ["0660", "0600"],
    "guard_upstream_socket": ["/run/docker.sock", "/var/run/docker.sock"],
    "guard_bind_allowlist": [[], ["/srv/ci-cache"]],
    "guard_allowed_capabilities": [[], ["NET_BIND_SERVICE"]],
    "guard_relaxed_rules": [[]],
    "guard_owner": ["jobs"],
    "guard_max_body_bytes": [65536, "1048576"],
    "guard_max_connections": [8, "4096"],
    "guard_memory_max": ["256M", "1G"],
    "docker_audit_backlog_limit": [1024, "16384", 1048576],
    "docker_audit_backlog_wait_time": [0, "60000", 250],
    "docker_daemon_wait_seconds": [5, "600"],
    "docker_socket_group": ["docker", "docker-users", "_docker"],
    "docker_socket_gid": [None, 1, "2375", 65533],
    "docker_socket_mode": ["0660", "660", "0600"],
    "docker_users": [[], ["alice", "bob"], "alice,bob"],
    "docker_rootless_bridge": ["10.250.0.1/24", "192.168.99.1/30", None, ""],
    "docker_rootless_users": [[], ["alice"], "alice,bob"],
    "docker_userns_remap": [None, "default", "alice", "dockremap"],
    "smoke_enabled": [True, "no"],
    "smoke_modes": [
        ["dood"],
        "dood,dind",
        ["dood", "dind", "sysbox", "rootless", "userns", "podman"],
    ],
    "smoke_images": [
        {"cli": "docker:27.3.1-cli", "dind": "docker:27.3.1-dind"},
        {"cli": "registry.example:5000/team/cli:1", "dind": "localhost/dind@sha256:" + HEX64},
    ],
    "smoke_image_archive": [
        None,
        "{tmp}/dindkit-smoke-0123456789ab.tar.gz",
        "{tmp}/missing-yet.tar.gz",  # the deploy says how to build it
        "{tmp}/plain.tar",
        "dindkit-smoke-0123456789ab.tar.gz",  # relative to the working directory
    ],
    "smoke_report_dir": ["reports/latest", "{tmp}/reports", "/tmp/dindkit-reports", "out"],
    "smoke_timeout": [10, "1800"],
    "smoke_nested_bridge": ["10.250.0.1/24", "172.18.0.1/16", None],
    "smoke_user_uid": [1, "1000", 65533],
    "smoke_rootless_user": [None, "alice"],
    "sysbox_state": ["present", "absent"],
    "sysbox_version": ["0.6.7", "0.6.4"],
    "sysbox_package_url": [None],
    "sysbox_package_sha256": [None],
    "sysbox_package_file": [None],
    "sysbox_offline": [False, "true"],
    "sysbox_preflight_only": [False, "1"],
    "sysbox_stop_containers": [True, "off"],
    "sysbox_required": [False, "on"],
}
GOOD_TOGETHER: list[dict[str, Any]] = [
    {"sysbox_package_url": "https://mirror.example/sysbox.deb", "sysbox_package_sha256": HEX64},
    {"sysbox_package_file": "{tmp}/sysbox-ce.deb", "sysbox_package_sha256": HEX64},
    {"sysbox_package_file": "{tmp}/sysbox-ce.deb", "sysbox_version": "0.6.5"},
]


def _table(name: str) -> SettingsTable:
    return next(t for t in ALL_TABLES if any(s.name == name for s in t.settings))


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, with the files the tables name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DINDKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "not-an-archive.tar.gz").write_text("root:$6$secret:19000:0:99999:7:::\n")
    (tmp_path / "folder.tar.gz").mkdir()
    (tmp_path / "image.zip").write_bytes(b"PK\x03\x04")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "image.tar.gz").write_bytes(b"\x1f\x8b\x08\x00")
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "fake.deb").write_text("#!/bin/sh\n")
    (tmp_path / "sysbox-ce.deb").write_bytes(b"!<arch>\ndebian-binary   ")
    (tmp_path / "dindkit-smoke-0123456789ab.tar.gz").write_bytes(b"\x1f\x8b\x08\x00")
    (tmp_path / "plain.tar").write_bytes(b"\0" * 257 + b"ustar\x0000" + b"\0" * 242)
    os.symlink("/etc/shadow", tmp_path / "shadow-link.tar.gz")
    return tmp_path


def _fill(value: Any, tmp: Path) -> Any:
    return value.replace("{tmp}", str(tmp)) if isinstance(value, str) else value


BAD_CASES = [(name, value) for name, values in BAD.items() for value in values]
GOOD_CASES = [(name, value) for name, values in GOOD.items() for value in values]


def test_every_setting_has_four_bad_values_and_a_good_one() -> None:
    names = {setting.name for table in ALL_TABLES for setting in table.settings}
    assert set(BAD) == names and set(GOOD) == names
    assert all(len(values) >= 4 for values in BAD.values()), {
        name: len(values) for name, values in BAD.items() if len(values) < 4
    }


def test_every_setting_says_what_is_allowed() -> None:
    """docs/settings.md's "Allowed" column comes from the checks themselves."""
    silent = [s.name for t in ALL_TABLES for s in t.settings if not allowed_text(s.check)]
    assert not silent


@pytest.mark.parametrize(("name", "value"), BAD_CASES, ids=[f"{n}={v!r}" for n, v in BAD_CASES])
def test_bad_value_is_refused_in_one_line(name: str, value: Any, scratch: Path) -> None:
    value = _fill(value, scratch)
    with pytest.raises(DeployError) as refused:
        _table(name).validate({name: value})
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"Invalid setting {name}={value!r}: "), message
    assert "allowed" in message.lower(), message


@pytest.mark.parametrize(("name", "value"), GOOD_CASES, ids=[f"{n}={v!r}" for n, v in GOOD_CASES])
def test_good_value_is_accepted(name: str, value: Any, scratch: Path) -> None:
    _table(name).validate({name: _fill(value, scratch)})


@pytest.mark.parametrize("data", GOOD_TOGETHER, ids=str)
def test_good_values_together_are_accepted(data: dict[str, Any], scratch: Path) -> None:
    data = {name: _fill(value, scratch) for name, value in data.items()}
    _table(next(iter(data))).validate(data)


def test_typed_non_ascii_digits_are_refused_although_pyinfra_made_them_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pyinfra --data smoke_timeout=<fullwidth 120>` arrives as the int 120 (int() reads it)."""
    monkeypatch.setattr(
        "sys.argv", ["pyinfra", "@local", "x.py", "--data", "smoke_timeout=\uff11\uff12\uff10"]
    )
    table = _table("smoke_timeout")
    with pytest.raises(
        DeployError, match="smoke_timeout='\uff11\uff12\uff10': allowed: a number in ASCII"
    ):
        table.validate({"smoke_timeout": 120})
    monkeypatch.setattr("sys.argv", ["pyinfra", "@local", "x.py", "--data=smoke_timeout=120"])
    assert table.validate({"smoke_timeout": 120})["smoke_timeout"] == 120


def test_the_working_directory_does_not_count_where_it_is_a_system_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir("/etc")
    with pytest.raises(DeployError, match="smoke_report_dir='reports'"):
        _table("smoke_report_dir").validate({"smoke_report_dir": "reports"})
    monkeypatch.chdir("/")
    with pytest.raises(DeployError, match="smoke_report_dir='etc'"):
        _table("smoke_report_dir").validate({"smoke_report_dir": "etc"})


@pytest.mark.parametrize(
    "arguments",
    [["--memory", "\uff12\uff10\uff14\uff18"], ["--cpus", "\u0662"], ["--timeout", "\uff16\uff10"]],
    ids=["memory", "cpus", "timeout"],
)
def test_lab_command_line_numbers_are_ascii(arguments: list[str]) -> None:
    """Refused while click parses the options, before anything boots."""
    result = CliRunner().invoke(lab, ["up", "settings-never-booted", *arguments])
    assert result.exit_code == 2, result.output
    assert "is not a number in ASCII digits" in result.output


# Through pyinfra's real command line: one "pyinfra error" line naming the setting, no
# traceback, no operation prepared (so no host touched beyond connecting to @local).
CLI_BAD = [
    ("smoke", "smoke_image_archive=/etc/shadow", "smoke_image_archive='/etc/shadow'"),
    ("smoke", "smoke_report_dir=/etc", "smoke_report_dir='/etc'"),
    ("smoke", "smoke_modes=", "smoke_modes=''"),
    ("docker", 'docker_daemon_options={"live-restore": "yes"}', 'allowed for "live-restore"'),
    ("docker", "docker_socket_group=sudo", "docker_socket_group='sudo'"),
    ("sysbox", "sysbox_package_file=/etc/shadow", "sysbox_package_file='/etc/shadow'"),
    ("bootstrap", "docker_userns_remap=root", "docker_userns_remap='root'"),
    ("bootstrap", "apt_retries=\uff13", "apt_retries='\uff13'"),
]


@pytest.mark.parametrize(("deploy", "data", "message"), CLI_BAD, ids=[d for _, d, _ in CLI_BAD])
def test_pyinfra_refuses_in_one_line_before_any_operation(
    deploy: str, data: str, message: str, tmp_path: Path
) -> None:
    run = dry_run(deploy, data, cwd=tmp_path)
    assert_refused_before_any_operation(run, "Invalid setting", message)
