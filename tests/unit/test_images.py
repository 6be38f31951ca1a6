"""The registry-free smoke image: recipe hash, cache path, tag, build command, entrypoint."""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from dindkit import images
from tests.pyinfra_dry import dry_run


def test_archive_lives_in_the_cache_named_by_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("DINDKIT_CACHE", str(tmp_path))
    archive = images.smoke_image_archive()
    assert archive.parent == tmp_path / "images"
    assert archive.name == f"dindkit-smoke-{images.recipe_hash()}.tar.gz"
    assert images.image_tag(archive) == f"dindkit-smoke:{images.recipe_hash()}"


def test_recipe_hash_changes_with_the_recipe(monkeypatch):
    before = images.recipe_hash()
    assert before == images.recipe_hash()
    monkeypatch.setattr(images, "PACKAGES", (*images.PACKAGES, "jq"))
    assert images.recipe_hash() != before


def test_mmdebstrap_command_is_lean_and_registry_free(tmp_path):
    command = images.mmdebstrap_command(tmp_path / "r.tar", tmp_path / "e.sh")
    assert command[0] == "mmdebstrap"
    assert "--variant=essential" in command
    include = next(arg for arg in command if arg.startswith("--include="))
    for package in ("docker.io", "iptables", "ca-certificates", "busybox-static", "openssl"):
        assert package in include
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in command
    assert command[-1] == "http://deb.debian.org/debian"
    assert any("upload" in arg and images.ENTRYPOINT in arg for arg in command)


def test_entrypoint_is_valid_shell_with_nesting_and_tls(tmp_path):
    text = images.entrypoint_script()
    path = tmp_path / "entrypoint.sh"
    path.write_text(text)
    subprocess.run(["sh", "-n", str(path)], check=True)
    assert "cgroup.subtree_control" in text
    assert "/sys/fs/cgroup/init/cgroup.procs" in text
    assert "--tlsverify" in text and "2376" in text
    assert "extendedKeyUsage = clientAuth" in text


def test_entrypoint_runs_other_commands(tmp_path):
    path = tmp_path / "entrypoint.sh"
    path.write_text(images.entrypoint_script())
    out = subprocess.run(["sh", str(path), "echo", "hi"], capture_output=True, text=True)
    assert out.stdout == "hi\n"


