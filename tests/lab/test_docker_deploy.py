"""deploys/docker.py on real Debian 12 and 13 VMs (docker_source=distro, the lab default).

The session's converged VMs (``converged_vm`` in conftest.py) met deploys/docker.py over what
users have on their hosts: a `chmod 666` of the socket in /etc/rc.local and a daemon.json key
set by hand. Then: the socket is root:docker 660 after the deploy, after a restart of docker and
after a reboot (which the rootless daemon and the remapping survive too); the hack is gone with
a backup beside it; the hand-set key is kept; a second run changes nothing, does not restart
dockerd and does not refresh apt's lists. Both distributions for what depends on their Docker
and systemd; the deploy's own logic (socket group, the docker-ce repository path) on bookworm
only.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dindkit.lab.pyinfra_output import changed_operations
from dindkit.paths import inventory_file
from dindkit.runner import run_pyinfra
from tests.lab.conftest import HAND_SET_DAEMON_KEY

pytestmark = pytest.mark.lab

DISTROS = ["bookworm", "trixie"]
REPOSITORY_DEPLOY = Path(__file__).parent / "deploys/docker_ce_repository.py"
SOCKET_STAT = "stat -c '%U:%G %a' /run/docker.sock"
DOCKERD_STATE = "systemctl show -p ExecMainPID -p ActiveEnterTimestamp docker.service"
APT_LISTS_MTIME = "stat -c %Y /var/lib/apt/lists"
SECURITY_OPTIONS = "docker info --format '{{json .SecurityOptions}}'"
ROOTLESS_USER = "dindkit"  # the lab image's user, the lab inventory's docker_rootless_users
SOCKET_RESTART = "Restart docker.socket and docker.service for the new socket permissions"
BOOT_WAIT = 180  # seconds for a daemon after a boot under TCG


@pytest.fixture(scope="module", params=DISTROS)
def vm(request: pytest.FixtureRequest, converged_vm: Any) -> Any:
    return converged_vm(request.param)


@pytest.fixture(scope="module")
def bookworm(converged_vm: Any) -> Any:
    return converged_vm("bookworm")


def test_first_run_changes_things(vm: Any) -> None:
    changed = vm.docker_first_run.changed_operation_names
    assert changed
    # pyinfra prints an operation under its deploy's name ("Install Docker Engine | NAME")
    restarts = [name.rsplit(" | ", 1)[-1] for name in changed if "Restart" in name]
    if any("Install Docker Engine from" in name for name in changed):
        # Run alone, on a fresh lab: configured before the package started dockerd, no restart.
        # (In `make lab` the demo installed Docker first; test_demo.py checks that fresh install.)
        assert not restarts, changed
    else:
        # Docker was running: removing USER_STATE's rc.local hack restarts it, socket and all,
        # once (the daemon.json change rides on that restart).
        assert restarts == [SOCKET_RESTART], changed


def test_socket_is_root_docker_660(vm: Any) -> None:
    assert vm.ssh(SOCKET_STAT).stdout.strip() == "root:docker 660"


def test_legacy_hack_removed_with_backup(vm: Any) -> None:
    assert "docker.sock" not in vm.ssh("cat /etc/rc.local").stdout
    backups = vm.ssh("ls /etc/rc.local.dindkit-*.bak").stdout.split()
    assert backups, "no backup of /etc/rc.local"
    assert "chmod 666 /var/run/docker.sock" in vm.ssh(f"cat {backups[-1]}").stdout


def test_hand_set_daemon_key_kept(vm: Any) -> None:
    daemon = vm.ssh("cat /etc/docker/daemon.json").stdout
    assert f'"{HAND_SET_DAEMON_KEY}": true' in daemon and '"live-restore": true' in daemon
    assert vm.ssh("stat -c '%U:%G %a' /etc/docker/daemon.json").stdout.strip() == "root:root 644"
    assert vm.ssh("docker info --format '{{.Debug}} {{.LiveRestoreEnabled}}'").stdout.split() == [
        "true",
        "true",
    ]


def test_second_run_changes_nothing(vm: Any) -> None:
    before = vm.ssh(f"{DOCKERD_STATE}; {APT_LISTS_MTIME}").stdout
    run = vm.deploy("docker")
    assert run.changed_operations == 0, run.output[-3000:]
    assert "apt-get update" not in run.output
    assert vm.ssh(f"{DOCKERD_STATE}; {APT_LISTS_MTIME}").stdout == before, "dockerd or apt touched"


def test_socket_survives_docker_restart(vm: Any) -> None:
    vm.ssh("systemctl restart docker && docker info >/dev/null")
    assert vm.ssh(SOCKET_STAT).stdout.strip() == "root:docker 660"


def test_socket_rootless_and_remapping_survive_reboot(vm: Any) -> None:
    """The suite's one reboot per distro: the socket's permissions, the lab's rootless user's
    daemon (started at boot by linger) and the remapping all come back."""
    vm.reboot()
    # docker.socket listens from boot on; wait until docker.service answers through it.
    vm.ssh(f"timeout {BOOT_WAIT} sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done'")
    assert vm.ssh(SOCKET_STAT).stdout.strip() == "root:docker 660"
    assert "name=userns" in vm.ssh(SECURITY_OPTIONS).stdout
    uid = vm.ssh(f"id -u {ROOTLESS_USER}").stdout.strip()
    rootless = f"runuser -u {ROOTLESS_USER} -- docker -H unix:///run/user/{uid}/docker.sock"
    vm.ssh(f"timeout {BOOT_WAIT} sh -c 'until {rootless} info >/dev/null 2>&1; do sleep 2; done'")
    options = SECURITY_OPTIONS.removeprefix("docker ")
    assert "name=rootless" in vm.ssh(f"{rootless} {options}").stdout


def test_custom_group_and_gid_then_back(bookworm: Any) -> None:
    vm = bookworm
    try:
        vm.deploy("docker", {"docker_socket_group": "dood", "docker_socket_gid": 2375})
        assert vm.ssh(SOCKET_STAT).stdout.strip() == "root:dood 660"
        assert vm.ssh("getent group dood").stdout.split(":")[2] == "2375"
        # A fixed GID that the existing group does not have is refused, not renumbered.
        run = vm.deploy(
            "docker", {"docker_socket_group": "dood", "docker_socket_gid": 2376}, check=False
        )
        assert run.returncode != 0 and "does not renumber an existing group" in run.output
        assert "Traceback" not in run.output  # refused at plan time, one line
    finally:
        vm.deploy("docker")  # back to the defaults the other modules expect
    assert vm.ssh(SOCKET_STAT).stdout.strip() == "root:docker 660"


@dataclass
class LoopbackRepo:
    port: int  # the VM reaches it as http://10.0.2.2:<port>
    fingerprint: str  # of the throwaway key that signs it

    @property
    def base(self) -> str:
        return f"http://10.0.2.2:{self.port}"


def _release(suite: str, packages: bytes) -> str:
    digest = hashlib.sha256(packages).hexdigest()
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime())
    return (
        f"Origin: dindkit-test\nLabel: dindkit-test\nSuite: {suite}\nCodename: {suite}\n"
        f"Date: {date}\nArchitectures: amd64\nComponents: stable\nSHA256:\n"
        f" {digest} {len(packages)} stable/binary-amd64/Packages\n"
    )


@pytest.fixture
def loopback_repo(tmp_path: Path) -> Iterator[LoopbackRepo]:
    """A Docker-shaped apt repository (<base>/debian/gpg, dists/<suite>/InRelease, no packages)
    signed with a throwaway key, served on the host's loopback."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = [
        "gpg",
        "--batch",
        "--homedir",
        str(home),
        "--passphrase",
        "",
        "--pinentry-mode",
        "loopback",
    ]
    identity = "dindkit lab test key <lab@example.invalid>"
    subprocess.run([*gpg, "--quick-gen-key", identity, "ed25519", "sign", "never"], check=True)
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys", identity], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line[:4] == "fpr:")
    debian = tmp_path / "repo/debian"
    debian.mkdir(parents=True)
    key = subprocess.run([*gpg, "--armor", "--export", identity], check=True, capture_output=True)
    (debian / "gpg").write_bytes(key.stdout)
    for suite in DISTROS:
        dists = debian / "dists" / suite
        (dists / "stable/binary-amd64").mkdir(parents=True)
        (dists / "stable/binary-amd64/Packages").write_bytes(b"")
        (dists / "Release").write_text(_release(suite, b""))
        sign = ["--digest-algo", "SHA256", "--clearsign", "-o", str(dists / "InRelease")]
        subprocess.run([*gpg, *sign, str(dists / "Release")], check=True)
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "repo")
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield LoopbackRepo(server.server_address[1], fingerprint)
    finally:
        server.shutdown()


