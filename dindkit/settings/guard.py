"""Settings of the job socket (deploys/guard.py): a policy proxy in front of dockerd."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from dindkit.jobs_proxy import CAPABILITIES, POLICY_RULES
from dindkit.settings import (
    Setting,
    SettingError,
    SettingsTable,
    allows,
    boolean,
    group_name,
    integer,
    list_of,
    matching,
    optional,
)
from dindkit.settings.docker import socket_gid, socket_mode

# Host folders a job must never get a bind of, nor of a folder that holds one of them (the
# world-writable ones: anyone could plant a symbolic link there).
PROTECTED_HOST_PATHS = (
    "/tmp",
    "/boot",
    "/dev",
    "/etc",
    "/proc",
    "/root",
    "/run",
    "/sys",
    "/usr",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/run",
    "/var/tmp",
)
# Capabilities that hand over the host even with seccomp and AppArmor on: never on the list.
HOST_CAPABILITIES = (
    "ALL",
    "BPF",
    "DAC_READ_SEARCH",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "PERFMON",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_MODULE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_TIME",
)


def absolute_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise SettingError(f"{value!r} is not an absolute path; allowed: a path starting with /")
    if ".." in value.split("/") or posixpath.normpath(value) != (value.rstrip("/") or "/"):
        raise SettingError(f"{value!r}: allowed: a normalised absolute path (no .., no //)")
    return value.rstrip("/") or "/"


def bind_root(value: Any) -> str:
    path = absolute_path(value)
    for protected in PROTECTED_HOST_PATHS:
        if path == "/" or protected.startswith(path + "/") or path == protected:
            raise SettingError(
                f"{path} is or holds the host's {protected}: a job with it mounted owns the "
                "host. Allowed: a folder of its own such as /srv/ci-cache"
            )
        if path.startswith(protected + "/"):
            raise SettingError(
                f"{path} is inside the host's {protected}; allowed: a folder of "
                "its own such as /srv/ci-cache"
            )
    return path


def capability(value: Any) -> str:
    name = str(value).upper().removeprefix("CAP_")
    if name in HOST_CAPABILITIES:
        raise SettingError(f"{name} hands over the host; never allowed on the job socket")
    if name not in CAPABILITIES:
        raise SettingError(f"{value!r} is not a Linux capability; allowed: e.g. NET_ADMIN")
    return name


def rule_name(value: Any) -> str:
    if value not in POLICY_RULES:
        raise SettingError(f"unknown rule {value!r}; allowed: {', '.join(POLICY_RULES)}")
    return str(value)


def run_socket(value: Any) -> str:
    path = absolute_path(value)
    if not re.fullmatch(r"/run/[a-z0-9_.-]+(/[a-z0-9_.-]+)*\.sock", path):
        raise SettingError(
            "allowed: a path under /run/ ending in .sock, such as /run/dindkit/jobs.sock"
        )
    if path in ("/run/docker.sock", "/run/containerd/containerd.sock"):
        raise SettingError(f"{path} is a daemon's own socket; allowed: a socket of its own")
    return path


def daemon_socket(value: Any) -> str:
    path = absolute_path(value)
    if not re.fullmatch(r"/[A-Za-z0-9_./-]+\.sock", path):
        raise SettingError(
            "allowed: an absolute path of letters, digits and `_.-/` ending in .sock"
        )
    return path


allows(run_socket, "a path under /run/ ending in .sock, not a daemon's own socket")
allows(daemon_socket, "an absolute path of letters, digits and `_.-/` ending in .sock")


GUARD_SETTINGS = SettingsTable(
    capability="guard",
    settings=(
        Setting(
            "guard_enabled",
            False,
            "Serve the job socket: a policy proxy in front of dockerd for jobs one does not fully "
            "trust (docs/guarded.md).",
            boolean,
        ),
        Setting(
            "guard_socket_path",
            "/run/dindkit/jobs.sock",
            "The job socket, created by the systemd socket unit dindkit-jobs.socket.",
            run_socket,
        ),
        Setting(
            "guard_socket_group",
            "docker-jobs",
            "Group that owns the job socket (created if missing); jobs get it with --group-add.",
            group_name,
        ),
        Setting(
            "guard_socket_gid",
            None,
            "GID for guard_socket_group when it is created; a fixed GID lets job containers use "
            "--group-add.",
            optional(socket_gid),
        ),
        Setting(
            "guard_socket_mode",
            "0660",
            "Mode of the job socket; never world-writable.",
            socket_mode,
        ),
        Setting(
            "guard_upstream_socket",
            "/run/docker.sock",
            "dockerd's socket the proxy talks to (its group is docker_socket_group).",
            daemon_socket,
        ),
        Setting(
            "guard_bind_allowlist",
            [],
            "Host folders a job may bind-mount, read-only (empty: none). Never /, nor a system "
            "folder or one that holds one.",
            list_of(bind_root),
        ),
        Setting(
            "guard_allowed_capabilities",
            [],
            "Capabilities a job may add (--cap-add), e.g. NET_ADMIN; never SYS_ADMIN and the "
            "others that hand over the host.",
            list_of(capability),
        ),
        Setting(
            "guard_relaxed_rules",
            [],
            "Policy rules turned off (names as the refusals print them); for proving that a "
            "check can fail, not for production.",
            list_of(rule_name),
        ),
        Setting(
            "guard_owner",
            "jobs",
            "Value of the label dindkit.guard.owner the proxy puts on what jobs create; only "
            "objects with it are theirs.",
            matching(r"[a-z0-9][a-z0-9_.-]{0,62}", "lowercase letters, digits, '_', '.', '-'"),
        ),
        Setting(
            "guard_max_body_bytes",
            1048576,
            "Largest JSON body the proxy reads (bigger ones are refused unread); build contexts "
            "and archives stream through unparsed.",
            integer(65536, 67108864),
        ),
        Setting(
            "guard_max_connections",
            256,
            "Connections served at once (a worker thread each); more get HTTP 503.",
            integer(8, 4096),
        ),
        Setting(
            "guard_memory_max",
            "256M",
            "systemd MemoryMax of the proxy service.",
            matching(r"[1-9][0-9]{1,5}M|[1-9][0-9]?G", "a size such as 256M or 1G (at least 10M)"),
        ),
    ),
)
