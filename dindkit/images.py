"""The registry-free smoke image: Debian packages only, cached by a hash of its recipe.

Where no registry is reachable (the lab, air-gapped hosts) the smoke tests cannot pull the
official docker:cli and docker:dind images. ``build_smoke_image`` makes an equivalent one with
mmdebstrap: docker.io, iptables, ca-certificates, busybox-static (a static binary for the
``FROM scratch`` test images), openssl (TLS certificates) and an entrypoint that behaves like
docker:dind's (templates/smoke/dockerd-entrypoint.sh.j2). The result is a gzip-compressed
root filesystem tarball for ``docker import`` (:data:`IMPORT_CHANGES` give it its entrypoint);
one image serves both the "cli" and the "dind" role.

Loading the image is the slowest smoke step on an emulated CPU, so the recipe keeps it lean:
the "essential" variant (no apt), no documentation, man pages or locales, and none of
containerd's tools dockerd does not use.

The podman mode has its own image the same way (``build_podman_image``): podman, crun,
slirp4netns and busybox-static, a user ``podman`` (uid 1000) and EMPTY /etc/subuid and
/etc/subgid, so rootless Podman inside maps one UID and needs no added capability.

The rootless mode's client image (``build_cli_image``) is cut from the smoke image's root
filesystem: the docker CLI, its C library and busybox, a fifth of the size to copy into a
rootless user's own image store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import click

from dindkit.cache import cache_dir, file_lock
from dindkit.settings.apt import MMDEBSTRAP_RETRY_OPTIONS
from dindkit.templating import render

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("docker.io", "iptables", "ca-certificates", "busybox-static", "openssl")
ENTRYPOINT = "/usr/local/bin/dockerd-entrypoint.sh"
ENTRYPOINT_TEMPLATE = "smoke/dockerd-entrypoint.sh.j2"
CERT_DAYS = 30

# Files dpkg never unpacks (documentation and translations; copyright notices stay).
PATH_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/share/bash-completion/*",
    "/usr/share/zsh/*",
    "/usr/share/fish/*",
)
PATH_INCLUDES = ("/usr/share/doc/*/copyright",)
# Removed after installation: apt's caches and logs, containerd and libnetwork tools dockerd
# never calls, and the full perl that usrmerge pulls in (nothing in the image runs it).
REMOVED = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/cache/debconf/*-old",
    "var/log/*",
    "usr/bin/ctr",
    "usr/bin/containerd-stress",
    "usr/bin/containerd-shim",
    "usr/bin/containerd-shim-runc-v1",
    "usr/bin/dnet",
    "usr/sbin/ovrouter",
    "usr/share/perl",
    "usr/lib/x86_64-linux-gnu/perl",
    "usr/lib/x86_64-linux-gnu/libperl.so*",
    "usr/lib/x86_64-linux-gnu/gconv",
)

# `docker import --change` instructions: the archive is a plain root filesystem.
IMPORT_CHANGES = (
    f'ENTRYPOINT ["{ENTRYPOINT}"]',
    "CMD []",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
)

# Bump when the build steps change in a way the recipe below does not capture.
RECIPE_VERSION = 1

PODMAN_PACKAGES = ("podman", "crun", "slirp4netns", "busybox-static")
PODMAN_UID = 1000
PODMAN_HOME = "/home/podman"
# Customize hooks ("$1" is the root filesystem): the non-root user and empty ID ranges.
PODMAN_HOOKS = (
    f"echo 'podman:x:{PODMAN_UID}:{PODMAN_UID}:podman:{PODMAN_HOME}:/bin/sh' >>\"$1\"/etc/passwd",
    f"echo 'podman:x:{PODMAN_UID}:' >>\"$1\"/etc/group",
    ': >"$1"/etc/subuid; : >"$1"/etc/subgid',
    f'mkdir -p "$1"{PODMAN_HOME} && chown {PODMAN_UID}:{PODMAN_UID} "$1"{PODMAN_HOME}',
)
PODMAN_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    f"ENV HOME={PODMAN_HOME}",
    f"USER {PODMAN_UID}:{PODMAN_UID}",
    'CMD ["/bin/sh"]',
)
PODMAN_RECIPE_VERSION = 1

# The rootless mode's client image, cut from the smoke image's root filesystem: the docker
# CLI, the C library it links, and busybox for the shell and tools the client scripts use.
# A fifth of the smoke image, because copying an image into a rootless user's store was the
# slowest smoke step under emulation. Imported with no changes: every client command is
# explicit, and dockerd gives a container without a PATH its default one.
CLI_FILES = (
    "usr/bin/docker",
    "usr/bin/busybox",
    "usr/lib/x86_64-linux-gnu/libc.so.6",
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "usr/lib64/ld-linux-x86-64.so.2",
    "etc/passwd",
    "etc/group",
    "tmp",
    # merged /usr: the top-level links
    "bin",
    "lib",
    "lib64",
    "sbin",
)
CLI_APPLETS = ("sh", "cat", "cp", "echo", "mkdir", "mktemp", "printf", "rm", "sleep", "touch")
CLI_RECIPE_VERSION = 1


def entrypoint_script() -> str:
    return render(ENTRYPOINT_TEMPLATE, cert_days=CERT_DAYS)


def recipe() -> dict[str, object]:
    """Everything that decides the image's content; its hash names the archive and tag."""
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": list(PACKAGES),
        "path_excludes": list(PATH_EXCLUDES),
        "path_includes": list(PATH_INCLUDES),
        "removed": list(REMOVED),
        "entrypoint": entrypoint_script(),
        "changes": list(IMPORT_CHANGES),
    }


