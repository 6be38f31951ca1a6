"""Values reach the target's shell as data, never as code.

Hostile strings (command substitution, backticks, `;`, quotes, a newline, globs) go into every
string that a setting feeds into a command, bypassing validation where it would refuse them
(validation is one wall, quoting the other). The commands the operations and facts produce run
in a real /bin/sh with stand-ins for the programs they call; each stand-in records its
arguments. The value must arrive as one intact argument, and no command in it may have run.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.context import ctx_host, ctx_state

from dindkit.facts.docker import AptKeyFingerprints, GroupEntry
from dindkit.facts.rootless import Account, RootlessDockerd
from dindkit.operations import apt as apt_ops
from dindkit.operations import docker as docker_ops
from dindkit.operations import rootless as rootless_ops
from dindkit.operations import sysbox as sysbox_ops
from dindkit.settings.smoke import SMOKE_MODES
from dindkit.smoke.modes import build_mode
from dindkit.smoke.modes.common import Context
from tests.unit.test_fixtures import FakeHost, FakeState, command_as_json

# Every kind of shell syntax; relative `touch pwned`, so any folder the command is in can show it.
HOSTILE = (
    "a $(touch pwned) `touch pwned`; touch pwned && touch pwned ' \" \n | & < > * ? ~ {x} \\ z"
)
HOSTILE_URL = "https://mirror.example/$(touch pwned)/`touch pwned`;touch pwned'\"\n z"
STAND_INS = (
    *("curl", "gpg", "install", "groupadd", "gpasswd", "usermod", "loginctl", "runuser"),
    *("systemctl", "docker", "getent", "sha256sum"),
)


@pytest.fixture
def sandbox() -> Iterator[Path]:
    """A short scratch folder (unix socket paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="dk-") as folder:
        yield Path(folder)


def stand_ins(sandbox: Path) -> tuple[Path, Path]:
    """A bin folder of recording stand-ins and the log they append to (JSON lines)."""
    bin_dir, log = sandbox / "bin", sandbox / "calls.jsonl"
    bin_dir.mkdir(exist_ok=True)
    for name in STAND_INS:
        path = bin_dir / name
        path.write_text(
            f"#!{sys.executable}\n"
            "import json, os, sys\n"
            f"with open({str(log)!r}, 'a') as log:\n"
            "    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + '\\n')\n"
        )
        path.chmod(0o755)
    return bin_dir, log


def run_in_sh(command: str, sandbox: Path, cwd: Path | None = None) -> tuple[list[list[str]], str]:
    """Run ``command`` in /bin/sh with the stand-ins first on PATH: their calls and stderr."""
    bin_dir, log = stand_ins(sandbox)
    work = cwd or sandbox / "work"
    work.mkdir(exist_ok=True)
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=work,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(sandbox)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    pwned = sorted(str(path) for path in sandbox.rglob("pwned"))
    assert not pwned, f"a command inside a value ran: {pwned}\n{command}"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return calls, result.stderr


def called_with(calls: list[list[str]], program: str, value: str) -> bool:
    return any(call[0] == program and value in call[1:] for call in calls)


def op_commands(op: Any, facts: dict[str, Any], **kwargs: Any) -> list[str]:
    state = FakeState()
    host = FakeHost(facts, {}, state)
    with ctx_state.use(state), ctx_host.use(host):
        return [command_as_json(command) for command in op._inner(**kwargs)]


# --- operations -------------------------------------------------------------------------------


def test_repository_url_and_fingerprint_reach_the_key_check_as_data(sandbox: Path) -> None:
    """The URL used to sit in a double-quoted echo of the refusal message."""
    dest = str(sandbox / "keyrings" / "docker.asc")
    command = docker_ops.apt_key_command(HOSTILE_URL, HOSTILE, dest)
    calls, stderr = run_in_sh(command, sandbox)
    assert called_with(calls, "curl", HOSTILE_URL)
    assert f"refusing the key from {HOSTILE_URL}: its fingerprint is '', expected {HOSTILE}" in (
        stderr
    )


def test_socket_group_and_users_reach_groupadd_and_gpasswd_as_data(sandbox: Path) -> None:
    commands = op_commands(
        docker_ops.socket_group,
        {"dindkit.facts.docker.GroupEntry": {f"group={HOSTILE}": None}},
        group=HOSTILE,
        gid=2375,
    )
    commands += op_commands(
        docker_ops.group_members,
        {
            "server.Users": {HOSTILE: {"groups": []}},
            "dindkit.facts.docker.GroupEntry": {f"group={HOSTILE}": None},
        },
        group=HOSTILE,
        users=[HOSTILE],
    )
    assert shlex.split(commands[0]) == ["groupadd", "--system", "--gid", "2375", HOSTILE]
    calls, _ = run_in_sh("; ".join(commands), sandbox)
    assert called_with(calls, "groupadd", HOSTILE)
    assert ["gpasswd", "--add", HOSTILE, HOSTILE] in calls


def test_rootless_user_reaches_usermod_and_loginctl_as_data(sandbox: Path) -> None:
    commands = op_commands(
        rootless_ops.subordinate_ids,
        {"dindkit.facts.rootless.SubordinateIds": {"/etc/subuid": [], "/etc/subgid": []}},
        user=HOSTILE,
        uid=1000,
    )
    commands += op_commands(
        rootless_ops.linger,
        {"files.File": {f"path={rootless_ops.LINGER_DIR}/{HOSTILE}": None}},
        user=HOSTILE,
    )
    calls, _ = run_in_sh("; ".join(commands), sandbox)
    assert calls[0][0] == "usermod" and calls[0][-1] == HOSTILE
    assert ["loginctl", "enable-linger", HOSTILE] in calls


