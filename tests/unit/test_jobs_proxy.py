"""The job socket's proxy (dindkit/jobs_proxy.py), run for real in front of a stand-in dockerd.

Every refusal asserts the 403, the rule named in the message, and what reached the stand-in
(nothing but the proxy's own ownership questions); every allowed request asserts what the
stand-in received.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.guard_standin import (
    CONTAINERS,
    PROXY_PROGRAM,
    SAVED_IMAGE,
    Running,
    exchange,
    message_of,
    request,
    short_dir,
    start_proxy,
    start_stand_in,
    status_of,
)

ALLOWLIST = "/tmp/guard-allowed"


@pytest.fixture(scope="module")
def folder() -> Iterator[str]:
    path = short_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _proxy(folder: str, name: str, policy: dict[str, Any]) -> Iterator[Running]:
    os.makedirs(os.path.join(folder, name))
    stand_in, server = start_stand_in(os.path.join(folder, name))
    running = start_proxy(os.path.join(folder, name), stand_in, policy)
    yield running
    running.process.terminate()
    running.process.wait(5)
    server.shutdown()


@pytest.fixture(scope="module")
def module_proxy(folder: str) -> Iterator[Running]:
    os.makedirs(os.path.join(ALLOWLIST, "cache"), exist_ok=True)
    link = os.path.join(ALLOWLIST, "escape")
    if not os.path.islink(link):
        os.symlink("/", link)
    yield from _proxy(
        folder,
        "default",
        {
            "owner": "jobs",
            "bind_allowlist": [ALLOWLIST],
            "allowed_capabilities": ["NET_ADMIN"],
            "max_body_bytes": 65536,
        },
    )


@pytest.fixture
def proxy(module_proxy: Running) -> Running:
    module_proxy.stand_in.seen.clear()
    module_proxy.stand_in.release_logs.clear()
    return module_proxy


def create(host_config: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    return {"Image": "smoke", "Cmd": ["true"], **config, "HostConfig": host_config or {}}


def assert_refused(proxy: Running, data: bytes, rule: str) -> str:
    response = exchange(proxy.socket_path, data)
    assert status_of(response) == 403, response[:300]
    message = message_of(response)
    assert f"(rule {rule})" in message
    assert proxy.stand_in.requests() == [], "a refused request reached dockerd"
    return message


# --- What a job may not do ---------------------------------------------------------------------

REFUSED_CREATES = [
    ("privileged", {"Privileged": True}, "privileged"),
    ("cap-add", {"CapAdd": ["SYS_ADMIN"]}, "cap-add"),
    ("cap-add-prefixed", {"CapAdd": ["cap_sys_module"]}, "cap-add"),
    ("cap-add-all", {"CapAdd": ["ALL"]}, "cap-add"),
    (
        "devices",
        {"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]},
        "devices",
    ),
    ("device-requests", {"DeviceRequests": [{"Count": -1}]}, "devices"),
    ("device-cgroup-rules", {"DeviceCgroupRules": ["b 8:* rmw"]}, "devices"),
    ("pid-host", {"PidMode": "host"}, "host-namespace"),
    ("ipc-host", {"IpcMode": "host"}, "host-namespace"),
    ("uts-host", {"UTSMode": "host"}, "host-namespace"),
    ("net-host", {"NetworkMode": "host"}, "host-namespace"),
    ("cgroupns-host", {"CgroupnsMode": "host"}, "host-namespace"),
    ("userns-host", {"UsernsMode": "host"}, "host-namespace"),
    ("pid-join-theirs", {"PidMode": "container:theirs"}, "not-owned"),
    ("net-join-theirs", {"NetworkMode": "container:theirs"}, "not-owned"),
    ("seccomp", {"SecurityOpt": ["seccomp=unconfined"]}, "security-opt"),
    ("seccomp-colon", {"SecurityOpt": ["seccomp:unconfined"]}, "security-opt"),
    (
        "seccomp-profile",
        {"SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']},
        "security-opt",
    ),
    ("apparmor", {"SecurityOpt": ["apparmor=unconfined"]}, "security-opt"),
    ("no-new-privileges-off", {"SecurityOpt": ["no-new-privileges=false"]}, "security-opt"),
    ("selinux-off", {"SecurityOpt": ["label=disable"]}, "security-opt"),
    ("sysctls", {"Sysctls": {"kernel.shm_rmid_forced": "1"}}, "sysctls"),
    ("systempaths", {"MaskedPaths": [], "ReadonlyPaths": []}, "systempaths"),
    ("bind-root", {"Binds": ["/:/host"]}, "bind-mount"),
    ("bind-etc-ro", {"Binds": ["/etc:/etc-host:ro"]}, "bind-mount"),
    ("bind-socket", {"Binds": ["/run/docker.sock:/run/docker.sock"]}, "bind-mount"),
    ("bind-allowed-rw", {"Binds": [f"{ALLOWLIST}/cache:/cache"]}, "bind-mount"),
    ("bind-dotdot", {"Binds": [f"{ALLOWLIST}/../etc:/x:ro"]}, "bind-mount"),
    ("bind-symlink-out", {"Binds": [f"{ALLOWLIST}/escape:/x:ro"]}, "bind-mount"),
    ("bind-prefix-twin", {"Binds": [f"{ALLOWLIST}-twin:/x:ro"]}, "bind-mount"),
    ("mount-root", {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}, "bind-mount"),
    (
        "mount-volume-bind-opts",
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "v",
                    "Target": "/v",
                    "VolumeOptions": {
                        "DriverConfig": {"Options": {"type": "none", "o": "bind", "device": "/"}}
                    },
                }
            ]
        },
        "volume-options",
    ),
    ("mount-npipe", {"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/x"}]}, "mount-type"),
    ("volumes-from-theirs", {"VolumesFrom": ["theirs:ro"]}, "not-owned"),
    ("cgroup-parent", {"CgroupParent": "/"}, "cgroup"),
    ("runtime", {"Runtime": "sysbox-runc-weak"}, "runtime"),
    ("annotations", {"Annotations": {"x": "y"}}, "annotations"),
    ("oom-score", {"OomScoreAdj": -1000}, "oom"),
]


@pytest.mark.parametrize(
    ("host_config", "rule"),
    [(host, rule) for _, host, rule in REFUSED_CREATES],
    ids=[name for name, _, _ in REFUSED_CREATES],
)
def test_container_create_escapes_are_refused(
    proxy: Running, host_config: dict[str, Any], rule: str
) -> None:
    assert_refused(proxy, request("POST", "/v1.41/containers/create", create(host_config)), rule)


def test_refusal_is_logged_with_the_caller_and_the_rule(proxy: Running) -> None:
    assert_refused(
        proxy, request("POST", "/containers/create", create({"Privileged": True})), "privileged"
    )
    time.sleep(0.1)
    line = [each for each in proxy.log().splitlines() if "rule=privileged" in each][-1]
    assert f"pid={os.getpid()} uid={os.getuid()} gid={os.getgid()}" in line
    assert "POST /containers/create" in line


REFUSED_REQUESTS = [
    ("exec-theirs", "POST", "/containers/theirs/exec", {"Cmd": ["sh"]}, "not-owned"),
    ("archive-theirs", "GET", "/containers/theirs/archive?path=/etc", None, "not-owned"),
    ("export-theirs", "GET", "/containers/theirs/export", None, "not-owned"),
    ("commit-theirs", "POST", "/commit?container=theirs&repo=x", {}, "not-owned"),
    ("update-theirs", "POST", "/containers/theirs/update", {"Memory": 0}, "not-owned"),
    ("attach-theirs", "POST", "/containers/theirs/attach?stream=1", None, "not-owned"),
    ("logs-theirs", "GET", "/containers/theirs/logs?stdout=1", None, "not-owned"),
    ("remove-theirs", "DELETE", "/containers/theirs?force=1", None, "not-owned"),
    ("exec-start-theirs", "POST", "/exec/e-theirs/start", {"Detach": False}, "not-owned"),
    (
        "exec-privileged",
        "POST",
        "/containers/mine/exec",
        {"Cmd": ["sh"], "Privileged": True},
        "privileged",
    ),
    (
        "update-devices",
        "POST",
        "/containers/mine/update",
        {"Devices": [{"PathOnHost": "/dev/sda"}]},
        "devices",
    ),
    (
        "volume-bind",
        "POST",
        "/volumes/create",
        {"Name": "v", "DriverOpts": {"type": "none", "o": "bind", "device": "/"}},
        "volume-options",
    ),
    (
        "volume-driver",
        "POST",
        "/volumes/create",
        {"Name": "v", "Driver": "sshfs"},
        "volume-options",
    ),
    (
        "network-macvlan",
        "POST",
        "/networks/create",
        {"Name": "n", "Driver": "macvlan"},
        "network-options",
    ),
    ("build-host-net", "POST", "/build?networkmode=host&t=x", None, "build-network"),
    ("build-buildkit", "POST", "/build?version=2&session=abc", None, "buildkit"),
    ("build-unknown-option", "POST", "/build?allow=security.insecure", None, "build-option"),
    ("build-cgroup-parent", "POST", "/build?cgroupparent=/", None, "cgroup"),
    ("build-remote", "POST", "/build?remote=http://127.0.0.1:9/x.tar", None, "remote-source"),
    (
        "import-url",
        "POST",
        "/images/create?fromSrc=http://127.0.0.1:9/x.tar",
        None,
        "remote-source",
    ),
    ("plugins", "POST", "/plugins/pull?remote=x", None, "plugins"),
    ("swarm", "POST", "/swarm/init", {}, "swarm"),
    ("services", "GET", "/services", None, "swarm"),
    ("secrets", "GET", "/secrets", None, "secrets"),
    ("configs", "POST", "/configs/create", {}, "configs"),
    ("container-prune", "POST", "/containers/prune", None, "prune"),
    ("image-prune", "POST", "/images/prune", None, "prune"),
    ("volume-prune", "POST", "/volumes/prune", None, "prune"),
    ("build-prune", "POST", "/build/prune", None, "prune"),
    ("session", "POST", "/session", None, "buildkit"),
    ("events", "GET", "/events", None, "endpoint"),
    (
        "start-with-host-config",
        "POST",
        "/containers/mine/start",
        {"Privileged": True},
        "unexpected-body",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "payload", "rule"),
    [each[1:] for each in REFUSED_REQUESTS],
    ids=[each[0] for each in REFUSED_REQUESTS],
)
def test_requests_outside_the_policy_are_refused(
    proxy: Running, method: str, path: str, payload: Any, rule: str
) -> None:
    assert_refused(proxy, request(method, path, payload), rule)


# --- What a job may do -----------------------------------------------------------------------


def test_create_reaches_dockerd_with_the_owner_label_it_cannot_forge(proxy: Running) -> None:
    body = create({"CapAdd": ["NET_ADMIN"], "Binds": [f"{ALLOWLIST}/cache:/cache:ro"]})
    body["Labels"] = {"dindkit.guard.owner": "someone-else", "keep": "me"}
    response = exchange(proxy.socket_path, request("POST", "/v1.41/containers/create?name=j", body))
    assert status_of(response) == 201, response
    [seen] = proxy.stand_in.requests()
    assert seen.target == "/v1.41/containers/create?name=j"
    sent = json.loads(seen.body)
    assert sent["Labels"] == {"dindkit.guard.owner": "jobs", "keep": "me"}
    assert sent["HostConfig"]["CapAdd"] == ["NET_ADMIN"]


def test_joining_an_owned_container_uses_its_full_id(proxy: Running) -> None:
    body = create({"NetworkMode": "container:mine", "VolumesFrom": ["mine:ro"]})
    assert (
        status_of(exchange(proxy.socket_path, request("POST", "/containers/create", body))) == 201
    )
    [seen] = proxy.stand_in.requests()
    host = json.loads(seen.body)["HostConfig"]
    assert host["VolumesFrom"] == [CONTAINERS["mine"][0] + ":ro"]


def test_named_volume_is_created_with_the_owner_label(proxy: Running) -> None:
    body = create({"Binds": ["cache:/cache"]})
    assert (
        status_of(exchange(proxy.socket_path, request("POST", "/containers/create", body))) == 201
    )
    volume, container = proxy.stand_in.requests()
    assert volume.target == "/volumes/create"
    assert json.loads(volume.body)["Labels"] == {"dindkit.guard.owner": "jobs"}
    assert container.target == "/containers/create"


@pytest.mark.parametrize(
    ("method", "path", "forwarded"),
    [
        ("GET", "/_ping", "/_ping"),
        ("HEAD", "/_ping", "/_ping"),
        ("GET", "/v1.41/version", "/v1.41/version"),
        ("GET", "/info", "/info"),
        (
            "POST",
            "/images/create?fromImage=smoke&tag=latest",
            "/images/create?fromImage=smoke&tag=latest",
        ),
        (
            "POST",
            "/images/registry:5000/smoke/push?tag=1",
            "/images/registry:5000/smoke/push?tag=1",
        ),
        ("POST", "/images/smoke/tag?repo=x&tag=2", "/images/smoke/tag?repo=x&tag=2"),
        ("DELETE", "/images/smoke:1", "/images/smoke:1"),
        ("GET", "/images/json", "/images/json"),
        ("POST", "/containers/mine/start", f"/containers/{'a' * 64}/start"),
        (
            "POST",
            "/containers/mine/wait?condition=next-exit",
            f"/containers/{'a' * 64}/wait?condition=next-exit",
        ),
        ("POST", "/containers/mine/stop", f"/containers/{'a' * 64}/stop"),
        ("DELETE", "/containers/mine?force=1", f"/containers/{'a' * 64}?force=1"),
        ("GET", "/containers/mine/archive?path=/x", f"/containers/{'a' * 64}/archive?path=%2Fx"),
    ],
)
def test_ci_requests_pass(proxy: Running, method: str, path: str, forwarded: str) -> None:
    response = exchange(proxy.socket_path, request(method, path))
    assert status_of(response) in (200, 204), response
    [seen] = proxy.stand_in.requests()
    assert (seen.method, seen.target) == (method, forwarded)


def test_exec_create_as_the_docker_cli_sends_it(proxy: Running) -> None:
    body = {
        "User": "",
        "Privileged": False,
        "Tty": False,
        "AttachStdin": False,
        "AttachStderr": True,
        "AttachStdout": True,
        "Detach": False,
        "DetachKeys": "",
        "Env": None,
        "WorkingDir": "",
        "Cmd": ["true"],
    }
    response = exchange(proxy.socket_path, request("POST", "/v1.41/containers/mine/exec", body))
    assert status_of(response) == 200, response
    [seen] = proxy.stand_in.requests()
    assert json.loads(seen.body) == body


def test_container_list_shows_only_owned_containers(proxy: Running) -> None:
    filters = json.dumps({"status": ["running"], "label": ["ci=1"]})
    path = "/containers/json?" + urllib.parse.urlencode({"all": 1, "filters": filters})
    assert status_of(exchange(proxy.socket_path, request("GET", path))) == 200
    [seen] = proxy.stand_in.requests()
    query = dict(urllib.parse.parse_qsl(seen.target.split("?")[1]))
    sent = json.loads(query["filters"])
    assert sent["label"] == {"ci=1": True, "dindkit.guard.owner=jobs": True}
    assert sent["status"] == ["running"]


def test_missing_container_gets_404_like_dockerd(proxy: Running) -> None:
    response = exchange(proxy.socket_path, request("POST", "/containers/nothere/start"))
    assert status_of(response) == 404
    assert "No such container" in message_of(response)


# --- The parser cannot be fooled -----------------------------------------------------------

PRIVILEGED = json.dumps(create({"Privileged": True})).encode()


def raw_create(target: str, extra: str = "", body: bytes = PRIVILEGED) -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
    return (head + extra + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    "target",
    [
        "/v1.41/containers/create",
        "/v1.45/containers/create",
        "//containers//create",
        "/v1.41//containers/create/",
        "/containers/%63reate",
        "/%761.41/containers/create",
        "/containers/create/",
        "/containers/create?name=x&name=y",
    ],
)
def test_path_variants_are_still_checked(proxy: Running, target: str) -> None:
    response = exchange(proxy.socket_path, raw_create(target))
    assert status_of(response) == 403, response
    assert proxy.stand_in.requests() == []


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("/containers/theirs/../mine/exec", "path"),
        ("/containers/theirs/%2e%2e/mine/exec", "path"),
        ("/containers/%2563reate", "path"),
        ("/v1.23/containers/create", "api-version"),
        ("/v1/containers/create", "api-version"),
        ("http://docker/containers/create", "path"),
        ("/containers/theirs/%65xec", "not-owned"),
    ],
)
def test_path_tricks_are_refused(proxy: Running, target: str, rule: str) -> None:
    assert_refused(proxy, raw_create(target, body=b'{"Cmd": ["sh"]}'), rule)


def test_chunked_body_is_read_and_checked(proxy: Running) -> None:
    head = b"POST /containers/create HTTP/1.1\r\nContent-Type: application/json\r\n"
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n"
        for part in (PRIVILEGED[:10], PRIVILEGED[10:])
    )
    assert_refused(
        proxy, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n", "privileged"
    )


def test_wrong_content_type_is_refused(proxy: Running) -> None:
    data = raw_create("/containers/create").replace(b"application/json", b"text/plain")
    assert_refused(proxy, data, "content-type")


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (
            b'{"Image": "x", "HostConfig": {"Privileged": false, "Privileged": true}}',
            "duplicate-key",
        ),
        (
            b'{"Image": "x", "HostConfig": {"Privileged": false, "privileged": true}}',
            "duplicate-key",
        ),
        (b'{"Image": "x", "hostconfig": {"PRIVILEGED": true}}', "privileged"),
        (b'{"Image": "x", "HostConfig": {"Binds": ["/:/h"]}, "HostConfig": {}}', "duplicate-key"),
        ('{"Image": "x", "HostConfig": {"Pr\u0130vileged": true}}'.encode(), "field-name"),
        ('{"Image": "x", "HostConfig": {"Bind\u017f": ["/:/h"]}}'.encode(), "field-name"),
        (b'{"Image": "x", "Privileged": true}', "unknown-field"),
        (b'{"Image": "x", "Binds": ["/:/host"]}', "unknown-field"),
        (b'{"Image": "x", "HostConfig": {"Bogus": 1}}', "unknown-field"),
        (
            b'{"Image": "x", "HostConfig": {"Mounts": '
            b'[{"Type": "bind", "source": "/", "SOURCE": "/x"}]}}',
            "duplicate-key",
        ),
        (b'{"Image": "x"} {"HostConfig": {"Privileged": true}}', "invalid-json"),
        (b'["not an object"]', "invalid-json"),
        (b"\xff\xfe{}", "invalid-json"),
    ],
)
def test_json_tricks_are_refused(proxy: Running, body: bytes, rule: str) -> None:
    assert_refused(proxy, raw_create("/containers/create", body=body), rule)


def test_body_over_the_limit_is_refused_unread(proxy: Running) -> None:
    head = b"POST /containers/create HTTP/1.1\r\nContent-Type: application/json\r\n"
    started = time.monotonic()
    # Only the head is sent: the answer comes without waiting for the 10 MiB.
    response = exchange(proxy.socket_path, head + b"Content-Length: 10485760\r\n\r\n{")
    assert status_of(response) == 403 and "(rule body-too-large)" in message_of(response)
    assert time.monotonic() - started < 2
    assert proxy.stand_in.requests() == []


def test_chunked_body_over_the_limit_is_refused(proxy: Running) -> None:
    head = b"POST /containers/create HTTP/1.1\r\nContent-Type: application/json\r\n"
    chunk = b"8000\r\n" + b" " * 0x8000 + b"\r\n"
    assert_refused(
        proxy, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3, "body-too-large"
    )


@pytest.mark.parametrize(
    ("framing", "rule"),
    [
        ("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "request-smuggling"),
        ("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "request-smuggling"),
        ("Content-Length: 4\r\nContent-Length: 40\r\n", "request-smuggling"),
        ("Transfer-Encoding: gzip, chunked\r\n", "request-smuggling"),
        ("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "request-smuggling"),
        ("Content-Length: +4\r\n", "malformed-request"),
        (" Content-Length: 4\r\n", "malformed-request"),
        ("Content-Length : 4\r\n", "malformed-request"),
    ],
)
def test_ambiguous_framing_is_refused(proxy: Running, framing: str, rule: str) -> None:
    data = f"POST /_ping HTTP/1.1\r\nHost: docker\r\n{framing}\r\n0\r\n\r\n".encode()
    smuggled = request("POST", "/containers/create", create({"Privileged": True}))
    assert_refused(proxy, data + smuggled, rule)


def test_keep_alive_second_request_is_checked_too(proxy: Running) -> None:
    first = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
    second = raw_create("/containers/create")
    response = exchange(proxy.socket_path, first + second)
    assert response.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 403" in response and b"(rule privileged)" in response
    assert [each.target for each in proxy.stand_in.requests()] == ["/_ping"]


def test_keep_alive_serves_allowed_requests_in_turn(proxy: Running) -> None:
    ping = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
    response = exchange(proxy.socket_path, ping * 3, timeout=1)
    assert response.count(b"HTTP/1.1 200") == 3
    assert len(proxy.stand_in.requests()) == 3


def test_http_1_0_closes_after_one_request(proxy: Running) -> None:
    first = b"GET /_ping HTTP/1.0\r\n\r\n"
    response = exchange(proxy.socket_path, first + raw_create("/containers/create"))
    assert response.startswith(b"HTTP/1.1 200") and b"403" not in response
    [seen] = proxy.stand_in.requests()
    assert seen.target == "/_ping"


def test_only_known_headers_reach_dockerd(proxy: Running) -> None:
    data = request(
        "GET",
        "/info",
        headers={"X-Registry-Auth": "e30=", "X-Forwarded-For": "1.2.3.4", "Expect": "x"},
    )
    assert status_of(exchange(proxy.socket_path, data)) == 200
    [seen] = proxy.stand_in.requests()
    assert seen.headers["x-registry-auth"] == "e30="
    assert "x-forwarded-for" not in seen.headers and "expect" not in seen.headers


# --- Streaming, upgrades, concurrency ------------------------------------------------------


def test_build_context_of_100_mib_streams_through_unparsed(proxy: Running) -> None:
    size = 100 * 1024 * 1024
    head = (
        f"POST /v1.41/build?t=job&t=job:2&dockerfile=Dockerfile HTTP/1.1\r\nHost: docker\r\n"
        f"Content-Type: application/x-tar\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(60)
        client.connect(proxy.socket_path)
        client.sendall(head)
        block = b"\0" * (1 << 20)
        for _ in range(100):
            client.sendall(block)
        response = b""
        while chunk := client.recv(65536):
            response += chunk
    assert status_of(response) == 200
    assert f'{{"size":{size}}}'.encode() in response
    [seen] = proxy.stand_in.requests()
    assert seen.body_size == size
    assert seen.target == "/v1.41/build?t=job&t=job%3A2&dockerfile=Dockerfile"


def test_chunked_upload_is_framed_again(proxy: Running) -> None:
    head = b"POST /build HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    response = exchange(proxy.socket_path, head + body)
    assert b'{"size":11}' in response
    [seen] = proxy.stand_in.requests()
    assert seen.headers.get("transfer-encoding") == "chunked" and seen.body_size == 11


def test_logs_follow_streams_before_dockerd_is_done(proxy: Running) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(proxy.socket_path)
        client.sendall(request("GET", "/containers/mine/logs?follow=1&stdout=1"))
        received = b""
        while b"first line" not in received:
            received += client.recv(65536)
        # The stand-in still holds the second line: what arrived was streamed.
        assert b"second line" not in received
        proxy.stand_in.release_logs.set()
        while chunk := client.recv(65536):
            received += chunk
    assert b"second line" in received


def pings_connections(proxy: Running, count: int) -> list[int]:
    """``count`` pings, each on a client connection of its own: the stand-in's connections."""
    for _ in range(count):
        assert status_of(exchange(proxy.socket_path, request("GET", "/_ping"))) == 200
    return [seen.connection for seen in proxy.stand_in.requests() if seen.target == "/_ping"]


