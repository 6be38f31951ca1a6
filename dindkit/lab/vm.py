"""Booting and stopping a lab's qemu, and waiting for its SSH.

qemu runs daemonized on a qcow2 overlay of the cached base image, with the kernel and initrd
of that image, user-mode networking and SSH forwarded to a free port on 127.0.0.1. Root's key
reaches the guest on the kernel command line (``dindkit.authorized_key=<base64>``), read at boot
by the image's ``dindkit-lab-init`` unit: that works the same on every systemd version, needs no
kernel module and survives a guest reboot (qemu boots the same ``-append`` again).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from dindkit.cache import cache_dir
from dindkit.lab.state import Lab, pid_alive, qemu_name

ACCELS = ("auto", "kvm", "tcg")
KVM_PROBE_SECONDS = 15.0
Progress = Callable[[str], None]


class LabError(RuntimeError):
    """A lab could not be booted, reached or stopped."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (qemu's bind may still lose a race: retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def kernel_arguments(name: str, public_key: str) -> str:
    key = base64.b64encode(public_key.strip().encode()).decode()
    return " ".join(
        [
            "root=/dev/vda",
            "rw",
            "console=ttyS0",
            "net.ifnames=0",
            # Under TCG on a busy host the kernel's IO-APIC timer check can fail and panic
            # ("IO-APIC + timer doesn't work!"), seen once on trixie; skip that check.
            "no_timer_check",
            f"systemd.hostname=lab-{name}",
            f"dindkit.authorized_key={key}",
        ]
    )


def accel_arguments(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    if accel == "tcg":
        return ["-accel", "tcg", "-cpu", "max"]
    raise ValueError(f"unknown accelerator {accel!r}: kvm or tcg")


def qemu_command(
    lab: Lab, kernel: Path, initrd: Path, public_key: str, pid_file: Path
) -> list[str]:
    """The qemu command line of a lab (daemonized; qemu exits 0 once the VM runs)."""
    return [
        "qemu-system-x86_64",
        "-name",
        qemu_name(lab.name),
        *accel_arguments(lab.accel),
        "-m",
        str(lab.memory),
        "-smp",
        str(lab.cpus),
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        kernel_arguments(lab.name, public_key),
        "-drive",
        f"file={lab.overlay},if=virtio,format=qcow2,cache=unsafe",
        "-netdev",
        f"user,id=n0,hostfwd=tcp:127.0.0.1:{lab.ssh_port}-:22",
        "-device",
        "virtio-net-pci,netdev=n0",
        "-device",
        "virtio-rng-pci",
        "-display",
        "none",
        "-serial",
        f"file:{lab.serial_log}",
        "-daemonize",
        "-pidfile",
        str(pid_file),
    ]


def kvm_usable_device(path: str = "/dev/kvm") -> bool:
    return os.path.exists(path) and os.access(path, os.R_OK | os.W_OK)


def probe_kvm(kernel: Path, timeout: float = KVM_PROBE_SECONDS) -> bool:
    """Boot ``kernel`` under KVM without a root disk: a working KVM reaches the "no root fs"
    panic in a second or two and qemu exits (``-no-reboot``); a broken one hangs or fails."""
    command = [
        "qemu-system-x86_64",
        *accel_arguments("kvm"),
        "-m",
        "256",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 panic=-1 root=/dev/nonexistent",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-nodefaults",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, errors="replace"
        )
    except subprocess.TimeoutExpired:
        return False
    return "Kernel panic" in result.stdout or "VFS: " in result.stdout


def choose_accel(
    requested: str,
    kernel: Path,
    progress: Progress = print,
    probe: Callable[[Path], bool] = probe_kvm,
    device_ok: Callable[[], bool] = kvm_usable_device,
) -> str:
    """``kvm`` or ``tcg``: auto uses KVM only if a bounded probe boots a kernel with it.

    The probe's answer is cached per host kernel and qemu (``<cache>/accel.json``).
    """
    if requested not in ACCELS:
        raise ValueError(f"unknown accelerator {requested!r}: choose one of {', '.join(ACCELS)}")
    if requested != "auto":
        return requested
    if not device_ok():
        return "tcg"
    cache_file = cache_dir() / "accel.json"
    key = f"{os.uname().release} {_qemu_version()}"
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("key") == key and cached.get("accel") in ("kvm", "tcg"):
            return str(cached["accel"])
    except (OSError, ValueError):
        pass
    progress(f"Probing KVM (at most {KVM_PROBE_SECONDS:.0f}s)...")
    accel = "kvm" if probe(kernel) else "tcg"
    progress(f"KVM {'works' if accel == 'kvm' else 'does not work here'}: using {accel}")
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps({"key": key, "accel": accel}) + "\n")
    return accel


def _qemu_version() -> str:
    try:
        result = subprocess.run(
            ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


def start(lab: Lab, kernel: Path, initrd: Path, public_key: str) -> int:
    """Start qemu daemonized; returns its pid."""
    pid_file = lab.overlay.parent / "qemu.pid"
    pid_file.unlink(missing_ok=True)
    command = qemu_command(lab, kernel, initrd, public_key, pid_file)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"qemu failed to start lab {lab.name}: {result.stderr.strip()}")
    return int(pid_file.read_text().strip())


def serial_tail(lab: Lab, lines: int = 15) -> str:
    try:
        text = lab.serial_log.read_text(errors="replace")
    except OSError:
        return "(no serial log)"
    return "\n".join(text.splitlines()[-lines:])


def ssh_answers(lab: Lab) -> bool:
    try:
        result = subprocess.run(
            lab.ssh_command("true"), capture_output=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def wait_for_ssh(
    lab: Lab,
    timeout: float,
    progress: Progress = print,
    every: float = 10.0,
    answers: Callable[[Lab], bool] = ssh_answers,
) -> float:
    """Poll until SSH answers; a progress line every ``every`` seconds; LabError after
    ``timeout`` or if qemu dies. Returns the seconds waited."""
    started = time.monotonic()
    last_report = started
    while True:
        if answers(lab):
            return time.monotonic() - started
        now = time.monotonic()
        elapsed = now - started
        if not lab.running:
            raise LabError(
                f"qemu of lab {lab.name} exited while booting; serial log "
                f"{lab.serial_log}:\n{serial_tail(lab)}"
            )
        if elapsed > timeout:
            raise LabError(
                f"lab {lab.name}: SSH did not answer on 127.0.0.1:{lab.ssh_port} within "
                f"{timeout:.0f}s; serial log {lab.serial_log}:\n{serial_tail(lab)}"
            )
        if now - last_report >= every:
            last_report = now
            progress(f"  ... waiting for SSH on 127.0.0.1:{lab.ssh_port} ({elapsed:.0f}s)")
        time.sleep(2)


def stop(pid: int | None, marker: str, grace: float = 10.0) -> None:
    """Stop a lab's qemu: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if not pid_alive(pid, marker):
        return
    assert pid is not None
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid, marker):
                return
            time.sleep(0.2)
    raise LabError(f"qemu (pid {pid}) did not stop")
