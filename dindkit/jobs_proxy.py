#!/usr/bin/python3
"""dindkit's job socket: a policy proxy in front of dockerd that reads every request.

Runs on the target as /usr/local/lib/dindkit/jobs-proxy.py (Debian's python3, standard library
only), socket-activated by systemd (dindkit-jobs.socket hands it /run/dindkit/jobs.sock), or
with --listen PATH for tests. Policy: a JSON file written by the guard deploy (docs/guarded.md).

Every request is parsed, checked and re-written before it reaches dockerd: the upstream sees the
proxy's own request line, a fixed set of headers, its own framing and, for JSON bodies, the
proxy's own serialisation of what it checked. What it refuses gets HTTP 403 with a JSON
``message`` naming the rule, and a line on stderr (the journal) with the caller's credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import posixpath
import re
import socket
import struct as cstruct
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

OWNER_LABEL = "dindkit.guard.owner"
HEAD_LIMIT = 64 * 1024
HEADER_COUNT_LIMIT = 100
MIN_API_VERSION = (1, 24)  # older versions read a HostConfig from /start's body
IDLE_SECONDS = 120.0
COPY_SIZE = 256 * 1024
SPARE_WORKERS = 4
KEPT_CONNECTIONS = 8  # idle connections to dockerd kept for the next request
LOOKUP_SECONDS = 30.0  # an ownership question to dockerd

# Rules a policy may relax (guard_relaxed_rules). The request-integrity rules cannot be relaxed.
POLICY_RULES = (
    "endpoint",
    "privileged",
    "cap-add",
    "devices",
    "host-namespace",
    "not-owned",
    "security-opt",
    "sysctls",
    "bind-mount",
    "volume-options",
    "mount-type",
    "cgroup",
    "runtime",
    "systempaths",
    "annotations",
    "oom",
    "network-options",
    "build-network",
    "build-option",
    "buildkit",
    "remote-source",
    "plugins",
    "swarm",
    "secrets",
    "configs",
    "prune",
)
INTEGRITY_RULES = (
    "malformed-request",
    "request-smuggling",
    "path",
    "api-version",
    "body-too-large",
    "unexpected-body",
    "content-type",
    "invalid-json",
    "duplicate-key",
    "unknown-field",
    "field-name",
    "query",
)


class Refusal(Exception):
    def __init__(self, rule: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.status = status


class NotFound(Exception):
    """The upstream does not know the object: answered as dockerd would, with 404."""


# --- JSON bodies: strict parsing, Go's case-insensitive field names -------------------------


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise Refusal("duplicate-key", f"duplicate JSON key {key!r}: refused, never guessed")
        result[key] = value
    return result


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
        return json.loads(text, object_pairs_hook=_pairs_without_duplicates)
    except (UnicodeDecodeError, ValueError) as error:
        raise Refusal("invalid-json", f"the body is not valid JSON: {error}") from None


def words(text: str) -> list[str]:
    return text.split()


# A schema says how dockerd reads a JSON value: a struct (Go matches field names without regard
# to case), a map (keys taken as they are), a list, or None (not inspected, passed as parsed).
Schema = Any


def struct(*names: str, **nested: Schema) -> dict[str, Any]:
    fields: dict[str, tuple[str, Schema]] = {name.lower(): (name, None) for name in names}
    fields.update({name.lower(): (name, schema) for name, schema in nested.items()})
    return {"struct": fields}


def map_of(schema: Schema) -> dict[str, Any]:
    return {"map": schema}


def list_of(schema: Schema) -> dict[str, Any]:
    return {"list": schema}


def normalise(value: Any, schema: Schema, where: str) -> Any:
    """``value`` with struct fields under their canonical names; refuses what Go would read
    differently from Python (non-ASCII or case-folded duplicate field names) and unknown fields."""
    if schema is None or value is None:
        return value
    if "struct" in schema:
        if not isinstance(value, dict):
            raise Refusal("invalid-json", f"{where} must be a JSON object")
        fields = schema["struct"]
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not key.isascii():
                raise Refusal(
                    "field-name",
                    f"field name {key!r} in {where} is not ASCII (Go folds some such letters "
                    "onto ASCII field names)",
                )
            if key.lower() not in fields:
                raise Refusal("unknown-field", f"unknown field {key!r} in {where}")
            name, inner = fields[key.lower()]
            if name in result:
                raise Refusal(
                    "duplicate-key", f"field {name} given twice in {where} (names differ in case)"
                )
            result[name] = normalise(item, inner, f"{where}.{name}")
        return result
    if "map" in schema:
        if not isinstance(value, dict):
            raise Refusal("invalid-json", f"{where} must be a JSON object")
        return {
            key: normalise(item, schema["map"], f"{where}[{key}]") for key, item in value.items()
        }
    if not isinstance(value, list):
        raise Refusal("invalid-json", f"{where} must be a JSON list")
    return [normalise(item, schema["list"], f"{where}[]") for item in value]


RESOURCES = words(
    "CpuShares Memory NanoCpus CgroupParent BlkioWeight BlkioWeightDevice BlkioDeviceReadBps "
    "BlkioDeviceWriteBps BlkioDeviceReadIOps BlkioDeviceWriteIOps CpuPeriod CpuQuota "
    "CpuRealtimePeriod CpuRealtimeRuntime CpusetCpus CpusetMems Devices DeviceCgroupRules "
    "DeviceRequests KernelMemory KernelMemoryTCP MemoryReservation MemorySwap "
    "MemorySwappiness OomKillDisable PidsLimit Ulimits CpuCount CpuPercent IOMaximumIOps "
    "IOMaximumBandwidth"
)
HOST_CONFIG_FIELDS = words(
    "Binds ContainerIDFile LogConfig NetworkMode PortBindings RestartPolicy AutoRemove "
    "VolumeDriver VolumesFrom ConsoleSize Annotations CapAdd CapDrop CgroupnsMode Dns "
    "DnsOptions DnsSearch ExtraHosts GroupAdd IpcMode Cgroup Links OomScoreAdj PidMode "
    "Privileged PublishAllPorts ReadonlyRootfs SecurityOpt StorageOpt Tmpfs UTSMode "
    "UsernsMode ShmSize Sysctls Runtime Isolation MaskedPaths ReadonlyPaths Init"
)
CONFIG_FIELDS = words(
    "Hostname Domainname User AttachStdin AttachStdout AttachStderr ExposedPorts Tty "
    "OpenStdin StdinOnce Env Cmd Healthcheck ArgsEscaped Image Volumes WorkingDir Entrypoint "
    "NetworkDisabled MacAddress OnBuild Labels StopSignal StopTimeout Shell"
)
MOUNT = struct(
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "Consistency",
    "BindOptions",
    "TmpfsOptions",
    "ClusterOptions",
    VolumeOptions=struct(
        "NoCopy", "Labels", "Subpath", DriverConfig=struct("Name", Options=map_of(None))
    ),
)
HOST_CONFIG = struct(*HOST_CONFIG_FIELDS, *RESOURCES, Mounts=list_of(MOUNT))
ENDPOINT = struct(
    *words(
        "IPAMConfig Links Aliases MacAddress DriverOpts GwPriority NetworkID EndpointID "
        "Gateway IPAddress IPPrefixLen IPv6Gateway GlobalIPv6Address GlobalIPv6PrefixLen "
        "DNSNames"
    )
)
CONTAINER_CREATE = struct(
    *CONFIG_FIELDS,
    HostConfig=HOST_CONFIG,
    NetworkingConfig=struct(EndpointsConfig=map_of(ENDPOINT)),
)
CONTAINER_CONFIG = struct(*CONFIG_FIELDS)
CONTAINER_UPDATE = struct(*RESOURCES, "RestartPolicy")
EXEC_CREATE = struct(
    *words(
        "AttachStdin AttachStdout AttachStderr ConsoleSize Detach DetachKeys Tty Env Cmd "
        "Privileged User WorkingDir"
    )
)
EXEC_START = struct("Detach", "Tty", "ConsoleSize")
NETWORK_CREATE = struct(
    *words(
        "Name CheckDuplicate Driver Scope EnableIPv6 EnableIPv4 IPAM Internal Attachable "
        "Ingress ConfigOnly ConfigFrom Options Labels"
    )
)
NETWORK_CONNECT = struct("Container", "Force", EndpointConfig=ENDPOINT)
VOLUME_CREATE = struct("Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec")
AUTH = struct(
    *["username", "password", "auth", "email", "serveraddress", "identitytoken", "registrytoken"]
)

# Linux capabilities as Docker names them (without CAP_).
CAPABILITIES = words(
    "AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN "
    "DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE "
    "MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON "
    "SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE "
    "SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG SYSLOG WAKE_ALARM"
)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
BUILD_QUERY = set(
    words(
        "dockerfile t extrahosts remote q nocache cachefrom pull rm forcerm memory memswap "
        "cpushares cpusetcpus cpusetmems cpuperiod cpuquota buildargs shmsize squash labels "
        "networkmode platform target outputs version ulimits isolation cgroupparent session "
        "buildid"
    )
)
REPEATABLE_QUERY = {"t"}
FORWARDED_HEADERS = ("user-agent", "content-type", "x-registry-auth", "x-registry-config")


# --- The policy -------------------------------------------------------------------------------


class Policy:
    def __init__(self, settings: dict[str, Any], upstream: str) -> None:
        self.owner = str(settings.get("owner", "jobs"))
        self.bind_allowlist = [str(path) for path in settings.get("bind_allowlist", [])]
        self.capabilities = {str(cap).upper() for cap in settings.get("allowed_capabilities", [])}
        self.relaxed = set(settings.get("relaxed_rules", []))
        self.max_body = int(settings.get("max_body_bytes", 1024 * 1024))
        self.upstream = upstream
        self.connections = Upstream(upstream)

    def refuse(self, rule: str, message: str) -> None:
        if rule in self.relaxed and rule in POLICY_RULES:
            log(f"relaxed rule={rule} {message}")
            return
        raise Refusal(rule, message)

    # Questions to dockerd, over a connection of their own.

    def ask(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(payload)}\r\n\r\n"
        kept, (_, status, headers) = self.connections.request(
            head.encode() + payload, timeout=LOOKUP_SECONDS
        )
        try:
            data = read_answer(kept[1], headers, self.max_body)
        except BaseException:
            close(kept)
            raise
        self.connections.give(kept)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def owned(self, kind: str, reference: str) -> str:
        """The full ID of ``reference`` if this socket created it; refuses it otherwise."""
        if not NAME.fullmatch(reference):
            raise NotFound(f"No such {kind}: {reference}")
        path = {
            "container": "/containers/{}/json",
            "network": "/networks/{}",
            "volume": "/volumes/{}",
        }
        status, found = self.ask("GET", path[kind].format(urllib.parse.quote(reference)))
        if status == 404 or not isinstance(found, dict):
            raise NotFound(f"No such {kind}: {reference}")
        labels = (found.get("Config") or {}).get("Labels") if kind == "container" else None
        if kind != "container":
            labels = found.get("Labels")
        if (labels or {}).get(OWNER_LABEL) != self.owner:
            self.refuse("not-owned", f"{kind} {reference} was not created through this socket")
        return str(found.get("Id") or found.get("Name") or reference)

    def owned_exec(self, exec_id: str) -> str:
        if not NAME.fullmatch(exec_id):
            raise NotFound(f"No such exec instance: {exec_id}")
        status, found = self.ask("GET", f"/exec/{exec_id}/json")
        if status == 404 or not isinstance(found, dict):
            raise NotFound(f"No such exec instance: {exec_id}")
        self.owned("container", str(found.get("ContainerID", "")))
        return exec_id

    # Checks of a container's host configuration.

    def check_host_config(self, host: dict[str, Any]) -> None:
        self.check_resources(host)
        if host.get("Privileged"):
            self.refuse("privileged", "privileged containers are refused on the job socket")
        for cap in host.get("CapAdd") or []:
            name = str(cap).upper().removeprefix("CAP_")
            if name not in self.capabilities:
                allowed = ", ".join(sorted(self.capabilities)) or "none"
                self.refuse("cap-add", f"capability {cap} is not allowed (allowed: {allowed})")
        for field in ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode", "NetworkMode"):
            self.check_namespace(field, host.get(field))
        if host.get("Cgroup"):
            self.check_namespace("Cgroup", host.get("Cgroup"))
        for option in host.get("SecurityOpt") or []:
            if str(option) not in (
                "no-new-privileges",
                "no-new-privileges=true",
                "no-new-privileges:true",
            ):
                self.refuse("security-opt", f"security option {str(option)[:80]!r} is refused")
        if host.get("Sysctls"):
            self.refuse("sysctls", "sysctls are refused on the job socket")
        if host.get("MaskedPaths") is not None or host.get("ReadonlyPaths") is not None:
            self.refuse("systempaths", "MaskedPaths and ReadonlyPaths must stay dockerd's own")
        if host.get("Annotations"):
            self.refuse("annotations", "OCI annotations are refused on the job socket")
        if host.get("Runtime") not in (None, "", "runc", "io.containerd.runc.v2"):
            self.refuse("runtime", f"runtime {host.get('Runtime')!r} is refused")
        if (host.get("OomScoreAdj") or 0) < 0:
            self.refuse("oom", "a negative OomScoreAdj is refused")
        if host.get("VolumeDriver") not in (None, "", "local"):
            self.refuse("volume-options", f"volume driver {host.get('VolumeDriver')!r} is refused")
        for index, reference in enumerate(host.get("VolumesFrom") or []):
            name, _, mode = str(reference).partition(":")
            full = self.owned("container", name)
            host["VolumesFrom"][index] = f"{full}:{mode}" if mode else full
        for link in host.get("Links") or []:
            self.owned("container", str(link).split(":")[0].lstrip("/"))
        for bind in host.get("Binds") or []:
            self.check_bind(str(bind))
        for mount in host.get("Mounts") or []:
            self.check_mount(mount)

    def check_resources(self, resources: dict[str, Any]) -> None:
        for field in ("Devices", "DeviceRequests", "DeviceCgroupRules"):
            if resources.get(field):
                self.refuse("devices", f"{field} is refused: no host devices on the job socket")
        if resources.get("CgroupParent"):
            self.refuse("cgroup", "CgroupParent is refused on the job socket")
        if resources.get("OomKillDisable"):
            self.refuse("oom", "OomKillDisable is refused on the job socket")

    def check_namespace(self, field: str, value: Any) -> None:
        if value in (None, ""):
            return
        mode = str(value)
        if mode == "host":
            self.refuse("host-namespace", f"{field}=host is refused: the host's namespaces")
        elif mode.startswith("container:"):
            self.owned("container", mode.removeprefix("container:"))
        elif field == "NetworkMode" and mode not in ("default", "bridge", "none"):
            self.owned("network", mode)
        elif field != "NetworkMode" and mode not in ("private", "shareable", "none"):
            self.refuse("host-namespace", f"{field}={mode[:60]!r} is refused")

    def allowed_host_path(self, path: str) -> bool:
        """Under an allowlisted folder, both as written and with its symbolic links resolved."""
        if not path.startswith("/") or posixpath.normpath(path) != (path.rstrip("/") or "/"):
            return False

        def under(candidate: str) -> bool:
            return any(
                candidate == root or candidate.startswith(root.rstrip("/") + "/")
                for root in self.bind_allowlist
            )

        return under(path.rstrip("/") or "/") and under(os.path.realpath(path))

    def check_host_path(self, source: str, read_only: bool) -> None:
        allowed = ", ".join(self.bind_allowlist) or "none"
        if not self.allowed_host_path(source):
            self.refuse(
                "bind-mount",
                f"bind mount of host path {source[:120]} is refused (allowed: {allowed})",
            )
        elif not read_only:
            self.refuse("bind-mount", f"bind mount of {source[:120]} is allowed read-only only")

    def check_bind(self, bind: str) -> None:
        parts = bind.split(":")
        if len(parts) == 1:
            return  # an anonymous volume at a path of the container
        source, options = parts[0], (parts[2] if len(parts) > 2 else "")
        if source.startswith("/"):
            self.check_host_path(source, "ro" in options.split(","))
        elif NAME.fullmatch(source):
            self.own_or_create_volume(source)
        else:
            self.refuse("bind-mount", f"bind source {source[:120]!r} is refused")

    def check_mount(self, mount: dict[str, Any]) -> None:
        kind = mount.get("Type")
        source = str(mount.get("Source") or "")
        if kind == "bind":
            self.check_host_path(source, bool(mount.get("ReadOnly")))
        elif kind == "volume":
            driver = ((mount.get("VolumeOptions") or {}).get("DriverConfig")) or {}
            if driver.get("Options") or driver.get("Name") not in (None, "", "local"):
                self.refuse("volume-options", "volume driver options in a mount are refused")
            if source:
                self.own_or_create_volume(source)
        elif kind != "tmpfs":
            self.refuse("mount-type", f"mount type {kind!r} is refused")

    def own_or_create_volume(self, name: str) -> None:
        """A named volume this socket created, or a new one created now with the owner label."""
        try:
            self.owned("volume", name)
        except NotFound:
            status, _ = self.ask(
                "POST", "/volumes/create", {"Name": name, "Labels": {OWNER_LABEL: self.owner}}
            )
            if status >= 300:
                self.refuse("volume-options", f"volume {name} could not be created")

    def label(self, labels: Any) -> dict[str, Any]:
        return {**(labels or {}), OWNER_LABEL: self.owner}


# --- HTTP ----------------------------------------------------------------------------------


class Request:
    def __init__(self) -> None:
        self.method = ""
        self.version = "HTTP/1.1"
        self.api: str | None = None
        self.path = "/"
        self.query: list[tuple[str, str]] = []
        self.headers: dict[str, str] = {}
        self.length: int | None = None
        self.chunked = False
        self.body = b""
        self.json: Any = None
        self.stream = False  # the body passes through unparsed (a build context, an archive)
        self.hijack = False  # the connection becomes a raw stream both ways

    @property
    def target(self) -> str:
        path = urllib.parse.quote(self.path, safe="/:@+,=")
        prefix = f"/v{self.api}" if self.api else ""
        query = urllib.parse.urlencode(self.query, quote_via=urllib.parse.quote)
        return prefix + path + (f"?{query}" if query else "")

    def arg(self, key: str) -> str:
        return next((value for name, value in self.query if name == key), "")

    def set_arg(self, key: str, value: str) -> None:
        self.query = [(name, each) for name, each in self.query if name != key] + [(key, value)]


TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def read_line(reader: Any, budget: list[int]) -> bytes:
    line = reader.readline(budget[0] + 1)
    budget[0] -= len(line)
    if budget[0] < 0:
        raise Refusal("malformed-request", "request head too large")
    if line and not line.endswith(b"\r\n"):
        raise Refusal("malformed-request", "request lines must end in CRLF")
    return bytes(line)


def read_head(reader: Any) -> Request | None:
    budget = [HEAD_LIMIT]
    line = read_line(reader, budget)
    if not line:
        return None
    request = Request()
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise Refusal("malformed-request", "request line is not ASCII") from None
    match = re.fullmatch(r"(GET|HEAD|POST|PUT|DELETE) (\S+) (HTTP/1\.[01])", text)
    if not match:
        raise Refusal("malformed-request", f"bad request line {text[:80]!r}")
    request.method, raw_target, request.version = match.groups()
    seen_length: list[str] = []
    encodings: list[str] = []
    while True:
        line = read_line(reader, budget)
        if not line:
            raise Refusal("malformed-request", "the request head ended early")
        if line == b"\r\n":
            break
        if len(request.headers) >= HEADER_COUNT_LIMIT:
            raise Refusal("malformed-request", "too many headers")
        try:
            name, separator, value = line[:-2].decode("latin-1").partition(":")
        except UnicodeDecodeError:
            raise Refusal("malformed-request", "bad header") from None
        if not separator or not TOKEN.fullmatch(name):
            raise Refusal("malformed-request", f"bad header line {line[:60]!r}")
        name, value = name.lower(), value.strip(" \t")
        if name == "content-length":
            seen_length.append(value)
        elif name == "transfer-encoding":
            encodings.append(value)
        request.headers[name] = value
    if seen_length and encodings:
        raise Refusal(
            "request-smuggling", "Content-Length and Transfer-Encoding together are refused"
        )
    if len(seen_length) > 1 or len(encodings) > 1:
        raise Refusal("request-smuggling", "repeated Content-Length or Transfer-Encoding")
    if encodings:
        if encodings[0].lower() != "chunked":
            raise Refusal("request-smuggling", f"Transfer-Encoding {encodings[0][:40]!r}")
        request.chunked = True
    if seen_length:
        if not re.fullmatch(r"[0-9]{1,15}", seen_length[0]):
            raise Refusal("malformed-request", "bad Content-Length")
        request.length = int(seen_length[0])
    parse_target(request, raw_target)
    return request


def parse_target(request: Request, raw: str) -> None:
    if not raw.startswith("/") or "#" in raw:
        raise Refusal("path", "the request target must be an absolute path")
    raw_path, _, raw_query = raw.partition("?")
    try:
        path = urllib.parse.unquote(raw_path, errors="strict")
        query = urllib.parse.parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise Refusal("path", "percent-encoding that is not UTF-8") from None
    if "%" in path or "\\" in path or any(ord(char) < 0x21 or ord(char) == 0x7F for char in path):
        raise Refusal("path", "encoded, control or backslash characters in the path")
    segments = [segment for segment in path.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise Refusal("path", "dot segments in the path")
    if segments and re.fullmatch(r"v[0-9.]+", segments[0]):
        version = re.fullmatch(r"v([0-9]{1,3})\.([0-9]{1,3})", segments[0])
        if not version:
            raise Refusal("api-version", f"bad API version {segments[0][:20]!r}")
        if (int(version[1]), int(version[2])) < MIN_API_VERSION:
            raise Refusal("api-version", f"API versions below 1.{MIN_API_VERSION[1]} are refused")
        request.api = segments.pop(0)[1:]
    request.path = "/" + "/".join(segments)
    keys = [key for key, _ in query]
    for key in set(keys):
        if keys.count(key) > 1 and key not in REPEATABLE_QUERY:
            raise Refusal("query", f"query parameter {key!r} given twice")
    request.query = query


def read_exact(reader: Any, count: int) -> bytes:
    data = reader.read(count)
    if len(data) != count:
        raise Refusal("malformed-request", "the body ended early")
    return bytes(data)


def read_chunk_size(reader: Any) -> int:
    line = reader.readline(1026)
    if not line.endswith(b"\r\n"):
        raise Refusal("malformed-request", "bad chunk size line")
    size = line[:-2].split(b";")[0]
    if not re.fullmatch(rb"[0-9a-fA-F]{1,8}", size):
        raise Refusal("malformed-request", "bad chunk size")
    return int(size, 16)


def read_body(reader: Any, request: Request, limit: int) -> bytes:
    """The whole body, de-chunked; refused without reading past ``limit``."""
    if request.length is not None:
        if request.length > limit:
            raise Refusal("body-too-large", f"a body over {limit} bytes is refused")
        return read_exact(reader, request.length)
    if not request.chunked:
        return b""
    parts: list[bytes] = []
    total = 0
    while True:
        size = read_chunk_size(reader)
        total += size
        if total > limit:
            raise Refusal("body-too-large", f"a body over {limit} bytes is refused")
        if size == 0:
            break
        parts.append(read_exact(reader, size))
        if read_exact(reader, 2) != b"\r\n":
            raise Refusal("malformed-request", "bad chunk end")
    while read_line(reader, [HEAD_LIMIT]) not in (b"\r\n", b""):
        pass  # trailers are dropped
    return b"".join(parts)


def caller(connection: socket.socket) -> str:
    try:
        data = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, cstruct.calcsize("3i"))
        pid, uid, gid = cstruct.unpack("3i", data)
        return f"pid={pid} uid={uid} gid={gid}"
    except OSError:
        return "pid=? uid=? gid=?"


_log_lock = threading.Lock()


def log(line: str) -> None:
    with _log_lock:
        sys.stderr.write(line.replace("\n", " ") + "\n")
        sys.stderr.flush()


def reply(connection: socket.socket, status: int, message: str, close: bool = True) -> None:
    body = json.dumps({"message": message}).encode()
    reason = http.client.responses.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    with contextlib.suppress(OSError):
        connection.sendall(head.encode() + body)


# --- Routes: what each allowed endpoint needs checked ----------------------------------------

Handler = Callable[[Policy, Request, list[str]], None]
ROUTES: list[tuple[str, re.Pattern[str], str, Handler | None]] = []


def route(methods: str, pattern: str, body: str = "none") -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((methods, re.compile(pattern), body, handler))
        return handler

    return register


def allow(methods: str, pattern: str, body: str = "none") -> None:
    ROUTES.append((methods, re.compile(pattern), body, None))


REFUSED_PREFIXES = {
    "plugins": "plugins",
    "swarm": "swarm",
    "nodes": "swarm",
    "services": "swarm",
    "tasks": "swarm",
    "secrets": "secrets",
    "configs": "configs",
    "session": "buildkit",
    "grpc": "buildkit",
}

allow("GET HEAD", r"/_ping")
allow("GET", r"/version")
allow("GET", r"/info")
allow("POST", r"/auth", "json")
allow("GET", r"/images/json")
allow("GET", r"/images/search")
allow("GET", r"/images/get")
allow("GET", r"/images/(.+)/(json|history|get)")
allow("POST", r"/images/(.+)/(push|tag)")
allow("DELETE", r"/images/(.+)")
allow("POST", r"/images/load", "stream")
JSON_SCHEMAS: dict[str, Schema] = {"/auth": AUTH}


@route("POST", r"/images/create", "stream")
def images_create(policy: Policy, request: Request, match: list[str]) -> None:
    source = request.arg("fromSrc")
    if source not in ("", "-"):
        policy.refuse("remote-source", "importing from a URL makes dockerd fetch it: refused")
    if not source and request.stream:
        raise Refusal("unexpected-body", "a pull takes no body")


@route("POST", r"/build", "stream")
def build(policy: Policy, request: Request, match: list[str]) -> None:
    for key, value in request.query:
        if key not in BUILD_QUERY:
            policy.refuse("build-option", f"build option {key!r} is refused")
        elif key == "networkmode" and value not in ("", "default", "bridge", "none"):
            policy.refuse("build-network", f"build networkmode={value[:40]!r} is refused")
        elif key in ("cgroupparent", "remote") and value:
            rule = "cgroup" if key == "cgroupparent" else "remote-source"
            policy.refuse(rule, f"build option {key} is refused")
        elif (key == "version" and value not in ("", "1")) or (key == "session" and value):
            policy.refuse(
                "buildkit",
                "BuildKit builds are refused: its options travel in a gRPC session "
                "the proxy cannot read (DOCKER_BUILDKIT=0 uses the classic builder)",
            )


def labelled_list(policy: Policy, request: Request, match: list[str]) -> None:
    """Lists show only what this socket created: the owner label joins the filters."""
    try:
        filters = json.loads(request.arg("filters") or "{}")
    except ValueError:
        raise Refusal("query", "filters is not JSON") from None
    if not isinstance(filters, dict):
        raise Refusal("query", "filters is not a JSON object")
    wanted = f"{OWNER_LABEL}={policy.owner}"
    labels = filters.get("label") or {}
    if isinstance(labels, list):
        labels = {each: True for each in labels}
    filters["label"] = {**labels, wanted: True}
    request.set_arg("filters", json.dumps(filters))


route("GET", r"/containers/json")(labelled_list)
route("GET", r"/networks")(labelled_list)
route("GET", r"/volumes")(labelled_list)


@route("POST", r"/containers/create", "json")
def container_create(policy: Policy, request: Request, match: list[str]) -> None:
    body = normalise(request.json, CONTAINER_CREATE, "the container")
    host = body.get("HostConfig") or {}
    policy.check_host_config(host)
    for network in (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}:
        if network not in ("default", "bridge", "none", "host"):
            policy.owned("network", network)
        elif network == "host":
            policy.refuse("host-namespace", "the host network is refused")
    body["Labels"] = policy.label(body.get("Labels"))
    if host:
        body["HostConfig"] = host
    request.json = body


CONTAINER_ACTIONS = (
    "json|logs|top|stats|changes|export|archive|start|stop|restart|kill|wait|pause|unpause|"
    "resize|rename|attach|exec|update"
)


@route("PUT", r"/containers/([^/]+)/archive", "stream")
def archive_upload(policy: Policy, request: Request, match: list[str]) -> None:
    request.path = f"/containers/{policy.owned('container', match[0])}/archive"


@route("GET HEAD POST DELETE", rf"/containers/([^/]+)(?:/({CONTAINER_ACTIONS}))?", "any")
def container_action(policy: Policy, request: Request, match: list[str]) -> None:
    reference, action = match[0], match[1] or ""
    expected = {
        "": "DELETE",
        "json": "GET",
        "logs": "GET",
        "top": "GET",
        "stats": "GET",
        "changes": "GET",
        "export": "GET",
        "archive": "GET HEAD",
    }.get(action, "POST")
    if request.method not in expected.split():
        raise Refusal("endpoint", f"{request.method} {request.path} is not on the allowlist")
    full = policy.owned("container", reference)
    request.path = f"/containers/{full}" + (f"/{action}" if action else "")
    if action == "exec":
        request.json = normalise(request.json, EXEC_CREATE, "the exec")
        if (request.json or {}).get("Privileged"):
            policy.refuse("privileged", "privileged exec is refused on the job socket")
    elif action == "update":
        request.json = normalise(request.json, CONTAINER_UPDATE, "the update")
        policy.check_resources(request.json or {})
    elif action == "attach":
        request.hijack = True
    elif request.json is not None:
        raise Refusal("unexpected-body", f"{request.path} takes no body")


@route("POST", r"/commit", "json")
def commit(policy: Policy, request: Request, match: list[str]) -> None:
    request.set_arg("container", policy.owned("container", request.arg("container")))
    request.json = normalise(request.json, CONTAINER_CONFIG, "the image config")


@route("POST GET", r"/exec/([^/]+)/(start|resize|json)", "any")
def exec_action(policy: Policy, request: Request, match: list[str]) -> None:
    if (request.method == "GET") != (match[1] == "json"):
        raise Refusal("endpoint", f"{request.method} {request.path} is not on the allowlist")
    policy.owned_exec(match[0])
    if match[1] == "start":
        request.json = normalise(request.json, EXEC_START, "the exec start")
        request.hijack = not (request.json or {}).get("Detach")
    elif request.json is not None:
        raise Refusal("unexpected-body", f"{request.path} takes no body")


@route("POST", r"/networks/create", "json")
def network_create(policy: Policy, request: Request, match: list[str]) -> None:
    body = normalise(request.json, NETWORK_CREATE, "the network")
    if body.get("Driver") not in (None, "", "bridge"):
        policy.refuse("network-options", f"network driver {body.get('Driver')!r} is refused")
    if body.get("Options") or body.get("Ingress") or body.get("ConfigFrom"):
        policy.refuse("network-options", "network options, ingress and config-from are refused")
    body["Labels"] = policy.label(body.get("Labels"))
    request.json = body


@route("GET POST DELETE", r"/networks/([^/]+)(?:/(connect|disconnect))?", "any")
def network_action(policy: Policy, request: Request, match: list[str]) -> None:
    if (request.method == "POST") != bool(match[1]):
        raise Refusal("endpoint", f"{request.method} {request.path} is not on the allowlist")
    full = policy.owned("network", match[0])
    request.path = f"/networks/{full}" + (f"/{match[1]}" if match[1] else "")
    if match[1]:
        body = normalise(request.json, NETWORK_CONNECT, "the connection")
        body["Container"] = policy.owned("container", str(body.get("Container") or ""))
        request.json = body
    elif request.json is not None:
        raise Refusal("unexpected-body", f"{request.path} takes no body")


@route("POST", r"/volumes/create", "json")
def volume_create(policy: Policy, request: Request, match: list[str]) -> None:
    body = normalise(request.json, VOLUME_CREATE, "the volume")
    if body.get("Driver") not in (None, "", "local") or body.get("DriverOpts"):
        policy.refuse(
            "volume-options",
            "volume drivers and driver options (a bind of a host path) are refused",
        )
    if body.get("ClusterVolumeSpec"):
        policy.refuse("swarm", "cluster volumes are refused")
    body["Labels"] = policy.label(body.get("Labels"))
    request.json = body


@route("GET DELETE", r"/volumes/([^/]+)")
def volume_action(policy: Policy, request: Request, match: list[str]) -> None:
    policy.owned("volume", match[0])


def find_route(request: Request) -> tuple[list[str], str, Handler | None]:
    """The groups of the first route that matches, its body kind ("" if none) and handler."""
    for methods, pattern, body_kind, handler in ROUTES:
        found = pattern.fullmatch(request.path)
        if found and request.method in methods.split():
            return list(found.groups()), body_kind, handler
    return [], "", None


def check(policy: Policy, request: Request, reader: Any) -> None:
    """Find the route, read the body as the route says, run its checks; raises Refusal."""
    segments = request.path.strip("/").split("/")
    if segments[0] in REFUSED_PREFIXES:
        rule = REFUSED_PREFIXES[segments[0]]
        policy.refuse(rule, f"{request.path} is refused on the job socket ({rule})")
    if segments[-1] == "prune" or request.path == "/system/prune":
        policy.refuse("prune", "prune removes what others created: refused")
    found, body_kind, handler = find_route(request)
    if handler is None and body_kind == "":
        policy.refuse("endpoint", f"{request.method} {request.path} is not on the allowlist")
        body_kind = "stream"
    if body_kind == "stream":
        request.stream = bool(request.chunked or request.length)
    else:
        body = read_body(reader, request, policy.max_body)
        if body and body_kind == "none":
            raise Refusal("unexpected-body", f"{request.path} takes no body")
        if body:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise Refusal("content-type", "a JSON body needs Content-Type application/json")
            request.json = parse_json(body)
        elif body_kind == "json" and request.path != "/commit":
            raise Refusal("invalid-json", f"{request.path} needs a JSON body")
    if request.path in JSON_SCHEMAS and request.json is not None:
        request.json = normalise(request.json, JSON_SCHEMAS[request.path], "the body")
    if handler:
        handler(policy, request, found)


# --- Relaying ------------------------------------------------------------------------------


class Closed(OSError):
    """dockerd closed the connection before answering a byte."""


class Upstream:
    """Connections to dockerd. One whose answer ended where its framing said is kept for the
    next request: a new connection cost dockerd and the proxy about 3 ms under emulation."""

    def __init__(self, path: str, keep: int = KEPT_CONNECTIONS) -> None:
        self.path, self.keep = path, keep
        self.lock = threading.Lock()
        self.idle: list[tuple[socket.socket, Any]] = []

    def connect(self) -> tuple[socket.socket, Any]:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(self.path)
        except OSError:
            connection.close()
            raise
        return connection, connection.makefile("rb")

    def request(
        self, data: bytes, timeout: float | None = None
    ) -> tuple[tuple[socket.socket, Any], tuple[bytes, int, dict[str, str]]]:
        """Send a whole request on a kept connection, else a new one: the connection and the
        answer's head. A kept connection that dockerd closed before reading is replaced once."""
        kept = self.take()
        if kept is not None:
            try:
                return kept, send(kept, data, timeout)
            except (Closed, BrokenPipeError, ConnectionResetError):
                pass  # dockerd closed it before reading the request: once more, on a new one
        kept = self.connect()
        return kept, send(kept, data, timeout)

    def take(self) -> tuple[socket.socket, Any] | None:
        """A kept connection that dockerd has not closed meanwhile, or None."""
        while True:
            with self.lock:
                if not self.idle:
                    return None
                kept = self.idle.pop()
            if silent(kept[0]):
                return kept
            close(kept)

    def give(self, kept: tuple[socket.socket, Any]) -> None:
        """Keep a connection whose last answer was read to its end."""
        try:
            kept[0].settimeout(None)
        except OSError:
            close(kept)
            return
        with self.lock:
            if len(self.idle) < self.keep:
                self.idle.append(kept)
                return
        close(kept)


