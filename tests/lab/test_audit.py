"""Audit rules on Docker's files (docker_audit, CIS Docker Benchmark 1.1.3-1.1.18) on Debian 12
and 13, on the session's converged VMs: the paths differ between docker.io versions (dockerd
and runc in /usr/sbin or /usr/bin, units in /lib or /usr/lib) and so does auditd (3.0 / 4.0).

A user's own rules file is planted first (conftest.py's ``USER_STATE``) and must stay loaded
throughout. What an auditor needs is recorded (daemon.json, docker.service, the dockerd binary,
files directly under /var/lib/docker); writes to image layers are not (the never rules before
the tree watch on /var/lib/docker). The module ends with the defaults (audit on) so later
modules find a converged VM.
Bookworm only: the refused bad setting (it does not differ between distributions).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.lab.conftest import USER_AUDIT_RULE, USER_AUDIT_RULES_FILE

pytestmark = pytest.mark.lab

KEY = "dindkit-docker"
RULES_FILE = "/etc/audit/rules.d/dindkit-docker.rules"
TMPFILES = "/etc/tmpfiles.d/dindkit-audit.conf"
DAEMON_JSON = "/etc/docker/daemon.json"
# The user's own rules file, planted before the converged VM's deploy (conftest.USER_STATE).
USER_RULES_FILE, USER_RULE = USER_AUDIT_RULES_FILE, USER_AUDIT_RULE
# What the watches must be, computed here independently of dindkit's fact: CIS 1.1.3-1.1.18.
EXPECTED_PATHS = r"""
for name in dockerd containerd containerd-shim containerd-shim-runc-v1 containerd-shim-runc-v2 runc
do for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin
   do [ -L "$dir" ] || [ ! -e "$dir/$name" ] || { echo "$dir/$name"; readlink -f "$dir/$name"; }
   done
done
systemctl show -P FragmentPath docker.service docker.socket
for path in /run/containerd /var/lib/docker /etc/docker /run/containerd/containerd.sock \
    /etc/default/docker /etc/docker/daemon.json /etc/containerd/config.toml /etc/sysconfig/docker
do [ ! -e "$path" ] || echo "$path"; done
"""
# The directories of layer and volume data that must not be recorded, under Docker's root and
# each userns-remap root (the lab remaps: /var/lib/docker/165536.165536). Not tmp: dockerd
# replaces it at every start and the kernel drops a rule whose directory is gone.
EXPECTED_EXCLUSIONS = r"""
for root in /var/lib/docker /var/lib/docker/[0-9]*.[0-9]*; do
  for name in overlay2 fuse-overlayfs vfs btrfs zfs containerd buildkit volumes; do
    [ ! -d "$root/$name" ] || echo "$root/$name"
  done
done
"""


def dindkit_rules(vm: Any) -> list[str]:
    return [line for line in vm.ssh("auditctl -l").stdout.splitlines() if f"-k {KEY}" in line]


def never_rules(vm: Any) -> list[str]:
    return [line for line in vm.ssh("auditctl -l").stdout.splitlines() if f"key={KEY}" in line]


def search(vm: Any, arguments: str, wait: float = 30) -> Any:
    """ausearch for dindkit's key and ``arguments``, retried until found or ``wait`` s passed."""
    # --input-logs: without a terminal, ausearch would read stdin instead of the log.
    command = f"ausearch --input-logs -i -k {KEY} -ts recent {arguments}"
    deadline = time.monotonic() + wait
    while True:
        found = vm.ssh(command, check=False)
        if found.returncode == 0 or time.monotonic() > deadline:
            return found
        time.sleep(1)


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def vm(request: pytest.FixtureRequest, converged_vm: Any) -> Any:
    return converged_vm(request.param)


def test_every_existing_docker_path_is_watched(vm: Any) -> None:
    expected = set(vm.ssh(EXPECTED_PATHS).stdout.split())
    for must in ("/run/containerd", "/run/containerd/containerd.sock", "/var/lib/docker"):
        assert must in expected  # present on both distributions after the install
    rules = dindkit_rules(vm)
    print(f"auditctl -l on {vm.host}:\n" + vm.ssh("auditctl -l").stdout)
    assert sorted(rules) == sorted(f"-w {path} -p wa -k {KEY}" for path in expected)
    assert USER_RULE in vm.ssh("auditctl -l").stdout.splitlines()
    # /run/containerd exists at boot before auditd loads the rules (else they stop loading).
    assert "d /run/containerd 0711 root root -" in vm.ssh(f"cat {TMPFILES}").stdout
    assert vm.ssh(f"stat -c '%U:%G %a' {RULES_FILE}").stdout.strip() == "root:root 640"


