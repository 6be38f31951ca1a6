"""The job socket on a running lab VM: the bypass table, then the proxy's cost beside docker.sock.

    .venv/bin/python benchmarks/guard.py --name guard-bookworm [--pings 1000] [--builds 3]
        [--context-mib 20] [--no-proof] [--no-bench]

The lab must have Docker and the job socket (``deploys/docker.py`` then ``deploys/guard.py``).
Proof: templates/guard/prove.sh.j2 imports the smoke archive as the job image, starts a
container jobs did not create (through docker.sock) and runs templates/guard/job-checks.sh.j2
with the real docker CLI in a job container that has only the job socket; prints each check
(request, expected, got). Benchmark, both sockets side by side in one run on the VM:
``--pings`` ``GET /_ping`` alternating (one connection each; median and p99 in ms, and what the
proxy adds), then ``--builds`` rounds of the same classic build without cache through each
(median seconds and the ratio). Not a test: nothing is asserted but that the steps ran.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess

import dindkit.lab
from dindkit.images import smoke_image_archive
from dindkit.settings.guard import GUARD_SETTINGS
from dindkit.templating import render

MARKER = "GUARD"
JOB_IMAGE = "guard-job:latest"
FOREIGN = "guard-not-theirs"
REMOTE_DIR = "/root/guard-bench"
SOCKETS = {
    "docker.sock": "/run/docker.sock",
    "jobs.sock": GUARD_SETTINGS.defaults["guard_socket_path"],
}


def ssh(lab: dindkit.lab.Lab, command: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(lab.ssh_command(command), input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{command[:80]} failed on {lab.name}:\n{result.stderr.decode()[-3000:]}")
    return result.stdout.decode()


def upload(lab: dindkit.lab.Lab, path: str, content: bytes) -> None:
    ssh(lab, f"mkdir -p {REMOTE_DIR} && cat > {shlex.quote(path)}", stdin=content)


def prove(lab: dindkit.lab.Lab) -> list[list[str]]:
    archive = smoke_image_archive()
    remote = f"{REMOTE_DIR}/smoke.tar.gz"
    if ssh(lab, f"stat -c %s {remote} 2>/dev/null || true").strip() != str(archive.stat().st_size):
        upload(lab, remote, archive.read_bytes())
    checks = render(
        "guard/job-checks.sh.j2",
        marker=MARKER,
        image=shlex.quote(JOB_IMAGE),
        foreign=shlex.quote(FOREIGN),
        device="/dev/vda",
    )
    upload(lab, f"{REMOTE_DIR}/job-checks.sh", checks.encode())
    script = render(
        "guard/prove.sh.j2",
        image=shlex.quote(JOB_IMAGE),
        foreign=shlex.quote(FOREIGN),
        archive=remote,
        socket_group=GUARD_SETTINGS.defaults["guard_socket_group"],
        socket_path=SOCKETS["jobs.sock"],
        checks=f"{REMOTE_DIR}/job-checks.sh",
    )
    output = ssh(lab, "sh -s", stdin=script.encode())
    return [line.split("\t")[1:] for line in output.splitlines() if line.startswith(MARKER + "\t")]


def bench(lab: dindkit.lab.Lab, pings: int, builds: int, context_mib: int) -> None:
    program = render("guard/ping-latency.py.j2", count=pings, sockets=SOCKETS)
    latency = json.loads(ssh(lab, "python3 -", stdin=program.encode()))
    print(f"\nGET /_ping, {pings} each, alternating, one connection per request (ms)")
    print(f"{'SOCKET':<12} {'MEDIAN':>8} {'P99':>8}")
    for name, figures in latency.items():
        print(f"{name:<12} {figures['median_ms']:>8.3f} {figures['p99_ms']:>8.3f}")
    added = {
        key: latency["jobs.sock"][key] - latency["docker.sock"][key]
        for key in ("median_ms", "p99_ms")
    }
    print(f"{'added':<12} {added['median_ms']:>8.3f} {added['p99_ms']:>8.3f}")

    script = render(
        "guard/build-time.sh.j2",
        marker=MARKER,
        rounds=builds,
        sockets=SOCKETS,
        image=shlex.quote(JOB_IMAGE),
        context_bytes=context_mib * 1024 * 1024,
    )
    times: dict[str, list[float]] = {name: [] for name in SOCKETS}
    for line in ssh(lab, "sh -s", stdin=script.encode()).splitlines():
        if line.startswith(MARKER + " "):
            _, name, seconds = line.split()
            times[name].append(float(seconds))
    print(f"\nClassic build, {context_mib} MiB context, no cache, {builds} rounds (seconds)")
    for name, values in times.items():
        print(f"{name:<12} median {statistics.median(values):7.2f}  runs {values}")
    ratio = statistics.median(times["jobs.sock"]) / statistics.median(times["docker.sock"])
    print(f"{'ratio':<12} {ratio:.3f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="guard-bookworm")
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--context-mib", type=int, default=20)
    parser.add_argument("--no-proof", action="store_true")
    parser.add_argument("--no-bench", action="store_true")
    args = parser.parse_args()
    if args.pings < 100 or args.builds < 1:
        raise SystemExit("--pings: allowed 100 or more; --builds: allowed 1 or more")
    lab = dindkit.lab.get(args.name)
    if lab is None or not lab.running:
        raise SystemExit(f"no running lab named {args.name}: dindkit lab up {args.name}")
    wrong: list[list[str]] = []
    if not args.no_proof:
        rows = prove(lab)
        print(f"{'CHECK':<24} {'EXPECTED':<28} {'GOT':<28} DETAIL")
        for name, expected, got, detail in rows:
            print(f"{name:<24} {expected:<28} {got:<28} {detail[:90]}")
        wrong = [row for row in rows if row[1] != row[2]]
        print(f"{len(rows) - len(wrong)} of {len(rows)} as expected")
    if not args.no_bench:
        bench(lab, args.pings, args.builds, args.context_mib)
    if not args.no_proof and wrong:
        raise SystemExit(f"{len(wrong)} check(s) not as expected")


if __name__ == "__main__":
    main()