def send(
    kept: tuple[socket.socket, Any], data: bytes, timeout: float | None
) -> tuple[bytes, int, dict[str, str]]:
    """Send a whole request on ``kept``: the answer's head. The connection is closed if that
    fails."""
    try:
        kept[0].settimeout(timeout)
        kept[0].sendall(data)
        return read_response_head(kept[1])
    except BaseException:
        close(kept)
        raise


def silent(connection: socket.socket) -> bool:
    """Nothing waits to be read, not even the end of the stream."""
    try:
        connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


def close(kept: tuple[socket.socket, Any]) -> None:
    with contextlib.suppress(OSError):
        kept[1].close()
        kept[0].close()


def upstream_head(request: Request, body: bytes | None, reuse: bool = False) -> bytes:
    lines = [f"{request.method} {request.target} {request.version}", "Host: docker"]
    for name in FORWARDED_HEADERS:
        if name in request.headers and not (name == "content-type" and body is not None):
            lines.append(f"{name.title()}: {request.headers[name]}")
    if body is not None:
        if body:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    elif request.stream:
        lines.append(
            "Transfer-Encoding: chunked" if request.chunked else f"Content-Length: {request.length}"
        )
    else:
        lines.append("Content-Length: 0")
    if request.hijack:
        lines.append("Connection: Upgrade\r\nUpgrade: tcp")
    elif not reuse:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def copy_exactly(reader: Any, target: socket.socket, size: int) -> None:
    """``size`` bytes from one side to the other, in pieces of at most COPY_SIZE."""
    left = size
    while left:
        data = reader.read1(min(left, COPY_SIZE))
        if not data:
            raise OSError("the stream ended early")
        target.sendall(data)
        left -= len(data)


