"""What the CI flow's build costs in each mode, against the host's daemon: cold and warm.

    .venv/bin/python benchmarks/ci_cost.py REPORT_DIR [REPORT_DIR ...]

Reads the smoke reports (report.json) of runs with the registry on: a demo's
(``dindkit demo --report-dir DIR``) or the runs of ``benchmarks/smoke.py LAB --runs N`` on one
lab VM (reports/bench-smoke/run-*). Each mode's ``ci-build`` (cold: nothing of the fixed
context cached) and ``ci-rebuild`` (warm: the same context again, from the cache) seconds, and
their ratio to the dood mode's builds on the same host in the same run (dood builds on the
host's own daemon). Prints per host and mode the median over the reports, with the range when
there are several. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict

from dindkit.report import HOST_BUILD_MODE, read_report

CASES = ("cold", "warm")


def cell(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    median = f"{statistics.median(values):.{digits}f}"
    if len(values) == 1:
        return median
    return f"{median} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", metavar="REPORT_DIR")
    args = parser.parse_args()
    # host -> mode -> (case, "s" | "x") -> values
    found: dict[str, dict[str, dict[tuple[str, str], list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for folder in args.reports:
        report = read_report(folder)
        if report is None:
            sys.exit(f"no report.json in {folder}")
        for host_name, host in report.hosts.items():
            for mode_name, mode in host.modes.items():
                for case in CASES:
                    if case in mode.build_seconds:
                        found[host_name][mode_name][case, "s"].append(mode.build_seconds[case])
                    if case in mode.build_x_host:
                        found[host_name][mode_name][case, "x"].append(mode.build_x_host[case])
    if not found:
        sys.exit("no mode in these reports timed a build: was registry_enabled on?")
    print(f"{len(args.reports)} report(s); x host: against {HOST_BUILD_MODE} (the host's daemon)")
    for host_name, modes in sorted(found.items()):
        rows = [["MODE", "COLD S", "X HOST", "WARM S", "X HOST"]]
        for mode_name, values in modes.items():
            rows.append(
                [
                    mode_name,
                    *(
                        cell(values[case, kind], 1 if kind == "s" else 2)
                        for case in CASES
                        for kind in ("s", "x")
                    ),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        print(f"\n{host_name}")
        for row in rows:
            print(
                "  ".join(
                    text.ljust(width) for text, width in zip(row, widths, strict=True)
                ).rstrip()
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
