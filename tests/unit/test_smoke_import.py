"""The smoke deploy's image import script: shellcheck-clean, and run against a fake docker
(images the host has are left alone, archives decompress through gzip, a broken archive leaves
no image behind and fails)."""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

from dindkit.images import IMPORT_CHANGES
from dindkit.smoke.deploy import ImageArchive, import_outcomes, import_script
from tests import shellcheck

# docker: `image inspect TAG` succeeds for tags in $PRESENT; `import [--change X]... SRC TAG`
# lists SRC (or stdin for -) with tar into $LOG/TAG.list and logs its arguments;
# `image rm -f TAG` is logged.
FAKE_DOCKER = """#!/bin/sh
case "$1 $2" in
"image inspect") case " $PRESENT " in *" $3 "*) exit 0 ;; esac; exit 1 ;;
"image rm") echo "rm $4" >>"$LOG/calls"; exit 0 ;;
esac
[ "$1" = import ] || exit 2
shift
echo "import $*" >>"$LOG/calls"
while [ "$1" = --change ]; do shift 2; done
src=$1 tag=$2
if [ "$src" = - ]; then tar -tf - >"$LOG/$tag.list"; else tar -tf "$src" >"$LOG/$tag.list"; fi
"""


def _rootfs_tar(path: Path, compress: bool) -> Path:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for name in ("bin/sh", "etc/passwd"):
            info = tarfile.TarInfo(name)
            info.size = 4
            archive.addfile(info, io.BytesIO(b"data"))
    path.write_bytes(gzip.compress(data.getvalue()) if compress else data.getvalue())
    return path


def _run(tmp_path: Path, images: list[ImageArchive], present: str = "") -> tuple[int, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "log"
    log.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log)}
    result = subprocess.run(
        ["sh", "-c", import_script(images)],
        env={**env, "PRESENT": present},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_script_is_shellcheck_clean() -> None:
    images = [
        ImageArchive("smoke image", "/var/cache/a b.tar.gz", "dindkit-smoke:1", IMPORT_CHANGES),
        ImageArchive("podman image", "/var/cache/p.tar.gz", "dindkit-podman:2", ()),
    ]
    assert shellcheck.defects(import_script(images), shell="sh") == []


def test_imports_what_the_host_lacks_through_gzip(tmp_path: Path) -> None:
    smoke = _rootfs_tar(tmp_path / "smoke.tar.gz", compress=True)
    plain = _rootfs_tar(tmp_path / "plain.tar", compress=False)
    images = [
        ImageArchive("smoke image", str(smoke), "dindkit-smoke:1", ('ENTRYPOINT ["/x y"]',)),
        ImageArchive("podman image", str(plain), "dindkit-podman:2", ()),
        ImageArchive("old image", str(smoke), "dindkit-old:3", ()),
    ]
    code, output = _run(tmp_path, images, present="dindkit-old:3")
    assert code == 0, output
    outcomes = import_outcomes(output)
    assert outcomes["dindkit-old:3"] == "present"
    assert outcomes["dindkit-smoke:1"].startswith("imported ")
    assert outcomes["dindkit-podman:2"].startswith("imported ")
    log = tmp_path / "log"
    # Both files reached docker as a tar: the gzip one on stdin, the plain one by its path.
    for tag in ("dindkit-smoke:1", "dindkit-podman:2"):
        assert (log / f"{tag}.list").read_text().split() == ["bin/sh", "etc/passwd"]
    calls = (log / "calls").read_text().splitlines()
    assert 'import --change ENTRYPOINT ["/x y"] - dindkit-smoke:1' in calls
    assert f"import {plain} dindkit-podman:2" in calls
    assert not any("dindkit-old" in call for call in calls)


def test_a_broken_archive_fails_and_leaves_no_image(tmp_path: Path) -> None:
    good = _rootfs_tar(tmp_path / "good.tar.gz", compress=True)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(good.read_bytes()[:40])  # gzip stops early: a truncated stream
    images = [
        ImageArchive("smoke image", str(good), "dindkit-smoke:1", ()),
        ImageArchive("podman image", str(broken), "dindkit-podman:2", ()),
    ]
    code, output = _run(tmp_path, images)
    assert code == 1, output
    outcomes = import_outcomes(output)
    assert set(outcomes) == {"dindkit-smoke:1", "dindkit-podman:2"}
    assert outcomes["dindkit-podman:2"] == "failed"
    assert outcomes["dindkit-smoke:1"].startswith("imported ")
    assert "rm dindkit-podman:2" in (tmp_path / "log" / "calls").read_text().splitlines()
