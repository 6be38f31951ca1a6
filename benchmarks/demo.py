"""Time ``dindkit demo --down``: against another checkout side by side, or one host vs two.

    .venv/bin/python benchmarks/demo.py compare --other /work/main [--prefix bench]
    .venv/bin/python benchmarks/demo.py hosts [--prefix bench]

``compare`` runs the other checkout's demo (its own venv, lab PREFIX-old), then this
checkout's (lab PREFIX-new), each alone on the machine (``--together`` runs them at the same
time; the shorter run then leaves the longer one alone for its last minutes, so the two do not
see the same load), and prints for each the demo's
phases, provisioning plus smoke, the per-operation table of the pyinfra run and each smoke
step's seconds, then new / old, with and without the modes the other checkout lacks (each
timed on its own line). ``hosts`` runs the demo on one bookworm VM, then on bookworm
and trixie in one run, and prints both wall times and their ratio. Needs two VMs' worth of
memory. Not a test: nothing is asserted but that the demos succeed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from timing import TimedRun, print_operations, run_timed

CHECKOUT = Path(__file__).resolve().parent.parent
PHASE = re.compile(r"^\s+(?P<seconds>\d+)s\s+(?P<title>\S.*)$")
STEP_SECONDS = re.compile(r"\[(?P<seconds>\d+) s\]")


def demo(checkout: Path, name: str, distros: list[str], report_dir: Path) -> TimedRun:
    command = [str(checkout / ".venv/bin/dindkit"), "demo", "--name", name, "--down"]
    command += [argument for distro in distros for argument in ("--distro", distro)]
    command += ["--report-dir", str(report_dir)]
    # In the checkout: `python -m pyinfra` imports dindkit from the working directory first.
    run = run_timed(command, echo=True, prefix=f"[{name}] ", cwd=checkout)
    if run.returncode != 0:  # still timed and reported: say so beside its figures
        print(f"demo {name} FAILED (exit {run.returncode}): its figures include the failure")
    return run


def phases(run: TimedRun) -> dict[str, float]:
    """The demo's own closing table: title -> seconds."""
    found = {}
    for _, line in run.lines:
        match = PHASE.match(line.rstrip())
        if match:
            found[match["title"]] = float(match["seconds"])
    return found


def provisioning(run: TimedRun) -> float:
    return next(s for title, s in phases(run).items() if title.startswith("Provision and"))


def print_smoke_steps(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    for host, entry in report["hosts"].items():
        for mode, result in entry["modes"].items():
            print(f"  {host} {mode}: {result['status']} {result.get('seconds', 0):.0f} s")
            for check in result.get("checks", []):
                match = STEP_SECONDS.search(check.get("detail", ""))
                seconds = f"{match['seconds']:>4} s" if match else "     -"
                print(f"    {seconds}  {check['name']} ({check['status']})")


def mode_seconds(report_dir: Path) -> dict[str, float]:
    """mode -> its smoke seconds on the run's (only) host, from report.json."""
    report = json.loads((report_dir / "report.json").read_text())
    (entry,) = report["hosts"].values()
    return {mode: float(result.get("seconds", 0)) for mode, result in entry["modes"].items()}


def report(label: str, run: TimedRun, report_dir: Path) -> None:
    print(f"\n=== {label}: {run.seconds:.0f} s wall")
    for title, seconds in phases(run).items():
        print(f"  {seconds:6.0f}s  {title}")
    print_operations(f"{label}, pyinfra run per operation", run, minimum=2.0)
    print(f"\n{label}, smoke steps (report.json)")
    print_smoke_steps(report_dir)


def compare(other: Path, prefix: str, root: Path, together: bool) -> None:
    jobs = {
        "old": (other, f"{prefix}-old", root / "old"),
        "new": (CHECKOUT, f"{prefix}-new", root / "new"),
    }
    with ThreadPoolExecutor(2 if together else 1) as pool:
        futures = {
            key: pool.submit(demo, checkout, name, ["bookworm"], report_dir)
            for key, (checkout, name, report_dir) in jobs.items()
        }
        runs = {key: future.result() for key, future in futures.items()}
    for key, (checkout, _, report_dir) in jobs.items():
        report(f"{key} ({checkout})", runs[key], report_dir)
    new, old = provisioning(runs["new"]), provisioning(runs["old"])
    # The modes the old checkout did not have are timed on their own lines, then left out.
    old_modes = mode_seconds(jobs["old"][2])
    added = {m: s for m, s in mode_seconds(jobs["new"][2]).items() if m not in old_modes}
    print(f"\nside by side, {'at the same time' if together else 'one after the other'}:")
    for mode, seconds in added.items():
        print(f"  new mode {mode} (not in old): {seconds:.0f} s")
    print(f"  provisioning + smoke: new {new:.0f} s, old {old:.0f} s, new / old {new / old:.2f}")
    today = new - sum(added.values())
    print(
        f"  provisioning + smoke of old's modes ({', '.join(old_modes)}): new {today:.0f} s, "
        f"old {old:.0f} s, new / old {today / old:.2f}"
    )
    wall_new, wall_old = runs["new"].seconds, runs["old"].seconds
    print(f"  whole demo: new {wall_new:.0f} s, old {wall_old:.0f} s, {wall_new / wall_old:.2f}")


def hosts(prefix: str, root: Path) -> None:
    one = demo(CHECKOUT, f"{prefix}-one", ["bookworm"], root / "one")
    two = demo(CHECKOUT, f"{prefix}-two", ["bookworm", "trixie"], root / "two")
    report("one host (bookworm)", one, root / "one")
    report("two hosts (bookworm, trixie) in one run", two, root / "two")
    print(f"\none host {one.seconds:.0f} s, two hosts {two.seconds:.0f} s wall")
    print(f"two / one: {two.seconds / one.seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("compare", "hosts"))
    parser.add_argument("--other", type=Path, help="the checkout to compare with (compare)")
    parser.add_argument("--together", action="store_true", help="compare: both demos at once")
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--report-root", type=Path, default=Path("reports/bench-demo"))
    args = parser.parse_args()
    if args.what == "compare":
        if args.other is None:
            parser.error("compare needs --other CHECKOUT")
        compare(args.other.resolve(), args.prefix, args.report_root.resolve(), args.together)
    else:
        hosts(args.prefix, args.report_root.resolve())


if __name__ == "__main__":
    main()
