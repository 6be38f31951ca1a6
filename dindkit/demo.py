"""``dindkit demo``: a lab VM, provisioned by dindkit and smoke-tested, in one command.

The steps are the ones a user would take by hand: build the smoke image (cached), ``dindkit
lab up``, ``pyinfra inventories/lab.py deploys/bootstrap.py --limit lab-<name>`` (Docker, socket
permissions, Sysbox where its preflight allows, smoke tests), then the smoke report.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import click

import dindkit.lab
from dindkit import progress as life_signs
from dindkit.lab.cli import vm_options
from dindkit.lab.vm import LabError
from dindkit.paths import deploy_file, inventory_file

DEFAULT_REPORT_DIR = Path("reports/latest")


def demo_name(distro: str) -> str:
    return f"demo-{distro}"


@click.command()
@vm_options
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_REPORT_DIR,
    show_default=True,
    help="Where report.json and junit.xml go.",
)
@click.option("--down", is_flag=True, help="Take the lab down at the end (even on failure).")
@click.option("--name", default=None, help="Lab name  [default: demo-<distro>]")
def demo(
    distro: str,
    report_dir: Path,
    down: bool,
    name: str | None,
    memory: int,
    cpus: int,
    accel: str,
) -> None:
    """Lab VM up, provision it with deploys/bootstrap.py, smoke-test every mode, report.

    Exits 0 only if every mode that could run passed.
    """
    # Imported here: both belong to other capabilities and pull in pyinfra.
    from dindkit.images import build_smoke_image, smoke_image_archive
    from dindkit.smoke.cli import run_and_report

    name = name or demo_name(distro)
    started = time.monotonic()
    timings: list[tuple[str, float]] = []

    def step(title: str) -> None:
        timings.append((title, time.monotonic()))
        click.secho(f"==> {title}", bold=True)

    code = 1
    try:
        step("Smoke image (cached by its recipe)")
        cached = smoke_image_archive().is_file()
        with life_signs.running("Building the smoke image"):
            archive = build_smoke_image()
        if cached:
            click.echo(f"Reusing the cached smoke image {archive}")
        step(f"Lab {name} ({distro})")
        try:
            lab = dindkit.lab.up(name, distro, memory=memory, cpus=cpus, accel=accel)
        except (LabError, ValueError, RuntimeError) as error:
            raise click.ClickException(str(error)) from None
        step(f"Provision and smoke-test {lab.host} with deploys/bootstrap.py")
        code = run_and_report(
            inventory_file("lab"),
            deploy_file("bootstrap"),
            data=None,
            report_dir=report_dir,
            limit=lab.host,
        )
    finally:
        timings.append(("end", time.monotonic()))
        if down:
            click.secho(f"==> Taking lab {name} down", bold=True)
            dindkit.lab.down(name)
    click.echo("")
    for (title, at), (_, until) in itertools.pairwise(timings):
        click.echo(f"  {until - at:6.0f}s  {title}")
    click.echo(f"  {time.monotonic() - started:6.0f}s  total")
    if not down:
        click.echo(f"\nThe lab is still running. ssh in:  dindkit lab ssh {name}")
        inventory, deploy = inventory_file("lab"), deploy_file("bootstrap")
        click.echo(f"Deploy again:  pyinfra -y {inventory} {deploy} --limit lab-{name}")
        click.echo(f"Tear it down:  dindkit lab down {name}")
    sys.exit(code)
