"""Vagrant boxes made from the lab image, without downloads (``dindkit lab box``).

A box is the cached lab image (:func:`dindkit.lab.image.ensure_image`) plus what Vagrant
expects of a box: a ``vagrant`` user with Vagrant's well-known insecure key (``vagrant up``
replaces it, the project's Vagrantfile keeps ``config.ssh.insert_key``) and passwordless sudo.
The image is edited without mounting it: ``debugfs`` writes the files rendered from
``templates/vagrant/guest/`` into a raw copy of the disk, and a first-boot service creates the
user before SSH starts. The box boots its image's own kernel and initrd (direct kernel boot),
and its embedded Vagrantfile (``templates/vagrant/box/Vagrantfile.j2``) runs the machine in
libvirt's user session with qemu's user-mode network: no bridge, no management network.

Boxes are cached under ``<cache>/boxes/<distro>-<recipe hash>/``; the hash covers the image's
own recipe (its folder name) and everything the box adds, so a changed recipe builds a new box.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dindkit.cache import build_cached, cache_dir
from dindkit.lab.image import (
    DISK_SIZE,
    DISTROS,
    ROOT_LABEL,
    Image,
    ensure_image,
    image_for,
    recipe_hash,
)
from dindkit.paths import TEMPLATES_DIR
from dindkit.templating import render

# Bump when the build steps change in a way the hashed inputs do not show.
RECIPE_VERSION = 1

BOX_NAMES = {"bookworm": "dindkit/debian12", "trixie": "dindkit/debian13"}
# Default forwarded SSH port of each box's machines (127.0.0.1 only).
SSH_PORTS = {"bookworm": 2712, "trixie": 2713}
USER = "vagrant"
# Vagrant's well-known insecure public key (keys/vagrant.pub in Vagrant's sources).
INSECURE_PUBLIC_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niN"
    "ltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAM"
    "zF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjy"
    "iYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHl"
    "nVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key"
)
CMDLINE = f"root=LABEL={ROOT_LABEL} rw console=ttyS0 net.ifnames=0"
GUEST_TEMPLATES = "vagrant/guest"
BOX_TEMPLATES = "vagrant/box"
# Units the box enables (debugfs links them into multi-user.target.wants).
ENABLED_UNITS = ("dindkit-vagrant-init.service",)
# Guest file modes by path prefix; everything else is 0644. All files belong to root.
GUEST_MODES = {"/usr/local/sbin/": 0o755, "/etc/sudoers.d/": 0o440}
# Written into the box beside metadata.json: which recipe an added box came from.
INFO_FILE = "dindkit-box.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Box:
    """A built box: the ``.box`` archive ``vagrant box add`` takes, in its cache folder."""

    distro: str
    directory: Path

    @property
    def name(self) -> str:
        return BOX_NAMES[self.distro]

    @property
    def file(self) -> Path:
        return self.directory / (self.name.split("/")[-1] + ".box")

    @property
    def recipe_id(self) -> str:
        return self.directory.name

    def exists(self) -> bool:
        return self.file.is_file()


def port_variable(distro: str) -> str:
    """The environment variable that sets the forwarded SSH port of a box's machines."""
    return f"DINDKIT_VAGRANT_{BOX_NAMES[distro].split('/')[-1].upper()}_SSH_PORT"


def _templates(root: str) -> Iterator[tuple[str, str]]:
    """(template relative to templates/, path it becomes) for each template under ``root``."""
    for template in sorted((TEMPLATES_DIR / root).rglob("*.j2")):
        relative = template.relative_to(TEMPLATES_DIR / root).as_posix()
        yield f"{root}/{relative}", "/" + relative.removesuffix(".j2")


def guest_files() -> dict[str, str]:
    """Files the box adds to the image: guest path -> content."""
    context = {"user": USER, "insecure_public_key": INSECURE_PUBLIC_KEY}
    return {guest: render(template, **context) for template, guest in _templates(GUEST_TEMPLATES)}


def guest_mode(path: str) -> int:
    return next((mode for prefix, mode in GUEST_MODES.items() if path.startswith(prefix)), 0o644)


def box_files(distro: str) -> dict[str, str]:
    """The box's own small files (metadata.json, its Vagrantfile): name -> content."""
    context = {
        "box_name": BOX_NAMES[distro],
        "distro": distro,
        "ssh_port": SSH_PORTS[distro],
        "port_variable": port_variable(distro),
        "cmdline": CMDLINE,
        "virtual_size": int(DISK_SIZE.removesuffix("G")),
    }
    return {
        path.lstrip("/"): render(template, **context)
        for template, path in _templates(BOX_TEMPLATES)
    }


def recipe(distro: str) -> dict[str, object]:
    """Everything that shapes the box; its hash names the cached box."""
    if distro not in DISTROS:
        raise ValueError(f"unknown distro {distro!r}: choose one of {', '.join(DISTROS)}")
    return {
        "recipe_version": RECIPE_VERSION,
        "distro": distro,
        "image": image_for(distro).directory.name,
        "box_files": box_files(distro),
        "guest_files": guest_files(),
        "enabled_units": list(ENABLED_UNITS),
    }


def boxes_dir() -> Path:
    return cache_dir() / "boxes"


