"""The CI flow a job ends with: build, push to the local registry, pull back, run.

One script (templates/registry/ci-flow.sh.j2) serves the registry's lab test on the host's
daemon and every smoke mode's job container (one step at a time, its state kept in CI_WORK).
Each step prints ``@@dindkit ci STEP passed|failed SECONDS DETAIL``; :func:`steps` reads those
lines back, and :func:`build_seconds` the cold and warm build times the report carries.
"""

from __future__ import annotations

import shlex

from dindkit.settings.registry import CA_CERT, CREDENTIALS_FILE
from dindkit.templating import render

TEMPLATE = "registry/ci-flow.sh.j2"
MARK = "@@dindkit ci"
# The build context's random payload: with busybox a few MiB, hashed twice by its RUN step.
PAYLOAD_KIB = 2048
STEPS = (
    "build",
    "rebuild",
    "login",
    "push",
    "remove-local",
    "pull",
    "digest",
    "run",
    "cleanup",
)
# How the smoke modes run the flow: one `docker exec` per stage (each costs seconds under
# emulation), each stage a check of the report with its steps' lines in the detail.
SMOKE_STAGES = {
    "ci-build": ("build",),
    "ci-rebuild": ("rebuild",),
    "ci-push": ("login", "push", "remove-local"),
    "ci-pull": ("pull", "digest", "run"),
    "ci-cleanup": ("cleanup",),
}


def script(
    registry: str,
    base_image: str = "",
    repository: str = "dindkit/ci-flow",
    docker: str = "docker",
    credentials_file: str = CREDENTIALS_FILE,
    ca_cert: str = CA_CERT,
    engine: str = "docker",
    busybox: str = "/bin/busybox",
    payload_kib: int = PAYLOAD_KIB,
) -> str:
    """The flow as one script; every value a default the caller's environment may override.

    Run without arguments it does every step in a folder of its own; with step names, those
    steps in CI_WORK. An empty ``base_image`` builds FROM scratch around ``busybox`` (a static
    one), which needs no image in the daemon's store.
    """
    return render(
        TEMPLATE,
        marker=MARK,
        engine=shlex.quote(engine),
        docker=shlex.quote(docker),
        registry=shlex.quote(registry),
        credentials=shlex.quote(credentials_file),
        ca_cert=shlex.quote(ca_cert),
        base_image=shlex.quote(base_image),
        busybox=shlex.quote(busybox),
        repository=shlex.quote(repository),
        payload_kib=int(payload_kib),
    )


def steps(output: str) -> dict[str, tuple[str, str]]:
    """Step -> (passed|failed, the rest of its line), from the script's output."""
    found = {}
    for line in output.splitlines():
        if line.startswith(f"{MARK} "):
            step, _, rest = line.removeprefix(f"{MARK} ").partition(" ")
            status, _, detail = rest.partition(" ")
            found[step] = (status, detail)
    return found


def build_seconds(output: str) -> dict[str, float]:
    """The passed builds' seconds: ``cold`` (build) and ``warm`` (rebuild), where they ran."""
    found = steps(output)
    seconds = {}
    for step, case in (("build", "cold"), ("rebuild", "warm")):
        status, detail = found.get(step, ("", ""))
        try:
            value = float(detail.split(" ", 1)[0])
        except ValueError:
            continue
        if status == "passed":
            seconds[case] = value
    return seconds
