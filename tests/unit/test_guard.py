"""The guard deploy: its settings refused before any host is touched, its units as systemd reads
them, its policy file as the real proxy reads it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError

from dindkit import jobs_proxy
from dindkit.guard import POLICY_FILE, PROGRAM, policy, proxy_source, unit_files
from dindkit.settings.guard import GUARD_SETTINGS
from dindkit.templating import render
from tests.pyinfra_dry import assert_refused_before_any_operation, dry_run
from tests.unit.guard_standin import (
    exchange,
    message_of,
    request,
    short_dir,
    start_proxy,
    start_stand_in,
    status_of,
)

BAD = [
    ({"guard_enabled": "maybe"}, "guard_enabled='maybe': allowed: true or false"),
    ({"guard_bind_allowlist": ["/"]}, "guard_bind_allowlist=['/']: / is or holds the host's"),
    ({"guard_bind_allowlist": "srv/cache"}, "'srv/cache' is not an absolute path"),
    ({"guard_bind_allowlist": ["/srv/../etc"]}, "a normalised absolute path"),
    ({"guard_bind_allowlist": ["/var"]}, "/var is or holds the host's /var/lib/docker"),
    ({"guard_bind_allowlist": ["/etc/ssl"]}, "/etc/ssl is inside the host's /etc"),
    ({"guard_bind_allowlist": ["/tmp/ci"]}, "/tmp/ci is inside the host's /tmp"),
    ({"guard_relaxed_rules": ["privilegd"]}, "unknown rule 'privilegd'; allowed: endpoint, "),
    ({"guard_relaxed_rules": ["duplicate-key"]}, "unknown rule 'duplicate-key'"),
    ({"guard_allowed_capabilities": ["SYS_ADMIN"]}, "SYS_ADMIN hands over the host"),
    ({"guard_allowed_capabilities": "cap_sys_module"}, "SYS_MODULE hands over the host"),
    ({"guard_allowed_capabilities": ["FLY"]}, "'FLY' is not a Linux capability"),
    ({"guard_socket_path": "/tmp/jobs.sock"}, "a path under /run/ ending in .sock"),
    ({"guard_socket_path": "/run/docker.sock"}, "/run/docker.sock is a daemon's own socket"),
    ({"guard_socket_group": "Docker Jobs"}, "guard_socket_group='Docker Jobs'"),
    ({"guard_socket_gid": 0}, "GID 0 is root's group"),
    ({"guard_socket_mode": "0666"}, "grants access to other users"),
    ({"guard_upstream_socket": "docker.sock"}, "not an absolute path"),
    ({"guard_owner": "Jobs!"}, "guard_owner='Jobs!'"),
    ({"guard_max_body_bytes": 10}, "from 65536 to 67108864"),
    ({"guard_max_connections": 0}, "from 8 to 4096"),
    ({"guard_memory_max": "1K"}, "a size such as 256M"),
]


def test_every_setting_has_a_bad_case() -> None:
    assert {key for data, _ in BAD for key in data} == {
        setting.name for setting in GUARD_SETTINGS.settings
    }


@pytest.mark.parametrize(("data", "message"), BAD, ids=[str(d) for d, _ in BAD])
def test_bad_setting_is_refused(data: dict, message: str) -> None:
    with pytest.raises(DeployError) as error:
        GUARD_SETTINGS.validate(data)
    text = str(error.value)
    assert text.startswith(f"Invalid setting {next(iter(data))}=") and message in text, text


def test_good_settings_normalise() -> None:
    values = GUARD_SETTINGS.validate(
        {
            "guard_bind_allowlist": "/srv/ci-cache/,/opt/ci",
            "guard_allowed_capabilities": ["cap_net_admin"],
            "guard_relaxed_rules": "privileged",
        }
    )
    assert values["guard_bind_allowlist"] == ["/srv/ci-cache", "/opt/ci"]
    assert values["guard_allowed_capabilities"] == ["NET_ADMIN"]
    assert values["guard_relaxed_rules"] == ["privileged"]
    assert values["guard_enabled"] is False


def test_cli_refuses_bad_policy_before_any_operation(tmp_path: Path) -> None:
    run = dry_run("guard", "guard_bind_allowlist=/", cwd=tmp_path)
    assert_refused_before_any_operation(run, "Invalid setting guard_bind_allowlist='/': / is or")


@pytest.fixture
def units(tmp_path: Path) -> dict[str, str]:
    values = GUARD_SETTINGS.validate({"guard_socket_gid": 2376, "guard_memory_max": "128M"})
    return {os.path.basename(path): text for path, text in unit_files(values, "docker").items()}


def test_units_are_what_the_design_says(units: dict[str, str]) -> None:
    socket_unit, service = units["dindkit-jobs.socket"], units["dindkit-jobs.service"]
    for line in (
        "ListenStream=/run/dindkit/jobs.sock",
        "SocketGroup=docker-jobs",
        "SocketMode=0660",
        "Accept=no",
    ):
        assert line in socket_unit.splitlines()
    for line in (
        f"ExecStart=/usr/bin/python3 -I -S {PROGRAM} --policy {POLICY_FILE}",
        "DynamicUser=yes",
        "SupplementaryGroups=docker",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "MemoryMax=128M",
        "Restart=on-failure",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_UNIX",
    ):
        assert line in service.splitlines()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(units: dict[str, str], tmp_path: Path) -> None:
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / name) for name in units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_the_uploaded_program_is_the_tested_file() -> None:
    assert proxy_source() == Path(jobs_proxy.__file__).read_text()
    assert proxy_source().startswith("#!/usr/bin/python3\n")


def test_rendered_policy_is_what_the_proxy_enforces() -> None:
    values = GUARD_SETTINGS.validate({"guard_bind_allowlist": ["/srv/ci"], "guard_owner": "ci"})
    rendered = json.loads(render("etc/dindkit/jobs-proxy.json.j2", policy=policy(values)))
    assert rendered["bind_allowlist"] == ["/srv/ci"] and rendered["owner"] == "ci"
    folder = short_dir()
    try:
        stand_in, server = start_stand_in(folder)
        running = start_proxy(folder, stand_in, {**rendered, "upstream": stand_in.path})
        try:
            body = {"Image": "x", "HostConfig": {"Binds": ["/srv/other:/x:ro"]}}
            response = exchange(running.socket_path, request("POST", "/containers/create", body))
            assert status_of(response) == 403
            assert "(allowed: /srv/ci)" in message_of(response)
            body = {"Image": "x", "HostConfig": {}}
            exchange(running.socket_path, request("POST", "/containers/create", body))
            [seen] = stand_in.requests()
            assert json.loads(seen.body)["Labels"] == {"dindkit.guard.owner": "ci"}
        finally:
            running.process.terminate()
            running.process.wait(5)
            server.shutdown()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


GUARD_SCRIPTS = {
    "guard/job-checks.sh.j2": {
        "marker": "GUARD",
        "image": "img",
        "foreign": "f",
        "device": "/dev/vda",
    },
    "guard/prove.sh.j2": {
        "image": "img",
        "foreign": "f",
        "archive": "/a.tar.gz",
        "socket_group": "docker-jobs",
        "socket_path": "/run/dindkit/jobs.sock",
        "checks": "/c.sh",
    },
    "guard/build-time.sh.j2": {
        "marker": "GUARD",
        "rounds": 2,
        "image": "img",
        "context_bytes": 1024,
        "sockets": {"docker.sock": "/run/docker.sock", "jobs.sock": "/run/dindkit/jobs.sock"},
    },
}


@pytest.mark.parametrize("template", sorted(GUARD_SCRIPTS))
def test_lab_scripts_are_shellcheck_clean(template: str, tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed here")
    path = tmp_path / "script.sh"
    path.write_text(render(template, **GUARD_SCRIPTS[template]))
    result = subprocess.run(["shellcheck", "-s", "sh", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
