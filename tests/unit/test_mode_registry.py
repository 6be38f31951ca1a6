"""The registry of smoke modes is the single source of every list of modes.

A mode registered the way a new one is (tests/unit/fake_mode.py: its module and its name in
SMOKE_MODES) is accepted by the settings and the CLI, has its image built by the demo, and
shows in the smoke deploy's plan: its plan-time check, its image's upload and import, its step
in the order chosen. Unregistered, each of them refuses it. The specs' own hooks (a plan-time
note on the skip reason, options from the settings) are checked here too.
"""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from pyinfra.api.exceptions import DeployError

import dindkit.images
import dindkit.lab
import dindkit.smoke.cli
import dindkit.sysbox
from dindkit.demo import demo
from dindkit.paths import TEMPLATES_DIR
from dindkit.report import HostResult as ReportHost
from dindkit.settings import smoke as smoke_settings
from dindkit.settings.smoke import SMOKE_SETTINGS
from dindkit.smoke import modes
from dindkit.smoke.deploy import _run_mode
from dindkit.smoke.modes.common import Context
from tests.checkout import project_file
from tests.unit import fake_mode
from tests.unit.test_dry_run import Scratch

CTX = Context(run_id="0a1b2c3d", cli_image="cli:1", dind_image="dind:1")
MODES_DIR = Path(modes.__file__).parent


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mode.register(monkeypatch.setattr, monkeypatch.setitem)


@pytest.mark.parametrize("name", smoke_settings.SMOKE_MODES)
def test_every_registered_mode_exports_its_spec_and_template(name: str) -> None:
    spec = modes.spec(name)
    mode = spec.build(CTX)
    assert (spec.name, mode.name) == (name, name)
    assert mode.expected == spec.expected
    assert (TEMPLATES_DIR / "smoke" / f"{name}.sh.j2").is_file()


def test_every_mode_module_is_registered_and_in_order() -> None:
    modules = {path.stem for path in MODES_DIR.glob("*.py")} - {"__init__", "common"}
    assert sorted(modules) == sorted(smoke_settings.SMOKE_MODES)
    assert modes.names() == smoke_settings.SMOKE_MODES
    assert [spec.name for spec in modes.registry()] == list(smoke_settings.SMOKE_MODES)
    assert SMOKE_SETTINGS.defaults["smoke_modes"] == list(smoke_settings.SMOKE_MODES)


def test_an_unregistered_mode_is_refused_by_name() -> None:
    with pytest.raises(LookupError, match="no smoke mode 'fake' \\(allowed: dood, guarded, dind"):
        modes.spec("fake")


