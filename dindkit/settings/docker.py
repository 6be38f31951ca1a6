"""Settings of the Docker Engine deploy (deploys/docker.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dindkit.settings import (
    _URL,
    NAME_PATTERN,
    Setting,
    SettingError,
    SettingsTable,
    account_name,
    allows,
    boolean,
    bridge_address,
    group_name,
    integer,
    list_of,
    mapping,
    matching,
    one_of,
    optional,
    url,
    user_name,
)

# Docker's release signing key, as published in Docker's install docs.
DOCKER_APT_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"

# daemon.json defaults: the CIS Docker Benchmark v1.6 items that keep every DinD mode working.
# The items left out, the setting that flips each and what it breaks: docs/cis-docker-benchmark.md.
DAEMON_OPTION_DEFAULTS: dict[str, Any] = {
    "icc": False,  # CIS 2.2: no traffic between containers on the default bridge only
    "live-restore": True,  # CIS 2.15: containers survive a dockerd restart
    "userland-proxy": False,  # CIS 2.16: iptables NAT instead of docker-proxy
    # CIS 2.13: the host's journal (forwardable, size-bounded by journald); `docker logs` reads it.
    "log-driver": "journald",
    "log-opts": {"tag": "{{.Name}}"},  # replaces json-file's max-size/max-file, refused here
}


def socket_mode(value: Any) -> str:
    if not isinstance(value, str):
        raise SettingError(
            'a socket mode must be a quoted string of octal digits such as "0660"; '
            f"{type(value).__name__} {value!r} is not (pyinfra --data and YAML turn 0660 into "
            'the int 660 and Python reads 0o660 as 432); allowed: "0600" to "0660"'
        )
    if not re.fullmatch(r"0?[0-7]{3}", value):
        raise SettingError('allowed: 3 or 4 octal digits such as "0660" (no setuid/sticky bits)')
    if int(value, 8) & 0o007:
        raise SettingError(
            "it grants access to other users: anyone who can write to the Docker socket is root "
            'on this host. Allowed: "0660" or stricter; give people access through '
            "docker_socket_group and docker_users instead"
        )
    if not int(value, 8) & 0o600 == 0o600:
        raise SettingError('the owner (root) needs read and write: allowed "0600" to "0660"')
    return value.zfill(4)


allows(socket_mode, 'a quoted string of octal digits from "0600" to "0660" (never "other" access)')


def socket_gid(value: Any) -> int:
    gid = integer(0, 65533)(value)
    if gid == 0:
        raise SettingError("GID 0 is root's group; allowed: a whole number from 1 to 65533")
    return int(gid)


allows(socket_gid, "a whole number from 1 to 65533 (ASCII digits)")


AUDIT_RULES_DIR = "/etc/audit/rules.d/"
# The distribution's own rules file (the -D, -b, -f header augenrules merges first).
DISTRIBUTION_AUDIT_RULES = AUDIT_RULES_DIR + "audit.rules"


def audit_rules_file(value: Any) -> str:
    allowed = f"allowed: a file directly in {AUDIT_RULES_DIR} whose name ends in .rules"
    if not isinstance(value, str) or not re.fullmatch(
        re.escape(AUDIT_RULES_DIR) + r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.rules", value
    ):
        raise SettingError(f"{allowed} (augenrules reads only those)")
    if value == DISTRIBUTION_AUDIT_RULES:
        raise SettingError(f"{allowed}, other than the distribution's own {value}")
    return value


allows(
    audit_rules_file,
    f"a file directly in {AUDIT_RULES_DIR} ending in .rules, not the distribution's audit.rules",
)


# daemon.json keys dindkit knows, with the JSON type dockerd reads (dockerd does not start
# with a value of another type). Keys not listed pass through untouched.
_Option = Callable[[Any], bool]


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_positive(value: Any) -> bool:
    return _is_count(value) and value > 0


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_str(item) for item in value)


def _is_url_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, str) and _URL.fullmatch(item) for item in value
    )


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    )


def _is_ulimits(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(limit, dict)
        and set(limit) <= {"Name", "Hard", "Soft"}
        and all(
            isinstance(limit.get(bound), int) and not isinstance(limit.get(bound), bool)
            for bound in ("Hard", "Soft")
        )
        and limit.get("Name", name) == name
        for name, limit in value.items()
    )


def _is_pools(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(pool, dict)
        and _is_str(pool.get("base"))
        and _is_positive(pool.get("size"))
        and set(pool) <= {"base", "size"}
        for pool in value
    )


def _is_bool_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, bool) for item in value.values())


def _in(*choices: str) -> _Option:
    return lambda value: value in choices


KNOWN_DAEMON_OPTIONS: dict[str, tuple[_Option, str]] = {
    "bip": (_is_str, "a CIDR string"),
    "data-root": (lambda value: _is_str(value) and value.startswith("/"), "an absolute path"),
    "debug": (_is_bool, "true or false"),
    "default-address-pools": (_is_pools, 'a list of {"base": "CIDR", "size": N}'),
    "default-cgroupns-mode": (_in("host", "private"), '"host" or "private"'),
    "default-runtime": (_is_str, "a runtime name"),
    "default-shm-size": (_is_str, 'a size string such as "64M"'),
    "default-ulimits": (
        _is_ulimits,
        'a mapping of limit name to {"Name": name, "Hard": N, "Soft": N}',
    ),
    "dns": (_is_str_list, "a list of addresses"),
    "dns-opts": (_is_str_list, "a list of strings"),
    "dns-search": (_is_str_list, "a list of domains"),
    "exec-opts": (_is_str_list, "a list of strings"),
    "experimental": (_is_bool, "true or false"),
    "features": (_is_bool_map, "a mapping of feature name to true or false"),
    "fixed-cidr": (_is_str, "a CIDR string"),
    "icc": (_is_bool, "true or false"),
    "init": (_is_bool, "true or false"),
    "insecure-registries": (_is_str_list, "a list of registry host[:port] or CIDR strings"),
    "ip-forward": (_is_bool, "true or false"),
    "ip-masq": (_is_bool, "true or false"),
    "ip6tables": (_is_bool, "true or false"),
    "iptables": (_is_bool, "true or false"),
    "ipv6": (_is_bool, "true or false"),
    "labels": (_is_str_list, "a list of key=value strings"),
    "live-restore": (_is_bool, "true or false"),
    "log-driver": (_is_str, "a log driver name such as journald or json-file"),
    "log-level": (
        _in("debug", "info", "warn", "error", "fatal"),
        "debug, info, warn, error or fatal",
    ),
    "log-opts": (_is_str_map, 'a mapping of strings to strings (numbers quoted: "3")'),
    "max-concurrent-downloads": (_is_positive, "a whole number from 1"),
    "max-concurrent-uploads": (_is_positive, "a whole number from 1"),
    "max-download-attempts": (_is_positive, "a whole number from 1"),
    "mtu": (_is_positive, "a whole number from 1"),
    "no-new-privileges": (_is_bool, "true or false"),
    "registry-mirrors": (_is_url_list, "a list of http:// or https:// URLs"),
    "selinux-enabled": (_is_bool, "true or false"),
    "shutdown-timeout": (_is_count, "a whole number from 0"),
    "storage-driver": (_is_str, "a storage driver name such as overlay2"),
    "storage-opts": (_is_str_list, "a list of strings"),
    "userland-proxy": (_is_bool, "true or false"),
}


def daemon_options(value: Any) -> dict[str, Any]:
    options = mapping(value)
    if "hosts" in options:
        raise SettingError(
            '"hosts" conflicts with the -H fd:// that docker.service passes (dockerd refuses to '
            "start with both); the socket is managed through docker.socket. Allowed: any "
            'daemon.json key but "hosts" and "userns-remap"'
        )
    if "userns-remap" in options:
        raise SettingError(
            'set "userns-remap" through docker_userns_remap. Allowed: any daemon.json key but '
            '"hosts" and "userns-remap"'
        )
    for key, option in options.items():
        if not isinstance(key, str):
            raise SettingError(f"allowed: a mapping with string keys; {key!r} is not one")
        if key in KNOWN_DAEMON_OPTIONS:
            is_valid, allowed = KNOWN_DAEMON_OPTIONS[key]
            if not is_valid(option):
                raise SettingError(f'allowed for "{key}": {allowed}, not {option!r}')
    return options


allows(
    daemon_options,
    'a mapping of daemon.json keys, without "hosts" and "userns-remap"; the keys dindkit knows '
    "are type-checked (docs/docker.md), others pass through",
)


USERNS_REMAP_RULE = (
    'allowed: "default" (dockerd creates and uses the user dockremap) or the name of an '
    "existing user other than root, with ranges in /etc/subuid and /etc/subgid that dockerd "
    "maps to"
)


def userns_remap(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(NAME_PATTERN, value) or value == "root":
        raise SettingError(USERNS_REMAP_RULE)
    return value


allows(
    userns_remap,
    '"default", or an existing user other than root with ranges in /etc/subuid and '
    "/etc/subgid (checked on the host before anything changes)",
)


DOCKER_SETTINGS = SettingsTable(
    capability="docker",
    settings=(
        Setting(
            "docker_source",
            "docker-ce",
            "Where Docker Engine comes from: docker-ce (Docker's apt repository) or distro "
            "(the distribution's docker.io).",
            one_of("docker-ce", "distro"),
        ),
        Setting(
            "docker_version",
            None,
            "Pin docker-ce to this version (e.g. 27.3.1); unset takes the newest. docker-ce only.",
            optional(matching(r"[0-9][0-9A-Za-z.:~+-]*", "a version such as 27.3.1")),
        ),
        Setting(
            "docker_apt_repo_base",
            "https://download.docker.com/linux",
            "Base URL of Docker's apt repository (or a mirror): <base>/<debian|ubuntu>.",
            url,
        ),
        Setting(
            "docker_apt_key_fingerprint",
            DOCKER_APT_KEY_FINGERPRINT,
            "Fingerprint the repository key must have before it is trusted (change only for a "
            "mirror signed with your own key).",
            matching(r"[0-9A-F]{40}", "40 uppercase hexadecimal digits, without spaces"),
        ),
        Setting(
            "docker_daemon_options",
            DAEMON_OPTION_DEFAULTS,
            "Keys dindkit sets in /etc/docker/daemon.json; other keys already there are kept.",
            daemon_options,
        ),
        Setting(
            "docker_audit",
            True,
            "Install auditd and watch Docker's files (CIS 1.1.3-1.1.18); false removes the rules.",
            boolean,
        ),
        Setting(
            "docker_audit_rules_file",
            "/etc/audit/rules.d/dindkit-docker.rules",
            "The audit rules file dindkit owns (other files in rules.d are never touched).",
            audit_rules_file,
        ),
        Setting(
            "docker_audit_backlog_limit",
            16384,
            "Audit records the kernel queues for auditd (auditctl -b) before the backlog is full.",
            integer(1024, 1048576),
        ),
        Setting(
            "docker_audit_backlog_wait_time",
            0,
            "Kernel ticks (250 a second on Debian) a writer waits while the audit backlog is "
            "full (--backlog_wait_time); 0 loses the record instead of holding the writer.",
            integer(0, 60000),
        ),
        Setting(
            "docker_daemon_wait_seconds",
            60,
            "How long to wait for dockerd to answer after a (re)start.",
            integer(5, 600),
        ),
        Setting(
            "docker_socket_group",
            "docker",
            "Group that owns /run/docker.sock (created if missing).",
            group_name,
        ),
        Setting(
            "docker_socket_gid",
            None,
            "GID for docker_socket_group when it is created; a fixed GID lets DooD containers "
            "use --group-add.",
            optional(socket_gid),
        ),
        Setting(
            "docker_socket_mode",
            "0660",
            "Mode of /run/docker.sock, set through a docker.socket drop-in; never world-writable.",
            socket_mode,
        ),
        Setting(
            "docker_users",
            [],
            "Existing users added to docker_socket_group.",
            list_of(account_name),
        ),
        Setting(
            "docker_rootless_users",
            [],
            "Existing users who get their own rootless dockerd (/run/user/UID/docker.sock), "
            "started at boot through linger.",
            allows(
                list_of(user_name),
                "a list (each once; `a,b` on the command line) of existing login users: not "
                "root, UID 1000 to 65533, a home outside the system's folders, a login shell "
                "(checked on the host before anything changes)",
            ),
        ),
        Setting(
            "docker_rootless_bridge",
            "10.250.0.1/24",
            "The rootless daemons' own bridge (dockerd --bip). Their default, 172.17.0.1/16, "
            "would hide the host's docker0 address (the local registry's) from them; unset: "
            "dockerd's default.",
            optional(bridge_address),
        ),
        Setting(
            "docker_userns_remap",
            None,
            'daemon.json "userns-remap": "default" (the user dockremap) or a user name; unset '
            "removes it. Containers' root becomes an unprivileged host UID.",
            optional(userns_remap),
        ),
    ),
)