def test_requests_reuse_a_connection_to_dockerd(proxy: Running) -> None:
    connections = pings_connections(proxy, 5)
    assert len(connections) == 5 and len(set(connections)) == 1, connections
    [seen, *_] = proxy.stand_in.requests()
    assert "connection" not in seen.headers  # HTTP/1.1 keeps it open


def test_a_chunked_answer_is_relayed_whole_and_its_connection_reused(proxy: Running) -> None:
    proxy.stand_in.release_logs.set()
    answer = exchange(proxy.socket_path, request("GET", "/containers/mine/logs?stdout=1"))
    assert status_of(answer) == 200
    assert answer.endswith(b"c\r\nfirst line\r\n\r\nd\r\nsecond line\r\n\r\n0\r\n\r\n")
    [logs] = proxy.stand_in.requests()
    assert pings_connections(proxy, 2) == [logs.connection] * 2


def dechunk(body: bytes) -> bytes:
    data = b""
    while True:
        size_line, body = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            assert body == b"\r\n"
            return data
        data, body = data + body[:size], body[size + 2 :]


def test_a_large_chunked_answer_arrives_intact(proxy: Running) -> None:
    answer = exchange(proxy.socket_path, request("GET", "/images/job:1/get"))
    assert status_of(answer) == 200
    assert dechunk(answer.split(b"\r\n\r\n", 1)[1]) == SAVED_IMAGE
    [save] = proxy.stand_in.requests()
    assert pings_connections(proxy, 1) == [save.connection]


