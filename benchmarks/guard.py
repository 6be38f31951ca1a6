"""The job socket on a running lab VM: the bypass table, then the proxy's cost beside docker.sock.

    .venv/bin/python benchmarks/guard.py --name guard-bookworm [--pings 1000] [--builds 3]
        [--context-mib 20] [--no-proof] [--no-bench] [--versus OLD_PROXY.py ...]

The lab must have Docker and the job socket (``deploys/docker.py`` then ``deploys/guard.py``).
Proof: templates/guard/prove.sh.j2 imports the smoke archive as the job image, starts a
container jobs did not create (through docker.sock) and runs templates/guard/job-checks.sh.j2
with the real docker CLI in a job container that has only the job socket; prints each check
(request, expected, got). Benchmark, both sockets side by side in one run on the VM:
``--pings`` ``GET /_ping`` alternating (one connection each; median and p99 in ms, and what the
proxy adds), then ``--builds`` rounds of the same classic build without cache through each
(median seconds, the ratio of the medians and the median of each round's ratio; the order of
the two sockets turns around every round). Each ``--versus`` runs another version of the proxy
program (say ``git show HEAD~1:dindkit/jobs_proxy.py``) with the same policy on a socket of its
own, pinged in the same alternation: a before/after ratio from one run. Not a test: nothing is
asserted but that the steps ran.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
from pathlib import Path

import dindkit.lab
from dindkit.guard import POLICY_FILE
from dindkit.images import smoke_image_archive
from dindkit.settings.guard import GUARD_SETTINGS
from dindkit.templating import render

MARKER = "GUARD"
JOB_IMAGE = "guard-job:latest"
FOREIGN = "guard-not-theirs"
REMOTE_DIR = "/root/guard-bench"
VERSUS_DIR = "/run/dindkit-bench"
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


def start_versus(lab: dindkit.lab.Lab, name: str, program: Path) -> str:
    """Another proxy version, as root with the deployed policy, on a socket of its own."""
    remote, socket_path = f"{REMOTE_DIR}/{name}.py", f"{VERSUS_DIR}/{name}.sock"
    upload(lab, remote, program.read_bytes())
    ssh(
        lab,
        f"systemctl stop dindkit-bench-{name} 2>/dev/null; mkdir -p {VERSUS_DIR} && "
        f"systemd-run --quiet --unit dindkit-bench-{name} /usr/bin/python3 -I -S {remote} "
        f"--policy {POLICY_FILE} --listen {socket_path} && "
        f"for _ in $(seq 50); do [ -S {socket_path} ] && exit 0; sleep 0.2; done; exit 1",
    )
    return socket_path


def bench(
    lab: dindkit.lab.Lab, pings: int, builds: int, context_mib: int, versus: list[Path]
) -> None:
    sockets = dict(SOCKETS)
    names = [f"versus{number}" for number, _ in enumerate(versus, 1)]
    try:
        for name, program in zip(names, versus, strict=True):
            print(f"{name}.sock: {program}")
            sockets[f"{name}.sock"] = start_versus(lab, name, program)
        ping_latency(lab, pings, sockets)
    finally:
        for name in names:
            ssh(lab, f"systemctl stop dindkit-bench-{name} 2>/dev/null || true")
    if builds:
        build_time(lab, builds, context_mib)


def ping_latency(lab: dindkit.lab.Lab, pings: int, sockets: dict[str, str]) -> None:
    program = render("guard/ping-latency.py.j2", count=pings, sockets=sockets)
    latency = json.loads(ssh(lab, "python3 -", stdin=program.encode()))
    print(f"\nGET /_ping, {pings} each, alternating, one connection per request (ms)")
    print(f"{'SOCKET':<22} {'MEDIAN':>8} {'P99':>8}")
    for name, figures in latency.items():
        print(f"{name:<22} {figures['median_ms']:>8.3f} {figures['p99_ms']:>8.3f}")
    for name in sockets:
        if name != "docker.sock":
            added = [
                latency[name][key] - latency["docker.sock"][key] for key in ("median_ms", "p99_ms")
            ]
            print(f"{'added by ' + name:<22} {added[0]:>8.3f} {added[1]:>8.3f}")


def build_time(lab: dindkit.lab.Lab, builds: int, context_mib: int) -> None:
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
    print(f"{'ratio':<12} {ratio:.3f} x (of the medians)")
    pairs = zip(times["jobs.sock"], times["docker.sock"], strict=True)
    rounds = [job / host for job, host in pairs]
    print(f"{'per round':<12} {' '.join(f'{each:.3f}' for each in rounds)}")
    print(f"{'':<12} {statistics.median(rounds):.3f} x (median of the rounds' ratios)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="guard-bookworm")
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--context-mib", type=int, default=20)
    parser.add_argument("--no-proof", action="store_true")
    parser.add_argument("--no-bench", action="store_true")
    parser.add_argument(
        "--versus", type=Path, action="append", default=[], help="another jobs_proxy.py to ping"
    )
    args = parser.parse_args()
    if args.pings < 100 or args.builds < 0:
        raise SystemExit("--pings: allowed 100 or more; --builds: allowed 0 or more")
    for program in args.versus:
        if not program.is_file():
            raise SystemExit(f"--versus: {program} is not a file")
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
        bench(lab, args.pings, args.builds, args.context_mib, args.versus)
    if not args.no_proof and wrong:
        raise SystemExit(f"{len(wrong)} check(s) not as expected")


if __name__ == "__main__":
    main()
