"""`vagrant up` of the project's Vagrantfile on a box `dindkit lab box` builds from the lab image.

The machine's pyinfra trigger provisions it through inventories/vagrant.py as the user
``vagrant`` with sudo, offline (DINDKIT_VAGRANT_LOCAL_BOX=1: Debian's docker.io, the local smoke
image); a second ``vagrant provision`` changes nothing but the smoke run; ``vagrant destroy``
leaves no domain, volume, qemu process or network.

No bridge, no management network: libvirt's user session (``qemu:///session``) with qemu's
user-mode NIC. libvirt has no session for root (qemu:///session is the system daemon there), so
as root the test runs libvirt, Vagrant and the trigger's pyinfra as a dedicated system user
(created here, removed after), with a venv of its own (DINDKIT_VENV: the project's .venv may use
a Python that user cannot read). Everything lives in one temporary folder: the session's HOME
and runtime folder (libvirtd and virtlogd are started here: there may be no systemd to start
them), VAGRANT_HOME, the machine folder (VAGRANT_DOTFILE_PATH), the venv, and a dindkit cache
holding links to the cached lab image and smoke image. One VM, bookworm only.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dindkit.bootstrap import bootstrap
from dindkit.images import build_smoke_image, smoke_image_archive
from dindkit.lab.box import BOX_NAMES, port_variable
from dindkit.lab.image import ensure_image
from dindkit.lab.pyinfra_output import changed_operation_names
from dindkit.smoke.deploy import run_smoke_tests
from tests.checkout import CHECKOUT
from tests.lab.conftest import BACKGROUND

# Part of `make lab`, in its own pytest process that the demo's fixture starts (conftest.py's
# ``demo_run``) beside the shared VMs' modules; alone: `make lab-vagrant`.
pytestmark = [pytest.mark.lab, pytest.mark.vagrant]

DISTRO = "bookworm"
MACHINE = "debian12"
SESSION_USER = "dindkit-vagrant"
SESSION_URI = "qemu:///session"
DAEMON_TIMEOUT = 60.0
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
# Vagrant prefixes the output of a machine's triggers with its name.
TRIGGER_PREFIX = re.compile(rf"^\s*{MACHINE}: ?")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _addresses() -> str:
    return subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True, check=True).stdout


@dataclass
class Session:
    """libvirt's user session and Vagrant, run as ``user`` inside ``base``."""

    base: Path
    user: str | None
    bin: Path = Path(sys.executable).parent
    env: dict[str, str] = field(default_factory=dict)
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _as_user(self) -> dict[str, object]:
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command),
            cwd=self.base / "work",
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self._as_user(),  # type: ignore[call-overload]
        )

    def stream(self, *command: str, timeout: float = 3600) -> tuple[int, str, float]:
        """Run ``command``, echoing its output (without progress bars); (exit, output, seconds)."""
        print(f"$ {' '.join(command)}", flush=True)
        started = time.monotonic()
        lines: list[str] = []
        with subprocess.Popen(
            list(command),
            cwd=self.base / "work",
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            **self._as_user(),  # type: ignore[call-overload]
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rsplit("\r", 1)[-1]
                if "Progress:" in line:
                    continue
                sys.stdout.write(line)
                lines.append(line)
            process.wait(timeout=timeout)
        seconds = time.monotonic() - started
        print(f"({seconds:.1f} s)", flush=True)
        return process.returncode, "".join(lines), seconds

    def virsh(self, *arguments: str) -> str:
        result = self.run("virsh", "-c", SESSION_URI, *arguments, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start_daemons(self) -> None:
        socket_path = self.base / "run" / "libvirt" / "libvirt-sock"
        for daemon in ("virtlogd", "libvirtd"):
            log = (self.base / f"{daemon}.log").open("wb")
            self.daemons.append(
                subprocess.Popen(
                    [daemon],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    **self._as_user(),  # type: ignore[call-overload]
                )
            )
        deadline = time.monotonic() + DAEMON_TIMEOUT
        while not socket_path.exists():
            assert time.monotonic() < deadline, f"libvirtd made no {socket_path}"
            assert all(daemon.poll() is None for daemon in self.daemons), "a daemon exited"
            time.sleep(0.5)

    def stop_daemons(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def _session_user() -> tuple[str | None, bool]:
    """(user to run the session as, whether the test created it)."""
    if os.geteuid() != 0:
        return None, False
    try:
        pwd.getpwnam(SESSION_USER)
        return SESSION_USER, False
    except KeyError:
        pass
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SESSION_USER,
        ],
        check=True,
    )
    return SESSION_USER, True


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    image = ensure_image(DISTRO)
    archive = build_smoke_image(progress=print)
    assert archive == smoke_image_archive()
    user, created = _session_user()
    base = Path(tempfile.mkdtemp(prefix="dkv-"))  # short: UNIX socket paths live inside
    base.chmod(0o755)  # the session user reaches its folders inside
    folders = ("home", "c", "run", "vagrant.d", "dot", "cache", "work", "reports", "venv")
    for name in folders:
        (base / name).mkdir(mode=0o700 if name == "run" else 0o755)
    # The session's dindkit cache: the cached image and smoke archive, linked (no rebuild).
    for path in (image.disk, image.kernel, image.initrd):
        _link(path, base / "cache" / "images" / image.directory.name / path.name)
    _link(archive, base / "cache" / "images" / archive.name)
    if user:
        # Folders only: the linked files are the cache's own (same inode), they stay root's.
        entry = pwd.getpwnam(user)
        for path in [base / name for name in folders]:
            for each in [path, *path.rglob("*")]:
                if each.is_dir():
                    os.chown(each, entry.pw_uid, entry.pw_gid)
    env = {
        "PATH": SYSTEM_PATH if user else f"{os.environ.get('PATH', os.defpath)}:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "HOME": str(base / "home"),
        "XDG_RUNTIME_DIR": str(base / "run"),
        # libvirt's guest agent socket lives below: a UNIX socket path has 107 characters.
        "XDG_CONFIG_HOME": str(base / "c"),
        "LIBVIRT_DEFAULT_URI": SESSION_URI,
        "DINDKIT_CACHE": str(base / "cache"),
        "VAGRANT_HOME": str(base / "vagrant.d"),
        "VAGRANT_DOTFILE_PATH": str(base / "dot"),
        "VAGRANT_CWD": str(CHECKOUT),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
        "DINDKIT_VAGRANT_LOCAL_BOX": "1",
        port_variable(DISTRO): str(_free_port()),
        "DINDKIT_VAGRANT_REPORT_DIR": str(base / "reports"),
        # One mode: the trigger's smoke report proves the path; every mode runs in the demo,
        # and this VM shares the cores with both lab chains.
        "DINDKIT_PYINFRA_ARGS": "--data smoke_modes=dood",
    }
    current = Session(base, user, env=env)
    try:
        if user:
            venv = base / "venv"
            for command in (
                ["python3", "-m", "venv", str(venv)],
                [str(venv / "bin" / "pip"), "install", "-q", str(CHECKOUT)],
            ):
                result = current.run(*command, timeout=900)
                assert result.returncode == 0, result.stdout + result.stderr
            current.bin = venv / "bin"
            env["DINDKIT_VENV"] = str(venv)
        current.start_daemons()
        yield current
    finally:
        current.run("vagrant", "destroy", "-f", MACHINE, timeout=600)
        current.stop_daemons()
        shutil.rmtree(base, ignore_errors=True)
        if created:
            subprocess.run(["userdel", SESSION_USER], check=False)


def _trigger_output(output: str) -> str:
    """The output of the machine's triggers as pyinfra printed it (Vagrant's prefix removed)."""
    return "\n".join(TRIGGER_PREFIX.sub("", line) for line in output.splitlines())


def _modes(report_dir: Path) -> dict[str, dict[str, object]]:
    report = json.loads((report_dir / "report.json").read_text())
    (modes,) = (entry["modes"] for entry in report["hosts"].values())
    return dict(modes)


def _qemu_running(domain: str) -> bool:
    marker = f"guest={domain},".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


def test_box_up_provision_destroy(request: pytest.FixtureRequest) -> None:
    background = BACKGROUND.get("vagrant")
    if background is not None:  # started after the demo, in its own pytest process
        code, output = background.wait()
        print(output)
        assert code == 0, output[-6000:]
        assert " 1 passed" in output, output[-3000:]
        return
    session: Session = request.getfixturevalue("session")
    addresses_before = _addresses()
    assert session.virsh("net-list", "--all", "--name").strip() == ""

    dindkit = str(session.bin / "dindkit")
    code, output, box_seconds = session.stream(dindkit, "lab", "box", "--distro", DISTRO)
    assert code == 0, output[-3000:]
    boxes = session.run("vagrant", "box", "list", "--machine-readable").stdout
    assert f"box-name,{BOX_NAMES[DISTRO]}" in boxes and "box-provider,libvirt" in boxes

    code, output, up_seconds = session.stream("vagrant", "up", MACHINE, "--provider", "libvirt")
    assert code == 0, output[-3000:]
    pyinfra = _trigger_output(output)
    assert "dindkit bootstrap" in output and "--> Starting operation:" in pyinfra
    modes = _modes(session.base / "reports" / MACHINE)
    assert list(modes) == ["dood"] and modes["dood"]["status"] == "passed", modes
    # The smoke report trigger printed the table.
    assert re.search(rf"^{MACHINE}\s+dood\s+PASSED", pyinfra, re.MULTILINE), pyinfra[-2000:]
    # Vagrant replaced the insecure key with the machine's own.
    assert (session.base / "dot" / "machines" / MACHINE / "libvirt" / "private_key").is_file()
    (domain,) = session.virsh("list", "--name").split()
    assert _qemu_running(domain)

    code, output, provision_seconds = session.stream("vagrant", "provision", MACHINE)
    assert code == 0, output[-3000:]
    smoke = f"{bootstrap.deploy_name} | {run_smoke_tests.deploy_name} | "
    changed = changed_operation_names(_trigger_output(output), MACHINE)
    assert changed, "the smoke tests run every time: some of their operations must change"
    assert [name for name in changed if not name.startswith(smoke)] == []
    modes = _modes(session.base / "reports" / MACHINE)
    assert modes["dood"]["status"] == "passed", modes

    code, output, destroy_seconds = session.stream("vagrant", "destroy", "-f", MACHINE)
    assert code == 0, output[-3000:]
    assert session.virsh("list", "--all", "--name").strip() == ""
    assert not _qemu_running(domain)
    # Only the box's base image stays in the pool (vagrant-libvirt keeps it for the next
    # machine); the machine's own disk is gone. Remove the base image too: nothing is left.
    volumes = session.virsh("vol-list", "default").split()
    machine_volumes = [name for name in volumes if name.endswith(".img") and "/" not in name]
    box_prefix = BOX_NAMES[DISTRO].replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_"
    assert [name for name in machine_volumes if not name.startswith(box_prefix)] == []
    for name in machine_volumes:
        session.virsh("vol-delete", "--pool", "default", name)
    assert session.virsh("vol-list", "default", "--details").count(".img") == 0
    assert session.virsh("net-list", "--all", "--name").strip() == ""
    assert _addresses() == addresses_before, "a network interface or address appeared"
    print(
        f"box build + add {box_seconds:.0f} s, vagrant up {up_seconds:.0f} s, "
        f"provision {provision_seconds:.0f} s, destroy {destroy_seconds:.0f} s"
    )
