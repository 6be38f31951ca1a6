"""Time deploys/bootstrap.py on a fresh lab VM: first run, rerun, rerun without smoke tests.

    .venv/bin/python benchmarks/bootstrap.py [--name boot1] [--distro bookworm] [--keep]

Boots the lab on a fresh overlay, runs the bootstrap three times through pyinfra's command
line (the third with smoke_enabled=false) and prints the seconds and the number of operations
that changed something. Not a test: nothing is asserted except that the runs succeed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import dindkit.lab
from dindkit.lab.pyinfra_output import changed_operations
from dindkit.paths import deploy_file, inventory_file
from dindkit.runner import run_pyinfra


def timed_bootstrap(host: str, data: dict[str, Any]) -> tuple[float, int]:
    """Seconds and changed operations of one run."""
    start = time.monotonic()
    result = run_pyinfra(
        inventory_file("lab"),
        deploy_file("bootstrap"),
        data=data,
        extra=["--limit", host],
        capture=True,
    )
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"bootstrap failed on {host}:\n{result.stdout[-3000:]}{result.stderr}")
    # pyinfra logs its progress to stderr.
    return seconds, changed_operations(result.stdout + result.stderr, host)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="boot1")
    parser.add_argument("--distro", default="bookworm")
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--memory", type=int, default=3072)
    parser.add_argument("--report-dir", default="reports/benchmark-bootstrap")
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()

    dindkit.lab.down(args.name)  # a fresh overlay
    start = time.monotonic()
    lab = dindkit.lab.up(args.name, args.distro, memory=args.memory, cpus=args.cpus)
    boot = time.monotonic() - start
    data = {"smoke_report_dir": args.report_dir}
    try:
        runs = [
            ("first run (packages, Docker, smoke)", timed_bootstrap(lab.host, data)),
            ("rerun (only the smoke tests change)", timed_bootstrap(lab.host, data)),
            (
                "rerun, smoke_enabled=false",
                timed_bootstrap(lab.host, {**data, "smoke_enabled": False}),
            ),
        ]
    finally:
        if not args.keep:
            dindkit.lab.down(args.name)

    print(f"\ndeploys/bootstrap.py on {args.distro}, {args.cpus} vCPU, {args.memory} MiB")
    print(f"lab boot (not the deploy): {boot:.1f} s")
    print(f"{'run':<40} {'seconds':>8} {'changed':>8}")
    for label, (seconds, changed) in runs:
        print(f"{label:<40} {seconds:>8.1f} {changed:>8}")


if __name__ == "__main__":
    main()