def read_answer(source: Any, headers: dict[str, str], limit: int) -> bytes:
    """A framed answer's whole body (a lookup's), de-chunked; at most ``limit`` bytes."""
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > limit:
            raise OSError(f"bad or too large answer from dockerd (Content-Length {length[:20]})")
        data = source.read(int(length))
        if len(data) != int(length):
            raise OSError("the answer from dockerd ended early")
        return bytes(data)
    if "chunked" not in headers.get("transfer-encoding", ""):
        raise OSError("an answer from dockerd without framing")
    parts: list[bytes] = []
    total = 0
    while True:
        _, size = answer_chunk_size(source)
        total += size
        if total > limit:
            raise OSError(f"an answer from dockerd over {limit} bytes")
        if size == 0:
            answer_trailers(source)
            return b"".join(parts)
        parts.append(answer_chunk(source, size)[:-2])


def answer_chunk_size(source: Any) -> tuple[bytes, int]:
    """A chunk's size line in dockerd's answer, and the size it gives."""
    line = bytes(source.readline(1026))
    if not line.endswith(b"\n"):
        raise OSError("bad chunk size line from dockerd")
    return line, int(line.split(b";")[0], 16)


def answer_chunk(source: Any, size: int) -> bytes:
    """A chunk's data of ``size`` bytes and the line end after it."""
    chunk = source.read(size + 2)
    if len(chunk) != size + 2:
        raise OSError("the answer from dockerd ended early")
    return bytes(chunk)


