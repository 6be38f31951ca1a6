"""The local registry and its mirror from deploys/registry.py on Debian 12 (a lab VM).

On the session's converged bookworm VM: the registry with the mirror on, the mirror's upstream
being the registry itself (no public registry is reachable). A push without the credential is
refused with 401; the CI flow script (build, login, push, remove, pull, digest, run, cleanup)
passes on the host's dockerd through the host's name, which dockerd reaches only with the CA it
trusts in /etc/docker/certs.d (no insecure-registries); a dind container given the CA pulls from
the registry through the bridge gateway, and through the mirror, which pulls from the read-only
instance on 127.0.0.1 (docs/registry.md: docker-registry 2.8's proxy sends no credential to an
htpasswd upstream); that instance listens on the loopback only and takes no push; a rerun
changes nothing; after a reboot the registry serves what was pushed before.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from dindkit import ci_flow
from dindkit.images import image_tag, smoke_image_archive
from tests.lab.conftest import LabVM

# Opt-in (make lab-extra), not yet in make lab: see docs/development.md.
pytestmark = [pytest.mark.lab, pytest.mark.extra]

DATA = {
    "registry_enabled": True,
    "registry_mirror_enabled": True,
    "registry_mirror_upstream": "https://127.0.0.1:5000",
}
CA = "/etc/dindkit/registry/ca/ca.crt"
CREDENTIALS = ". /etc/dindkit/registry/private/credentials"
MIRROR_REPOSITORIES = "/var/lib/docker-registry-mirror/docker/registry/v2/repositories"
# A base image of one static busybox, from the podman image's archive: small to push and pull.
BASE_IMAGE = "dindkit-ci-base:1"
DIND = "registry-test-dind"


def _upload(vm: LabVM, local: Path, remote: str) -> None:
    with local.open("rb") as source:
        command = vm.lab.ssh_command(f"cat > {shlex.quote(remote)}")
        subprocess.run(command, stdin=source, check=True, timeout=600)


@pytest.fixture(scope="module")
def registry_vm(converged_vm) -> LabVM:
    vm: LabVM = converged_vm("bookworm")
    vm.registry_first_run = vm.deploy("registry", DATA)  # type: ignore[attr-defined]
    # The tiny base image: busybox from the podman image's archive.
    podman = next(smoke_image_archive().parent.glob("dindkit-podman-*.tar.gz"))
    if vm.ssh(f"docker image inspect {BASE_IMAGE} >/dev/null 2>&1", check=False).returncode:
        _upload(vm, podman, "/root/podman.tar.gz")
        vm.ssh(
            "set -e; rm -rf /root/ci-base; mkdir -p /root/ci-base/bin /root/ci-base/tmp;"
            " tar -xzf /root/podman.tar.gz -C /root/ci-base ./usr/bin/busybox;"
            " mv /root/ci-base/usr/bin/busybox /root/ci-base/bin/; rm -rf /root/ci-base/usr;"
            " for c in sh cat echo sha256sum; do ln -sf busybox /root/ci-base/bin/$c; done;"
            f" tar -C /root/ci-base -c . | docker import - {BASE_IMAGE} >/dev/null;"
            " rm -f /root/podman.tar.gz"
        )
    return vm


def test_a_push_without_the_credential_is_refused(registry_vm: LabVM) -> None:
    vm = registry_vm
    code = vm.ssh(
        f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {CA} -X POST"
        " https://$(hostname):5000/v2/dindkit/anonymous/blobs/uploads/"
    ).stdout
    assert code == "401"
    push = vm.ssh(
        f"docker tag {BASE_IMAGE} $(hostname):5000/dindkit/anonymous:1 &&"
        " docker --config /tmp/no-login push $(hostname):5000/dindkit/anonymous:1",
        check=False,
    )
    assert push.returncode != 0
    assert "no basic auth credentials" in push.stdout + push.stderr


def test_ci_flow_on_the_host_daemon_trusts_the_ca(registry_vm: LabVM) -> None:
    vm = registry_vm
    insecure = json.loads(vm.ssh("docker info --format '{{json .RegistryConfig}}'").stdout)
    # Only Docker's built-in 127.0.0.0/8: the host's name is checked against the CA.
    assert insecure["InsecureRegistryCIDRs"] == ["127.0.0.0/8"]
    hostname = vm.ssh("hostname").stdout.strip()
    script = ci_flow.script(f"{hostname}:5000", BASE_IMAGE)
    result = vm.ssh(f"CI_DELETE=1 sh -c {shlex.quote(script)}", check=False)
    steps = ci_flow.steps(result.stdout)
    passed = [step for step, (status, _) in steps.items() if status == "passed"]
    assert passed == list(ci_flow.STEPS), result.stdout + result.stderr
    assert result.stdout.count(ci_flow.MARK) == len(ci_flow.STEPS)


def test_a_nested_daemon_pulls_from_the_registry_and_the_mirror(registry_vm: LabVM) -> None:
    vm = registry_vm
    smoke_tag = image_tag(smoke_image_archive())
    if vm.ssh(f"docker image inspect {smoke_tag} >/dev/null 2>&1", check=False).returncode:
        _upload(vm, smoke_image_archive(), "/root/smoke.tar.gz")
        vm.ssh(
            "gzip -dc /root/smoke.tar.gz | docker import"
            " --change 'ENTRYPOINT [\"/usr/local/bin/dockerd-entrypoint.sh\"]' --change 'CMD []'"
            " --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'"
            f" - {smoke_tag} >/dev/null && rm -f /root/smoke.tar.gz",
            timeout=900,
        )
    # An image in the registry for the nested daemon to pull, by the bridge gateway's address.
    vm.ssh(
        f'{CREDENTIALS}; printf \'%s\' "$password" | docker login -u "$username"'
        " --password-stdin 172.17.0.1:5000 >/dev/null"
        f" && docker tag {BASE_IMAGE} 172.17.0.1:5000/dindkit/nested:1"
        " && docker push 172.17.0.1:5000/dindkit/nested:1 >/dev/null"
        " && docker image rm 172.17.0.1:5000/dindkit/nested:1 >/dev/null"
        " && docker logout 172.17.0.1:5000 >/dev/null"
    )
    # --mount: a -v target may not hold a colon (HOST:PORT).
    certs = " ".join(
        f"--mount type=bind,source={CA},target=/etc/docker/certs.d/172.17.0.1:{port}/ca.crt,"
        "readonly"
        for port in (5000, 5001)
    )
    vm.ssh(f"docker rm -f {DIND} >/dev/null 2>&1 || true")
    try:
        vm.ssh(
            f"docker run -d --name {DIND} --privileged --userns=host {certs}"
            f" -v /etc/dindkit/registry/private/credentials:/run/credentials:ro {smoke_tag}"
        )
        vm.ssh(
            f"i=0; until docker exec {DIND} docker info >/dev/null 2>&1; do i=$((i + 1));"
            " [ $i -lt 90 ] || exit 1; sleep 1; done"
        )
        inner = (
            '. /run/credentials; printf \'%s\' "$password" | docker login -u "$username"'
            " --password-stdin 172.17.0.1:5000 && docker pull 172.17.0.1:5000/dindkit/nested:1"
        )
        pulled = vm.ssh(f"docker exec {DIND} sh -c {shlex.quote(inner)}", check=False)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        MIRROR_PULL.append(
            vm.ssh(f"docker exec {DIND} docker pull 172.17.0.1:5001/dindkit/nested:1", check=False)
        )
    finally:
        vm.ssh(f"docker rm -f -v {DIND} >/dev/null 2>&1 || true")


MIRROR_PULL: list[subprocess.CompletedProcess[str]] = []


def test_the_mirror_serves_the_nested_pull(registry_vm: LabVM) -> None:
    assert MIRROR_PULL, "the nested daemon's test did not get to the mirror"
    pulled = MIRROR_PULL[0]
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    # The mirror keeps what it pulled: the proof that the pull came through it.
    assert "nested" in registry_vm.ssh(f"ls {MIRROR_REPOSITORIES}/dindkit").stdout.split()


def test_the_read_only_instance_is_loopback_only_and_takes_no_push(registry_vm: LabVM) -> None:
    vm = registry_vm
    listening = vm.ssh("ss -Hltn 'sport = :5002'").stdout.split()
    assert "127.0.0.1:5002" in listening and not any(
        address.endswith(":5002") and not address.startswith("127.0.0.1:") for address in listening
    ), listening
    answer = vm.ssh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5002/v2/").stdout
    assert answer == "200", answer  # no auth: the mirror's upstream
    code = vm.ssh(
        "curl -s -o /dev/null -w '%{http_code}' -X POST"
        " http://127.0.0.1:5002/v2/dindkit/anonymous/blobs/uploads/"
    ).stdout
    assert code != "202" and code.startswith(("4", "5")), code
    assert vm.ssh("! test -e /etc/dindkit/registry/private/mirror-upstream.env").returncode == 0


def test_a_rerun_changes_nothing(registry_vm: LabVM) -> None:
    assert registry_vm.deploy("registry", DATA).changed_operations == 0


def test_the_registry_keeps_its_images_over_a_reboot(registry_vm: LabVM) -> None:
    vm = registry_vm
    vm.reboot()
    vm.ssh(
        f"i=0; until [ \"$(curl -s -o /dev/null -w '%{{http_code}}' --cacert {CA}"
        ' https://127.0.0.1:5000/v2/)" = 401 ]; do i=$((i + 1)); [ $i -lt 120 ] || exit 1;'
        " sleep 1; done"
    )
    tags = vm.ssh(
        f'{CREDENTIALS}; printf \'user = "%s:%s"\\n\' "$username" "$password" |'
        f" curl -fsS -K - --cacert {CA} https://127.0.0.1:5000/v2/dindkit/nested/tags/list"
    ).stdout
    assert json.loads(tags)["tags"] == ["1"]
    assert registry_vm.deploy("registry", DATA).changed_operations == 0
