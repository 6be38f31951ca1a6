"""Rootless Docker and userns-remap: plan-time decisions, the unit and the script they write
(the script through shellcheck), and the daemon.json keys the remap setting turns into."""

from __future__ import annotations

from pathlib import Path

import pytest

from dindkit.docker import daemon_keys
from dindkit.operations.rootless import free_range_start, user_dockerd_script
from dindkit.rootless import BIN_DIRS, account_problem
from dindkit.settings.docker import DAEMON_OPTION_DEFAULTS, DOCKER_SETTINGS
from dindkit.templating import render
from tests import shellcheck


def account(uid: int = 1000, home: str = "/home/alice", home_exists: bool = True) -> dict:
    return {"name": "alice", "uid": uid, "gid": uid, "home": home, "home_exists": home_exists}


@pytest.mark.parametrize(
    ("found", "problem"),
    [
        (account(), None),
        (None, "alice does not exist"),
        (account(uid=0), "alice is root"),
        (account(home="/nonexistent", home_exists=False), "no home directory (/nonexistent"),
        (account(home="", home_exists=False), "no home directory (none set is missing)"),
    ],
)
def test_account_problem(found: dict | None, problem: str | None) -> None:
    said = account_problem("alice", found)  # type: ignore[arg-type]
    assert said == problem if problem is None else problem in (said or "")


def test_new_ranges_start_after_every_existing_one() -> None:
    assert free_range_start([]) == 100000
    ranges = [
        {"owner": "dockremap", "start": 165536, "count": 65536},
        {"owner": "dindkit", "start": 100000, "count": 65536},
    ]
    assert free_range_start(ranges) == 231072  # type: ignore[arg-type]


@pytest.mark.parametrize("restart", [False, True])
def test_user_dockerd_script_passes_shellcheck(restart: bool, tmp_path: Path) -> None:
    script = user_dockerd_script("alice", 1000, "/home/alice", restart, 60)
    assert ("systemctl --user restart docker.service" in script) is restart
    assert "\nsocket=/run/user/1000/docker.sock\n" in script and '"unix://$socket"' in script
    path = tmp_path / "user-dockerd.sh"
    path.write_text(script)
    assert shellcheck.defects(path) == []


@pytest.mark.parametrize("source", sorted(BIN_DIRS))
@pytest.mark.parametrize(
    ("bridge", "flags"), [(None, ""), ("10.250.0.1/24", " --bip=10.250.0.1/24")]
)
def test_user_unit_runs_the_sources_rootless_script(
    source: str, bridge: str | None, flags: str
) -> None:
    text = render("etc/systemd/user/docker.service.j2", bin_dir=BIN_DIRS[source], bridge=bridge)
    assert f"ExecStart={BIN_DIRS[source]}/dockerd-rootless.sh{flags}\n" in text
    assert text.count("ExecStart=") == 1
    assert f"Environment=PATH={BIN_DIRS[source]}:" in text
    assert "Delegate=yes" in text and "WantedBy=default.target" in text


@pytest.mark.parametrize(
    ("remap", "set_remap", "removed"),
    [(None, None, ("userns-remap",)), ("default", "default", ()), ("alice", "alice", ())],
)
def test_userns_remap_in_daemon_json(remap: str | None, set_remap: str | None, removed) -> None:
    values = DOCKER_SETTINGS.validate({"docker_userns_remap": remap, "docker_daemon_options": {}})
    set_keys, remove_keys = daemon_keys(values)
    assert set_keys.get("userns-remap") == set_remap
    assert remove_keys == removed


def test_userns_remap_keeps_the_other_daemon_options() -> None:
    set_keys, _ = daemon_keys(DOCKER_SETTINGS.validate({"docker_userns_remap": "default"}))
    assert set_keys == {**DAEMON_OPTION_DEFAULTS, "userns-remap": "default"}
