"""An installed dindkit (a wheel, not this checkout) works from any folder.

Kept quick: the wheel is built once (pip wheel, no dependencies), installed with --no-deps into
a fresh venv that borrows the already-installed dependencies from this venv through a .pth
line (which does not activate this venv's editable dindkit), and used from a temporary folder.
However this venv holds dindkit (editable, or a wheel in the borrowed site-packages), the test
venv gets its own copy: --ignore-installed installs the wheel even where pip already sees a
dindkit of the same version, and the venv's own site-packages comes before borrowed paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import dindkit
from dindkit import paths
from tests.checkout import CHECKOUT


def run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv with the dindkit wheel installed in it."""
    base = tmp_path_factory.mktemp("package")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        base / "dist",
        CHECKOUT,
        cwd=base,
    )
    (wheel,) = (base / "dist").glob("dindkit-*.whl")
    venv.create(base / "venv", with_pip=False)
    purelib = Path(
        run(
            base / "venv/bin/python",
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
            cwd=base,
        ).strip()
    )
    (purelib / "borrowed-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        base / "venv/bin/python",
        "install",
        "-q",
        "--no-deps",
        "--ignore-installed",
        wheel,
        cwd=base,
    )
    return base / "venv/bin"


def test_cli_help_from_another_folder(installed: Path, tmp_path: Path) -> None:
    output = run(installed / "dindkit", "--help", cwd=tmp_path)
    assert "lab" in output and "smoke" in output


def test_installed_package_renders_its_templates(installed: Path, tmp_path: Path) -> None:
    script = (
        "import dindkit, dindkit.paths as p\n"
        "from dindkit.templating import render\n"
        "print(dindkit.__file__)\n"
        "print(p.deploy_file('docker').is_file())\n"
        "print(render('etc/systemd/system/docker.socket.d/10-dindkit.conf.j2',"
        " socket_mode='0660', socket_group='docker'))\n"
    )
    output = run(installed / "python", "-c", script, cwd=tmp_path)
    location, deploy_found, *rendered = output.splitlines()
    assert not location.startswith(str(CHECKOUT)), "the checkout was imported, not the wheel"
    assert location.startswith(str(installed.parent)), f"not the test venv's dindkit: {location}"
    assert deploy_found == "True"
    assert "SocketMode=0660" in rendered and "SocketGroup=docker" in rendered


def test_the_suite_tests_the_dindkit_it_was_asked_to(checkout: Path) -> None:
    """``make unit`` runs this suite twice: against the editable install (dindkit/ of this
    checkout) and with DINDKIT_TEST_INSTALLED=wheel against a wheel in .venv-wheel's
    site-packages. Either way the imported dindkit must be the intended one, else the second
    run would quietly test the checkout again."""
    imported = Path(dindkit.__file__).resolve()
    if os.environ.get("DINDKIT_TEST_INSTALLED") == "wheel":
        site_packages = Path(sysconfig.get_path("purelib")).resolve()
        assert imported == site_packages / "dindkit" / "__init__.py", imported
        checkout_package = checkout / "dindkit"
        assert not imported.is_relative_to(checkout_package), f"the checkout's: {imported}"
        assert site_packages / "dindkit" / "templates" == paths.TEMPLATES_DIR
        assert paths.DEPLOYS_DIR.is_relative_to(site_packages)
    else:
        assert imported == checkout / "dindkit" / "__init__.py", (
            f"{imported} is not this checkout's dindkit; to test an installed wheel, set "
            "DINDKIT_TEST_INSTALLED=wheel (make unit does)"
        )
        assert checkout / "templates" == paths.TEMPLATES_DIR
