"""``pyinfra --dry`` of every deploy changes nothing: not the control machine, not the target.

The target is this machine itself (pyinfra's ``@local``), so the deploys' facts run here,
with HOME, DINDKIT_CACHE and TMPDIR pointed at scratch folders and the smoke report folder
pre-filled with an earlier run's report. Those folders and the project checkout are compared
file by file (list, mode, mtime, content) before and after each run.

Two stand-ins on PATH (tests/fixtures/dry-run-bin): ``systemctl``, because a unit-test
machine may have no systemd as PID 1 (every unit then reads as unknown, as on a host without
Docker), and ``mmdebstrap``, which fails and leaves a mark in the scratch home, so a plan that
builds an image fails here at once instead of building one.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dindkit import report as r
from dindkit.facts.docker import AptKeyFingerprints
from dindkit.images import cli_image_archive, podman_image_archive, smoke_image_archive
from tests.checkout import CHECKOUT

ROOT = CHECKOUT
STUB_BIN = ROOT / "tests" / "fixtures" / "dry-run-bin"
# Written by tools, never by a deploy; the test's own Python runs write __pycache__ too.
CHECKOUT_NOISE = frozenset(
    {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)


def snapshot(
    root: Path, skip: frozenset[str] = frozenset(), folder_times: bool = True
) -> dict[str, tuple]:
    """Every entry under ROOT: kind, mode, mtime and (files) sha256, by relative path."""
    entries: dict[str, tuple] = {}
    for folder, folders, names in os.walk(root):
        folders[:] = sorted(name for name in folders if name not in skip)
        for name in [*folders, *names]:
            path = Path(folder, name)
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                entries[key] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entries[key] = ("file", info.st_mode, info.st_mtime_ns, digest)
            else:
                entries[key] = ("other", info.st_mode, info.st_mtime_ns if folder_times else 0)
    # A folder's mtime tells a file made and removed again (a temp file left no trace).
    if folder_times:
        entries["."] = ("root", root.lstat().st_mtime_ns)
    return entries


def differences(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return [
        f"{path}: {before.get(path, 'absent')} -> {after.get(path, 'absent')}"
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


class Scratch:
    """A scratch control machine: home, cache, temp folder, reports with an old run in them."""

    def __init__(self, base: Path, built_images: bool) -> None:
        self.home, self.cache, self.tmp = base / "home", base / "cache", base / "tmp"
        self.reports, self.doctor = base / "reports", base / "doctor"
        for folder in (self.home, self.cache, self.tmp, self.doctor):
            folder.mkdir()
        (self.home / ".profile").write_text("# an existing file\n")
        old = r.HostResult({"dood": r.ModeResult("passed", "1 checks passed", 1.0)})
        r.write_html(self.reports, r.write_host(self.reports, "oldrun01", "old-host", old))
        self.env = {
            **os.environ,
            "HOME": str(self.home),
            "DINDKIT_CACHE": str(self.cache),
            "TMPDIR": str(self.tmp),
            "PATH": f"{STUB_BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        os.environ.pop("DINDKIT_SMOKE_RUN_ID", None)
        self.smoke_archive = self._in_cache(smoke_image_archive())
        if built_images:  # stand-ins named as the current recipes' archives
            for archive in (smoke_image_archive(), podman_image_archive(), cli_image_archive()):
                path = self._in_cache(archive)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(gzip.compress(b"not really an image"))

    def _in_cache(self, archive: Path) -> Path:
        return self.cache / "images" / archive.name

    def state(self) -> dict[str, dict[str, tuple]]:
        return {
            "home": snapshot(self.home),
            "cache": snapshot(self.cache),
            # Folder times left out: Python's tempfile probes the folder, pyinfra's
            # LinuxDistribution fact parses os-release in a temporary folder; both remove
            # what they make. Anything left behind still shows.
            "tmp": snapshot(self.tmp, folder_times=False),
            "reports": snapshot(self.reports),
            "checkout": snapshot(ROOT, CHECKOUT_NOISE, folder_times=False),
        }

    def run(
        self,
        deploy: str,
        data: dict[str, str],
        dry: bool = True,
        launcher: tuple[str, ...] = ("-m", "pyinfra"),
    ) -> subprocess.CompletedProcess[str]:
        """pyinfra (LAUNCHER: Python's arguments that start its CLI) on @local."""
        data = {
            "smoke_report_dir": str(self.reports),
            "smoke_image_archive": str(self.smoke_archive),
            "doctor_output_dir": str(self.doctor),
            **data,
        }
        pairs = [
            argument for key, value in data.items() for argument in ("--data", f"{key}={value}")
        ]
        command = [
            sys.executable,
            *launcher,
            "--dry" if dry else "-y",
            *pairs,
            "@local",
            f"deploys/{deploy}.py",
        ]
        return subprocess.run(
            command,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


# Deploy, extra data, whether the image archives are built, exit status (None: 0 or Sysbox's
# preflight refusal), what the plan must show.
IMAGE_BUILDS = (
    f"Build the smoke image archive {{cache}}/images/{smoke_image_archive().name} with mmdebstrap",
    f"Build the podman image archive {{cache}}/images/{podman_image_archive().name} with",
    f"Build the rootless client image archive {{cache}}/images/{cli_image_archive().name} cut",
)
SMOKE_PLAN = (
    "Clear the smoke report of earlier runs",
    "Upload the smoke image archive",
    "Upload the podman image archive",
    "Write the smoke report",
)
CASES = [
    ("docker", {}, False, 0, ("Install Docker Engine",)),
    ("sysbox", {}, False, None, ()),
    ("sysbox", {"sysbox_state": "absent"}, False, 0, ("Install Docker Engine",)),
    ("bootstrap", {}, False, 0, ("Install Docker Engine", *SMOKE_PLAN)),
    ("doctor", {}, False, 0, ()),
    ("smoke", {}, False, 0, SMOKE_PLAN),
    ("smoke", {}, True, 0, SMOKE_PLAN),
    ("guard", {"guard_enabled": "true"}, False, 0, ("Enable and start the job socket",)),
    (
        "registry",
        {"registry_enabled": "true", "registry_mirror_enabled": "true"},
        False,
        0,
        ("Generate the registry's CA, server certificate and credential where missing",),
    ),
]


def case_id(deploy: str, data: dict[str, str], built: bool, *_rest: object) -> str:
    return "-".join([deploy, *data.values(), "images-built" if built else "no-images"])


@pytest.mark.parametrize(
    ("deploy", "data", "built_images", "code", "shown"),
    CASES,
    ids=[case_id(*case) for case in CASES],
)
def test_a_dry_run_changes_nothing(tmp_path, deploy, data, built_images, code, shown):
    scratch = Scratch(tmp_path, built_images)
    before = scratch.state()
    result = scratch.run(deploy, data)
    output = result.stdout + result.stderr
    after = scratch.state()

    changed = {place: differences(before[place], after[place]) for place in before}
    assert {place: lines for place, lines in changed.items() if lines} == {}, output
    assert "Traceback" not in output
    if code is None:  # installs, or stops at the preflight where Sysbox cannot run
        refused = "Sysbox preflight failed" in output
        assert result.returncode == (1 if refused else 0), output
    else:
        assert result.returncode == code, output
    for line in shown:
        assert line in output, output
    if deploy in ("smoke", "bootstrap"):  # what a real run would build, and only that
        for line in IMAGE_BUILDS:
            assert (line.format(cache=scratch.cache) in output) is not built_images, output
    if deploy == "doctor":  # its one product: the facts file, where it was asked to go
        assert [path.name for path in scratch.doctor.iterdir()] == ["@local.json"]
    else:
        assert list(scratch.doctor.iterdir()) == []


def test_every_deploy_has_a_dry_run_case():
    deploys = {path.stem for path in (ROOT / "deploys").glob("*.py")}
    assert deploys == {deploy for deploy, *_rest in CASES}


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
def test_the_key_fact_reads_a_key_and_writes_nothing(tmp_path):
    """The docker-ce key fact runs on a dry run too: it leaves no ~/.gnupg and no temp folder
    (tests/fixtures/keys/throwaway.asc: a public key made for this test)."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp)}
    env.pop("GNUPGHOME", None)
    command = AptKeyFingerprints().command(
        str(ROOT / "tests" / "fixtures" / "keys" / "throwaway.asc")
    )
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)
    assert result.stdout.split() == ["A62D0B46B9F20E55C6285772F912B71E4208D672"], result
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []


def test_a_real_run_clears_the_old_report_then_builds_in_an_operation(tmp_path):
    """Without --dry the same plan runs: the old report goes in the first operation, the missing
    archive is built in the next one (mmdebstrap fails here), and the host stops there with
    one line, no Traceback, before anything reaches the target."""
    scratch = Scratch(tmp_path, built_images=False)
    env_data = {"smoke_modes": "dood"}
    result = scratch.run("smoke", env_data, dry=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "Could not build the smoke image archive: mmdebstrap exited with status 1" in output
    assert (scratch.home / "mmdebstrap-was-called").exists()
    left = sorted(path.name for path in scratch.reports.rglob("*"))
    assert left == [".run", "hosts"]  # the old run's id only: no host file, no report
    assert "Upload the smoke image archive" not in output
