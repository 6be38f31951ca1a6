"""The unprivileged smoke modes on lab VMs provisioned by the Docker deploy (the lab inventory
gives a rootless user and turns userns-remap on): rootless, userns and podman pass, and so do
dood and dind beside them (with --userns=host). The escalation checks can fail: the rootless
one pointed at the host's root socket, the userns uid_map one on a privileged container
(trixie only: what they show does not differ between distributions, and the trixie VM's
chain of tests, run beside the bookworm VM's, is the shorter one; see conftest.py).

The passing run of every mode is in test_smoke.py (one smoke run per distribution).
"""

from __future__ import annotations

from typing import Any

import pytest

from dindkit.images import image_tag, smoke_image_archive
from dindkit.smoke import modes
from dindkit.smoke.modes import userns

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module", params=["trixie"])
def vm(converged_vm: Any, request: pytest.FixtureRequest) -> Any:
    return converged_vm(request.param)


def run_mode(vm: Any, mode: modes.Mode, ctx: modes.Context) -> dict[str, modes.CheckResult]:
    """Run a mode's script on the VM directly (as the smoke deploy does) and parse it."""
    result = vm.ssh(f"sh -c {modes.q(modes.script(mode, ctx))}", check=False, timeout=900)
    print(result.stdout, result.stderr)
    return {check.name: check for check in modes.parse_output(mode, result.stdout).checks}


def lab_context(run_id: str, **fields: Any) -> modes.Context:
    tag = image_tag(smoke_image_archive())
    return modes.Context(run_id=run_id, cli_image=tag, dind_image=tag, timeout=180, **fields)


def test_rootless_escalation_check_reports_the_host_root_socket(vm: Any) -> None:
    ctx = lab_context(
        "neg0root", options={"rootless_user": "root", "rootless_socket": "/var/run/docker.sock"}
    )
    checks = run_mode(vm, modes.build_mode("rootless", ctx), ctx)
    escalation = checks["no-escalation"]
    assert escalation.status == "failed", escalation
    assert escalation.detail.startswith("FAIL: escalation: a --privileged -v /:/host container")
    assert "read /etc/shadow" in escalation.detail and "wrote to /root" in escalation.detail
    assert checks["cleanup"].status == "passed", checks["cleanup"]
    vm.ssh("! ls /root/.dindkit-smoke-neg0root-rootless")


def test_userns_uid_map_check_fails_on_a_privileged_container(vm: Any) -> None:
    ctx = lab_context("neg0priv")
    mode = userns.build(ctx, daemon_flags="--privileged --userns=host")
    checks = run_mode(vm, mode, ctx)
    assert checks["daemon-ready-tls"].status == "passed", checks["daemon-ready-tls"]
    uid_map = checks["uid-map-not-identity"]
    assert uid_map.status == "failed", uid_map
    assert uid_map.detail.startswith("FAIL: root in the container is host root")
    assert checks["cleanup"].status == "passed", checks["cleanup"]