def test_a_kept_connection_dockerd_closed_is_replaced_once(proxy: Running) -> None:
    [first] = pings_connections(proxy, 1)
    proxy.stand_in.drop_next_kept.set()
    proxy.stand_in.seen.clear()
    assert status_of(exchange(proxy.socket_path, request("GET", "/_ping"))) == 200
    [seen] = proxy.stand_in.requests()
    assert seen.connection != first  # answered on a new connection
    assert not proxy.stand_in.drop_next_kept.is_set()  # the kept one was tried first


def test_a_kept_connection_that_answered_badly_is_not_tried_again(proxy: Running) -> None:
    pings_connections(proxy, 1)
    before = proxy.stand_in.connections
    proxy.stand_in.blank_next_kept.set()
    answer = exchange(proxy.socket_path, request("GET", "/_ping"))
    assert status_of(answer) == 502
    assert "bad response from dockerd: a blank line" in message_of(answer)
    assert not proxy.stand_in.blank_next_kept.is_set()  # the kept connection was used
    assert proxy.stand_in.connections == before  # and no new one was opened for it


def test_an_answer_the_client_left_is_not_reused(proxy: Running) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(proxy.socket_path)
        client.sendall(request("GET", "/containers/mine/logs?follow=1&stdout=1"))
        received = b""
        while b"first line" not in received:
            received += client.recv(65536)
    proxy.stand_in.release_logs.set()  # the rest of the answer has nowhere to go
    [logs] = proxy.stand_in.requests()
    time.sleep(0.2)
    assert logs.connection not in pings_connections(proxy, 3)