def answer_trailers(source: Any) -> bytes:
    """What follows the last chunk, up to and without the blank line that ends the answer."""
    trailers = b""
    while (line := source.readline(HEAD_LIMIT)) not in (b"\r\n", b"\n", b""):
        trailers += line
    return trailers


def relay_chunks(source: Any, client: socket.socket) -> None:
    """A chunked answer, each chunk passed on as it comes, up to its last chunk and trailers."""
    while True:
        line, size = answer_chunk_size(source)
        if size == 0:
            client.sendall(line + answer_trailers(source) + b"\r\n")
            return
        if size <= COPY_SIZE:
            client.sendall(line + answer_chunk(source, size))
        else:
            client.sendall(line)
            copy_exactly(source, client, size + 2)


def copy_body(reader: Any, request: Request, upstream: socket.socket) -> None:
    """A streamed body, framed again by the proxy: exactly Content-Length bytes, or its chunks."""
    if request.length is not None:
        copy_exactly(reader, upstream, request.length)
        return
    while True:
        size = read_chunk_size(reader)
        if size == 0:
            upstream.sendall(b"0\r\n\r\n")
            while read_line(reader, [HEAD_LIMIT]) not in (b"\r\n", b""):
                pass
            return
        if size <= COPY_SIZE:  # the usual case: the chunk in one write
            chunk = read_exact(reader, size + 2)
            if chunk[-2:] != b"\r\n":
                raise Refusal("malformed-request", "bad chunk end")
            upstream.sendall(b"%x\r\n%b" % (size, chunk))
            continue
        upstream.sendall(f"{size:x}\r\n".encode())
        copy_exactly(reader, upstream, size)
        if read_exact(reader, 2) != b"\r\n":
            raise Refusal("malformed-request", "bad chunk end")
        upstream.sendall(b"\r\n")