def test_a_registered_module_without_its_spec_is_refused(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dindkit.smoke.modes.fake", sys.modules[__name__])
    monkeypatch.setattr(smoke_settings, "SMOKE_MODES", ("dood", "fake"))
    with pytest.raises(LookupError, match="exports no ModeSpec named 'fake' as SPEC"):
        modes.spec("fake")


def settings_with(modes_chosen: list[str]) -> dict[str, Any]:
    return SMOKE_SETTINGS.validate({"smoke_modes": modes_chosen})


def test_settings_take_a_mode_once_registered(monkeypatch) -> None:
    with pytest.raises(DeployError, match=r"smoke_modes=\['dood', 'fake'\]: allowed: 'dood'"):
        settings_with(["dood", "fake"])
    fake_mode.register(monkeypatch.setattr, monkeypatch.setitem)
    assert settings_with(["dood", "fake"])["smoke_modes"] == ["dood", "fake"]
    with pytest.raises(DeployError, match=r"'userns', 'podman', 'fake'$"):
        settings_with(["other"])


def test_the_cli_takes_a_mode_once_registered(monkeypatch) -> None:
    chosen: list[Any] = []
    monkeypatch.setattr(
        dindkit.smoke.cli, "run_and_report", lambda inv, dep, data, *rest: chosen.append(data)
    )
    arguments = ["inventory.py", "--modes", "dood,fake"]
    refused = CliRunner().invoke(dindkit.smoke.cli.smoke, arguments)
    assert refused.exit_code == 2 and "allowed: a comma-separated list of" in refused.output
    assert chosen == []
    fake_mode.register(monkeypatch.setattr, monkeypatch.setitem)
    result = CliRunner().invoke(dindkit.smoke.cli.smoke, arguments)
    assert chosen == [{"smoke_modes": ["dood", "fake"]}], result.output


def test_the_demo_builds_a_registered_modes_image(registered, monkeypatch, tmp_path) -> None:
    built: list[str] = []
    monkeypatch.setattr(dindkit.images, "smoke_image_archive", lambda: tmp_path / "no.tar.gz")
    for name in ("smoke", "cli", "podman"):
        monkeypatch.setattr(dindkit.images, f"build_{name}_image", lambda n=name: built.append(n))
    monkeypatch.setattr(fake_mode, "BUILDS", [])

    class Lab:
        name, host = "demo-bookworm", "lab-demo-bookworm"

    monkeypatch.setattr(dindkit.lab, "up", lambda *args, **options: Lab())
    monkeypatch.setattr(dindkit.smoke.cli, "run_and_report", lambda *args, **kwargs: 0)
    result = CliRunner().invoke(demo, ["--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(built) == ["cli", "podman", "smoke"]
    assert fake_mode.BUILDS == [{}]
    assert "fake image" in result.output  # its build's time, beside the others


# Registers the stand-in, then runs pyinfra's own CLI in this process (as python -m pyinfra).
PYINFRA_WITH_FAKE = """
import runpy, sys
from tests.unit import fake_mode
if sys.argv[1] == "register":
    fake_mode.register()
sys.argv = ["pyinfra", *sys.argv[2:]]
runpy.run_module("pyinfra", run_name="__main__", alter_sys=True)
"""


def dry_smoke_plan(tmp_path: Path, register: bool) -> subprocess.CompletedProcess[str]:
    scratch = Scratch(tmp_path, built_images=True)
    archive = scratch.cache / "images" / "dindkit-fake-0123abcd.tar.gz"
    archive.write_bytes(gzip.compress(b"not really an image"))
    how = "register" if register else "as-is"
    launcher = ("-c", PYINFRA_WITH_FAKE, how)
    return scratch.run("smoke", {"smoke_modes": "dood,fake,podman"}, launcher=launcher)


def test_the_smoke_deploy_plans_a_registered_mode(tmp_path) -> None:
    result = dry_smoke_plan(tmp_path, register=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "fake: settings checked, smoke_modes=dood,fake,podman" in output
    assert "Upload the fake image archive" in output
    assert "Import the smoke image and the podman image and the fake image unless" in output
    titles = [modes.spec("dood").build(CTX).title, fake_mode.TITLE]
    titles.append(modes.spec("podman").build(CTX).title)
    steps = [output.index(f"Smoke-test {title}") for title in titles]
    assert steps == sorted(steps), output


def test_the_smoke_deploy_refuses_an_unregistered_mode(tmp_path) -> None:
    result = dry_smoke_plan(tmp_path, register=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Invalid setting smoke_modes='dood,fake,podman': allowed: 'dood'" in output
    assert "Smoke-test DooD" not in output and "Traceback" not in output


class HostWithoutDocker:
    """A pyinfra host stand-in for a mode's execution-time step: every command fails."""

    data: dict[str, Any] = {}

    def __init__(self) -> None:
        self.logged: list[str] = []

    def run_shell_command(self, command: Any, **arguments: Any) -> tuple[bool, Any]:
        return False, SimpleNamespace(output="docker: command not found")

    def log_styled(self, message: str, **style: Any) -> None:
        self.logged.append(message)


@pytest.mark.parametrize("note", [None, "Sysbox preflight: no package source"])
def test_a_skipped_mode_carries_its_plan_note(note: str | None) -> None:
    results = ReportHost()
    mode = modes.spec("sysbox").build(CTX)
    host = HostWithoutDocker()
    assert _run_mode(None, host, mode, CTX, results, note)
    reason = "docker info failed: docker: command not found" + (f"; {note}" if note else "")
    assert (results.modes["sysbox"].status, results.modes["sysbox"].reason) == ("skipped", reason)
    assert host.logged == [f"sysbox skipped: {reason}"]


def test_sysbox_notes_its_preflight_verdict(monkeypatch) -> None:
    monkeypatch.setattr(dindkit.sysbox, "unavailable_reason", lambda: "no source")
    assert modes.spec("sysbox").plan_note() == "Sysbox preflight: no source"
    monkeypatch.setattr(dindkit.sysbox, "unavailable_reason", lambda: None)
    assert modes.spec("sysbox").plan_note() is None
    assert modes.spec("dind").plan_note() is None


def test_modes_take_their_options_from_the_settings() -> None:
    rootless, dood = modes.spec("rootless").options, modes.spec("dood").options
    users = {"docker_rootless_users": ["bob", "carol"], "docker_socket_group": "dood"}
    assert rootless({"smoke_rootless_user": None}, users) == {"rootless_user": "bob"}
    assert rootless({"smoke_rootless_user": "alice"}, users) == {"rootless_user": "alice"}
    assert rootless({"smoke_rootless_user": None}, {}) == {"rootless_user": None}
    assert dood({"smoke_user_uid": 1234}, users) == {"user_uid": 1234, "socket_group": "dood"}
    assert modes.spec("dind").options({}, {}) == {}


def test_the_modes_table_lists_every_registered_mode_in_order() -> None:
    """docs/modes.md's first table has one row per mode, in the registry's order, and says how
    the container gets Docker in the words of the mode's SPEC.summary (Markdown aside)."""
    text = project_file("docs", "modes.md").read_text()
    table = text.split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    assert [row[0].strip("| `") for row in rows] == list(smoke_settings.SMOKE_MODES)
    for row in rows:
        plain = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", row[1]).replace("`", "").replace("**", "")
        assert plain == modes.spec(row[0].strip("| `")).summary
