"""A stand-in dockerd on a unix socket that records what reaches it, and a proxy runner.

The proxy under test is the real program (dindkit/jobs_proxy.py, the file the guard deploy
uploads), started as a process of its own in front of this stand-in.
"""

from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dindkit.jobs_proxy

PROXY_PROGRAM = Path(dindkit.jobs_proxy.__file__)
OWNER = {"dindkit.guard.owner": "jobs"}
# Containers the stand-in knows: reference -> (full ID, labels).
CONTAINERS = {
    "mine": ("a" * 64, OWNER),
    "theirs": ("b" * 64, {}),
}
EXECS = {"e-mine": "mine", "e-theirs": "theirs"}
SAVED_IMAGE = bytes(range(256)) * 4096 + b"tail."  # 1 MiB and 5 bytes
RAW_STREAM = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    body_size: int = 0
    connection: int = 0  # which connection to the stand-in carried it (1, 2, ...)


@dataclass
class StandIn:
    path: str
    seen: list[Seen] = field(default_factory=list)
    release_logs: threading.Event = field(default_factory=threading.Event)
    # Close a kept connection on its next request without answering, as dockerd may close an
    # idle one just as the proxy sends on it (once per set).
    drop_next_kept: threading.Event = field(default_factory=threading.Event)
    # Answer a blank line on a kept connection's next request, then close (once per set).
    blank_next_kept: threading.Event = field(default_factory=threading.Event)
    connections: int = 0

    def requests(self, lookups: bool = False) -> list[Seen]:
        """What reached dockerd; without the proxy's own ownership questions unless asked."""
        return [
            each
            for each in self.seen
            if lookups or not (each.method == "GET" and is_lookup(each.target))
        ]


def is_lookup(target: str) -> bool:
    return bool(
        re.fullmatch(
            r"/(containers/[^/]+/json|exec/[^/]+/json|volumes/[^/?]+|networks/[^/?]+)", target
        )
    )


def _read_line(stream: Any) -> bytes:
    return bytes(stream.readline(65537))


