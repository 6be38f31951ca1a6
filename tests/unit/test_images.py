"""The registry-free smoke image: recipe hash, cache path, tag, build command, entrypoint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dindkit import images


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
