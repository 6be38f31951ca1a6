"""The docker deploy's plan-time decisions, its templates, its facts' edge cases, and bad
settings refused through the real pyinfra command line before any operation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError, FactProcessError

from dindkit.docker import SUPPORTED, Platform, detect_platform, docker_ce_version
from dindkit.facts.docker import DaemonJson
from dindkit.operations.docker import merge_daemon_options
from dindkit.settings.docker import DAEMON_OPTION_DEFAULTS
from dindkit.templating import render
from tests.pyinfra_dry import assert_refused_before_any_operation, dry_run


def release(distro_id: str, version: str, name: str = "") -> dict:
    return {"name": name or distro_id, "release_meta": {"ID": distro_id, "VERSION_ID": version}}


@pytest.mark.parametrize(("key", "platform"), SUPPORTED.items(), ids=lambda v: str(v))
def test_supported_platforms(key: tuple[str, str], platform: Platform) -> None:
    found = detect_platform(release(*key), "amd64", [])
    assert (found.distro, found.version, found.codename, found.arch) == (
        platform.distro,
        platform.version,
        platform.codename,
        "amd64",
    )


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        (release("debian", "11", "Debian"), "this host runs Debian 11"),
        (release("ubuntu", "20.04", "Ubuntu"), "this host runs Ubuntu 20.04"),
        (release("centos", "9", "CentOS Stream"), "this host runs CentOS Stream 9"),
        ({"name": None, "release_meta": {}}, "an unknown system (no VERSION_ID"),
    ],
)
def test_unsupported_platform_says_what_was_found(facts: dict, message: str) -> None:
    with pytest.raises(DeployError) as error:
        detect_platform(facts, "amd64", [])
    assert message in str(error.value)
    assert "supports Debian 12, Debian 13, Ubuntu 22.04, Ubuntu 24.04" in str(error.value)


def test_snap_docker_is_refused() -> None:
    with pytest.raises(DeployError, match="Docker is installed from snap"):
        detect_platform(release("ubuntu", "24.04"), "amd64", ["core22", "docker"])


def test_distro_docker_keeps_the_cli_and_only_the_recommends_a_docker_host_needs() -> None:
    """Debian: no git or needrestart; Debian 13's CLI is docker-cli, a recommend of docker.io.
    Ubuntu's docker.io (not checked here: its archive is out of reach) keeps all recommends."""
    bookworm = detect_platform(release("debian", "12"), "amd64", [])
    trixie = detect_platform(release("debian", "13"), "amd64", [])
    assert bookworm.distro_recommends == ("apparmor", "xz-utils")
    assert trixie.distro_recommends == ("apparmor", "xz-utils", "docker-cli")
    assert detect_platform(release("ubuntu", "24.04"), "amd64", []).distro_recommends is None


def test_docker_ce_version_pin() -> None:
    bookworm = SUPPORTED[("debian", "12")]
    noble = SUPPORTED[("ubuntu", "24.04")]
    assert docker_ce_version("27.3.1", bookworm) == "5:27.3.1-1~debian.12~bookworm"
    assert docker_ce_version("27.3.1", noble) == "5:27.3.1-1~ubuntu.24.04~noble"
    assert docker_ce_version("5:27.3.1-1~debian.12~bookworm", noble).endswith("~bookworm")


def test_merge_keeps_keys_it_does_not_manage() -> None:
    current = {"bip": "10.20.0.1/16", "runtimes": {"sysbox-runc": {}}, "live-restore": False}
    merged = merge_daemon_options(current, DAEMON_OPTION_DEFAULTS, remove_keys=["absent"])
    assert merged["bip"] == "10.20.0.1/16"
    assert merged["runtimes"] == {"sysbox-runc": {}}
    assert merged["live-restore"] is True
    assert current["live-restore"] is False  # the input is not modified


def test_invalid_daemon_json_fails_the_fact() -> None:
    fact = DaemonJson()
    fact.command("/etc/docker/daemon.json")
    with pytest.raises(FactProcessError, match=r"daemon.json is not valid JSON .*fix or remove"):
        fact.process(['{"debug": true,'])