def upload(reader: Any, request: Request, upstream: socket.socket) -> None:
    """copy_body, in a thread of its own. When the client's body breaks off, dockerd's side is
    shut too: dockerd stops waiting for the rest, and so does the worker waiting for its answer."""
    try:
        copy_body(reader, request, upstream)
    except (OSError, ValueError, Refusal) as error:
        log(f"upload broken off: {error}")
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_RDWR)


def pump(source: Any, target: socket.socket) -> None:
    """Copy until end of stream, then half-close the target (stdin's end reaches the job)."""
    try:
        while True:
            data = source.read1(COPY_SIZE) if hasattr(source, "read1") else source.recv(COPY_SIZE)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def read_response_head(upstream_reader: Any) -> tuple[bytes, int, dict[str, str]]:
    lines: list[bytes] = []
    budget = [HEAD_LIMIT]
    while True:
        line = upstream_reader.readline(budget[0] + 1)
        budget[0] -= len(line)
        if not line and not lines:
            raise Closed("dockerd closed the connection")
        if not line or budget[0] < 0:
            raise OSError("bad response from dockerd")
        if line in (b"\r\n", b"\n"):
            break
        lines.append(bytes(line).rstrip(b"\r\n"))
    if not lines:  # dockerd said something: not a connection closed before the request
        raise OSError("bad response from dockerd: a blank line")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return b"\r\n".join(lines), status, headers


