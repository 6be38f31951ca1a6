#!/usr/bin/env python3
"""A stand-in docker (or podman) CLI for the CI flow script's unit tests.

It keeps images, the login and the "registry" in FAKE_CLIENT_STATE (a folder) and behaves as
the real clients do for the commands the flow uses. FAKE_CLIENT_FAULT makes it misbehave:
``wrong-digest`` (the pull brings another manifest), ``no-cache`` (every build is a new image),
``push`` (the push fails), ``run`` (the image prints something else).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_CLIENT_STATE"])
FAULT = os.environ.get("FAKE_CLIENT_FAULT", "")
PASSWORD = "s3cret"


def load() -> dict:
    path = STATE / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"images": {}, "registry": {}}


def save(state: dict) -> None:
    (STATE / "state.json").write_text(json.dumps(state))


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def main(argv: list[str]) -> int:
    args = [arg for arg in argv if not arg.startswith(("--cert-dir=", "--storage-driver="))]
    state = load()
    images, registry = state["images"], state["registry"]
    if args[:2] == ["image", "inspect"]:
        image = images.get(args[-1])
        if image is None:
            print(f"Error: No such image: {args[-1]}", file=sys.stderr)
            return 1
        fmt = option(args, "--format")
        print(image["id"] if ".Id" in fmt else "\n".join(image["digests"]))
        return 0
    if args[0] == "build":
        value = next(arg for arg in args if arg.startswith("CI_VALUE=")).removeprefix("CI_VALUE=")
        context = Path(args[-1])
        digest = hashlib.sha256((context / "Dockerfile").read_bytes())
        digest.update((context / "payload.bin").read_bytes() + value.encode())
        if FAULT == "no-cache":
            digest.update(os.urandom(8))
        images[option(args, "-t")] = {
            "id": "sha256:" + digest.hexdigest(),
            "value": value,
            "digests": [],
        }
        save(state)
        print(images[option(args, "-t")]["id"])
        return 0
    if args[0] == "login":
        if sys.stdin.read() != PASSWORD:
            print("unauthorized: incorrect username or password", file=sys.stderr)
            return 1
        (STATE / "logged-in").write_text("yes")
        print("Login Succeeded")
        return 0
    if args[0] == "logout":
        (STATE / "logged-in").unlink(missing_ok=True)
        return 0
    if args[0] == "push":
        name = args[-1]
        if FAULT == "push" or not (STATE / "logged-in").exists():
            print("no basic auth credentials", file=sys.stderr)
            return 1
        digest = "sha256:" + hashlib.sha256(images[name]["id"].encode()).hexdigest()
        registry[name] = {**images[name], "digest": digest}
        save(state)
        if "--digestfile" in args:
            Path(option(args, "--digestfile")).write_text(digest)
        else:
            print(f"{name.rsplit(':', 1)[1]}: digest: {digest} size: 1234")
        return 0
    if args[:2] == ["image", "rm"]:
        if images.pop(args[-1], None) is None:
            return 1
        save(state)
        return 0
    if args[0] == "pull":
        name = args[-1]
        pushed = registry[name]
        digest = pushed["digest"] if FAULT != "wrong-digest" else "sha256:" + "0" * 64
        images[name] = {**pushed, "digests": [f"{name.rsplit(':', 1)[0]}@{digest}"]}
        save(state)
        print(f"Digest: {digest}")
        return 0
    if args[0] == "run":
        print("something else" if FAULT == "run" else images[args[-1]]["value"])
        return 0
    print(f"fake client: unknown command {args}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