def test_attach_upgrades_to_a_raw_stream_both_ways(proxy: Running) -> None:
    data = request(
        "POST",
        "/containers/mine/attach?stream=1&stdin=1&stdout=1",
        headers={"Upgrade": "tcp"},
    ).replace(b"Connection: close", b"Connection: Upgrade")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(proxy.socket_path)
        client.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            received += client.recv(65536)
        assert received.startswith(b"HTTP/1.1 101")
        client.sendall(b"hello job\n")
        while b"HELLO JOB" not in received:
            received += client.recv(65536)
        client.shutdown(socket.SHUT_WR)  # stdin's end must reach the container
        while chunk := client.recv(65536):
            received += chunk
    assert received.endswith(b"[stdin closed]")
    [seen] = proxy.stand_in.requests()
    assert seen.headers["upgrade"] == "tcp" and seen.headers["connection"] == "Upgrade"


def test_exec_start_on_an_owned_container_is_hijacked(proxy: Running) -> None:
    data = request("POST", "/exec/e-mine/start", {"Detach": False, "Tty": False})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(proxy.socket_path)
        client.sendall(data)
        client.sendall(b"ls\n")
        client.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 101") and b"LS\n[stdin closed]" in received


def test_a_slow_client_does_not_stall_others(proxy: Running) -> None:
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.connect(proxy.socket_path)
    stalled.sendall(request("GET", "/containers/mine/logs?follow=1"))  # never read
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(proxy.socket_path)
    half.sendall(b"POST /containers/create HTTP/1.1\r\n")  # a head that never ends
    try:
        started = time.monotonic()
        for _ in range(20):
            assert status_of(exchange(proxy.socket_path, request("GET", "/_ping"))) == 200
        assert time.monotonic() - started < 5
    finally:
        proxy.stand_in.release_logs.set()
        stalled.close()
        half.close()