def forward(policy: Policy, request: Request, reader: Any, client: socket.socket) -> bool:
    """Send the checked request upstream and relay the answer; True to keep the connection."""
    body = json.dumps(request.json).encode() if request.json is not None else None
    reuse = request.version == "HTTP/1.1" and not request.stream and not request.hijack
    data = upstream_head(request, body, reuse) + (body or b"")
    answer = None
    kept: tuple[socket.socket, Any] | None
    try:
        if reuse:
            kept, answer = policy.connections.request(data)
        else:
            kept = policy.connections.connect()
    except OSError as error:
        reply(client, 502, f"the job socket cannot reach dockerd: {error}")
        return False
    upstream, upstream_reader = kept
    try:
        uploader = None
        if answer is None:
            upstream.sendall(data)
            if request.stream:
                uploader = threading.Thread(target=upload, args=(reader, request, upstream))
                uploader.daemon = True
                uploader.start()
            answer = read_response_head(upstream_reader)
        head, status, headers = answer
        raw = status == 101 or headers.get("content-type") == "application/vnd.docker.raw-stream"
        if request.hijack and raw:
            client.sendall(head + b"\r\n\r\n")
            inbound = threading.Thread(target=pump, args=(reader, upstream))
            inbound.daemon = True
            inbound.start()
            pump(upstream_reader, client)
            inbound.join(timeout=5)
            return False
        bodiless = request.method == "HEAD" or status in (204, 304)
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "")
        framed = bodiless or chunked or (length is not None and length.isdigit())
        keep = (
            request.version == "HTTP/1.1"
            and framed
            and not request.stream
            and not request.hijack
            and request.headers.get("connection", "").lower() != "close"
        )
        passed = [
            line
            for line in head.split(b"\r\n")
            if not line.lower().startswith((b"connection:", b"keep-alive:"))
        ]
        if not keep:
            passed.append(b"Connection: close")
        client.sendall(b"\r\n".join(passed) + b"\r\n\r\n")
        if bodiless:
            pass
        elif chunked:
            relay_chunks(upstream_reader, client)
        elif framed:
            copy_exactly(upstream_reader, client, int(str(length)))
        else:
            while piece := upstream_reader.read1(COPY_SIZE):
                client.sendall(piece)
        if uploader is not None:
            uploader.join(timeout=1)
        if reuse and framed and headers.get("connection", "").lower() != "close":
            policy.connections.give(kept)
            kept = None
        return keep
    finally:
        if kept is not None:
            close(kept)


