"""deploys/docker.py on real Debian 12 and 13 VMs (docker_source=distro, the lab default).

Before the deploy the module plants what users have on their hosts: a `chmod 666` of the socket
in /etc/rc.local (also applied now, in case Docker is already there) and a daemon.json key set
by hand. Then: the socket is root:docker 660 after the deploy, after a restart of docker and
after a reboot; the hack is gone with a backup beside it; the hand-set key is kept; a second run
changes nothing, does not restart dockerd and does not refresh apt's lists.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

DISTROS = ["bookworm", "trixie"]
HAND_KEY = "debug"
RC_LOCAL = (
    "#!/bin/sh -e\n# added by hand, following old advice\nchmod 666 /var/run/docker.sock\nexit 0\n"
)
PLANT = f"""
set -e
printf '%s' '{RC_LOCAL}' > /etc/rc.local
chmod +x /etc/rc.local
if [ -S /run/docker.sock ]; then chmod 666 /run/docker.sock; fi
mkdir -p /etc/docker
python3 - <<'PY'
import json, os
path = "/etc/docker/daemon.json"
current = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {{}}
current["{HAND_KEY}"] = True
json.dump(current, open(path, "w"))
PY
"""
SOCKET_STAT = "stat -c '%U:%G %a' /run/docker.sock"
DOCKERD_STATE = "systemctl show -p ExecMainPID -p ActiveEnterTimestamp docker.service"
APT_LISTS_MTIME = "stat -c %Y /var/lib/apt/lists"


@dataclass
class Converged:
    vm: object
    first_changed: int


@pytest.fixture(scope="module", params=DISTROS)
def converged(request: pytest.FixtureRequest, lab_vms) -> Converged:
    vm = lab_vms(request.param)
    vm.ssh(PLANT)
    run = vm.deploy("docker")
    return Converged(vm, run.changed_operations)


def test_first_run_changes_things(converged: Converged) -> None:
    assert converged.first_changed > 0


def test_socket_is_root_docker_660(converged: Converged) -> None:
    assert converged.vm.ssh(SOCKET_STAT).stdout.strip() == "root:docker 660"


def test_legacy_hack_removed_with_backup(converged: Converged) -> None:
    vm = converged.vm
    assert "docker.sock" not in vm.ssh("cat /etc/rc.local").stdout
    backups = vm.ssh("ls /etc/rc.local.dindkit-*.bak").stdout.split()
    assert backups, "no backup of /etc/rc.local"
    assert "chmod 666 /var/run/docker.sock" in vm.ssh(f"cat {backups[-1]}").stdout


def test_hand_set_daemon_key_kept(converged: Converged) -> None:
    vm = converged.vm
    daemon = vm.ssh("cat /etc/docker/daemon.json").stdout
    assert f'"{HAND_KEY}": true' in daemon and '"live-restore": true' in daemon
    assert vm.ssh("stat -c '%U:%G %a' /etc/docker/daemon.json").stdout.strip() == "root:root 644"
    assert vm.ssh("docker info --format '{{.Debug}} {{.LiveRestoreEnabled}}'").stdout.split() == [
        "true",
        "true",
    ]


def test_second_run_changes_nothing(converged: Converged) -> None:
    vm = converged.vm
    before = vm.ssh(f"{DOCKERD_STATE}; {APT_LISTS_MTIME}").stdout
    run = vm.deploy("docker")
    assert run.changed_operations == 0, run.output[-3000:]
    assert "apt-get update" not in run.output
    assert vm.ssh(f"{DOCKERD_STATE}; {APT_LISTS_MTIME}").stdout == before, "dockerd or apt touched"


def test_socket_survives_docker_restart(converged: Converged) -> None:
    vm = converged.vm
    vm.ssh("systemctl restart docker && docker info >/dev/null")
    assert vm.ssh(SOCKET_STAT).stdout.strip() == "root:docker 660"


def test_socket_survives_reboot(converged: Converged) -> None:
    vm = converged.vm
    vm.reboot()
    # docker.socket listens from boot on; wait until docker.service answers through it.
    vm.ssh("timeout 120 sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done'")
    assert vm.ssh(SOCKET_STAT).stdout.strip() == "root:docker 660"


def test_custom_group_and_gid_then_back(converged: Converged) -> None:
    vm = converged.vm
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


@pytest.fixture
def throwaway_key_server(tmp_path: Path) -> Iterator[int]:
    """Serves <port>/debian/gpg, a throwaway key, on the host's loopback (10.0.2.2 in a VM)."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--passphrase", ""]
    identity = "dindkit lab test key <lab@example.invalid>"
    subprocess.run([*gpg, "--quick-gen-key", identity, "ed25519", "sign", "never"], check=True)
    key = subprocess.run([*gpg, "--armor", "--export", identity], check=True, capture_output=True)
    (tmp_path / "repo/debian").mkdir(parents=True)
    (tmp_path / "repo/debian/gpg").write_bytes(key.stdout)
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "repo")
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_docker_ce_key_with_wrong_fingerprint_is_refused(
    converged: Converged, throwaway_key_server: int
) -> None:
    """docker_source=docker-ce against a loopback "repository" whose key is not Docker's: the
    run stops at the key, before any package is removed or any source is added."""
    vm = converged.vm
    run = vm.deploy(
        "docker",
        {
            "docker_source": "docker-ce",
            "docker_apt_repo_base": f"http://10.0.2.2:{throwaway_key_server}",
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
