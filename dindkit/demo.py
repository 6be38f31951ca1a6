"""``dindkit demo``: lab VMs, provisioned by dindkit and smoke-tested, in one command.

The steps are the ones a user would take by hand: build the smoke image (cached), ``dindkit
lab up`` (one VM per ``--distro``), ``pyinfra inventories/lab.py deploys/bootstrap.py --limit
lab-<name>`` (Docker, socket permissions, Sysbox where its preflight allows, smoke tests), then
the smoke report. The image is built on this machine while the VMs boot, and every VM is
provisioned in the same pyinfra run (pyinfra works on all hosts at once): one report.
"""

from __future__ import annotations

import functools
import itertools
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import click

import dindkit.lab
from dindkit import progress as life_signs
from dindkit.lab.cli import vm_options
from dindkit.lab.vm import LabError
from dindkit.paths import deploy_file, inventory_file

DEFAULT_REPORT_DIR = Path("reports/latest")
T = TypeVar("T")


def demo_name(distro: str) -> str:
    return f"demo-{distro}"


def lab_names(distros: list[str], name: str | None) -> list[str]:
    """One lab name per distro: --name as given for one VM, --name-<distro> for several."""
    if name is None:
        return [demo_name(distro) for distro in distros]
    if len(distros) == 1:
        return [name]
    return [f"{name}-{distro}" for distro in distros]


def timed(seconds: dict[str, float], title: str, action: Callable[[], T]) -> T:
    """``action()``, its seconds recorded under ``title`` (also when it fails)."""
    started = time.monotonic()
    try:
        return action()
    finally:
        seconds[title] = time.monotonic() - started


@click.command()
@functools.partial(vm_options, several_distros=True)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_REPORT_DIR,
    show_default=True,
    help="Where report.json and junit.xml go.",
)
@click.option("--down", is_flag=True, help="Take the labs down at the end (even on failure).")
@click.option(
    "--name",
    default=None,
    help="Lab name; NAME-<distro> with several --distro  [default: demo-<distro>]",
)
def demo(
    distro: tuple[str, ...],
    report_dir: Path,
    down: bool,
    name: str | None,
    memory: int,
    cpus: int,
    accel: str,
) -> None:
    """Lab VMs up, provision them with deploys/bootstrap.py, smoke-test every mode, report.

    Exits 0 only if every mode that could run passed on every VM.
    """
    # Imported here: both belong to other capabilities and pull in pyinfra.
    from dindkit.images import build_smoke_image, smoke_image_archive
    from dindkit.smoke.cli import run_and_report
    from dindkit.smoke.modes import mode_images

    distros = list(dict.fromkeys(distro))
    names = lab_names(distros, name)
    started = time.monotonic()
    timings: list[tuple[str, float]] = []
    parallel: dict[str, float] = {}  # seconds of each job of the side-by-side step

    def step(title: str) -> None:
        timings.append((title, time.monotonic()))
        click.secho(f"==> {title}", bold=True)

    # Every mode's own images too: the bootstrap's smoke tests would build them, VMs waiting.
    # Those cut from the smoke image (rootless mode's client, seconds) follow it in its job.
    cut_from_smoke = [image for image in mode_images() if image.from_smoke_image]
    own_images = [image for image in mode_images() if not image.from_smoke_image]

    def smoke_and_client_images() -> Path:
        archive = build_smoke_image()
        for image in cut_from_smoke:
            image.build()
        return archive

    def lab_up(lab_name: str, lab_distro: str) -> Any:
        return timed(
            parallel,
            f"lab {lab_name} ({lab_distro}) up",
            lambda: dindkit.lab.up(lab_name, lab_distro, memory=memory, cpus=cpus, accel=accel),
        )

    code = 1
    try:
        step(f"Smoke image (cached by its recipe) while lab {', '.join(names)} boots")
        cached = smoke_image_archive().is_file()
        with (
            life_signs.running("Building the smoke image and booting the lab"),
            ThreadPoolExecutor(len(names) + 1 + len(own_images)) as pool,
        ):
            image = pool.submit(timed, parallel, "smoke image", smoke_and_client_images)
            builds = [pool.submit(timed, parallel, each.what, each.build) for each in own_images]
            booting = [pool.submit(lab_up, *each) for each in zip(names, distros, strict=True)]
            try:
                archive = image.result()
                for build in builds:
                    build.result()
                labs = [each.result() for each in booting]
            except (LabError, ValueError, RuntimeError) as error:
                raise click.ClickException(str(error)) from None
        if cached:
            click.echo(f"Reusing the cached smoke image {archive}")
        hosts = [lab.host for lab in labs]
        step(f"Provision and smoke-test {', '.join(hosts)} with deploys/bootstrap.py")
        code = run_and_report(
            inventory_file("lab"),
            deploy_file("bootstrap"),
            data=None,
            report_dir=report_dir,
            limit=hosts[0] if len(hosts) == 1 else hosts,
        )
    finally:
        timings.append(("end", time.monotonic()))
        if down:
            for lab_name in names:
                click.secho(f"==> Taking lab {lab_name} down", bold=True)
                dindkit.lab.down(lab_name)
    click.echo("")
    for (title, at), (_, until) in itertools.pairwise(timings):
        click.echo(f"  {until - at:6.0f}s  {title}")
        if timings[0][0] == title:
            for job, seconds in parallel.items():
                click.echo(f"  {seconds:6.0f}s    {job}")
    click.echo(f"  {time.monotonic() - started:6.0f}s  total")
    if not down:
        click.echo(f"\nThe labs are still running. ssh in:  dindkit lab ssh {names[0]}")
        inventory, deploy = inventory_file("lab"), deploy_file("bootstrap")
        limits = " ".join(f"--limit lab-{lab_name}" for lab_name in names)
        click.echo(f"Deploy again:  pyinfra -y {inventory} {deploy} {limits}")
        down_commands = " && ".join(f"dindkit lab down {lab_name}" for lab_name in names)
        click.echo(f"Tear it down:  {down_commands}")
    sys.exit(code)