def test_layer_data_is_excluded_before_the_tree_watch(vm: Any) -> None:
    excluded = vm.ssh(EXPECTED_EXCLUSIONS).stdout.split()
    root = vm.ssh("docker info --format '{{.DockerRootDir}}'").stdout.strip()
    assert f"{root}/overlay2" in excluded  # the remapped root's layers too
    loaded = vm.ssh("auditctl -l").stdout.splitlines()
    never = never_rules(vm)
    assert never == [f"-a never,exit -S all -F dir={path} -F key={KEY}" for path in excluded]
    # The kernel takes the first matching rule of the exit list: the never rules come first.
    tree_watch = loaded.index(f"-w /var/lib/docker -p wa -k {KEY}")
    assert all(loaded.index(rule) < tree_watch for rule in never)
    status = dict(line.split()[:2] for line in vm.ssh("auditctl -s").stdout.splitlines())
    assert (status["backlog_limit"], status["backlog_wait_time"]) == ("16384", "0")


def test_what_an_auditor_needs_is_recorded_and_layer_writes_are_not(vm: Any) -> None:
    """A docker.service change, a replaced dockerd and a file written directly under
    /var/lib/docker are found; a file written inside overlay2, before them, is not."""
    root = vm.ssh("docker info --format '{{.DockerRootDir}}'").stdout.strip()
    stamp = vm.ssh("date +%s%N").stdout.strip()
    in_layers = f"{root}/overlay2/dindkit-audit-{stamp}"
    direct = f"/var/lib/docker/dindkit-audit-{stamp}"
    dockerd = vm.ssh('readlink -f "$(command -v dockerd)"').stdout.strip()
    unit = vm.ssh("systemctl show -P FragmentPath docker.service").stdout.strip()
    vm.ssh(
        f"echo probe | dd of={in_layers} status=none && echo probe | dd of={direct} status=none"
        f" && touch {unit}"
        f" && cp -p {dockerd} {dockerd}.dindkit-audit && mv {dockerd}.dindkit-audit {dockerd}"
    )
    try:
        for path, program in ((direct, "dd"), (unit, "touch"), (dockerd, "mv")):
            found = search(vm, f"-f {path} -x /usr/bin/{program}")
            assert found.returncode == 0, (path, found.stdout + found.stderr)
            assert f"key={KEY}" in found.stdout
        # Written before the file directly under /var/lib/docker, which auditd has logged.
        assert search(vm, f"-f {in_layers}", wait=0).returncode != 0
    finally:
        vm.ssh(f"rm -f {in_layers} {direct}")


def test_write_to_daemon_json_is_in_the_audit_log(vm: Any) -> None:
    # Rewrite daemon.json with its own content through dd (an executable nothing else uses here).
    vm.ssh(
        "cp /etc/docker/daemon.json /tmp/daemon.json.copy && "
        "dd if=/tmp/daemon.json.copy of=/etc/docker/daemon.json status=none"
    )
    # --input-logs: without a terminal, ausearch would read stdin instead of the log.
    search = f"ausearch --input-logs -i -k {KEY} -f {DAEMON_JSON} -x /usr/bin/dd -ts recent"
    deadline = time.monotonic() + 30
    while True:
        found = vm.ssh(search, check=False)
        if found.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert found.returncode == 0, found.stdout + found.stderr
    assert f"key={KEY}" in found.stdout and "name=/etc/docker/daemon.json" in found.stdout


def test_rerun_changes_nothing_and_loads_nothing(vm: Any) -> None:
    run = vm.deploy("docker")
    assert run.changed_operations == 0, run.changed_operation_names


def test_audit_off_removes_rules_and_keeps_the_users(vm: Any) -> None:
    user_file = vm.ssh(f"sha256sum {USER_RULES_FILE}").stdout
    try:
        vm.deploy("docker", {"docker_audit": False})
        assert dindkit_rules(vm) == []
        assert USER_RULE in vm.ssh("auditctl -l").stdout.splitlines()
        gone = vm.ssh(f"ls {RULES_FILE} {TMPFILES} 2>&1", check=False).stdout
        assert gone.count("No such file") == 2, gone
        assert vm.ssh(f"sha256sum {USER_RULES_FILE}").stdout == user_file
        assert vm.deploy("docker", {"docker_audit": False}).changed_operations == 0
    finally:
        vm.deploy("docker")  # back to the defaults the other modules expect
    assert len(dindkit_rules(vm)) > 10
    assert USER_RULE in vm.ssh("auditctl -l").stdout.splitlines()


def test_bad_rules_file_is_refused_before_the_host_is_touched(vm: Any) -> None:
    if vm.distro != "bookworm":
        pytest.skip("plan-time validation does not differ between distributions")
    before = vm.ssh("ls -l --time-style=full-iso /etc/audit/rules.d /etc/docker").stdout
    run = vm.deploy("docker", {"docker_audit_rules_file": "/etc/audit/dindkit.rules"}, check=False)
    assert run.returncode != 0
    assert "Invalid setting docker_audit_rules_file='/etc/audit/dindkit.rules'" in run.output
    assert "Traceback" not in run.output  # refused at plan time, in one line
    assert vm.ssh("ls -l --time-style=full-iso /etc/audit/rules.d /etc/docker").stdout == before