def podman_recipe() -> dict[str, object]:
    return {
        "version": PODMAN_RECIPE_VERSION,
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": list(PODMAN_PACKAGES),
        "path_excludes": list(PATH_EXCLUDES),
        "path_includes": list(PATH_INCLUDES),
        "removed": list(REMOVED),
        "hooks": list(PODMAN_HOOKS),
        "changes": list(PODMAN_CHANGES),
    }


def cli_recipe() -> dict[str, object]:
    return {
        "version": CLI_RECIPE_VERSION,
        "smoke": recipe_hash(),
        "files": list(CLI_FILES),
        "applets": list(CLI_APPLETS),
    }


def _hash(content: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def recipe_hash() -> str:
    return _hash(recipe())


def smoke_image_archive() -> Path:
    """Where the archive of the current recipe lives, whether it is built yet or not."""
    return cache_dir() / "images" / f"dindkit-smoke-{recipe_hash()}.tar.gz"


def podman_image_archive() -> Path:
    return cache_dir() / "images" / f"dindkit-podman-{_hash(podman_recipe())}.tar.gz"


def cli_image_archive() -> Path:
    return cache_dir() / "images" / f"dindkit-cli-{_hash(cli_recipe())}.tar.gz"


def planned_build(archive: Path) -> str:
    """How a real run makes ARCHIVE (one of the current recipes'), for a plan; touches nothing."""
    smoke = smoke_image_archive()
    how = {
        smoke: f"with mmdebstrap from {_debian(PACKAGES)}",
        podman_image_archive(): f"with mmdebstrap from {_debian(PODMAN_PACKAGES)}",
        cli_image_archive(): f"cut from {smoke.name}: {', '.join(CLI_FILES[:2])}, their libraries",
    }
    return f"{archive} {how[archive]}"


def image_tag(archive: str | Path) -> str:
    """The tag an archive is loaded as: the recipe hash in its name, so a new recipe reloads."""
    stem = Path(archive).name.removesuffix(".tar.gz").removesuffix(".tgz")
    repository, _, digest = stem.rpartition("-")
    return f"{repository}:{digest}"


def mmdebstrap_command(
    rootfs_tar: Path,
    entrypoint_file: Path | None = None,
    packages: tuple[str, ...] = PACKAGES,
    hooks: tuple[str, ...] = (),
) -> list[str]:
    removed = " ".join(f'"$1"/{path}' for path in REMOVED)
    entrypoint = (
        [
            f"--customize-hook=upload {entrypoint_file} {ENTRYPOINT}",
            f'--customize-hook=chmod 0755 "$1"{ENTRYPOINT}',
        ]
        if entrypoint_file
        else []
    )
    return [
        "mmdebstrap",
        "--variant=essential",
        "--include=" + ",".join(packages),
        *[f"--dpkgopt=path-exclude={path}" for path in PATH_EXCLUDES],
        *[f"--dpkgopt=path-include={path}" for path in PATH_INCLUDES],
        *entrypoint,
        *[f"--customize-hook={hook}" for hook in hooks],
        f"--customize-hook=rm -rf {removed}",
        *MMDEBSTRAP_RETRY_OPTIONS,
        SUITE,
        str(rootfs_tar),
        MIRROR,
    ]


def build_smoke_image(force: bool = False, progress: Callable[[str], None] = click.echo) -> Path:
    """Build the archive unless the cached one matches the recipe; returns its path."""

    def make(work: Path, rootfs: Path) -> None:
        entrypoint = work / "dockerd-entrypoint.sh"
        entrypoint.write_text(entrypoint_script())
        _mmdebstrap(mmdebstrap_command(rootfs, entrypoint))

    return _build(smoke_image_archive(), _debian(PACKAGES), make, force, progress)


def build_podman_image(force: bool = False, progress: Callable[[str], None] = click.echo) -> Path:
    """The podman mode's archive, built unless the cached one matches its recipe."""

    def make(work: Path, rootfs: Path) -> None:
        _mmdebstrap(mmdebstrap_command(rootfs, packages=PODMAN_PACKAGES, hooks=PODMAN_HOOKS))

    return _build(podman_image_archive(), _debian(PODMAN_PACKAGES), make, force, progress)


def build_cli_image(force: bool = False, progress: Callable[[str], None] = click.echo) -> Path:
    """The rootless mode's client archive, cut from the smoke image (built first if missing)."""
    smoke = build_smoke_image(progress=progress)

    def make(work: Path, rootfs: Path) -> None:
        cut_cli_rootfs(smoke, rootfs)

    what = f"{', '.join(CLI_FILES[:2])} and their libraries from {smoke.name}"
    return _build(cli_image_archive(), what, make, force, progress)


def cut_cli_rootfs(smoke_archive: Path, rootfs: Path) -> None:
    """Copy CLI_FILES (with their folders) from the smoke archive, link the busybox applets."""
    wanted = {f"./{name}" for name in CLI_FILES}
    parents = {str(parent) for name in CLI_FILES for parent in PurePosixPath(name).parents}
    folders = {"." if parent == "." else f"./{parent}" for parent in parents}
    with tarfile.open(smoke_archive, "r:gz") as source, tarfile.open(rootfs, "w") as target:
        found: set[str] = set()
        for member in source:
            name = member.name.rstrip("/")
            if name in wanted or (member.isdir() and name in folders):
                found.add(name)
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
        missing = sorted(wanted - found)
        if missing:
            raise click.ClickException(f"{smoke_archive} lacks {', '.join(missing)}")
        for applet in CLI_APPLETS:
            link = tarfile.TarInfo(f"./usr/bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            target.addfile(link)


def _mmdebstrap(command: list[str]) -> None:
    if shutil.which("mmdebstrap") is None:
        raise click.ClickException("mmdebstrap is missing: install it (apt-get install mmdebstrap)")
    subprocess.run(command, check=True)


def _debian(packages: tuple[str, ...]) -> str:
    return f"{SUITE}, {', '.join(packages)}"


def _build(
    archive: Path,
    what: str,
    make_rootfs: Callable[[Path, Path], None],
    force: bool,
    progress: Callable[[str], None],
) -> Path:
    """Build ARCHIVE unless it exists; returns its path.

    MAKE_ROOTFS(work folder, rootfs tar) writes the root filesystem; it is compressed in a
    temporary file beside the target under an exclusive lock, then renamed, so concurrent
    builds wait for each other and nobody sees half an archive.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(archive.parent / ".lock"):
        if archive.exists() and not force:
            return archive
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".build-") as work:
            rootfs = Path(work) / "rootfs.tar"
            progress(f"Building the {image_tag(archive)} root filesystem ({what})")
            make_rootfs(Path(work), rootfs)
            progress(f"Compressing {rootfs.stat().st_size / 2**20:.0f} MiB root filesystem")
            partial = Path(work) / archive.name
            with open(partial, "wb") as out:
                subprocess.run(["gzip", "-6", "-n", "-c", str(rootfs)], stdout=out, check=True)
            os.replace(partial, archive)
        progress(
            f"Built {archive} ({archive.stat().st_size / 2**20:.1f} MiB) "
            f"in {time.monotonic() - started:.0f} s; tag it loads as: {image_tag(archive)}"
        )
        return archive


@click.group()
def images() -> None:
    """Build the registry-free smoke image from Debian packages."""


@images.command()
@click.option("--force", is_flag=True, help="Rebuild even when the cached archive matches.")
def build(force: bool) -> None:
    """Build (or reuse) the cached smoke, podman and CLI image archives; print their paths."""
    built = (build_smoke_image(force=force), build_podman_image(force=force))
    for archive in (*built, build_cli_image(force=force)):
        size = archive.stat().st_size / 2**20
        click.echo(f"{archive} ({size:.1f} MiB, tag {image_tag(archive)})")


@images.command()
def path() -> None:
    """Print where the archives of the current recipes live (built or not)."""
    click.echo(smoke_image_archive())
    click.echo(podman_image_archive())
    click.echo(cli_image_archive())
