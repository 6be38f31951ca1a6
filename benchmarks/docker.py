"""Time deploys/docker.py on a fresh lab VM against a plain apt install on a second one.

    .venv/bin/python benchmarks/docker.py [--name bench-docker] [--distro bookworm] [--no-apt]
        [--cpus 2 --memory 4096] [--reruns 3] [--keep] [--data KEY=VALUE ...]

Boots two labs of the same size on fresh overlays, NAME and NAME-apt, side by side. Then, at
the same time: ``deploys/docker.py`` on the first (pyinfra's command line) and ``apt-get update
&& apt-get install -y docker.io`` over SSH on the second. Then the deploy's no-op rerun with
``-v``, ``--reruns`` times one after the other (the first comes while the new daemons still
settle): their seconds and median, changed operations, and the facts read (one SSH round
trip each).
Prints the first run's per-operation table, the rerun's, and first run / apt. ``--data`` goes to
both deploy runs (over the lab inventory's data): ``--data docker_rootless_users=[] --data
docker_userns_remap=null --data docker_audit=false`` gives the deploy the plain install's scope
(Docker alone). Both labs are taken down afterwards unless --keep. Not a test: nothing is
asserted but that the runs succeed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from timing import TimedRun, facts_loaded, print_operations, run_timed

import dindkit.lab
from dindkit.lab.pyinfra_output import changed_operation_names
from dindkit.paths import deploy_file, inventory_file
from dindkit.runner import pyinfra_command

PLAIN_APT = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io"


def deploy(host: str, data: list[str], verbose: bool = False) -> TimedRun:
    extra = ["--limit", host] + [f"--data={each}" for each in data] + (["-v"] if verbose else [])
    run = run_timed(pyinfra_command(inventory_file("lab"), deploy_file("docker"), extra=extra))
    if run.returncode != 0:
        raise SystemExit(f"deploys/docker.py failed on {host}:\n{run.output[-3000:]}")
    return run


def plain_apt(lab: dindkit.lab.Lab) -> float:
    started = time.monotonic()
    result = subprocess.run(lab.ssh_command(PLAIN_APT), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"plain apt install failed on {lab.name}:\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="bench-docker")
    parser.add_argument("--distro", default="bookworm")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--memory", type=int, default=4096)
    parser.add_argument("--no-apt", action="store_true", help="skip the plain apt install VM")
    parser.add_argument("--reruns", type=int, default=3, help="no-op reruns, one after another")
    parser.add_argument("--keep", action="store_true", help="leave the labs running")
    parser.add_argument(
        "--data", action="append", default=[], help="KEY=VALUE for both deploy runs"
    )
    args = parser.parse_args()
    if args.reruns < 1:
        parser.error(f"--reruns {args.reruns}: at least 1 (the tables and facts need a rerun)")
    names = [args.name] + ([] if args.no_apt else [f"{args.name}-apt"])

    def up(name: str) -> dindkit.lab.Lab:
        dindkit.lab.down(name)  # a fresh overlay: no Docker yet
        return dindkit.lab.up(name, args.distro, memory=args.memory, cpus=args.cpus)

    started = time.monotonic()
    with ThreadPoolExecutor(len(names)) as pool:
        labs = list(pool.map(up, names))
    boot = time.monotonic() - started
    try:
        with ThreadPoolExecutor(2) as pool:
            first_future = pool.submit(deploy, labs[0].host, args.data)
            apt_future = None if args.no_apt else pool.submit(plain_apt, labs[1])
            first = first_future.result()
            apt = apt_future.result() if apt_future else None
        reruns = [deploy(labs[0].host, args.data, verbose=True) for _ in range(args.reruns)]
    finally:
        if not args.keep:
            for name in names:
                dindkit.lab.down(name)

    print_operations("deploys/docker.py, first run, per operation", first, minimum=1.0)
    rerun = reruns[0]
    print_operations("deploys/docker.py, no-op rerun, per operation", rerun, minimum=0.5)
    facts = facts_loaded(rerun)
    counted = ", ".join(f"{fact} x{n}" if n > 1 else fact for fact, n in Counter(facts).items())
    print(f"\ndeploys/docker.py on {args.distro}, {args.cpus} vCPU, {args.memory} MiB, TCG")
    print(f"data over the lab inventory's: {' '.join(args.data) or '(none)'}")
    print(f"{'labs up side by side (not the deploy)':<44} {boot:>8.1f} s")
    print(f"{'first run (install Docker, configure)':<44} {first.seconds:>8.1f} s")
    if apt is not None:
        print(f"{'plain apt-get update && install docker.io':<44} {apt:>8.1f} s  (same time)")
        print(f"{'first run / plain apt':<44} {first.seconds / apt:>8.2f}")
    seconds = [run.seconds for run in reruns]
    each = ", ".join(f"{value:.1f}" for value in seconds)
    print(f"{'no-op rerun, median':<44} {statistics.median(seconds):>8.1f} s  ({each})")
    changed = [name for run in reruns for name in changed_operation_names(run.output, labs[0].host)]
    print(f"  changed operations: {len(changed)} {changed or ''}")
    print(f"  facts read (SSH round trips): {len(facts)}: {counted}")
    restarted = "Restart" in "".join(changed)
    updated = any("apt-get update" in run.output for run in reruns)
    print(
        f"  restart: {'yes' if restarted else 'no'}, apt-get update: {'yes' if updated else 'no'}"
    )


if __name__ == "__main__":
    main()
