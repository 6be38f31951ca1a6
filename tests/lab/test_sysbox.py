"""Sysbox on a bookworm lab VM: preflight, offline refusal, checksum refusal, coexistence, doctor.

No real Sysbox package is reachable here. The download path is exercised against files served
on the host's loopback (the guest sees it as 10.0.2.2): a wrong checksum must be refused, and a
stand-in ``sysbox-ce`` .deb (built with dpkg-deb: three sleeping services, a ``sysbox-runc``
that execs runc, and a postinst that registers the runtime in daemon.json like the real one)
drives install, verification, a no-change rerun and removal.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dindkit.paths import inventory_file
from dindkit.sysbox import SYSBOX_DAEMON_ENTRIES

pytestmark = pytest.mark.lab

WRONG_SHA = "deadbeef" * 8
DINDKIT = str(Path(sys.executable).parent / "dindkit")
UNITS = ("sysbox-mgr", "sysbox-fs", "sysbox")
POSTINST = """#!/bin/sh
set -e
[ "$1" = configure ] || exit 0
systemctl daemon-reload
systemctl enable --now sysbox-mgr.service sysbox-fs.service sysbox.service
f=/etc/docker/daemon.json
[ -s "$f" ] || echo '{}' > "$f"
jq '.runtimes["sysbox-runc"] = {"path": "/usr/bin/sysbox-runc"}
    | .bip //= "172.20.0.1/16"
    | ."default-address-pools" //= [{"base": "172.25.0.0/16", "size": 24}]' "$f" > "$f.new"
mv "$f.new" "$f"
systemctl restart docker.service
"""
PRERM = """#!/bin/sh
systemctl disable --now sysbox.service sysbox-fs.service sysbox-mgr.service || true
"""


def _stand_in_deb(directory: Path) -> Path:
    root = directory / "stand-in"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: sysbox-ce\nVersion: 0.6.7-0.linux\nArchitecture: amd64\n"
        "Maintainer: dindkit tests <tests@example.invalid>\nDepends: jq\n"
        "Description: dindkit lab stand-in for sysbox-ce (not Sysbox)\n"
    )
    for name, text in (("postinst", POSTINST), ("prerm", PRERM)):
        script = root / "DEBIAN" / name
        script.write_text(text)
        script.chmod(0o755)
    units = root / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in UNITS:
        (units / f"{unit}.service").write_text(
            f"[Unit]\nDescription=stand-in {unit}\n[Service]\nExecStart=/bin/sleep infinity\n"
            "[Install]\nWantedBy=multi-user.target\n"
        )
    runc = root / "usr" / "bin" / "sysbox-runc"
    runc.parent.mkdir(parents=True)
    runc.write_text('#!/bin/sh\nexec runc "$@"\n')
    runc.chmod(0o755)
    deb = directory / "sysbox-ce-stand-in.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True)
    return deb


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL as the guest sees it, directory) of an HTTP server on 127.0.0.1."""
    directory = tmp_path_factory.mktemp("sysbox-served")
    (directory / "not-sysbox.deb").write_bytes(b"this is not a Debian package\n")
    _stand_in_deb(directory)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://10.0.2.2:{server.server_address[1]}", directory
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def vm(converged_vm):  # type: ignore[no-untyped-def]
    return converged_vm("bookworm")


def _daemon_json(vm) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(vm.ssh("cat /etc/docker/daemon.json").stdout)


def _dockerd_pid(vm) -> str:  # type: ignore[no-untyped-def]
    return vm.ssh("systemctl show -p MainPID --value docker.service").stdout.strip()


def test_preflight_passes(vm) -> None:  # type: ignore[no-untyped-def]
    run = vm.deploy("sysbox", data={"sysbox_preflight_only": True})
    assert "PASS  systemd: systemd is PID 1" in run.output
    assert "FAIL" not in run.output
    assert run.changed_operations == 0


def test_offline_without_source_stops_before_anything(vm) -> None:  # type: ignore[no-untyped-def]
    run = vm.deploy("sysbox", check=False)
    assert run.returncode != 0
    assert "no Sysbox package source is available offline: set sysbox_package_file" in run.output
    assert "Starting operation" not in run.output  # stopped before Docker's deploy


