"""Lab VMs for the tests in tests/lab/ (marker ``lab``).

``lab_vms("bookworm")`` boots, once per session, a lab named
``$DINDKIT_TEST_PREFIX-bookworm`` (prefix ``test`` by default) and returns a :class:`LabVM`;
every module of the session shares it. ``demo_run`` is the README's main command run once on
the two fresh labs, ``dindkit demo --name $DINDKIT_TEST_PREFIX --distro bookworm --distro
trixie``: it boots them (they become the session's VMs), provisions them with
deploys/bootstrap.py and smoke-tests every mode on both in one pyinfra run. test_demo.py runs
first (see ``pytest_collection_modifyitems``), so the demo meets fresh VMs as a newcomer's would.

``converged_vm("bookworm")`` is the same VM after deploys/docker.py converged it once more this
session, on top of what users leave on hosts (``USER_STATE``: a ``chmod 666`` of the socket in
rc.local, daemon.json keys set by hand, an audit rules file of their own): every test that only
reads a Docker host uses it, and ``vm.docker_first_run`` is that run.

Every lab the session touched is taken down at the end, even when tests fail: no qemu
process, no overlay left. Set ``DINDKIT_TEST_KEEP_LABS=1`` to keep them running between
sessions while you work on the tests.

After the demo, the trixie VM's tests run in a pytest process of their own (a ``Background``
started by ``demo_run``) beside the bookworm VM's, which this session runs: the two VMs no
longer wait for each other.
test_trixie_worker.py, last in line, waits for that process and fails with its output.
``DINDKIT_TEST_SPLIT=0`` runs them all in this session instead.

VM size: ``DINDKIT_TEST_CPUS`` (default 2) and ``DINDKIT_TEST_MEMORY`` MiB (default 3072).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import dindkit.lab
from dindkit.lab.pyinfra_output import changed_operation_names, changed_operations
from dindkit.paths import deploy_file, inventory_file
from dindkit.runner import pyinfra_command
from tests.checkout import CHECKOUT

PREFIX = os.environ.get("DINDKIT_TEST_PREFIX", "test")
CPUS = int(os.environ.get("DINDKIT_TEST_CPUS", "2"))
MEMORY = int(os.environ.get("DINDKIT_TEST_MEMORY", "3072"))
KEEP = os.environ.get("DINDKIT_TEST_KEEP_LABS") == "1"
REBOOT_TIMEOUT = 600.0
DEMO_DISTROS = ("bookworm", "trixie")
# The local registry and every mode's CI flow are a slow path: 75-100 s per mode on a VM alone,
# 250-390 s with both demo VMs on 2 cores; on both distros the whole .ci/run took about 90
# minutes (330f432). Off in the suite's labs until the suite has room for it (then
# ("bookworm",)); `make demo` runs it, test_demo.py checks it on the distros named here, and
# tests/lab/test_registry.py (make lab-extra) on its own VM. inventories/lab.py reads the
# variable in every pyinfra run the tests start, the trixie worker's included.
REGISTRY_DISTROS: tuple[str, ...] = ()
os.environ.setdefault("DINDKIT_LAB_REGISTRY", ",".join(REGISTRY_DISTROS))
# The distro whose tests run in a pytest process of their own after the demo, and the variable
# that marks that process.
WORKER_DISTRO = "trixie"
WORKER_VARIABLE = "DINDKIT_TEST_DISTRO_WORKER"
IN_WORKER = os.environ.get(WORKER_VARIABLE) == WORKER_DISTRO
SPLIT = os.environ.get("DINDKIT_TEST_SPLIT", "1") != "0"
DEMO_MODULE = "tests/lab/test_demo.py"
WAITER_MODULE = "tests/lab/test_trixie_worker.py"
DEMO_TIMEOUT = 3600.0
DINDKIT = str(Path(sys.executable).with_name("dindkit"))

# What users have on their hosts before dindkit: a chmod 666 of the socket in /etc/rc.local
# (applied now too, in case Docker is already there), daemon.json keys set by hand and an audit
# rules file of their own.
HAND_SET_DAEMON_KEY = "debug"
HAND_SET_LABELS = ["set-by=hand"]
USER_AUDIT_RULES_FILE = "/etc/audit/rules.d/50-lab-user.rules"
USER_AUDIT_RULE = "-w /etc/hostname -p wa -k lab-user"
RC_LOCAL = (
    "#!/bin/sh -e\n# added by hand, following old advice\nchmod 666 /var/run/docker.sock\nexit 0\n"
)
USER_STATE = f"""
set -e
printf '%s' '{RC_LOCAL}' > /etc/rc.local
chmod +x /etc/rc.local
if [ -S /run/docker.sock ]; then chmod 666 /run/docker.sock; fi
mkdir -p /etc/docker
python3 - <<'PY'
import json, os
path = "/etc/docker/daemon.json"
current = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {{}}
current["{HAND_SET_DAEMON_KEY}"] = True
current["labels"] = {HAND_SET_LABELS!r}
json.dump(current, open(path, "w"))
PY
mkdir -p /etc/audit/rules.d
echo '{USER_AUDIT_RULE}' > {USER_AUDIT_RULES_FILE}
if command -v augenrules >/dev/null; then augenrules --load >/dev/null; fi
"""


def lab_name(distro: str) -> str:
    return f"{PREFIX}-{distro}"


@dataclass
class DeployRun:
    """One ``pyinfra`` run on one lab host."""

    host: str
    returncode: int
    output: str

    @property
    def changed_operations(self) -> int:
        """Operations that reported a change on the host (0: a no-op run)."""
        return changed_operations(self.output, self.host)

    @property
    def changed_operation_names(self) -> list[str]:
        """Names of those operations, in run order (for assertion messages)."""
        return changed_operation_names(self.output, self.host)


class LabVM:
    """A running lab VM, seen from the tests."""

    def __init__(self, lab: dindkit.lab.Lab) -> None:
        self.lab = lab
        self.name = lab.name
        self.host = lab.host
        self.distro = lab.distro
        self.docker_first_run: DeployRun | None = None  # set by converged_vm

    def __repr__(self) -> str:
        return f"LabVM({self.name!r}, {self.distro}, port {self.lab.ssh_port})"

    def ssh(
        self, cmd: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command as root in the VM."""
        result = subprocess.run(
            self.lab.ssh_command(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.host}: `{cmd}` exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def deploy(
        self, capability: str, data: Mapping[str, Any] | None = None, check: bool = True
    ) -> DeployRun:
        """``pyinfra -y inventories/lab.py deploys/<capability>.py --limit <host>``.

        The output is captured for the run's result and echoed as it comes (``pytest -s``).
        """
        command = pyinfra_command(
            inventory_file("lab"),
            deploy_file(capability),
            data,
            extra=["--limit", self.host],
        )
        returncode, output = stream(command, timeout=DEMO_TIMEOUT)
        run = DeployRun(self.host, returncode, output)
        if check and run.returncode != 0:
            tail = "".join(output.splitlines(keepends=True)[-40:])
            raise AssertionError(
                f"deploys/{capability}.py failed on {self.host} (exit {run.returncode}):\n{tail}"
            )
        return run

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def reboot(self, timeout: float = REBOOT_TIMEOUT) -> None:
        """Reboot the guest and wait until SSH answers from the new boot."""
        before = self.boot_id()
        self.ssh("systemctl reboot", check=False, timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(3)
            try:
                result = self.ssh("cat /proc/sys/kernel/random/boot_id", check=False, timeout=30)
            except subprocess.TimeoutExpired:
                continue
            if result.returncode == 0 and result.stdout.strip() not in ("", before):
                return
            if not self.lab.running:
                raise AssertionError(f"{self.name}: qemu exited during the reboot")
        raise AssertionError(f"{self.name}: no SSH from a new boot within {timeout:.0f}s")


def _take_down(names: list[str]) -> None:
    for name in names:
        try:
            dindkit.lab.down(name)
        except Exception as error:  # keep taking the others down
            print(f"could not take down lab {name}: {error}", file=sys.stderr)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def runs_in_worker(item: pytest.Item) -> bool:
    """A lab test of the worker's distro's VM (its id names the distro), but the demo's."""
    named = WORKER_DISTRO in item.nodeid.split("::", 1)[-1]
    lab = item.get_closest_marker("lab") is not None
    return lab and named and _module(item) not in (DEMO_MODULE, WAITER_MODULE)


def splits(items: list[pytest.Item]) -> bool:
    """This session hands the worker's tests to a process of its own: it runs the demo (which
    starts that process) and has tests for it."""
    return (
        SPLIT
        and not IN_WORKER
        and any(_module(item) == DEMO_MODULE for item in items)
        and any(runs_in_worker(item) for item in items)
    )


# Last: after -m's deselection, so that the tests handed to the worker are those it will select.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """test_demo.py first: the demo boots the session's labs and meets them fresh. The worker
    process keeps only its distro's tests; a session that starts one leaves those tests out
    (and test_trixie_worker.py, which waits for it, last); without a worker that module goes."""
    if IN_WORKER:
        keep = [item for item in items if runs_in_worker(item)]
    elif splits(items):
        keep = [item for item in items if not runs_in_worker(item)]
    else:
        keep = [item for item in items if _module(item) != WAITER_MODULE]
    left_out = [item for item in items if item not in keep]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
    if not IN_WORKER:
        WORKER_TESTS[:] = [item.nodeid for item in left_out if runs_in_worker(item)]
    keep.sort(key=lambda item: (_module(item) == WAITER_MODULE, _module(item) != DEMO_MODULE))
    items[:] = keep


def stream(command: list[str], timeout: float) -> tuple[int, str]:
    """Run ``command``, echoing its output as it comes (``pytest -s``); (exit code, output)."""
    print(f"$ {' '.join(command)}", flush=True)
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line)
        process.wait(timeout=timeout)
    return process.returncode, "".join(lines)


@pytest.fixture(scope="session")
def lab_vms() -> Iterator[Callable[[str], LabVM]]:
    """Factory: ``lab_vms(distro) -> LabVM``, one VM per distro per session."""
    booted: dict[str, LabVM] = {}
    failed: dict[str, str] = {}
    touched: list[str] = []

    def teardown() -> None:
        if not KEEP:
            _take_down(touched)
            touched.clear()

    # Also on an interpreter exit that skips fixture finalization.
    atexit.register(teardown)

    def factory(distro: str) -> LabVM:
        if distro in failed:  # do not pay for a failing boot once per test
            pytest.fail(
                f"the {distro} lab VM did not boot earlier in this session: {failed[distro]}"
            )
        if distro not in booted:
            name = lab_name(distro)
            touched.append(name)
            try:
                lab = dindkit.lab.up(name, distro, memory=MEMORY, cpus=CPUS)
            except Exception as error:
                failed[distro] = str(error)
                raise
            booted[distro] = LabVM(lab)
        return booted[distro]

    try:
        yield factory
    finally:
        teardown()
        atexit.unregister(teardown)


@pytest.fixture(scope="session")
def converged_vm(lab_vms: Callable[[str], LabVM]) -> Callable[[str], LabVM]:
    """Factory: ``converged_vm(distro) -> LabVM``, the distro's VM after deploys/docker.py ran
    on it once this session (over ``USER_STATE``); ``vm.docker_first_run`` is that run."""

    def factory(distro: str) -> LabVM:
        vm = lab_vms(distro)
        if vm.docker_first_run is None:
            vm.ssh(USER_STATE)
            vm.docker_first_run = vm.deploy("docker")
        return vm

    return factory


@dataclass
class DemoRun:
    """The session's one ``dindkit demo`` run."""

    returncode: int
    output: str
    report_dir: Path
    seconds: float


class Background:
    """Lab tests run in a pytest process of their own, beside this session (on a VM that this
    session does not use meanwhile)."""

    def __init__(
        self, selection: list[str], log: Path, environment: Mapping[str, str] | None = None
    ) -> None:
        """``selection``: pytest's arguments that choose the tests (``-m MARKER``, node ids)."""
        self.log = log
        command = [sys.executable, "-m", "pytest", *selection, "-s", "-p", "no:cacheprovider"]
        command += ["--durations=0"]
        with log.open("w") as out:
            self.process = subprocess.Popen(
                command,
                cwd=CHECKOUT,
                env={**os.environ, **(environment or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout: float = DEMO_TIMEOUT) -> tuple[int, str]:
        """(exit code, output) once the run ended."""
        code = self.process.wait(timeout=timeout)
        return code, self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Interrupt a run nobody waited for: its fixtures still clean up (SIGINT)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=600)
            except subprocess.TimeoutExpired:
                self.process.kill()


# Lab tests started in the background by an earlier fixture, by marker (see ``demo_run``).
BACKGROUND: dict[str, Background] = {}
# The node ids this session left to the worker process (``pytest_collection_modifyitems``).
WORKER_TESTS: list[str] = []


@pytest.fixture(scope="session")
def demo_run(
    lab_vms: Callable[[str], LabVM],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[DemoRun]:
    """``dindkit demo`` on both distros' labs, once per session (see the module's docstring).

    Then, if the session has Vagrant tests, they start in their own pytest process, in their
    own VM: after the demo, whose two VMs use both cores, the modules that follow mostly wait
    on one VM at a time. test_vagrant.py waits for that run and reports it. So do the trixie
    VM's tests (``WORKER_TESTS``), waited for by test_trixie_worker.py.
    """
    report_dir = tmp_path_factory.mktemp("demo") / "report"
    command = [DINDKIT, "demo", "--name", PREFIX, "--report-dir", str(report_dir)]
    command += ["--cpus", str(CPUS), "--memory", str(MEMORY)]
    for distro in DEMO_DISTROS:
        command += ["--distro", distro]
    started = time.monotonic()
    try:
        returncode, output = stream(command, timeout=DEMO_TIMEOUT)
    finally:
        for distro in DEMO_DISTROS:
            lab_vms(distro)  # the demo's labs: up() returns them as they run; taken down at the end
    run = DemoRun(returncode, output, report_dir, time.monotonic() - started)
    if any(item.get_closest_marker("vagrant") for item in request.session.items):
        log = tmp_path_factory.mktemp("vagrant") / "pytest.log"
        BACKGROUND["vagrant"] = Background(["-m", "vagrant"], log)
    if WORKER_TESTS:  # their modules, filtered there by the same rule (runs_in_worker)
        log = tmp_path_factory.mktemp(WORKER_DISTRO) / "pytest.log"
        modules = sorted({nodeid.split("::")[0] for nodeid in WORKER_TESTS})
        selection = ["-m", request.config.option.markexpr or "lab", *modules]
        environment = {WORKER_VARIABLE: WORKER_DISTRO}
        BACKGROUND[WORKER_DISTRO] = Background(selection, log, environment)
    try:
        yield run
    finally:
        for background in BACKGROUND.values():
            background.stop()
