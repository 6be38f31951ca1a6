"""The Vagrantfile is valid, and inventories/vagrant.py reads `vagrant ssh-config` right.

`make test` installs vagrant and vagrant-libvirt (scripts/install-host-packages), so a missing
vagrant is a failure, not a skip. Validation needs no network: no box, no plugin install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from dindkit.vagrant import groups, hosts_from_ssh_config, running_machines, wanted_machines

ROOT = Path(__file__).resolve().parents[2]

VAGRANT_ENV = {
    **os.environ,
    # Never phone home (Debian's vagrant has no checkpoint gem; other builds do).
    "VAGRANT_CHECKPOINT_DISABLE": "1",
    "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
    "DINDKIT_PROVISION": "1",
}


def test_vagrant_validate() -> None:
    vagrant = shutil.which("vagrant")
    assert vagrant, "vagrant is not installed: run ./scripts/install-host-packages"
    result = subprocess.run(
        [vagrant, "validate"],
        cwd=ROOT,
        env=VAGRANT_ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_vagrantfile_machines() -> None:
    text = (ROOT / "Vagrantfile").read_text()
    for name in ("debian12", "debian13", "ubuntu2204", "ubuntu2404"):
        assert f'"{name}" =>' in text, name
    assert 'synced_folder ".", "/vagrant", disabled: true' in text


STATUS = """\
1700000000,debian12,metadata,provider,libvirt
1700000000,debian12,state,running
1700000000,debian13,state,shutoff
1700000000,ubuntu2404,state,running
1700000000,,ui,info,Current machine states:
"""

SSH_CONFIG = """\
Host debian12
  HostName 192.168.121.10
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /work/.vagrant/machines/debian12/libvirt/private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host ubuntu2404
  HostName 192.168.121.11
  User vagrant
  Port 22
  IdentityFile "/home/me/my repo/.vagrant/machines/ubuntu2404/libvirt/private_key"
"""


def test_running_machines() -> None:
    assert running_machines(STATUS) == ["debian12", "ubuntu2404"]


def test_hosts_from_ssh_config() -> None:
    hosts = dict(hosts_from_ssh_config(SSH_CONFIG))
    assert hosts["debian12"] == {
        "ssh_hostname": "192.168.121.10",
        "ssh_port": 22,
        "ssh_user": "vagrant",
        "ssh_key": "/work/.vagrant/machines/debian12/libvirt/private_key",
        "ssh_strict_host_key_checking": "off",
        "ssh_known_hosts_file": "/dev/null",
        "_sudo": True,
    }
    assert hosts["ubuntu2404"]["ssh_key"] == (
        "/home/me/my repo/.vagrant/machines/ubuntu2404/libvirt/private_key"
    )


def test_groups_by_distribution() -> None:
    grouped = groups([("debian12", {}), ("ubuntu2404", {})])
    assert grouped == {"debian": ["debian12"], "ubuntu": ["ubuntu2404"]}


def test_wanted_machines_from_environment() -> None:
    assert wanted_machines(["debian12", "ubuntu2404"], "") == ["debian12", "ubuntu2404"]
    assert wanted_machines(["debian12", "ubuntu2404"], "ubuntu2404, debian13") == ["ubuntu2404"]