@pytest.fixture
def limited(folder: str, request: pytest.FixtureRequest) -> Iterator[Running]:
    yield from _proxy(folder, request.node.name, {"max_connections": 8})


def test_connections_beyond_the_limit_get_503_and_the_workers_serve_again(
    limited: Running,
) -> None:
    held = []
    try:
        for _ in range(8):  # eight connections whose heads never end: every worker is serving
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(limited.socket_path)
            connection.sendall(b"GET /_ping HTTP/1.1\r\n")
            held.append(connection)
        answer = b""
        for _ in range(50):  # the workers take the held connections in their own time
            answer = exchange(limited.socket_path, request("GET", "/_ping"))
            if status_of(answer) == 503:
                break
            time.sleep(0.05)
        assert status_of(answer) == 503, answer
        assert "too many connections" in message_of(answer)
    finally:
        for connection in held:
            connection.close()
    deadline = time.monotonic() + 5
    while status_of(exchange(limited.socket_path, request("GET", "/_ping"))) != 200:
        assert time.monotonic() < deadline, "the workers did not serve again"
        time.sleep(0.05)
    for _ in range(30):  # sequential connections reuse the workers
        assert status_of(exchange(limited.socket_path, request("GET", "/_ping"))) == 200


def test_uploads_broken_off_free_their_workers(limited: Running) -> None:
    for _ in range(10):  # more than the eight connections served at once
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(limited.socket_path)
            client.sendall(
                b"POST /build HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n"
                b"Content-Length: 1048576\r\n\r\n" + b"x" * 1000
            )
    deadline = time.monotonic() + 10
    while status_of(exchange(limited.socket_path, request("GET", "/_ping"))) != 200:
        assert time.monotonic() < deadline, "the workers still wait for the broken uploads"
        time.sleep(0.1)
    assert "upload broken off" in limited.log()


