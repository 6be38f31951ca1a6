"""`dindkit demo` on bookworm and trixie in one run: the main job of the project, end to end.

The session's ``demo_run`` (conftest.py) boots the two fresh labs, provisions them with
deploys/bootstrap.py and smoke-tests every mode on both in one pyinfra run. Each mode runs once
per distribution here and nowhere else in the suite (their Docker, rootlesskit and podman
differ); tests after this module reuse the converged VMs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dindkit import ci_flow
from dindkit.lab.pyinfra_output import changed_operation_names
from tests.lab.conftest import DEMO_DISTROS, PREFIX, REGISTRY_DISTROS, DemoRun, LabVM, lab_name

pytestmark = pytest.mark.lab

# What a run of every mode gives on a lab host: no Sysbox package reaches the lab.
EVERY_MODE_ON_A_LAB_HOST = {
    "dood": "passed",
    "guarded": "passed",
    "dind": "passed",
    "sysbox": "skipped",
    "rootless": "passed",
    "userns": "passed",
    "podman": "passed",
}
# Only the smoke images may be left on the host (loaded once, then cached there).
SMOKE_IMAGES = ("dindkit-smoke:", "dindkit-podman:")
DEFAULT_NETWORKS = ["bridge", "host", "none"]


def assert_every_mode_said_what_it_proved(modes: dict[str, Any]) -> None:
    """The details a passing run of all seven modes carries on a lab host (remapping on)."""
    assert "sysbox-runc" in modes["sysbox"]["reason"]
    assert all(mode["grants"] for mode in modes.values())
    # The daemon remaps users: the privileged modes said how they still run.
    assert "--userns=host" in modes["dind"]["checks"][0]["detail"]
    assert "--userns=host" in modes["dood"]["checks"][1]["detail"]
    podman = {check["name"]: check["detail"] for check in modes["podman"]["checks"]}
    assert "CapEff is 0" in podman["no-capabilities"]
    # The escape matrix: every attempt made in every mode that ran, each as the mode declares,
    # none inconclusive; the grants text generated from the outcomes.
    for name, mode in modes.items():
        escapes = mode["escapes"]
        if mode["status"] == "skipped":
            assert not escapes and mode["grants"].startswith("declared (not measured here)")
            continue
        assert len(escapes) == 13, (name, sorted(escapes))
        wrong = {a: e for a, e in escapes.items() if e["outcome"] != e["expected"]}
        assert not wrong, (name, wrong)
        assert all(e["outcome"] != "inconclusive" for e in escapes.values()), name
        assert mode["grants"].startswith(("allowed: ", "blocked: ")), mode["grants"]
    assert modes["dood"]["escapes"]["privileged-host-root"]["outcome"] == "allowed"
    # The job socket reaches the host's daemon, whose policy refused the privileged container;
    # the host told the job socket from its root socket by device:inode.
    guarded = {check["name"]: check["detail"] for check in modes["guarded"]["checks"]}
    assert "refused by the guard's rule privileged" in guarded["refused-by-the-guard"]
    assert modes["guarded"]["escapes"]["privileged-host-root"]["outcome"] == "blocked"
    socket_escape = modes["guarded"]["escapes"]["host-docker-socket"]
    assert socket_escape["outcome"] == "blocked", socket_escape
    assert "only through /run/dindkit/jobs.sock" in socket_escape["evidence"], socket_escape
    assert "through its root socket" in modes["dood"]["escapes"]["host-docker-socket"]["evidence"]
    assert modes["dind"]["escapes"]["host-block-device"]["outcome"] == "allowed"
    assert modes["podman"]["escapes"]["read-host-shadow"]["outcome"] == "blocked"
    rootless = {check["name"]: check["detail"] for check in modes["rootless"]["checks"]}
    assert "can neither read the host's" in rootless["no-escalation"]
    # A fresh user store: the client image cut from the smoke image, not the smoke image.
    assert "as dindkit-cli:" in rootless["load-image"], rootless["load-image"]


def assert_every_job_ran_the_ci_flow(modes: dict[str, Any]) -> None:
    """The lab's registry is on: every mode that ran built, pushed, pulled back and ran an
    image through its job's own client, and its two builds were timed against the host's."""
    for name, mode in modes.items():
        if mode["status"] == "skipped":
            continue
        checks = {check["name"]: check for check in mode["checks"]}
        stages = {stage: checks.get(stage, {}).get("status") for stage in ci_flow.SMOKE_STAGES}
        assert set(stages.values()) == {"passed"}, (name, stages)
        flow = ci_flow.steps("\n".join(checks[stage]["detail"] for stage in stages))
        assert [step for step, (status, _) in flow.items() if status == "passed"] == list(
            ci_flow.STEPS
        ), (name, flow)
        assert "printed the build argument ci-value-run-" in checks["ci-pull"]["detail"], name
        assert "deleted dindkit/smoke-" + name in checks["ci-cleanup"]["detail"], name
        assert set(mode["build_seconds"]) == {"cold", "warm"}, (name, mode["build_seconds"])
        assert set(mode["build_x_host"]) == {"cold", "warm"}, (name, mode["build_x_host"])
    assert modes["dood"]["build_x_host"] == {"cold": 1.0, "warm": 1.0}


@pytest.fixture(scope="module")
def demo(demo_run: DemoRun) -> DemoRun:
    print(f"dindkit demo on {', '.join(DEMO_DISTROS)}: {demo_run.seconds:.0f} s")
    assert demo_run.returncode == 0, demo_run.output[-6000:]
    return demo_run


def test_every_mode_passed_on_both_distros_sysbox_skipped(demo: DemoRun) -> None:
    report = json.loads((demo.report_dir / "report.json").read_text())
    assert sorted(report["hosts"]) == sorted(f"lab-{lab_name(d)}" for d in DEMO_DISTROS)
    for host, entry in report["hosts"].items():
        modes = entry["modes"]
        statuses = {mode: result["status"] for mode, result in modes.items()}
        assert statuses == EVERY_MODE_ON_A_LAB_HOST, (host, statuses)
        assert_every_mode_said_what_it_proved(modes)
        if host.removeprefix(f"lab-{PREFIX}-") in REGISTRY_DISTROS:
            assert_every_job_ran_the_ci_flow(modes)
        else:  # no registry on this lab: no CI stage, no build timed
            assert not [c for m in modes.values() for c in m["checks"] if c["name"][:3] == "ci-"]
            assert not any(mode["build_seconds"] for mode in modes.values())
    assert (demo.report_dir / "junit.xml").is_file()
    # The run's table, and the per-phase times of the demo.
    assert "HOST" in demo.output and "PASSED" in demo.output
    assert "Provision and smoke-test" in demo.output and "total" in demo.output


def test_docker_and_the_base_packages_came_in_one_apt_run(demo: DemoRun) -> None:
    """On a host without Docker the bootstrap's base packages join docker.io's apt run."""
    assert "Install the base packages" not in demo.output
    installs = [
        line
        for line in demo.output.splitlines()
        if "dindkit apt: apt-get install" in line and " docker.io " in line
    ]
    # a progress line every 20 s of the install, which takes minutes under emulation
    assert installs, demo.output[-3000:]
    assert all(" jq " in line and " gnupg " in line for line in installs), installs


@pytest.mark.parametrize("distro", DEMO_DISTROS)
def test_a_fresh_install_restarts_no_daemon(demo: DemoRun, distro: str) -> None:
    """The demo's labs had no Docker: the bootstrap configured socket and daemon.json before the
    package first started dockerd, so no restart operation ran (the rule in dindkit/docker.py)."""
    # pyinfra prints an operation under its deploys' names ("Bootstrap ... | Install ... | NAME")
    changed = [
        name.rsplit(" | ", 1)[-1]
        for name in changed_operation_names(demo.output, f"lab-{lab_name(distro)}")
    ]
    assert "Install Docker Engine from the distribution (docker.io)" in changed, changed
    assert "Wait until the newly installed dockerd answers docker info" in changed, changed
    assert "Merge dindkit's options into /etc/docker/daemon.json" in changed, changed
    # Debian's docker-registry starts with its own configuration when installed (the lab has
    # the registry on): dindkit's needs that one restart. No daemon of Docker's restarts.
    restarts = [name for name in changed if "Restart" in name]
    assert restarts in ([], ["Restart the registry for its new configuration"]), changed


@pytest.mark.parametrize("distro", DEMO_DISTROS)
def test_the_smoke_tests_left_nothing_but_their_images(
    demo: DemoRun, lab_vms: Any, distro: str
) -> None:
    vm: LabVM = lab_vms(distro)
    assert vm.ssh("docker ps -a -q").stdout.split() == []
    assert vm.ssh("docker volume ls -q").stdout.split() == []
    assert sorted(vm.ssh("docker network ls --format '{{.Name}}'").stdout.split()) == (
        DEFAULT_NETWORKS
    )
    images = vm.ssh("docker image ls --format '{{.Repository}}:{{.Tag}}'").stdout.split()
    assert images and all(image.startswith(SMOKE_IMAGES) for image in images), images
