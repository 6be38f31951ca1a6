"""``dindkit lab``: up, down, list, status, ssh, box."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

import dindkit.lab as lab_api
from dindkit.lab.image import DISTROS, image_for, stale_images
from dindkit.lab.state import Lab
from dindkit.lab.vm import ACCELS, LabError

F = TypeVar("F", bound=Callable[..., Any])


class AsciiIntRange(click.IntRange):
    """An IntRange that takes ASCII digits only: click's int() also reads fullwidth digits."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.isascii():
            self.fail(f"{value!r} is not a number in ASCII digits", param, ctx)
        return super().convert(value, param, ctx)


class AsciiFloatRange(click.FloatRange):
    """A FloatRange that takes ASCII digits only (see AsciiIntRange)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.isascii():
            self.fail(f"{value!r} is not a number in ASCII digits", param, ctx)
        return super().convert(value, param, ctx)


def vm_options(command: F, several_distros: bool = False) -> F:
    """The VM options ``lab up`` and ``demo`` share: --distro, --memory, --cpus, --accel.

    ``several_distros``: --distro may be repeated (one VM each) and arrives as a tuple.
    """
    options = (
        click.option(
            "--distro",
            type=click.Choice(DISTROS),
            default=(lab_api.DEFAULT_DISTRO,) if several_distros else lab_api.DEFAULT_DISTRO,
            multiple=several_distros,
            show_default=True,
            help="Debian release of the VM"
            + (" (repeat for one VM each)." if several_distros else "."),
        ),
        click.option(
            "--memory",
            type=AsciiIntRange(1024),
            default=lab_api.DEFAULT_MEMORY,
            show_default=True,
            help="Memory in MiB.",
        ),
        click.option(
            "--cpus",
            type=AsciiIntRange(1),
            default=lab_api.DEFAULT_CPUS,
            show_default=True,
            help="Virtual CPUs.",
        ),
        click.option(
            "--accel",
            type=click.Choice(ACCELS),
            default="auto",
            show_default=True,
            help="auto: KVM only if a bounded probe boots with it, else TCG.",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def lab() -> None:
    """Throwaway Debian VMs built from Debian packages, booted with qemu."""


@lab.command()
@click.argument("name", default=lab_api.DEFAULT_NAME)
@vm_options
@click.option(
    "--timeout",
    type=AsciiFloatRange(10),
    default=lab_api.DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for SSH.",
)
def up(name: str, distro: str, memory: int, cpus: int, accel: str, timeout: float) -> None:
    """Boot lab NAME (building or reusing the cached image); nothing if it already runs."""
    try:
        booted = lab_api.up(name, distro, memory=memory, cpus=cpus, accel=accel, timeout=timeout)
    except (LabError, ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"ssh in:    dindkit lab ssh {booted.name}")
    click.echo(f"tear down: dindkit lab down {booted.name}")


@lab.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Take down every lab.")
def down(name: str | None, all_: bool) -> None:
    """Stop lab NAME and remove its overlay (fine on a stopped lab)."""
    if all_ == bool(name):
        raise click.UsageError("give a lab NAME or --all")
    names = lab_api.known_names() if all_ else [name or ""]
    if all_ and not names:
        click.echo("No labs.")
    try:
        for each in names:
            lab_api.down(each)
    except (LabError, ValueError) as error:
        raise click.ClickException(str(error)) from None


def _rows(labs: list[Lab]) -> list[list[str]]:
    rows = [["NAME", "DISTRO", "STATE", "SSH", "PID", "ACCEL", "HOST"]]
    for each in labs:
        running = each.running
        rows.append(
            [
                each.name,
                each.distro,
                "running" if running else "stopped",
                f"127.0.0.1:{each.ssh_port}" if running else "-",
                str(each.pid) if running else "-",
                each.accel,
                each.host,
            ]
        )
    return rows


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@lab.command(name="list")
def list_() -> None:
    """The labs and whether they run."""
    labs = lab_api.list_labs()
    if not labs:
        click.echo("No labs. Start one with: dindkit lab up")
        return
    click.echo(_table(_rows(labs)))


@lab.command()
@click.argument("name", required=False)
def status(name: str | None) -> None:
    """Details of lab NAME (or of every lab) and of the cached images."""
    labs = lab_api.list_labs()
    if name:
        labs = [each for each in labs if each.name == name]
        if not labs:
            raise click.ClickException(f"no lab named {name}")
    for each in labs:
        click.echo(f"{each.name}: {'running' if each.running else 'stopped'}")
        for label, value in (
            ("distro", each.distro),
            ("inventory host", each.host),
            ("ssh", f"127.0.0.1:{each.ssh_port} (key {each.key_path})"),
            ("qemu pid", str(each.pid)),
            ("accel / cpus / memory", f"{each.accel} / {each.cpus} / {each.memory} MiB"),
            ("overlay", str(each.overlay)),
            ("serial log", str(each.serial_log)),
            ("base image", str(each.image)),
        ):
            click.echo(f"  {label:22} {value}")
    if not name:
        for distro in DISTROS:
            image = image_for(distro)
            state = "cached" if image.exists() else "not built"
            click.echo(f"image {distro}: {state} ({image.directory})")


@lab.command()
def prune() -> None:
    """Remove cached images of older recipes that no recorded lab is based on."""
    in_use = {each.image for each in lab_api.list_labs()}
    stale = stale_images(in_use)
    for directory in stale:
        shutil.rmtree(directory)
        directory.with_name(directory.name + ".lock").unlink(missing_ok=True)
        click.echo(f"Removed {directory}")
    if not stale:
        click.echo("No stale images.")


@lab.command()
@click.option(
    "--distro",
    type=click.Choice(DISTROS),
    default=lab_api.DEFAULT_DISTRO,
    show_default=True,
    help="Debian release of the box.",
)
@click.option("--force", is_flag=True, help="Rebuild the box even if it is cached.")
def box(distro: str, force: bool) -> None:
    """Build a libvirt Vagrant box from the lab image (no download) and add it to Vagrant."""
    from dindkit.lab.box import SSH_PORTS, add_box, ensure_box, port_variable

    try:
        built = ensure_box(distro, progress=lambda line: click.echo(line), force=force)
        add_box(built, progress=lambda line: click.echo(line))
    except (LabError, ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"use it:    DINDKIT_VAGRANT_LOCAL_BOX=1 vagrant up {built.name.split('/')[-1]}")
    click.echo(
        f"ssh port:  127.0.0.1:{SSH_PORTS[distro]} (set {port_variable(distro)} to change it)"
    )


@lab.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, command: tuple[str, ...]) -> None:
    """SSH into lab NAME as root; `dindkit lab ssh NAME -- CMD` runs CMD."""
    found = lab_api.get(name)
    if not found or not found.running:
        raise click.ClickException(f"lab {name} is not running: dindkit lab up {name}")
    argv = found.ssh_command(" ".join(command) if command else None)
    if not command and sys.stdin.isatty():
        argv = [argv[0], "-t", *argv[1:]]
    os.execvp(argv[0], argv)
