"""Bad Docker settings are refused with a message that names the key, the value and the rule."""

import pytest
from pyinfra.api.exceptions import DeployError

from dindkit.settings.docker import DOCKER_SETTINGS
from tests.unit.test_audit import BAD_AUDIT_SETTINGS

BAD = [
    ({"docker_socket_mode": 666}, "Invalid setting docker_socket_mode=666: a socket mode must be"),
    ({"docker_socket_mode": 0o666}, "docker_socket_mode=438"),
    ({"docker_socket_mode": "0666"}, "grants access to other users"),
    ({"docker_socket_mode": "0662"}, "grants access to other users"),
    ({"docker_socket_mode": "rw"}, "3 or 4 octal digits"),
    ({"docker_socket_mode": "0440"}, "the owner (root) needs read and write"),
    ({"docker_socket_gid": 0}, "GID 0 is root's group"),
    ({"docker_socket_gid": "abc"}, "a whole number from 0 to 65533"),
    ({"docker_source": "snap"}, "docker_source='snap': allowed: 'docker-ce', 'distro'"),
    ({"docker_socket_group": "Docker Users"}, "docker_socket_group='Docker Users'"),
    ({"docker_users": ["ok", "bad name"]}, "docker_users=['ok', 'bad name']"),
    ({"docker_daemon_options": {"hosts": ["tcp://0.0.0.0:2375"]}}, "conflicts with the -H fd://"),
    ({"docker_daemon_options": "live-restore"}, "allowed: a mapping"),
    ({"docker_daemon_wait_seconds": 0}, "from 5 to 600"),
    ({"docker_apt_repo_base": "ftp://x"}, "an http:// or https:// URL"),
    ({"docker_version": "latest"}, "docker_version='latest': allowed: a version such as 27.3.1"),
    ({"docker_apt_key_fingerprint": "9DC8 5822"}, "40 uppercase hexadecimal digits"),
    ({"docker_apt_key_fingerprint": "9dc858229fc7dd38854ae2d88d81803c0ebfcd88"}, "uppercase"),
    ({"docker_daemon_wait_seconds": "soon"}, "docker_daemon_wait_seconds='soon'"),
    ({"docker_socket_gid": 70000}, "from 0 to 65533"),
    ({"docker_users": "root,Bad User"}, "docker_users='root,Bad User'"),
    ({"docker_rootless_users": "dindkit,Bad User"}, "docker_rootless_users='dindkit,Bad User'"),
    ({"docker_rootless_bridge": "172.17.0.5/24"}, "outside 172.17.0.0/16"),
    ({"docker_userns_remap": "1000:1000"}, "docker_userns_remap='1000:1000': allowed: \"default\""),
    ({"docker_userns_remap": True}, "docker_userns_remap=True"),
    ({"docker_daemon_options": {"userns-remap": "default"}}, "through docker_userns_remap"),
]


def test_every_setting_has_a_bad_case() -> None:
    covered = {key for data, _ in BAD + BAD_AUDIT_SETTINGS for key in data}
    assert covered == {setting.name for setting in DOCKER_SETTINGS.settings}


@pytest.mark.parametrize(("data", "message"), BAD, ids=[str(d) for d, _ in BAD])
def test_bad_setting_is_refused(data: dict, message: str) -> None:
    with pytest.raises(DeployError) as error:
        DOCKER_SETTINGS.validate(data)
    assert message in str(error.value)


def test_defaults_validate_and_normalise() -> None:
    values = DOCKER_SETTINGS.validate({"docker_socket_mode": "660", "docker_users": "alice,bob"})
    assert values["docker_socket_mode"] == "0660"
    assert values["docker_users"] == ["alice", "bob"]
    assert values["docker_source"] == "docker-ce"
    assert values["docker_socket_gid"] is None