def _read_body(stream: Any, headers: dict[str, str], keep: bool) -> tuple[bytes, int]:
    """The body (kept up to 1 MiB) and its size."""
    kept = bytearray()
    size = 0

    def take(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if keep and len(kept) < 1 << 20:
            kept.extend(data)

    if "content-length" in headers:
        left = int(headers["content-length"])
        while left:
            data = stream.read1(min(left, 1 << 16))
            if not data:
                break
            take(data)
            left -= len(data)
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            length = int(_read_line(stream).split(b";")[0], 16)
            if length == 0:
                _read_line(stream)
                break
            left = length
            while left:
                data = stream.read1(min(left, 1 << 16))
                take(data)
                left -= len(data)
            _read_line(stream)
    return bytes(kept), size


def _respond(wfile: Any, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    wfile.write(
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        "\r\n\r\n".encode()
        + body
    )


class _Handler(socketserver.StreamRequestHandler):
    """Answers requests in turn on a connection, as dockerd does, until one asks to close or
    turns the connection into a raw stream."""

    server: Any

    def handle(self) -> None:
        stand_in: StandIn = self.server.stand_in
        with self.server.lock:
            stand_in.connections += 1
            self.number = stand_in.connections
        first = True
        while self.handle_one(first):
            first = False

    def handle_one(self, first: bool) -> bool:
        line = _read_line(self.rfile)
        if not line:
            return False
        stand_in: StandIn = self.server.stand_in
        if not first and stand_in.drop_next_kept.is_set():
            stand_in.drop_next_kept.clear()
            return False
        if not first and stand_in.blank_next_kept.is_set():
            stand_in.blank_next_kept.clear()
            self.wfile.write(b"\r\n")
            return False
        method, target, version = line.decode().strip().split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = _read_line(self.rfile)
            if header in (b"\r\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        path = re.sub(r"^/v[0-9.]+", "", target.split("?")[0])
        body, size = _read_body(self.rfile, headers, keep=path != "/build")
        stand_in.seen.append(Seen(method, target, headers, body, size, self.number))
        raw = self.answer(method, path, target, body, size)
        self.wfile.flush()
        return not raw and version == "HTTP/1.1" and headers.get("connection") != "close"

    def answer(self, method: str, path: str, target: str, body: bytes, size: int) -> bool:
        """Write the answer; True when it became a raw stream (the connection ends with it)."""
        wfile = self.wfile
        parts = path.strip("/").split("/")
        if path == "/_ping":
            wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nApi-Version: 1.41\r\n\r\n")
            if method != "HEAD":
                wfile.write(b"OK")
        elif parts[0] == "containers" and len(parts) == 3 and parts[2] == "json":
            found = CONTAINERS.get(parts[1]) or next(
                (each for each in CONTAINERS.values() if each[0] == parts[1]), None
            )
            if found:
                _respond(wfile, 200, {"Id": found[0], "Config": {"Labels": found[1]}})
            else:
                _respond(wfile, 404, {"message": f"No such container: {parts[1]}"})
        elif parts[0] == "exec" and parts[-1] == "json":
            if parts[1] in EXECS:
                _respond(wfile, 200, {"ContainerID": CONTAINERS[EXECS[parts[1]]][0]})
            else:
                _respond(wfile, 404, {"message": "No such exec instance"})
        elif parts[0] in ("volumes", "networks") and len(parts) == 2 and method == "GET":
            _respond(wfile, 404, {"message": f"no such {parts[0][:-1]}"})
        elif path == "/build":
            wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            wfile.write(b"Transfer-Encoding: chunked\r\n\r\n")
            for line in (b'{"stream":"Step 1/1"}\n', f'{{"size":{size}}}\n'.encode()):
                wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                wfile.flush()
            wfile.write(b"0\r\n\r\n")
        elif parts[0] == "images" and parts[-1] == "get":  # docker save: a large chunked answer
            wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\n")
            wfile.write(b"Transfer-Encoding: chunked\r\n\r\n")
            for piece in (SAVED_IMAGE[:-5], SAVED_IMAGE[-5:]):
                wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            wfile.write(b"0\r\n\r\n")
        elif parts[-1] == "logs":
            wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
            wfile.write(b"Transfer-Encoding: chunked\r\n\r\nc\r\nfirst line\r\n\r\n")
            wfile.flush()
            self.server.stand_in.release_logs.wait(10)
            wfile.write(b"d\r\nsecond line\r\n\r\n0\r\n\r\n")
        elif parts[-1] in ("attach", "start") and parts[0] in ("containers", "exec"):
            if method == "POST" and parts[-1] == "start" and parts[0] == "containers":
                wfile.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                return False
            wfile.write(RAW_STREAM)
            wfile.flush()
            while True:
                data = self.rfile.read1(65536)
                if not data:
                    break
                wfile.write(data.upper())
                wfile.flush()
            wfile.write(b"[stdin closed]")
            return True
        elif path == "/containers/create":
            _respond(wfile, 201, {"Id": "c" * 64, "Warnings": []})
        else:
            _respond(wfile, 200, {"path": path, "size": size})
        return False


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@dataclass
class Running:
    stand_in: StandIn
    socket_path: str
    process: subprocess.Popen[bytes]
    log_path: str

    def log(self) -> str:
        return Path(self.log_path).read_text()


def short_dir() -> str:
    return tempfile.mkdtemp(prefix="guard-", dir="/tmp")


def start_stand_in(folder: str) -> tuple[StandIn, _Server]:
    stand_in = StandIn(os.path.join(folder, "docker.sock"))
    server = _Server(stand_in.path, _Handler)
    server.stand_in = stand_in  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return stand_in, server


def start_proxy(folder: str, stand_in: StandIn, policy: dict[str, Any]) -> Running:
    policy_path = os.path.join(folder, "policy.json")
    Path(policy_path).write_text(json.dumps({"upstream": stand_in.path, **policy}))
    socket_path = os.path.join(folder, "jobs.sock")
    log_path = os.path.join(folder, "proxy.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                str(PROXY_PROGRAM),
                "--policy",
                policy_path,
                "--listen",
                socket_path,
            ],
            stderr=log,
        )
    deadline = time.monotonic() + 10
    while not os.path.exists(socket_path):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the proxy did not start: {Path(log_path).read_text()}")
        time.sleep(0.02)
    return Running(stand_in, socket_path, process, log_path)


def exchange(socket_path: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the proxy closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(socket_path)
        client.sendall(data)
        received = bytearray()
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                received.extend(chunk)
        except TimeoutError:
            pass
        return bytes(received)


def request(
    method: str,
    path: str,
    payload: Any = None,
    headers: dict[str, str] | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    lines = [f"{method} {path} {version}", "Host: docker", "Connection: close"]
    if payload is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else 0


def message_of(response: bytes) -> str:
    body = response.split(b"\r\n\r\n", 1)[1]
    return str(json.loads(body)["message"])