def test_render_socket_drop_in() -> None:
    text = render(
        "etc/systemd/system/docker.socket.d/10-dindkit.conf.j2",
        socket_mode="0660",
        socket_group="docker",
    )
    assert "[Socket]\nSocketMode=0660\nSocketGroup=docker\n" in text


def test_render_docker_sources() -> None:
    text = render(
        "etc/apt/sources.list.d/docker.sources.j2",
        uri="https://download.docker.com/linux/debian",
        suite="bookworm",
        arch="amd64",
        keyring="/etc/apt/keyrings/docker.asc",
    )
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        "Types: deb",
        "URIs: https://download.docker.com/linux/debian",
        "Suites: bookworm",
        "Components: stable",
        "Architectures: amd64",
        "Signed-By: /etc/apt/keyrings/docker.asc",
    ]


def test_render_daemon_json_is_sorted_json() -> None:
    text = render("etc/docker/daemon.json.j2", options={"b": 1, "a": {"x": "<&>"}})
    assert json.loads(text) == {"a": {"x": "<&>"}, "b": 1}
    assert text.index('"a"') < text.index('"b"') and text.endswith("}\n")


# Through the real command line: a bad value stops the run with one line naming the setting,
# before any operation (none is prepared, so no host is touched beyond connecting to @local).


CLI_BAD = [
    ("docker_socket_mode=0666", "Invalid setting docker_socket_mode=666"),
    ("docker_socket_mode=0o666", "Invalid setting docker_socket_mode='0o666'"),
    ("docker_source=snap", "Invalid setting docker_source='snap'"),
    ("docker_socket_gid=0", "Invalid setting docker_socket_gid=0"),
    ("docker_users=root,Bad User", "Invalid setting docker_users="),
    ("docker_rootless_users=Bad User", "Invalid setting docker_rootless_users='Bad User'"),
    ("docker_userns_remap=1000:1000", "Invalid setting docker_userns_remap='1000:1000'"),
    ("docker_userns_remap=root", "Invalid setting docker_userns_remap='root'"),
    ("docker_rootless_users=root", "Invalid setting docker_rootless_users='root'"),
    ("docker_socket_group=root", "Invalid setting docker_socket_group='root'"),
    ("docker_socket_gid=\uff11\uff12", "Invalid setting docker_socket_gid='\uff11\uff12'"),
    ("docker_apt_repo_base=https://x/$(touch /tmp/pwned)", "Invalid setting docker_apt_repo_base="),
]


@pytest.mark.parametrize(("data", "message"), CLI_BAD, ids=[d for d, _ in CLI_BAD])
def test_cli_refuses_bad_setting_before_any_operation(
    data: str, message: str, tmp_path: Path
) -> None:
    run = dry_run("docker", data, cwd=tmp_path)
    assert_refused_before_any_operation(run, message)
    assert "Ready:" not in run.output, run.output


PLAN_TIME_BAD = [
    ("docker_users=nosuchuser42", "users that do not exist on this host: nosuchuser42"),
    ("docker_userns_remap=nosuchuser42", "docker_userns_remap names a user that does not exist"),
    ("docker_rootless_users=nosuchuser42", "docker_rootless_users: nosuchuser42 does not exist"),
    ("docker_rootless_users=nobody", "docker_rootless_users: nobody has no home directory"),
    ("docker_rootless_users=daemon", "docker_rootless_users: daemon is a system account (UID 1"),
    ("docker_userns_remap=daemon", "docker_userns_remap=daemon has no range in /etc/subuid"),
]


@pytest.mark.parametrize(("data", "message"), PLAN_TIME_BAD, ids=[d for d, _ in PLAN_TIME_BAD])
def test_cli_refuses_unusable_accounts_at_plan_time(
    data: str, message: str, tmp_path: Path
) -> None:
    """Read-only facts of this machine (distribution, groups, users); nothing is run."""
    run = dry_run("docker", data, cwd=tmp_path)
    if "dindkit's docker deploy supports" in run.output:
        pytest.skip("this machine is not a supported platform")
    assert_refused_before_any_operation(run, message)
