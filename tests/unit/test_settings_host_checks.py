"""What can only be checked on the host, checked from facts at plan time (fake facts here, in
the style of tests/fixtures): rootless users must be login users, the userns-remap user must
exist, not be UID 0 and have subordinate ranges. Each refusal is a DeployError naming the
setting, raised before any operation is prepared."""

from __future__ import annotations

from typing import Any

import pytest
from pyinfra.api.exceptions import DeployError
from pyinfra.context import ctx_host, ctx_state

from dindkit.docker import _check_accounts, _check_remap_user
from dindkit.rootless import check_accounts
from tests.unit.test_fixtures import FakeHost, FakeState

ACCOUNT = "dindkit.facts.rootless.Account"
SUBORDINATE = "dindkit.facts.rootless.SubordinateIds"


def passwd(name: str, uid: int, home: str, shell: str, home_exists: bool = True) -> dict:
    return {
        "name": name,
        "uid": uid,
        "gid": uid,
        "home": home,
        "home_exists": home_exists,
        "shell": shell,
    }


ACCOUNTS: dict[str, Any] = {
    "user=alice": passwd("alice", 1000, "/home/alice", "/bin/bash"),
    "user=daemon": passwd("daemon", 1, "/usr/sbin", "/usr/sbin/nologin"),
    "user=www-data": passwd("www-data", 33, "/var/www", "/usr/sbin/nologin"),
    "user=svc": passwd("svc", 1500, "/usr/lib/svc", "/bin/sh"),
    "user=locked": passwd("locked", 1501, "/home/locked", "/usr/sbin/nologin"),
    "user=falsy": passwd("falsy", 1502, "/home/falsy", "/bin/false"),
    "user=nobody": passwd("nobody", 65534, "/nonexistent", "/usr/sbin/nologin", False),
    "user=toor": passwd("toor", 0, "/root", "/bin/bash"),
    "user=varhome": passwd("varhome", 1503, "/var/lib/varhome", "/bin/bash"),
    "user=ghost": None,
    "user=bob": passwd("bob", 1001, "/home/bob", "/bin/bash"),
    "user=carol": passwd("carol", 1002, "/home/carol", "/bin/bash"),
}
RANGES = {
    "/etc/subuid": [
        {"owner": "alice", "start": 100000, "count": 65536},
        {"owner": "1001", "start": 165536, "count": 65536},  # bob, by UID
        {"owner": "carol", "start": 231072, "count": 65536},
    ],
    "/etc/subgid": [
        {"owner": "alice", "start": 100000, "count": 65536},
        {"owner": "bob", "start": 165536, "count": 65536},
    ],
}


GROUPS = {
    "group=docker": {"name": "docker", "gid": 998, "members": []},
    "group=toor": {"name": "toor", "gid": 0, "members": []},
    "group=fresh": None,
}


def run_on_fake_host(check: Any, *args: Any) -> None:
    state = FakeState()
    facts = {ACCOUNT: ACCOUNTS, SUBORDINATE: RANGES, "dindkit.facts.docker.GroupEntry": GROUPS}
    host = FakeHost(facts, {}, state)
    with ctx_state.use(state), ctx_host.use(host):
        check(*args)


ROOTLESS_REFUSED = [
    ("daemon", "daemon is a system account (UID 1; allowed: a login user, UID 1000 to 65533)"),
    ("www-data", "www-data is a system account (UID 33"),
    ("svc", "svc is a system account (home /usr/lib/svc is a system folder)"),
    ("varhome", "varhome is a system account (home /var/lib/varhome is a system folder)"),
    ("locked", "locked is a system account (no login shell: /usr/sbin/nologin)"),
    ("falsy", "falsy is a system account (no login shell: /bin/false)"),
    ("nobody", "nobody has no home directory (/nonexistent is missing)"),
    ("toor", "toor is root (root's Docker is the system one)"),
    ("ghost", "ghost does not exist"),
]


@pytest.mark.parametrize(
    ("user", "problem"), ROOTLESS_REFUSED, ids=[u for u, _ in ROOTLESS_REFUSED]
)
def test_rootless_user_that_is_no_login_user_is_refused(user: str, problem: str) -> None:
    with pytest.raises(DeployError) as refused:
        run_on_fake_host(check_accounts, ["alice", user])
    message = str(refused.value)
    assert message.startswith(f"docker_rootless_users: {problem}"), message
    assert "\n" not in message


def test_smoke_rootless_user_can_be_checked_under_its_own_name() -> None:
    with pytest.raises(DeployError, match=r"^smoke_rootless_user: daemon is a system account"):
        run_on_fake_host(check_accounts, ["daemon"], "smoke_rootless_user")


def test_login_users_pass_as_rootless_users() -> None:
    run_on_fake_host(check_accounts, ["alice", "bob"])


REMAP_REFUSED = [
    ("ghost", "docker_userns_remap names a user that does not exist on this host: ghost"),
    ("toor", "docker_userns_remap=toor has UID 0, so containers' root would be root"),
    ("daemon", "docker_userns_remap=daemon has no range in /etc/subuid and /etc/subgid"),
    ("carol", "docker_userns_remap=carol has no range in /etc/subgid on this host"),
]


@pytest.mark.parametrize(("user", "problem"), REMAP_REFUSED, ids=[u for u, _ in REMAP_REFUSED])
def test_remap_user_dockerd_cannot_use_is_refused(user: str, problem: str) -> None:
    with pytest.raises(DeployError) as refused:
        run_on_fake_host(_check_remap_user, user, [])
    assert str(refused.value).startswith(problem), str(refused.value)


@pytest.mark.parametrize("remap", [None, "default", "alice", "bob"])
def test_remap_users_with_ranges_pass(remap: str | None) -> None:
    run_on_fake_host(_check_remap_user, remap, [])


def test_remap_user_without_ranges_passes_when_this_run_gives_it_ranges() -> None:
    """A user in docker_rootless_users gets its ranges from the same deploy."""
    run_on_fake_host(_check_remap_user, "carol", ["carol"])
    with pytest.raises(DeployError, match="does not exist"):
        run_on_fake_host(_check_remap_user, "ghost", ["ghost"])


def test_socket_group_that_is_roots_group_under_another_name_is_refused() -> None:
    with pytest.raises(DeployError, match="docker_socket_group=toor has GID 0 on this host"):
        run_on_fake_host(_check_accounts, "toor", None, [])
    run_on_fake_host(_check_accounts, "docker", None, [])
    run_on_fake_host(_check_accounts, "fresh", 2375, [])