def run_repository_deploy(vm: Any, data: dict) -> tuple[int, str, int]:
    """tests/lab/deploys/docker_ce_repository.py: only the repository part of the deploy."""
    result = run_pyinfra(
        inventory_file("lab"), REPOSITORY_DEPLOY, data, extra=["--limit", vm.host], capture=True
    )
    output = result.stdout + result.stderr
    print(output)
    return result.returncode, output, changed_operations(output, vm.host)


def test_docker_ce_repository_from_loopback(bookworm: Any, loopback_repo: LoopbackRepo) -> None:
    """The docker-ce path's repository part against a repository signed with a throwaway key
    whose fingerprint is passed as docker_apt_key_fingerprint: key installed, sources written,
    apt accepts the signed lists; a second run changes nothing and runs no apt-get update."""
    vm = bookworm
    data = {
        "docker_source": "docker-ce",
        "docker_apt_repo_base": loopback_repo.base,
        "docker_apt_key_fingerprint": loopback_repo.fingerprint,
    }
    try:
        code, output, changed = run_repository_deploy(vm, data)
        assert code == 0, output[-3000:]
        assert changed > 0
        sources = vm.ssh("cat /etc/apt/sources.list.d/docker.sources").stdout
        assert f"URIs: {loopback_repo.base}/debian" in sources
        assert "Signed-By: /etc/apt/keyrings/docker.asc" in sources
        assert "10.0.2.2" in vm.ssh("ls /var/lib/apt/lists/").stdout  # lists fetched, verified
        code, output, changed = run_repository_deploy(vm, data)
        assert code == 0 and changed == 0, output[-3000:]
        assert "apt-get update" not in output
    finally:
        vm.ssh(
            "rm -f /etc/apt/sources.list.d/docker.sources /etc/apt/keyrings/docker.asc "
            "/var/lib/apt/lists/10.0.2.2*"
        )


def test_docker_ce_key_with_wrong_fingerprint_is_refused(
    bookworm: Any, loopback_repo: LoopbackRepo
) -> None:
    """docker_source=docker-ce against a loopback "repository" whose key is not Docker's: the
    run stops at the key, before any package is removed or any source is added."""
    vm = bookworm
    run = vm.deploy(
        "docker",
        {
            "docker_source": "docker-ce",
            "docker_apt_repo_base": loopback_repo.base,
        },
        check=False,
    )
    assert run.returncode != 0
    assert (
        "refusing the key" in run.output
        and "expected 9DC858229FC7DD38854AE2D88D81803C0EBFCD88" in run.output
    )
    left = vm.ssh(
        "ls /etc/apt/keyrings/docker.asc /etc/apt/sources.list.d/docker.sources 2>&1; "
        "dpkg-query -W -f '${Status}' docker.io",
        check=False,
    ).stdout
    assert left.count("No such file") == 2 and "install ok installed" in left, left
