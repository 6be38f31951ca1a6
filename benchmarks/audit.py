"""Time Docker work on one lab VM with dindkit's audit rules, without them, and with the old ones.

    .venv/bin/python benchmarks/audit.py [--name bench-audit] [--distro bookworm] [--rounds 3]
        [--old-rounds 1] [--files 10000] [--keep]

Uses the lab NAME as it is when it runs (deploy it first: ``pyinfra -y inventories/lab.py
deploys/docker.py --limit lab-NAME``), else boots it on a fresh overlay and runs
deploys/docker.py on it. Then, on that VM (templates/audit/benchmark.sh.j2): a registry on its
loopback with the smoke image pushed to it, and ``--rounds`` rounds, each loading dindkit's
rules (as the deploy wrote them), none of dindkit's rules, and (the first ``--old-rounds``
rounds) the old recursive watch of a3a3913, one after the other; under each, three cases:
importing the smoke image archive as the smoke deploy does (gzip | docker import), pulling it
from the registry, and ``docker build`` of a layer of ``--files`` small files FROM it.
Prints per case the median seconds under each rule set, dindkit / none (the target is at most
1.15), and the kernel's lost records, backlog wait ticks and dindkit's audit events during each
case (``auditctl -s`` before and after; the target is 0 lost, 0 waits). Ends with dindkit's
rules loaded again. Not a test: nothing is asserted but that the runs succeed.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import dindkit.lab
from dindkit.audit import AUDIT_KEY
from dindkit.images import smoke_image_archive
from dindkit.paths import deploy_file, inventory_file
from dindkit.runner import pyinfra_command
from dindkit.settings.docker import DOCKER_SETTINGS
from dindkit.templating import render

MARKER = "@@bench"
WORK = "/root/dindkit-audit-bench"
SCRIPT = f"{WORK}/bench.sh"
ARCHIVE = f"{WORK}/smoke.tar.gz"
CASES = ("import", "pull", "build")
MODES = ("dindkit", "none", "old")
REGISTRY_PORT = 5000


def ssh(lab: dindkit.lab.Lab, command: str, stdin: Path | None = None) -> str:
    with open(stdin, "rb") if stdin else open("/dev/null", "rb") as source:
        result = subprocess.run(lab.ssh_command(command), stdin=source, capture_output=True)
    if result.returncode != 0:
        raise SystemExit(
            f"on {lab.name}: {command}\n{result.stdout.decode()[-2000:]}"
            f"{result.stderr.decode()[-2000:]}"
        )
    return result.stdout.decode()


def prepared_lab(name: str, distro: str) -> dindkit.lab.Lab:
    lab = dindkit.lab.get(name)
    if lab is not None and lab.running:
        return lab
    lab = dindkit.lab.up(name, distro)
    run = subprocess.run(
        pyinfra_command(inventory_file("lab"), deploy_file("docker"), extra=["--limit", lab.host])
    )
    if run.returncode != 0:
        raise SystemExit(f"deploys/docker.py failed on {lab.host}")
    return lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="bench-audit")
    parser.add_argument("--distro", default="bookworm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old-rounds", type=int, default=1, help="rounds with the old rules")
    parser.add_argument("--files", type=int, default=10000, help="files the build writes")
    parser.add_argument(
        "--cases", nargs="+", choices=CASES, default=list(CASES), help="the build needs pull"
    )
    parser.add_argument("--keep", action="store_true", help="leave a lab this run booted")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1")
    if "build" in args.cases and "pull" not in args.cases:
        parser.error("--cases: build starts FROM the pulled image, so it needs pull too")
    cases = [case for case in CASES if case in args.cases]
    if not 0 <= args.old_rounds <= args.rounds:
        parser.error(f"--old-rounds {args.old_rounds}: from 0 to --rounds ({args.rounds})")
    archive = smoke_image_archive()
    if not archive.exists():
        raise SystemExit(f"no smoke image archive at {archive}: dindkit images build")
    existing = dindkit.lab.get(args.name)
    booted = existing is None or not existing.running
    lab = prepared_lab(args.name, args.distro)
    script = render(
        "audit/benchmark.sh.j2",
        marker=MARKER,
        work=WORK,
        rules_file=shlex.quote(DOCKER_SETTINGS.defaults["docker_audit_rules_file"]),
        key=shlex.quote(AUDIT_KEY),
        archive=ARCHIVE,
        port=REGISTRY_PORT,
        files=args.files,
    )
    results: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    started = time.monotonic()
    try:
        subprocess.run(
            lab.ssh_command(f"mkdir -p {WORK} && cat > {SCRIPT}"), input=script.encode(), check=True
        )
        ssh(lab, f"test -s {ARCHIVE} || cat > {ARCHIVE}", stdin=archive)
        ssh(lab, f"sh {SCRIPT} setup")
        for round_number in range(args.rounds):
            modes = MODES if round_number < args.old_rounds else MODES[:2]
            for mode in modes:
                loaded = ssh(lab, f"sh {SCRIPT} rules {mode}").split()
                print(f"round {round_number + 1}: rules {mode} ({loaded[-1]} with the key)")
                for case in cases:
                    line = ssh(lab, f"sh {SCRIPT} case {case}").split()
                    seconds, lost, waited, events = (float(value) for value in line[2:6])
                    results[(case, mode)].append([seconds, lost, waited, events])
                    print(
                        f"  {case:<7} {seconds:7.1f} s  lost {lost:.0f}  waits {waited:.0f}  "
                        f"events {events:.0f}",
                        flush=True,
                    )
    finally:
        if dindkit.lab.get(args.name) is not None:
            subprocess.run(lab.ssh_command(f"sh {SCRIPT} rules dindkit"), capture_output=True)
        if booted and not args.keep:
            dindkit.lab.down(args.name)

    print(
        f"\n{args.name} ({args.distro}), {args.rounds} rounds, {time.monotonic() - started:.0f} s"
    )
    print(
        f"{'case':<8}{'dindkit s':>10}{'none s':>9}{'ratio':>7}{'old s':>8}{'old ratio':>10}"
        f"   lost / waits / events (max per run): dindkit | old"
    )
    for case in cases:
        runs = {mode: results.get((case, mode), []) for mode in MODES}
        ours, none, old = (
            statistics.median(run[0] for run in runs[mode]) if runs[mode] else None
            for mode in MODES
        )
        assert ours is not None and none is not None
        old_columns = f"{old:>8.1f}{old / none:>10.2f}" if old is not None else f"{'-':>8}{'-':>10}"
        worst = {
            mode: " / ".join(f"{max(run[i] for run in runs[mode]):.0f}" for i in (1, 2, 3))
            if runs[mode]
            else "-"
            for mode in MODES
        }
        print(
            f"{case:<8}{ours:>10.1f}{none:>9.1f}{ours / none:>7.2f}{old_columns}"
            f"   {worst['dindkit']} | {worst['old']}"
        )


if __name__ == "__main__":
    sys.exit(main())