def test_wrong_checksum_is_refused(vm, served) -> None:  # type: ignore[no-untyped-def]
    base, _ = served
    run = vm.deploy(
        "sysbox",
        data={
            "sysbox_package_url": f"{base}/not-sysbox.deb",
            "sysbox_package_sha256": WRONG_SHA,
        },
        check=False,
    )
    assert run.returncode != 0
    assert f"sha256 mismatch for the Sysbox package from {base}/not-sysbox.deb" in run.output
    assert "refusing to install it" in run.output
    assert vm.ssh("dpkg-query -W sysbox-ce", check=False).returncode != 0
    assert vm.ssh("ls /var/tmp/dindkit").stdout.strip() == ""
    assert vm.ssh("systemctl is-active docker.service").stdout.strip() == "active"
    vm.ssh("docker info >/dev/null")


def test_docker_deploy_keeps_sysbox_daemon_keys(vm) -> None:  # type: ignore[no-untyped-def]
    planted = {**_daemon_json(vm), **SYSBOX_DAEMON_ENTRIES}
    vm.ssh(f"cat > /etc/docker/daemon.json <<'EOF'\n{json.dumps(planted, indent=4)}\nEOF")
    pid = _dockerd_pid(vm)
    first = vm.deploy("docker")
    second = vm.deploy("docker")
    assert _daemon_json(vm) == planted
    assert first.changed_operations == 0 and second.changed_operations == 0
    assert _dockerd_pid(vm) == pid
    # Leave the VM as the docker deploy alone would.
    for key in SYSBOX_DAEMON_ENTRIES:
        planted.pop(key)
    vm.ssh(f"cat > /etc/docker/daemon.json <<'EOF'\n{json.dumps(planted, indent=4)}\nEOF")


def test_stand_in_install_rerun_and_removal(vm, served) -> None:  # type: ignore[no-untyped-def]
    base, directory = served
    deb = directory / "sysbox-ce-stand-in.deb"
    data = {
        "sysbox_package_url": f"{base}/{deb.name}",
        "sysbox_package_sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
    }
    vm.deploy("sysbox", data=data)
    assert "sysbox-runc" in vm.ssh("docker info --format '{{json .Runtimes}}'").stdout
    pid = _dockerd_pid(vm)
    rerun = vm.deploy("sysbox", data=data)
    assert rerun.changed_operations == 0
    assert _dockerd_pid(vm) == pid

    # The user's own key survives removal; Sysbox's entries go.
    current = _daemon_json(vm)
    current["runtimes"]["crun"] = {"path": "/usr/bin/crun"}
    vm.ssh(f"cat > /etc/docker/daemon.json <<'EOF'\n{json.dumps(current, indent=4)}\nEOF")
    vm.deploy("sysbox", data={**data, "sysbox_state": "absent"})
    after = _daemon_json(vm)
    assert after["runtimes"] == {"crun": {"path": "/usr/bin/crun"}}
    assert "bip" not in after and "default-address-pools" not in after
    assert vm.ssh("dpkg-query -W sysbox-ce", check=False).returncode != 0
    assert vm.deploy("sysbox", data={**data, "sysbox_state": "absent"}).changed_operations == 0
    after.pop("runtimes")
    vm.ssh(f"cat > /etc/docker/daemon.json <<'EOF'\n{json.dumps(after, indent=4)}\nEOF")
    vm.ssh("systemctl restart docker.service && docker info >/dev/null")


def test_doctor_prints_every_field(vm) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [DINDKIT, "doctor", str(inventory_file("lab")), "--limit", vm.host, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    (report,) = json.loads(result.stdout)
    assert report["distribution"] == "Debian 12"
    assert report["cgroup"] == 2
    assert report["iptables"] == "nf_tables"
    assert report["docker_source"] == "distro"
    assert report["docker_version"].startswith("20.10")
    assert report["storage_driver"] == "overlay2"
    assert "runc" in report["runtimes"]
    assert report["socket"]["owner"] == "root" and report["socket"]["mode"] == "0660"
    assert report["sysbox_ready"] is True
    assert report["legacy_socket_hacks"] == []
    table = subprocess.run(
        [DINDKIT, "doctor", str(inventory_file("lab")), "--limit", vm.host],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for label in ("Distribution", "Kernel", "cgroup version", "iptables backend", "Docker version",
                  "Docker source", "Storage driver", "Runtimes", "Socket owner:group mode",
                  "chmod-666 leftovers", "Sysbox preflight"):  # fmt: skip
        assert label in table
    assert "unknown" not in table


def test_preflight_passes_on_trixie(lab_vms) -> None:  # type: ignore[no-untyped-def]
    # Read-only: the trixie VM is shared with the other modules, nothing is installed here.
    trixie = lab_vms("trixie")
    run = trixie.deploy("sysbox", data={"sysbox_preflight_only": True})
    assert "PASS  distribution: Debian 13 has a Sysbox package" in run.output
    assert "FAIL" not in run.output
