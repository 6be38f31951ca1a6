"""The embedded lab: throwaway Debian VMs built from Debian packages, booted with qemu.

``up`` builds (or reuses) the cached base image, boots a lab on an overlay of it and waits
for SSH; ``down`` stops it and removes its files; ``list_labs`` reads the records. The lab
knows nothing of Docker: ``inventories/lab.py`` is where labs meet the deploys.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from dindkit import progress as life_signs
from dindkit.cache import file_lock
from dindkit.lab import image as images
from dindkit.lab import vm
from dindkit.lab.state import (
    Lab,
    all_labs,
    check_name,
    lab_dir,
    labs_dir,
    load,
    pid_alive,
    qemu_name,
    save,
)
from dindkit.lab.tools import require_tools
from dindkit.lab.vm import LabError

__all__ = ["Lab", "LabError", "down", "list_labs", "up"]

DEFAULT_NAME = "default"
DEFAULT_DISTRO = "bookworm"
DEFAULT_MEMORY = 4096
DEFAULT_CPUS = 2
DEFAULT_TIMEOUT = 600.0
PORT_ATTEMPTS = 5

Progress = Callable[[str], None]


def _say(message: str) -> None:
    life_signs.say(message)


def _lock(name: str) -> Path:
    return labs_dir() / f".{name}.lock"


def _ensure_key(directory: Path, name: str) -> Path:
    key = directory / "id_ed25519"
    if not key.is_file() or not key.with_suffix(".pub").is_file():
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        comment = f"dindkit-lab-{name}"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            check=True,
        )
    return key


def _create_overlay(base: Path, overlay: Path) -> None:
    overlay.unlink(missing_ok=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
        check=True,
    )


def up(
    name: str = DEFAULT_NAME,
    distro: str = DEFAULT_DISTRO,
    memory: int = DEFAULT_MEMORY,
    cpus: int = DEFAULT_CPUS,
    accel: str = "auto",
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress = _say,
) -> Lab:
    """Boot lab ``name`` (building or reusing its image) and wait until SSH answers.

    A lab that already runs is left alone and returned as it is.
    """
    check_name(name)
    require_tools()
    with file_lock(_lock(name), on_wait=lambda: progress(f"Waiting for another `up` of {name}")):
        existing = load(name)
        if existing and existing.running:
            progress(
                f"Lab {name} is already running ({existing.distro}, ssh port "
                f"{existing.ssh_port}, pid {existing.pid}): nothing to do"
            )
            if existing.distro != distro:
                progress(f"  (it runs {existing.distro}: `dindkit lab down {name}` to change)")
            return existing
        image = images.ensure_image(distro, progress=progress)
        directory = lab_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        key = _ensure_key(directory, name)
        overlay = directory / "overlay.qcow2"
        if existing and overlay.is_file() and existing.image == image.disk:
            progress(f"Booting lab {name} again on its existing overlay")
        else:
            _create_overlay(image.disk, overlay)
        chosen = vm.choose_accel(accel, image.kernel, progress=progress)
        lab = Lab(
            name=name,
            distro=distro,
            ssh_port=0,
            key_path=key,
            pid=None,
            overlay=overlay,
            serial_log=directory / "serial.log",
            image=image.disk,
            memory=memory,
            cpus=cpus,
            accel=chosen,
            started_at=time.time(),
        )
        public_key = key.with_suffix(".pub").read_text()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            lab.ssh_port = vm.free_port()
            try:
                lab.pid = vm.start(lab, image.kernel, image.initrd, public_key)
                break
            except LabError as error:
                # Another process took the port between our check and qemu's bind.
                if "host forwarding" not in str(error) or attempt == PORT_ATTEMPTS:
                    raise
        save(lab)
        progress(
            f"Booting lab {name} ({distro}, {chosen}, {cpus} cpu, {memory} MiB), "
            f"ssh on 127.0.0.1:{lab.ssh_port}, serial log {lab.serial_log}"
        )
        try:
            with life_signs.running(f"Waiting for lab {name} to answer SSH"):
                waited = vm.wait_for_ssh(lab, timeout, progress=progress)
        except BaseException:
            vm.stop(lab.pid, qemu_name(name))
            raise
        progress(f"Lab {name} answers SSH after {waited:.0f}s")
        return lab


def _stray_pids(name: str) -> list[int]:
    """qemu processes of lab ``name`` that its record may not know (e.g. a lost state file)."""
    marker = qemu_name(name)
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_alive(int(entry.name), marker):
            pids.append(int(entry.name))
    return pids


def down(name: str, progress: Progress = _say) -> bool:
    """Stop lab ``name`` and remove its files; True if there was something to take down."""
    check_name(name)
    with file_lock(_lock(name)):
        lab = load(name)
        marker = qemu_name(name)
        pids = set(_stray_pids(name))
        if lab and lab.pid:
            pids.add(lab.pid)
        for pid in sorted(pids):
            vm.stop(pid, marker)
        directory = lab_dir(name)
        existed = directory.exists() or bool(pids)
        shutil.rmtree(directory, ignore_errors=True)
    if existed:
        progress(f"Lab {name} is down" + (" (qemu stopped)" if pids else ""))
    else:
        progress(f"No lab named {name}: nothing to do")
    return existed


def known_names() -> list[str]:
    """Names of recorded labs and of any lab qemu still running without a record."""
    names = {lab.name for lab in all_labs()}
    prefix = qemu_name("")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-name" in arguments:
            value = arguments[arguments.index(b"-name") + 1 :][:1]
            text = value[0].decode(errors="replace") if value else ""
            if text.startswith(prefix):
                names.add(text.removeprefix(prefix))
    return sorted(names)


def list_labs() -> list[Lab]:
    """Every recorded lab, running or not (``Lab.running`` tells)."""
    return all_labs()


def get(name: str) -> Lab | None:
    """The record of lab ``name``, if any."""
    return load(check_name(name))