def linger(client: socket.socket) -> None:
    """Close after an answer the client may still be sending into: what it sends is dropped for
    a moment, so that closing does not reset the connection before it has read the answer."""
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_WR)
        client.settimeout(1.0)
        dropped = 0
        while dropped < 256 * COPY_SIZE and (data := client.recv(COPY_SIZE)):
            dropped += len(data)


def serve_connection(policy: Policy, client: socket.socket) -> None:
    who = caller(client)
    reader = client.makefile("rb")
    request = None
    try:
        while True:
            client.settimeout(IDLE_SECONDS)
            request = None
            try:
                request = read_head(reader)
                if request is None:
                    return
                client.settimeout(None)
                check(policy, request, reader)
            except Refusal as refusal:
                where = f"{request.method} {request.target}" if request else "?"
                log(f"refused rule={refusal.rule} {who} request={where!r}: {refusal.message}")
                reply(
                    client,
                    refusal.status,
                    f"dindkit job socket: {refusal.message} (rule {refusal.rule})",
                )
                linger(client)
                return
            except NotFound as missing:
                reply(client, 404, str(missing), close=True)
                return
            if not forward(policy, request, reader, client):
                return
    except (OSError, ValueError) as error:
        where = f"{request.method} {request.target}" if request else "?"
        log(f"connection error {who} request={where!r}: {error}")
    finally:
        with contextlib.suppress(OSError):
            client.close()