def test_rootless_user_and_home_reach_the_user_dockerd_script_as_data(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole script runs: the user's systemd socket is there, the stand-ins answer."""
    runtime = sandbox / "rt"
    (runtime / "systemd").mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(runtime / "systemd" / "private"))
    home = sandbox / f"home {HOSTILE.replace('/', '')}"
    home.mkdir()
    monkeypatch.setattr(rootless_ops, "runtime_dir", lambda uid: str(runtime))
    monkeypatch.setattr(rootless_ops, "user_socket", lambda uid: f"{runtime}/docker.sock")
    try:
        commands = op_commands(
            rootless_ops.user_dockerd,
            {
                "dindkit.facts.rootless.RootlessDockerd": {
                    f"home={home},uid=1000,user={HOSTILE}": RootlessDockerd.default()
                }
            },
            user=HOSTILE,
            uid=1000,
            home=str(home),
            wait_seconds=2,
        )
        calls, stderr = run_in_sh(commands[0], sandbox)
    finally:
        listener.close()
    runuser = [call for call in calls if call[0] == "runuser"]
    assert runuser and all(call[1:4] == ["-u", HOSTILE, "--"] for call in runuser), stderr
    assert all(f"HOME={home}" in call for call in runuser)
    assert ["-H", f"unix://{runtime}/docker.sock", "info"] == runuser[-1][-3:]


def test_sysbox_package_url_path_and_checksum_reach_curl_and_the_check_as_data(
    sandbox: Path,
) -> None:
    path = str(sandbox / f"dl {HOSTILE.replace('/', '')}" / "sysbox.deb")
    download = op_commands(sysbox_ops.package_downloaded, {}, url=HOSTILE_URL, path=path)
    verify = op_commands(
        sysbox_ops.package_verified, {}, path=path, sha256=HOSTILE, source=HOSTILE_URL
    )
    calls, stderr = run_in_sh(download[0], sandbox)
    assert called_with(calls, "curl", HOSTILE_URL) and called_with(calls, "curl", path + ".part")
    assert f"could not download the Sysbox package from {HOSTILE_URL}" in stderr
    calls, stderr = run_in_sh(verify[0], sandbox)
    assert called_with(calls, "sha256sum", path)
    assert f"sha256 mismatch for the Sysbox package from {HOSTILE_URL}: expected {HOSTILE}" in (
        stderr
    )


def test_package_names_and_pins_are_one_argument_each_in_apt_steps() -> None:
    step = apt_ops.run_step("install", "--no-install-recommends", HOSTILE, f"docker-ce={HOSTILE}")
    assert shlex.split(step) == ["run", "install", "--no-install-recommends", HOSTILE,
                                 f"docker-ce={HOSTILE}"]  # fmt: skip


# --- facts with arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fact", "kwargs", "program"),
    [
        (Account, {"user": HOSTILE}, "getent"),
        (GroupEntry, {"group": HOSTILE}, "getent"),
        (RootlessDockerd, {"user": HOSTILE, "uid": 1000, "home": "/home/x"}, "runuser"),
    ],
    ids=["Account", "GroupEntry", "RootlessDockerd"],
)
def test_fact_arguments_reach_the_shell_as_data(
    fact: Any, kwargs: dict[str, Any], program: str, sandbox: Path
) -> None:
    calls, _ = run_in_sh(fact().command(**kwargs), sandbox)
    assert called_with(calls, program, HOSTILE), calls


def test_key_file_path_reaches_gpg_as_data(sandbox: Path) -> None:
    path = sandbox / f"key {HOSTILE.replace('/', '')}.asc"
    path.write_text("key")
    calls, _ = run_in_sh(AptKeyFingerprints().command(path=str(path)), sandbox)
    assert called_with(calls, "gpg", str(path))


# --- the smoke modes' values ------------------------------------------------------------------


def first_word(text: str) -> str:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    return lexer.get_token() or ""


@pytest.mark.parametrize("name", SMOKE_MODES)
def test_smoke_mode_values_are_one_word_each(name: str) -> None:
    """Settings that reach a mode script (socket group, rootless user, images) are assigned as
    one shell word each: what the variable holds is the value, nothing runs."""
    ctx = Context(
        run_id="0123abcd",
        cli_image=HOSTILE,
        dind_image=HOSTILE,
        images={"podman": HOSTILE, "rootless-client": HOSTILE},
        options={"socket_group": HOSTILE, "rootless_user": HOSTILE},
    )
    mode = build_mode(name, ctx)
    from dindkit.smoke.modes.common import script

    text = script(mode, ctx)
    checked = 0
    for key, value in mode.values.items():
        if not isinstance(value, str) or HOSTILE not in value:
            continue
        start = text.index(f"\n{key}=") + 1
        assert first_word(text[start:]) == f"{key}={value}"
        checked += 1
    assert checked or not any(HOSTILE in str(value) for value in mode.values.values())


def test_the_sandbox_catches_an_unquoted_value(sandbox: Path) -> None:
    """The check can fail: the same value pasted unquoted does run a command."""
    with pytest.raises(AssertionError, match="a command inside a value ran"):
        run_in_sh("getent passwd a $(touch pwned)", sandbox)
