"""`dindkit demo` wiring, without VMs: the steps, the exit code, --down even on failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import dindkit.images
import dindkit.lab
import dindkit.smoke.cli
from dindkit.demo import demo, lab_names
from dindkit.paths import deploy_file, inventory_file


class FakeLab:
    name = "demo-bookworm"
    host = "lab-demo-bookworm"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, Any]]:
    recorded: list[tuple[str, Any]] = []
    monkeypatch.setattr(dindkit.images, "smoke_image_archive", lambda: tmp_path / "none.tar.gz")
    monkeypatch.setattr(
        dindkit.images, "build_smoke_image", lambda: recorded.append(("image", None))
    )
    monkeypatch.setattr(
        dindkit.images, "build_cli_image", lambda: recorded.append(("client", None))
    )
    monkeypatch.setattr(
        dindkit.images, "build_podman_image", lambda: recorded.append(("podman", None))
    )

    def up(name: str, distro: str, **options: Any) -> FakeLab:
        recorded.append(("up", (name, distro, options)))
        return FakeLab()

    monkeypatch.setattr(dindkit.lab, "up", up)
    monkeypatch.setattr(dindkit.lab, "down", lambda name: recorded.append(("down", name)))
    return recorded


def fake_report(code: int, recorded: list[tuple[str, Any]]) -> Any:
    def run_and_report(
        inventory: Path, deploy: Path, data: Any, report_dir: Path, limit: str
    ) -> int:
        recorded.append(("run", (inventory, deploy, report_dir, limit)))
        return code

    return run_and_report


@pytest.mark.parametrize("code", [0, 1])
def test_demo_runs_the_bootstrap_deploy_and_keeps_the_lab(
    code: int, calls: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(dindkit.smoke.cli, "run_and_report", fake_report(code, calls))
    result = CliRunner().invoke(demo, ["--report-dir", str(tmp_path)])
    assert result.exit_code == code, result.output
    # The images are built while the lab boots (threads: any may come first).
    assert sorted(name for name, _ in calls[:4]) == ["client", "image", "podman", "up"]
    assert calls.index(("image", None)) < calls.index(("client", None))  # cut from the image
    assert calls[4][0] == "run"
    (name, distro, options) = next(call for kind, call in calls if kind == "up")
    assert (name, distro) == ("demo-bookworm", "bookworm")
    assert options == {"memory": 4096, "cpus": 2, "accel": "auto"}
    assert calls[4][1] == (
        inventory_file("lab"),
        deploy_file("bootstrap"),
        tmp_path,
        "lab-demo-bookworm",
    )
    assert "dindkit lab ssh demo-bookworm" in result.output
    assert "dindkit lab down demo-bookworm" in result.output


def test_demo_down_tears_down_even_when_the_deploy_blows_up(
    calls: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def explode(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(dindkit.smoke.cli, "run_and_report", explode)
    result = CliRunner().invoke(
        demo, ["--distro", "trixie", "--down", "--report-dir", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert calls[-1] == ("down", "demo-trixie")


def test_several_distros_boot_side_by_side_and_share_one_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorded: list[tuple[str, Any]] = []
    monkeypatch.setattr(dindkit.images, "smoke_image_archive", lambda: tmp_path / "none.tar.gz")
    monkeypatch.setattr(
        dindkit.images, "build_smoke_image", lambda: recorded.append(("image", None))
    )
    monkeypatch.setattr(
        dindkit.images, "build_cli_image", lambda: recorded.append(("client", None))
    )
    monkeypatch.setattr(
        dindkit.images, "build_podman_image", lambda: recorded.append(("podman", None))
    )

    class Lab:
        def __init__(self, name: str) -> None:
            self.name, self.host = name, f"lab-{name}"

    def up(name: str, distro: str, **options: Any) -> Lab:
        recorded.append(("up", (name, distro)))
        return Lab(name)

    monkeypatch.setattr(dindkit.lab, "up", up)
    monkeypatch.setattr(dindkit.lab, "down", lambda name: recorded.append(("down", name)))
    monkeypatch.setattr(dindkit.smoke.cli, "run_and_report", fake_report(0, recorded))
    arguments = ["--distro", "bookworm", "--distro", "trixie", "--name", "two", "--down"]
    result = CliRunner().invoke(demo, [*arguments, "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    # The images and both labs in any order (threads), then one run over both hosts.
    expected = [("image", None), ("client", None), ("podman", None)]
    expected += [("up", ("two-bookworm", "bookworm")), ("up", ("two-trixie", "trixie"))]
    assert sorted(recorded[:5], key=repr) == sorted(expected, key=repr)
    assert recorded[5] == (
        "run",
        (
            inventory_file("lab"),
            deploy_file("bootstrap"),
            tmp_path,
            ["lab-two-bookworm", "lab-two-trixie"],
        ),
    )
    assert recorded[6:] == [("down", "two-bookworm"), ("down", "two-trixie")]


def test_one_distro_keeps_the_name_as_given() -> None:
    assert lab_names(["bookworm"], "mine") == ["mine"]
    assert lab_names(["bookworm", "trixie"], None) == ["demo-bookworm", "demo-trixie"]
