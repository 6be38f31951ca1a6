"""The Vagrantfile is valid, and inventories/vagrant.py reads `vagrant ssh-config` right.

`make test` installs vagrant and vagrant-libvirt (scripts/install-host-packages), so a missing
vagrant is a failure, not a skip. Validation needs no network: no box, no plugin install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import dindkit.vagrant
from dindkit.images import smoke_image_archive
from dindkit.lab.box import (
    CMDLINE,
    INSECURE_PUBLIC_KEY,
    SSH_PORTS,
    added_recipe,
    box_files,
    box_for,
    debugfs_commands,
    debugfs_errors,
    guest_files,
    guest_mode,
)
from dindkit.lab.box import recipe as box_recipe
from dindkit.lab.image import Image
from dindkit.report import HostResult, ModeResult, write_host
from dindkit.vagrant import (
    groups,
    hosts_from_ssh_config,
    inventory,
    report_table,
    running_machines,
    vagrant_error,
    wanted_machines,
)
from tests import shellcheck
from tests.checkout import CHECKOUT, project_file

VAGRANT_ENV = {
    **os.environ,
    # Never phone home (Debian's vagrant has no checkpoint gem; other builds do).
    "VAGRANT_CHECKPOINT_DISABLE": "1",
    "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
    "DINDKIT_PROVISION": "1",
}


def _validate(env: dict[str, str]) -> None:
    vagrant = shutil.which("vagrant")
    assert vagrant, "vagrant is not installed: run ./scripts/install-host-packages"
    result = subprocess.run(
        [vagrant, "validate"],
        cwd=CHECKOUT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_vagrant_validate() -> None:
    _validate(VAGRANT_ENV)


def test_vagrantfile_machines() -> None:
    text = project_file("Vagrantfile").read_text()
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


# The local box path (DINDKIT_VAGRANT_LOCAL_BOX=1, boxes from `dindkit lab box`) ------------


def test_vagrant_validate_with_local_boxes() -> None:
    local = {"DINDKIT_VAGRANT_LOCAL_BOX": "1", "DINDKIT_PYINFRA_ARGS": "--data smoke_modes=dood"}
    _validate({**VAGRANT_ENV, **local})


def test_box_metadata_is_what_vagrant_libvirt_reads() -> None:
    files = box_files("bookworm")
    assert set(files) == {"metadata.json", "Vagrantfile"}
    assert json.loads(files["metadata.json"]) == {
        "provider": "libvirt",
        "format": "qcow2",
        "virtual_size": 12,
    }


def test_box_vagrantfile_runs_without_a_bridge() -> None:
    text = box_files("trixie")["Vagrantfile"]
    for needed in (
        "libvirt.qemu_use_session = true",
        'libvirt.system_uri = "qemu:///session"',
        "libvirt.mgmt_attach = false",
        'ENV.fetch("DINDKIT_VAGRANT_DRIVER", "qemu")',
        '"user,id=dindkit0,hostfwd=tcp:127.0.0.1:#{ssh_port}-:22"',
        '"virtio-net-pci,netdev=dindkit0,addr=0x10"',
        'config.ssh.host = "127.0.0.1"',
        f'ENV.fetch("DINDKIT_VAGRANT_DEBIAN13_SSH_PORT", "{SSH_PORTS["trixie"]}")',
        f'libvirt.cmd_line = "{CMDLINE}"',
    ):
        assert needed in text, needed
    assert "{{" not in text


def test_project_vagrantfile_keeps_no_libvirt_workarounds() -> None:
    text = project_file("Vagrantfile").read_text()
    for workaround in ("mgmt_attach", "qemuargs", "get_ipaddress", "qemu_use_session"):
        assert workaround not in text, workaround
    assert "config.ssh.insert_key = true" in text


def test_guest_files_make_the_vagrant_user() -> None:
    files = guest_files()
    assert set(files) == {
        "/etc/sudoers.d/vagrant",
        "/etc/systemd/system/dindkit-vagrant-init.service",
        "/usr/local/sbin/dindkit-vagrant-init",
    }
    assert "vagrant ALL=(ALL) NOPASSWD: ALL" in files["/etc/sudoers.d/vagrant"]
    assert INSECURE_PUBLIC_KEY in files["/usr/local/sbin/dindkit-vagrant-init"]
    assert guest_mode("/etc/sudoers.d/vagrant") == 0o440
    assert guest_mode("/usr/local/sbin/dindkit-vagrant-init") == 0o755
    assert guest_mode("/etc/systemd/system/dindkit-vagrant-init.service") == 0o644


def test_guest_init_script_is_shellcheck_clean(tmp_path: Path) -> None:
    script = tmp_path / "dindkit-vagrant-init"
    script.write_text(guest_files()["/usr/local/sbin/dindkit-vagrant-init"])
    assert shellcheck.defects(script) == []


def test_insecure_key_is_vagrants_own() -> None:
    shipped = Path("/usr/share/rubygems-integration/all/gems")
    keys = sorted(shipped.glob("vagrant-*/keys/vagrant.pub"))
    if not keys:
        pytest.skip("Debian's vagrant package is not installed")
    assert keys[-1].read_text().strip() == INSECURE_PUBLIC_KEY


def test_debugfs_commands(tmp_path: Path) -> None:
    files = {"/usr/local/sbin/x": "", "/etc/sudoers.d/vagrant": ""}
    assert debugfs_commands(tmp_path, files).splitlines() == [
        f"write {tmp_path}/usr/local/sbin/x /usr/local/sbin/x",
        "set_inode_field /usr/local/sbin/x mode 0100755",
        f"write {tmp_path}/etc/sudoers.d/vagrant /etc/sudoers.d/vagrant",
        "set_inode_field /etc/sudoers.d/vagrant mode 0100440",
        "symlink /etc/systemd/system/multi-user.target.wants/dindkit-vagrant-init.service "
        "/etc/systemd/system/dindkit-vagrant-init.service",
    ]


def test_debugfs_errors_skip_its_banner() -> None:
    stderr = "debugfs 1.47.0 (5-Feb-2023)\nwrite: Ext2 file already exists \n"
    assert debugfs_errors(stderr) == ["write: Ext2 file already exists "]
    assert debugfs_errors("debugfs 1.47.0 (5-Feb-2023)\n") == []


def test_box_cache_follows_the_image_recipe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DINDKIT_CACHE", str(tmp_path))
    box = box_for("bookworm")
    assert box.directory.parent == tmp_path / "boxes"
    assert box.file.name == "debian12.box" and box.name == "dindkit/debian12"
    monkeypatch.setattr(
        "dindkit.lab.box.image_for", lambda distro: Image(distro, tmp_path / "other-image")
    )
    assert box_for("bookworm").directory != box.directory


def test_unknown_distro_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown distro 'sid': choose one of bookworm, trixie"):
        box_recipe("sid")


def test_added_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAGRANT_HOME", str(tmp_path))
    assert added_recipe("dindkit/debian12") is None
    folder = tmp_path / "boxes" / "dindkit-VAGRANTSLASH-debian12" / "0" / "libvirt"
    folder.mkdir(parents=True)
    (folder / "dindkit-box.json").write_text('{"distro": "bookworm", "recipe": "bookworm-1"}')
    assert added_recipe("dindkit/debian12") == "bookworm-1"


def test_offline_inventory_data(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"status": STATUS, "ssh-config": SSH_CONFIG}
    monkeypatch.setattr("dindkit.vagrant._vagrant", lambda *arguments, cwd: answers[arguments[0]])
    plain = dict(inventory(CHECKOUT))
    assert "docker_source" not in plain["debian12"]
    data = dict(inventory(CHECKOUT, "debian12", offline=True))["debian12"]
    assert data["docker_source"] == "distro" and data["sysbox_offline"] is True
    assert data["bootstrap_time_sync"] is False
    assert data["smoke_image_archive"] == str(smoke_image_archive())
    assert data["_sudo"] is True


def test_report_table(tmp_path: Path) -> None:
    assert report_table(tmp_path) == f"No smoke report in {tmp_path}."
    write_host(tmp_path, "run1", "debian12", HostResult({"dood": ModeResult("passed", "ok", 1.0)}))
    table = report_table(tmp_path)
    assert table.splitlines()[1].split()[:3] == ["debian12", "dood", "PASSED"]


LOCKED_MACHINE_READABLE = (
    "1765000000,,ui,error,Vagrant can't use the requested machine because it is locked!\n"
    "1765000000,,error-exit,Vagrant::Errors::MachineLocked,Vagrant can't use the requested "
    "machine because it is locked! This\\nmeans that another Vagrant process is currently "
    "reading or modifying%!(VAGRANT_COMMA) the machine.\n"
)
STATUS_RUNNING = "1765000000,debian12,state,running\n"


def fake_vagrant(folder: Path, failures: int) -> Path:
    """A `vagrant` that fails ``failures`` times as a locked machine does with --machine-readable
    (the error on standard output, nothing on standard error), then answers a running machine."""
    script = folder / "vagrant"
    script.write_text(
        "#!/bin/sh\n"
        f"count=$(cat {folder}/calls 2>/dev/null || echo 0)\n"
        f"echo $((count + 1)) > {folder}/calls\n"
        f'if [ "$count" -lt {failures} ]; then\n'
        f"  printf '%s' \"$(cat {folder}/locked)\"; exit 1\n"
        "fi\n"
        f"cat {folder}/status\n"
    )
    script.chmod(0o755)
    (folder / "locked").write_text(LOCKED_MACHINE_READABLE)
    (folder / "status").write_text(STATUS_RUNNING)
    return folder


def test_a_failed_read_is_tried_again_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_vagrant(tmp_path, failures=2)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(dindkit.vagrant, "READ_PAUSE", 0.0)
    assert dindkit.vagrant._vagrant("status", "--machine-readable", cwd=tmp_path) == STATUS_RUNNING
    assert (tmp_path / "calls").read_text().strip() == "3"
    waited = capsys.readouterr().err
    assert waited.count("vagrant status failed (Vagrant can't use the requested machine") == 2


def test_a_read_that_keeps_failing_names_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_vagrant(tmp_path, failures=100)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(dindkit.vagrant, "READ_PAUSE", 0.0)
    monkeypatch.setattr(dindkit.vagrant, "READ_RETRIES", 3)
    with pytest.raises(RuntimeError) as error:
        dindkit.vagrant._vagrant("status", "--machine-readable", cwd=tmp_path)
    assert "failed 3 times" in str(error.value)
    assert "reading or modifying, the machine" in str(error.value)
    assert "This\nmeans" in str(error.value)


def test_vagrant_error_prefers_standard_error() -> None:
    assert vagrant_error(LOCKED_MACHINE_READABLE, "boom\n") == "boom"
    assert vagrant_error("", "") == "(it printed nothing)"
    assert vagrant_error("plain output\n", "") == "plain output"
