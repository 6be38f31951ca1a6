"""Time the lab from nothing to smoke-tested, per distro, and print one table.

    .venv/bin/python benchmarks/lab.py [--distro bookworm --distro trixie] [--no-cold]
        [--cpus 2 --memory 4096] [--keep] [--lab-only]

Per distro: the image build cold (in a temporary DINDKIT_CACHE, thrown away) and cached, the
KVM probe / boot to SSH of a fresh lab ``bench-<distro>``, deploys/docker.py first run and its
no-op rerun (changed operations counted from pyinfra's output), the smoke image, then
deploys/smoke.py with each mode's seconds from report.json. The lab is taken down afterwards
unless --keep. Not a test: nothing is asserted except that the steps succeed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dindkit.lab
from dindkit.lab.image import ensure_image
from dindkit.lab.pyinfra_output import changed_operations
from dindkit.paths import deploy_file, inventory_file
from dindkit.runner import run_pyinfra

Row = tuple[str, str]


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def cold_build(distro: str) -> float:
    previous = os.environ.get("DINDKIT_CACHE")
    scratch = tempfile.mkdtemp(prefix="dindkit-bench-cache-")
    os.environ["DINDKIT_CACHE"] = scratch
    try:
        seconds, _ = timed(lambda: ensure_image(distro))
    finally:
        if previous is None:
            os.environ.pop("DINDKIT_CACHE", None)
        else:
            os.environ["DINDKIT_CACHE"] = previous
        shutil.rmtree(scratch, ignore_errors=True)
    return seconds


def deploy(host: str, capability: str, data: dict[str, Any] | None = None) -> tuple[float, int]:
    seconds, result = timed(
        lambda: run_pyinfra(
            inventory_file("lab"), deploy_file(capability), data, ["--limit", host], capture=True
        )
    )
    output = result.stdout + result.stderr  # pyinfra logs to stderr
    if result.returncode != 0:
        raise SystemExit(f"deploys/{capability}.py failed on {host}:\n{output[-3000:]}")
    return seconds, changed_operations(output, host)


def bench(
    distro: str, cold: bool, cpus: int, memory: int, keep: bool, lab_only: bool = False
) -> list[Row]:
    rows: list[Row] = []
    if cold:
        rows.append(("image build, cold", f"{cold_build(distro):.0f}s"))
    seconds, _ = timed(lambda: ensure_image(distro))
    rows.append(("image, cached", f"{seconds:.1f}s"))

    name = f"bench-{distro}"
    dindkit.lab.down(name)  # a fresh overlay
    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        print(message, flush=True)
        if message.startswith("Booting lab"):
            marks["booting"] = time.monotonic()

    try:
        seconds, lab = timed(
            lambda: dindkit.lab.up(name, distro, memory=memory, cpus=cpus, progress=progress)
        )
        answered = time.monotonic()
        rows.append(("lab up (cached image) to SSH", f"{seconds:.0f}s"))
        rows.append(("  of which qemu start to SSH", f"{answered - marks['booting']:.0f}s"))
        if lab_only:
            return rows
        first, changed = deploy(lab.host, "docker")
        rows.append(("deploys/docker.py, first run", f"{first:.0f}s ({changed} changed)"))
        again, changed = deploy(lab.host, "docker")
        rows.append(("deploys/docker.py, no-op rerun", f"{again:.0f}s ({changed} changed)"))

        from dindkit.images import build_smoke_image  # the smoke capability's

        seconds, _ = timed(build_smoke_image)
        rows.append(("smoke image (host, cached if built)", f"{seconds:.0f}s"))
        report_dir = Path(tempfile.mkdtemp(prefix="dindkit-bench-report-"))
        seconds, run = timed(
            lambda: run_pyinfra(
                inventory_file("lab"),
                deploy_file("smoke"),
                {"smoke_report_dir": str(report_dir)},
                ["--limit", lab.host],
                capture=True,
            )
        )
        rows.append(("deploys/smoke.py, all modes", f"{seconds:.0f}s (exit {run.returncode})"))
        report = json.loads((report_dir / "report.json").read_text())
        for mode, result in report["hosts"][lab.host]["modes"].items():
            rows.append((f"  smoke {mode}", f"{result['status']} {result.get('seconds', 0):.0f}s"))
    finally:
        if not keep:
            dindkit.lab.down(name)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distro", action="append", choices=("bookworm", "trixie"))
    parser.add_argument("--no-cold", action="store_true", help="skip the cold image build")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--memory", type=int, default=4096)
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    parser.add_argument("--lab-only", action="store_true", help="only image and boot timings")
    args = parser.parse_args()
    distros = args.distro or ["bookworm"]
    results = {
        d: dict(bench(d, not args.no_cold, args.cpus, args.memory, args.keep, args.lab_only))
        for d in distros
    }
    steps = list(dict.fromkeys(step for rows in results.values() for step in rows))
    width = max(len(step) for step in steps)
    print(f"\n{'step':{width}}  " + "  ".join(f"{d:>18}" for d in distros))
    for step in steps:
        cells = "  ".join(f"{results[d].get(step, '-'):>18}" for d in distros)
        print(f"{step:{width}}  {cells}")
    print(f"(cpus {args.cpus}, memory {args.memory} MiB, accel from `dindkit lab status`)")


if __name__ == "__main__":
    main()
