"""Time deploys/docker.py on a fresh lab VM: first run, then the no-op rerun.

    .venv/bin/python benchmarks/docker.py [--name docker1] [--distro bookworm] [--keep]

Boots the lab (fresh overlay), runs the deploy twice through pyinfra's command line and prints
a table; takes the lab down afterwards unless --keep. Not a test: nothing is asserted except
that both runs succeed.
"""

from __future__ import annotations

import argparse
import time

import dindkit.lab
from dindkit.paths import deploy_file, inventory_file
from dindkit.runner import run_pyinfra


def timed_run(host: str) -> tuple[float, int]:
    start = time.monotonic()
    result = run_pyinfra(
        inventory_file("lab"), deploy_file("docker"), extra=["--limit", host], capture=True
    )
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"deploy failed on {host}:\n{result.stdout[-3000:]}{result.stderr}")
    return elapsed, result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="docker1")
    parser.add_argument("--distro", default="bookworm")
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--memory", type=int, default=2048)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()

    dindkit.lab.down(args.name)  # a fresh overlay: no Docker yet
    start = time.monotonic()
    lab = dindkit.lab.up(args.name, args.distro, memory=args.memory, cpus=args.cpus)
    boot = time.monotonic() - start
    try:
        first, _ = timed_run(lab.host)
        rerun, _ = timed_run(lab.host)
    finally:
        if not args.keep:
            dindkit.lab.down(args.name)

    rows = [
        ("lab boot (not the deploy)", boot),
        ("first run (install Docker, configure)", first),
        ("no-op rerun", rerun),
    ]
    print(f"\ndeploys/docker.py on {args.distro}, {args.cpus} vCPU, {args.memory} MiB, TCG")
    print(f"{'run':<40} {'seconds':>8}")
    for label, seconds in rows:
        print(f"{label:<40} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