def test_build_is_cached_and_atomic(monkeypatch, tmp_path):
    monkeypatch.setenv("DINDKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(images.shutil, "which", lambda name: "/usr/bin/" + name)
    calls: list[list[str]] = []

    def fake_run(command, check, stdout=None):
        calls.append(command)
        if command[0] == "mmdebstrap":
            Path(command[-2]).write_bytes(b"rootfs")
        else:
            stdout.write(b"gz")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(images.subprocess, "run", fake_run)
    messages: list[str] = []
    archive = images.build_smoke_image(progress=messages.append)
    assert archive.read_bytes() == b"gz"
    assert [c[0] for c in calls] == ["mmdebstrap", "gzip"]
    assert any("MiB" in m for m in messages)
    assert images.build_smoke_image(progress=messages.append) == archive
    assert len(calls) == 2  # cached
    images.build_smoke_image(force=True, progress=messages.append)
    assert len(calls) == 4
    assert sorted(p.name for p in archive.parent.iterdir()) == [".lock", archive.name]


def test_missing_mmdebstrap_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DINDKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    with pytest.raises(images.click.ClickException, match="mmdebstrap is missing"):
        images.build_smoke_image()


def smoke_archive(path: Path, names: tuple[str, ...]) -> Path:
    """A gzipped root filesystem with NAMES (folders end in /) and a few files the CLI lacks."""
    with tarfile.open(path, "w:gz") as tar:
        for name in ("./", *names, "./usr/sbin/dockerd", "./usr/bin/containerd"):
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(name)
                tar.addfile(info, io.BytesIO(name.encode()))
    return path


def test_cli_image_is_cut_from_the_smoke_image(tmp_path):
    parents = {parent for name in images.CLI_FILES for parent in PurePosixPath(name).parents}
    names = tuple(sorted(f"./{parent}/" for parent in map(str, parents) if parent != "."))
    wanted = tuple(f"./{name}" for name in images.CLI_FILES)
    source = smoke_archive(tmp_path / "smoke.tar.gz", names + wanted)
    rootfs = tmp_path / "cli.tar"
    images.cut_cli_rootfs(source, rootfs)
    with tarfile.open(rootfs) as tar:
        members = {member.name: member for member in tar}
        assert set(wanted) <= set(members)
        assert "./usr/sbin/dockerd" not in members and "./usr/bin/containerd" not in members
        assert {".", "./usr", "./usr/bin"} <= set(members)  # the folders, with their modes
        assert members["./usr/bin/sh"].issym() and members["./usr/bin/sh"].linkname == "busybox"
        assert tar.extractfile("./usr/bin/docker").read() == b"./usr/bin/docker"


def test_cli_image_names_what_the_smoke_image_lacks(tmp_path):
    source = smoke_archive(tmp_path / "smoke.tar.gz", ("./usr/", "./usr/bin/", "./usr/bin/docker"))
    with pytest.raises(images.click.ClickException, match=re.escape("lacks ./bin, ./etc/group")):
        images.cut_cli_rootfs(source, tmp_path / "cli.tar")


def test_cli_image_follows_the_smoke_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("DINDKIT_CACHE", str(tmp_path))
    before = images.cli_image_archive()
    assert before.name.startswith("dindkit-cli-") and before.parent == tmp_path / "images"
    monkeypatch.setattr(images, "PACKAGES", (*images.PACKAGES, "jq"))
    assert images.cli_image_archive() != before


FAKE_MMDEBSTRAP = """#!/usr/bin/env python3
import os, sys, time
time.sleep(1)
open(sys.argv[-2], "wb").write(b"rootfs")
open(os.environ["BUILDS"], "a").write("built\\n")
"""
TWO_HOSTS_PLANNING = """
from gevent import monkey
monkey.patch_all()  # as pyinfra's CLI does: each host is planned in a greenlet
import gevent
from dindkit import images
from dindkit.paths import deploy_file
jobs = [gevent.spawn(images.build_podman_image, progress=print) for _ in range(2)]
gevent.joinall(jobs, raise_error=True)
assert jobs[0].value == jobs[1].value
"""


def test_two_greenlets_wait_for_one_build_without_blocking_the_process(tmp_path):
    """Two hosts planned in one pyinfra process both ask for the image: one builds it, the other
    waits for it; a blocking flock stopped the whole process, the builder included."""
    fake = tmp_path / "bin" / "mmdebstrap"
    fake.parent.mkdir()
    fake.write_text(FAKE_MMDEBSTRAP)
    fake.chmod(0o755)
    builds = tmp_path / "builds"
    env = {
        "PATH": f"{fake.parent}:/usr/bin:/bin",
        "DINDKIT_CACHE": str(tmp_path / "cache"),
        "BUILDS": str(builds),
    }
    result = subprocess.run(
        [sys.executable, "-c", TWO_HOSTS_PLANNING],
        cwd=tmp_path,  # not the checkout: `python -c` would import its dindkit/ first
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert builds.read_text() == "built\n"
    assert result.stdout.count("Built ") == 1


def test_an_archive_of_the_users_own_builds_no_client_image(tmp_path):
    """rootless's client image is cut only from the current recipe's archive: with another
    archive the smoke deploy plans without building anything (the mode copies the image)."""
    own = tmp_path / "own-smoke.tar.gz"
    own.write_bytes(gzip.compress(b"only its first bytes are read at plan time"))
    cache = tmp_path / "cache"
    run = dry_run(
        "smoke",
        f"smoke_image_archive={own}",
        "smoke_modes=rootless",
        cwd=tmp_path,
        env={"DINDKIT_CACHE": str(cache)},
    )
    output = run.output
    assert run.returncode == 0, output
    assert "Building" not in output and not cache.exists(), output
