"""Smoke runs in a row on one lab VM: pass count, seconds per mode, Docker objects before/after.

    .venv/bin/python benchmarks/smoke.py LAB_NAME [--runs 5] [--modes dood,dind,rootless,...]

Runs ``dindkit smoke inventories/lab.py --limit lab-NAME`` RUNS times (reports in
reports/bench-smoke/run-N), then prints one row per run with each mode's status and seconds
from report.json, and whether ``docker ps -a``, ``docker volume ls``, ``docker network ls`` and
``docker image ls`` on the VM are identical before the first run and after the last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from dindkit import lab
from dindkit.paths import inventory_file
from dindkit.settings.smoke import SMOKE_MODES

LISTINGS = (
    "docker ps -a --format '{{.ID}} {{.Names}} {{.Status}}'",
    "docker volume ls -q",
    "docker network ls --format '{{.ID}} {{.Name}}'",
    "docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}'",
)


def docker_objects(name: str) -> str:
    found = [each for each in lab.list_labs() if each.name == name]
    if not found:
        sys.exit(f"no lab named {name}: dindkit lab up {name}")
    script = "; ".join(f"echo '## {command}'; {command}" for command in LISTINGS)
    return subprocess.run(
        found[0].ssh_command(script), capture_output=True, text=True, check=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default=",".join(SMOKE_MODES))
    parser.add_argument("--report-root", default="reports/bench-smoke")
    args = parser.parse_args()
    host = f"lab-{args.name}"
    dindkit = str(Path(sys.executable).parent / "dindkit")

    before = docker_objects(args.name)
    rows = []
    for run in range(1, args.runs + 1):
        report_dir = Path(args.report_root) / f"run-{run}"
        started = time.monotonic()
        process = subprocess.run(
            [
                dindkit,
                "smoke",
                str(inventory_file("lab")),
                "--limit",
                host,
                "--modes",
                args.modes,
                "--report-dir",
                str(report_dir),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        modes = {}
        if (report_dir / "report.json").exists():
            modes = json.loads((report_dir / "report.json").read_text())["hosts"][host]["modes"]
        rows.append((run, process.returncode, seconds, modes))
        print(
            f"run {run}: exit {process.returncode}, {seconds:.0f} s total; "
            + ", ".join(f"{m} {r['status']} {r['seconds']} s" for m, r in modes.items()),
            flush=True,
        )
        if process.returncode:
            print(process.stdout[-3000:], process.stderr[-2000:])
    after = docker_objects(args.name)

    passed = sum(1 for _, code, _, _ in rows if code == 0)
    print(f"\n{passed}/{len(rows)} runs passed")
    names = sorted({m for *_, modes in rows for m in modes})
    print("mode     " + "  ".join(f"run{run:<3}" for run, *_ in rows) + "  mean")
    for mode in names:
        times = [modes[mode]["seconds"] for *_, modes in rows if mode in modes]
        cells = "  ".join(f"{t:<6.1f}" for t in times)
        print(f"{mode:<8} {cells}  {sum(times) / len(times):.1f}")
    same = before == after
    print(f"docker ps -a / volume ls / network ls / image ls identical before and after: {same}")
    if not same:
        print("--- before\n" + before + "--- after\n" + after)
    return 0 if passed == len(rows) and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