def listening_socket(listen: str | None) -> socket.socket:
    """systemd's socket (LISTEN_FDS, fd 3) or, for tests, a socket bound at ``listen``."""
    if os.environ.get("LISTEN_FDS") and os.environ.get("LISTEN_PID", str(os.getpid())) == str(
        os.getpid()
    ):
        return socket.socket(fileno=3)
    if not listen:
        raise SystemExit("no socket from systemd (LISTEN_FDS) and no --listen PATH")
    if os.path.exists(listen):
        os.unlink(listen)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(listen)
    server.listen(128)
    return server


class Workers:
    """Threads that each accept a connection, serve it, and accept the next.

    Starting a thread for each connection cost more than the rest of a request (about 0.3 ms
    natively, far more under emulation), so idle workers wait in accept() and new ones start
    only when fewer than SPARE_WORKERS are idle: up to ``limit`` connections are served at
    once, and one more worker answers 503 to what comes beyond.
    """

    def __init__(self, server: socket.socket, policy: Policy, limit: int) -> None:
        self.server, self.policy, self.limit = server, policy, limit
        self.lock = threading.Lock()
        self.started = 0
        self.idle = 0

    def grow(self) -> None:
        with self.lock:
            wanted = max(0, min(SPARE_WORKERS - self.idle, self.limit + 1 - self.started))
            self.started += wanted
            self.idle += wanted
        for _ in range(wanted):
            threading.Thread(target=self.work, daemon=True).start()

    def work(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError as error:  # out of file descriptors, for one: wait and try again
                log(f"accept failed: {error}")
                time.sleep(0.5)
                continue
            with self.lock:
                self.idle -= 1
                serving = self.started - self.idle
            self.grow()
            if serving > self.limit:
                reply(client, 503, "dindkit job socket: too many connections")
                linger(client)
                with contextlib.suppress(OSError):
                    client.close()
            else:
                serve_connection(self.policy, client)
            with self.lock:
                self.idle += 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="dindkit's job socket proxy")
    parser.add_argument("--policy", required=True, help="the policy JSON file")
    parser.add_argument("--listen", help="bind this socket path instead of systemd's socket")
    parser.add_argument("--upstream", help="dockerd's socket (default: the policy's upstream)")
    args = parser.parse_args(argv)
    with open(args.policy, encoding="utf-8") as file:
        settings = json.load(file)
    policy = Policy(settings, args.upstream or settings.get("upstream", "/run/docker.sock"))
    server = listening_socket(args.listen)
    threading.stack_size(512 * 1024)
    log(
        f"jobs-proxy listening, upstream {policy.upstream}, owner label {OWNER_LABEL}="
        f"{policy.owner}"
    )
    Workers(server, policy, int(settings.get("max_connections", 128))).grow()
    threading.Event().wait()


if __name__ == "__main__":
    main()