# --- Policy settings and socket activation -------------------------------------------------


@pytest.fixture
def relaxed(folder: str) -> Iterator[Running]:
    yield from _proxy(folder, "relaxed", {"relaxed_rules": ["privileged", "bind-mount"]})


def test_relaxed_rules_let_the_escape_through(relaxed: Running) -> None:
    """The weakening an escape matrix uses: the same request passes when its rule is off."""
    body = create({"Privileged": True, "Binds": ["/:/host"]})
    assert (
        status_of(exchange(relaxed.socket_path, request("POST", "/containers/create", body))) == 201
    )
    [seen] = relaxed.stand_in.requests()
    assert json.loads(seen.body)["HostConfig"]["Privileged"] is True
    # Integrity rules cannot be relaxed.
    data = raw_create("/containers/create", body=b'{"Image": "x", "Image": "y"}')
    assert status_of(exchange(relaxed.socket_path, data)) == 403


def test_socket_activation_uses_the_inherited_socket(folder: str) -> None:
    path = os.path.join(folder, "activated")
    os.makedirs(path)
    stand_in, server = start_stand_in(path)
    policy = os.path.join(path, "policy.json")
    with open(policy, "w") as file:
        json.dump({"upstream": stand_in.path}, file)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(path, "jobs.sock"))
    listener.listen(8)

    def as_systemd_does() -> None:
        os.dup2(listener.fileno(), 3)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())

    process = subprocess.Popen(
        [sys.executable, "-I", str(PROXY_PROGRAM), "--policy", policy],
        pass_fds=(3, listener.fileno()),  # 3 is dup2-ed in the child; keep it open
        preexec_fn=as_systemd_does,
        stderr=subprocess.PIPE,
    )
    try:
        listener.close()
        response = exchange(os.path.join(path, "jobs.sock"), request("GET", "/_ping"))
        assert status_of(response) == 200
        assert [each.target for each in stand_in.requests()] == ["/_ping"]
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=5)
        server.shutdown()
    assert b"listening" in errors


def test_proxy_uses_only_the_standard_library() -> None:
    """The program runs on Debian's python3 with nothing installed beside it (-I: no site)."""
    code = f"""
import runpy, sys
sys.argv = ["jobs-proxy", "--help"]
try:
    runpy.run_path({str(PROXY_PROGRAM)!r}, run_name="__main__")
except SystemExit:
    pass
loaded = {{name.split(".")[0] for name in sys.modules}}
print(sorted(loaded - set(sys.stdlib_module_names) - {{"__main__"}}))
"""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    assert "--policy" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
