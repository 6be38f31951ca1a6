"""The lab's base image: a Debian root filesystem built from Debian packages only, cached.

mmdebstrap builds the root filesystem (as root in ``root`` mode, otherwise unprivileged in
``unshare`` mode), the guest configuration comes from ``templates/lab/`` rendered with jinja2,
``mkfs.ext4 -d`` turns the tree into a disk without loop devices, and ``qemu-img`` makes it a
qcow2 base that every lab boots through its own overlay. The kernel and initrd are copied out of
the image's own /boot (a kernel from elsewhere has no matching modules).

Images are cached under ``<cache>/images/<distro>-<recipe hash>/``; the hash covers everything
that shapes the image (distro, mirrors, packages, rendered configuration, disk size and
:data:`RECIPE_VERSION`), so a changed recipe builds a new image and an unchanged one is reused.
A build runs in a temporary directory and is renamed into place under a file lock, so several
``lab up`` at once build an image only once.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dindkit import progress as life_signs
from dindkit.cache import build_cached, cache_dir
from dindkit.lab.tools import require_tools
from dindkit.paths import TEMPLATES_DIR
from dindkit.settings.apt import MMDEBSTRAP_RETRY_OPTIONS
from dindkit.templating import render

# Bump when the build steps change in a way the hashed inputs do not show.
RECIPE_VERSION = 2

DISTROS = ("bookworm", "trixie")
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
PACKAGES = (
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "openssh-server",
    "python3",
    "sudo",
    "ca-certificates",
    "iproute2",
    "initramfs-tools",
    "linux-image-cloud-amd64",
    "procps",
    "curl",
    "netbase",
)
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
)
DISK_SIZE = "12G"
ROOT_LABEL = "labroot"
TEMPLATE_ROOT = "lab"
# qemu's user-mode network: the host's DNS relay as seen from the guest.
NAMESERVER = "10.0.2.3"
# An unprivileged account with a home, for what runs as a user (rootless Docker). useradd gives
# it subordinate ID ranges in /etc/subuid and /etc/subgid.
LAB_USER = "dindkit"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Image:
    """A built base image: the qcow2 disk and the kernel and initrd from its /boot."""

    distro: str
    directory: Path

    @property
    def disk(self) -> Path:
        return self.directory / "base.qcow2"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    def exists(self) -> bool:
        return all(path.is_file() for path in (self.disk, self.kernel, self.initrd))


def sources(distro: str) -> list[str]:
    """The apt sources of the image (also what the guest's apt uses afterwards)."""
    return [
        f"deb {MIRROR} {distro} main",
        f"deb {MIRROR} {distro}-updates main",
        f"deb {SECURITY_MIRROR} {distro}-security main",
    ]


def _template_paths() -> Iterator[tuple[str, str]]:
    """(template relative to templates/, path in the guest) for each guest file."""
    root = TEMPLATES_DIR / TEMPLATE_ROOT
    for template in sorted(root.rglob("*.j2")):
        relative = template.relative_to(root).as_posix()
        yield f"{TEMPLATE_ROOT}/{relative}", "/" + relative.removesuffix(".j2")


def guest_files() -> dict[str, str]:
    """Every file the recipe writes into the guest: path -> content."""
    context = {"nameserver": NAMESERVER, "root_label": ROOT_LABEL, "hostname": "dindkit-lab"}
    return {guest: render(template, **context) for template, guest in _template_paths()}


def recipe(distro: str) -> dict[str, object]:
    """Everything that shapes the image; its hash names the cached image."""
    if distro not in DISTROS:
        raise ValueError(f"unknown distro {distro!r}: choose one of {', '.join(DISTROS)}")
    return {
        "recipe_version": RECIPE_VERSION,
        "distro": distro,
        "sources": sources(distro),
        "packages": sorted(PACKAGES),
        "masked_units": sorted(MASKED_UNITS),
        "disk_size": DISK_SIZE,
        "root_label": ROOT_LABEL,
        "users": [LAB_USER],
        "files": guest_files(),
    }


def recipe_hash(recipe_data: dict[str, object]) -> str:
    text = json.dumps(recipe_data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def images_dir() -> Path:
    return cache_dir() / "images"


def image_for(distro: str) -> Image:
    """The cached image for ``distro``'s current recipe, whether built or not."""
    return Image(distro, images_dir() / f"{distro}-{recipe_hash(recipe(distro))}")


def mmdebstrap_command(distro: str, target: Path, files_dir: Path, unprivileged: bool) -> list[str]:
    """The mmdebstrap call that builds the root filesystem tree in ``target``."""
    executable_files = [guest for guest in guest_files() if guest.startswith("/usr/local/sbin/")]
    hooks = [
        f"sync-in {files_dir} /",
        "chmod 0755 " + " ".join(f'"$1"{path}' for path in executable_files),
        'chroot "$1" systemctl enable systemd-networkd.service dindkit-lab-init.service',
        f'chroot "$1" useradd --create-home --shell /bin/bash {LAB_USER}',
        # No background apt runs (they would hold dpkg's lock under a deploy) and no
        # filesystem scrubbing eating the emulated CPU during boot.
        'chroot "$1" systemctl mask ' + " ".join(MASKED_UNITS),
        # Each lab gets its own host keys at boot (dindkit-lab-init), and its own machine-id.
        'rm -f "$1"/etc/ssh/ssh_host_*',
        ': > "$1"/etc/machine-id',
        'rm -f "$1"/var/lib/dbus/machine-id',
    ]
    return [
        "mmdebstrap",
        "--mode=" + ("unshare" if unprivileged else "root"),
        "--variant=minbase",
        "--format=directory",
        "--include=" + ",".join(PACKAGES),
        *[f"--customize-hook={hook}" for hook in hooks],
        *MMDEBSTRAP_RETRY_OPTIONS,
        distro,
        str(target),
        *sources(distro),
    ]


def _run(command: list[str], log: Path, unprivileged: bool = False) -> None:
    """Run a build step, its output appended to the build log; raise with the log's tail."""
    if unprivileged:
        # Inside mmdebstrap's user namespace the tree's files belong to root again.
        command = ["mmdebstrap", "--unshare-helper", *command]
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"image build step failed ({command[0]}), see {log}:\n{tail}")


def unprivileged_problem(
    user: str, subid_files: tuple[Path, ...] = (Path("/etc/subuid"), Path("/etc/subgid"))
) -> str | None:
    """Why mmdebstrap --mode=unshare cannot work for ``user``, or None."""
    if not shutil.which("newuidmap"):
        return "newuidmap is missing (sudo apt-get install -y uidmap)"
    for path in subid_files:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            lines = []
        if not any(line.split(":", 1)[0] == user for line in lines):
            ranges = "--add-subuids 100000-165535 --add-subgids 100000-165535"
            return f"{path} has no range for {user} (sudo usermod {ranges} {user})"
    return None


def _build(distro: str, work: Path, progress: Progress) -> None:
    unprivileged = os.geteuid() != 0
    if unprivileged:
        problem = unprivileged_problem(getpass.getuser())
        if problem:
            raise RuntimeError(
                "building the lab image without root uses mmdebstrap --mode=unshare, which "
                f"needs user namespaces with subordinate ids: {problem}; or build it as root "
                "with the same DINDKIT_CACHE"
            )
    log = work / "build.log"
    files_dir = work / "files"
    for guest, content in guest_files().items():
        path = files_dir / guest.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    rootfs = work / "rootfs"
    started = time.monotonic()
    progress(f"Building the {distro} root filesystem with mmdebstrap (log: {log})")
    _run(mmdebstrap_command(distro, rootfs, files_dir, unprivileged), log)
    progress(f"Root filesystem built in {time.monotonic() - started:.0f}s; making the disk")
    raw = work / "root.raw"
    _run(["truncate", "-s", DISK_SIZE, str(raw)], log)
    _run(
        ["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-d", str(rootfs), str(raw)],
        log,
        unprivileged,
    )
    for name, pattern in (("vmlinuz", "vmlinuz-*"), ("initrd.img", "initrd.img-*")):
        found = sorted((rootfs / "boot").glob(pattern))
        if not found:
            raise RuntimeError(f"no /boot/{pattern} in the {distro} root filesystem")
        _run(["cp", str(found[-1]), str(work / name)], log, unprivileged)
    _run(["rm", "-rf", str(rootfs)], log, unprivileged)
    _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "base.qcow2")], log)
    raw.unlink()
    shutil.rmtree(files_dir)


def ensure_image(distro: str, progress: Progress = print, force: bool = False) -> Image:
    """The cached image for ``distro``, built first if missing (or ``force``)."""
    image = image_for(distro)
    if force or not image.exists():
        require_tools(build=True)

    def build(work: Path) -> None:
        with life_signs.running(f"Building the {distro} lab image"):
            _build(distro, work, progress)

    build_cached(
        image.directory,
        recipe(distro),
        build,
        ready=image.exists,
        what=f"{distro} image",
        progress=progress,
        force=force,
    )
    return image


def stale_images(in_use: set[Path]) -> list[Path]:
    """Cached image folders that no current recipe names and no lab overlay is based on."""
    if not images_dir().is_dir():
        return []
    current = {image_for(distro).directory for distro in DISTROS}
    return [
        directory
        for directory in sorted(images_dir().iterdir())
        if directory.is_dir()
        and not directory.name.startswith(".")
        and directory not in current
        and directory / "base.qcow2" not in in_use
    ]
