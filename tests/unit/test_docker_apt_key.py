"""The repository key check, run for real on this machine with a throwaway key (no network:
the key is fetched from a file:// URL). A key whose fingerprint is not the expected one is
refused and never installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dindkit.operations.docker import apt_key_command

pytestmark = pytest.mark.skipif(
    not (shutil.which("gpg") and shutil.which("curl")) or os.geteuid() != 0,
    reason="needs gpg, curl and root (install -o root)",
)


def agents_of(home: Path) -> list[int]:
    """Pids of the gpg-agent processes serving ``home``."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile
            continue
        if words and words[0].endswith(b"gpg-agent") and str(home).encode() in words:
            pids.append(int(cmdline.parent.name))
    return pids


def stop_agents(home: Path) -> None:
    """Stop what gpg started for ``home`` and check that nothing of it is left (bounded wait:
    the agent exits shortly after gpgconf asks it to)."""
    assert agents_of(home), "no gpg-agent for the test's home: the check below would prove nothing"
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=True)
    deadline = time.monotonic() + 30
    while agents_of(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert agents_of(home) == [], f"gpg-agent still runs for {home}"


@pytest.fixture(scope="module")
def throwaway_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """An armored public key file and its fingerprint; the gpg-agent that generating it started
    is stopped after the module's tests."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    try:
        yield make_key(home)
    finally:
        stop_agents(home)


def make_key(home: Path) -> tuple[Path, str]:
    gpg = ["gpg", "--batch", "--homedir", str(home), "--passphrase", ""]
    identity = "dindkit test key <test@example.invalid>"
    subprocess.run(
        [*gpg, "--quick-gen-key", identity, "ed25519", "sign", "never"],
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys", identity], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line[:4] == "fpr:")
    key = home / "key.asc"
    key.write_bytes(
        subprocess.run(
            [*gpg, "--armor", "--export", identity], check=True, capture_output=True
        ).stdout
    )
    return key, fingerprint


def run_key_install(key: Path, fingerprint: str, dest: Path) -> subprocess.CompletedProcess[str]:
    command = apt_key_command(f"file://{key}", fingerprint, str(dest))
    env = {**os.environ, "GNUPGHOME": str(key.parent)}
    return subprocess.run(command, shell=True, capture_output=True, text=True, env=env)


def test_key_with_expected_fingerprint_is_installed(throwaway_key, tmp_path: Path) -> None:
    key, fingerprint = throwaway_key
    dest = tmp_path / "keyrings/docker.asc"
    result = run_key_install(key, fingerprint, dest)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == key.read_bytes()
    assert oct(dest.stat().st_mode & 0o777) == "0o644"


def test_key_with_other_fingerprint_is_refused(throwaway_key, tmp_path: Path) -> None:
    key, fingerprint = throwaway_key
    dest = tmp_path / "keyrings/docker.asc"
    expected = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
    result = run_key_install(key, expected, dest)
    assert result.returncode != 0
    assert f"its fingerprint is '{fingerprint}', expected {expected}" in result.stderr
    assert not dest.exists()