def box_for(distro: str) -> Box:
    """The cached box for ``distro``'s current recipe, whether built or not."""
    return Box(distro, boxes_dir() / f"{distro}-{recipe_hash(recipe(distro))}")


def debugfs_commands(files_dir: Path, files: dict[str, str]) -> str:
    """debugfs commands that add ``files`` (staged under ``files_dir``) and enable the units."""
    lines = []
    for guest in files:
        lines += [
            f"write {files_dir / guest.lstrip('/')} {guest}",
            f"set_inode_field {guest} mode 0{0o100000 | guest_mode(guest):o}",
        ]
    for unit in ENABLED_UNITS:
        lines.append(
            f"symlink /etc/systemd/system/multi-user.target.wants/{unit} /etc/systemd/system/{unit}"
        )
    return "\n".join(lines) + "\n"


def debugfs_errors(stderr: str) -> list[str]:
    """debugfs exits 0 whatever fails: its errors are the stderr lines after its banner."""
    lines = stderr.splitlines()
    return [line for line in lines if line.strip() and not line.startswith("debugfs ")]


def _run(command: list[str], log: Path) -> str:
    """Run a build step, its output appended to the build log; stderr is returned."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        result = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True, check=False)
        out.write(result.stderr)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"box build step failed ({command[0]}), see {log}:\n{tail}")
    return result.stderr


def _debugfs() -> str:
    # debugfs lives in /sbin, which a non-root PATH may lack.
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    found = shutil.which("debugfs", path=search)
    if not found:
        raise RuntimeError("debugfs is missing: sudo apt-get install -y e2fsprogs")
    return found


def _build(box: Box, image: Image, work: Path, progress: Progress) -> None:
    log = work / "build.log"
    files = guest_files()
    files_dir = work / "files"
    for guest, content in files.items():
        path = files_dir / guest.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    raw = work / "box.raw"
    progress(f"Adding the {USER} user's first-boot service to a copy of {image.disk}")
    _run(["qemu-img", "convert", "-O", "raw", str(image.disk), str(raw)], log)
    script = work / "debugfs.commands"
    script.write_text(debugfs_commands(files_dir, files))
    errors = debugfs_errors(_run([_debugfs(), "-w", "-f", str(script), str(raw)], log))
    if errors:
        raise RuntimeError(f"debugfs could not edit the box disk ({log}): {'; '.join(errors)}")
    progress("Converting the disk to qcow2")
    _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "box.img")], log)
    raw.unlink()
    shutil.rmtree(files_dir)
    members = box_files(box.distro)
    members[INFO_FILE] = json.dumps({"distro": box.distro, "recipe": box.recipe_id}) + "\n"
    for name, content in members.items():
        (work / name).write_text(content)
    progress(f"Packing {box.file.name}")
    with tarfile.open(work / box.file.name, "w") as archive:
        for name in sorted(members):
            archive.add(work / name, arcname=name)
        archive.add(work / "box.img", arcname="box.img")
        archive.add(image.kernel, arcname="vmlinuz")
        archive.add(image.initrd, arcname="initrd.img")
    (work / "box.img").unlink()


def ensure_box(distro: str, progress: Progress = print, force: bool = False) -> Box:
    """The cached box for ``distro``, built first (with its image if needed) if missing."""
    box = box_for(distro)
    if box.exists() and not force:
        progress(f"Reusing the cached box {box.file}")
        return box
    image = ensure_image(distro, progress=progress)
    build_cached(
        box.directory,
        recipe(distro),
        lambda work: _build(box, image, work, progress),
        ready=box.exists,
        what=f"{distro} box",
        progress=progress,
        force=force,
    )
    return box


def vagrant_home() -> Path:
    return Path(os.environ.get("VAGRANT_HOME") or "~/.vagrant.d").expanduser()


def added_recipe(name: str, home: Path | None = None) -> str | None:
    """The recipe of the box ``name`` as added to Vagrant (version 0, libvirt), or None."""
    folder = (home or vagrant_home()) / "boxes" / name.replace("/", "-VAGRANTSLASH-")
    try:
        info = json.loads((folder / "0" / "libvirt" / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    recipe_id = info.get("recipe") if isinstance(info, dict) else None
    return recipe_id if isinstance(recipe_id, str) else None


def add_box(box: Box, progress: Progress = print) -> bool:
    """``vagrant box add`` the box under its stable name unless Vagrant has this very box.

    Returns whether it added (or replaced) the box.
    """
    previous = added_recipe(box.name)
    if previous == box.recipe_id:
        progress(f"Vagrant already has this {box.name} ({vagrant_home()})")
        return False
    vagrant = shutil.which("vagrant")
    if not vagrant:
        raise RuntimeError("vagrant is missing: sudo apt-get install -y vagrant vagrant-libvirt")
    progress(f"Adding {box.file} to Vagrant as {box.name}")
    started = time.monotonic()
    command = [vagrant, "box", "add", "--force", "--name", box.name, str(box.file)]
    env = {**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1"}
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed (exit {result.returncode})")
    progress(f"Added {box.name} in {time.monotonic() - started:.1f}s")
    if previous:
        progress(
            "The previous box's image may remain in libvirt's storage pool: see "
            "`virsh -c qemu:///session vol-list default` (its name starts with "
            f"{box.name.replace('/', '-VAGRANTSLASH-')}_vagrant_box_image_0_)"
        )
    return True
