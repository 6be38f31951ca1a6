"""``dindkit smoke``: run deploys/smoke.py with pyinfra, then print the report's table;
``dindkit report DIR``: print a saved report's table again (and write its HTML page).

``dindkit smoke`` runs pyinfra's own CLI (dindkit.runner), so ``dindkit smoke INV`` and
``pyinfra INV deploys/smoke.py`` are the same run; this command only adds the table and an
exit status that is non-zero when pyinfra failed or any mode failed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from dindkit import paths
from dindkit.report import (
    JUNIT_XML,
    REPORT_HTML,
    REPORT_JSON,
    Report,
    ReportError,
    format_table,
    read_report,
    report_run,
    to_markdown,
    write_html,
)
from dindkit.runner import run_pyinfra
from dindkit.settings import smoke as smoke_settings

RUN_ID_ENV = "DINDKIT_SMOKE_RUN_ID"


def run_and_report(
    inventory: str | Path,
    deploy: str | Path,
    data: Mapping[str, Any] | None,
    report_dir: str | Path,
    limit: str | Sequence[str] | None = None,
) -> int:
    """Run a deploy that ends in the smoke tests, print the table; the exit status."""
    report_dir = Path(report_dir)
    run_id = secrets.token_hex(4)
    all_data = {**(data or {}), "smoke_report_dir": str(report_dir)}
    limits = [limit] if isinstance(limit, str) else list(limit or ())
    extra = [argument for each in limits for argument in ("--limit", each)]
    previous = os.environ.get(RUN_ID_ENV)
    os.environ[RUN_ID_ENV] = run_id  # the deploy names objects and report files by it
    try:
        process = run_pyinfra(inventory, deploy, all_data, extra)
    finally:
        if previous is None:
            os.environ.pop(RUN_ID_ENV, None)
        else:
            os.environ[RUN_ID_ENV] = previous
    report = read_report(report_dir) if report_run(report_dir) == run_id else None
    click.echo("")
    if report is None or not report.hosts:
        click.echo(f"No smoke report in {report_dir}: no host got to the end of its smoke tests.")
        return process.returncode or 1
    print_report(report, report_dir)
    if process.returncode:
        return process.returncode
    return 1 if report.failed else 0


def print_report(report: Report, report_dir: Path) -> None:
    click.echo(format_table(report))
    files = [report_dir / name for name in (REPORT_JSON, JUNIT_XML, REPORT_HTML)]
    click.echo("Report: " + ", ".join(str(path) for path in files if path.exists()))


def _modes(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    registered = smoke_settings.SMOKE_MODES  # the registry of modes, as it stands now
    chosen = [mode.strip() for mode in value.split(",") if mode.strip()]
    unknown = [mode for mode in chosen if mode not in registered]
    if unknown or not chosen:
        raise click.BadParameter(f"allowed: a comma-separated list of {', '.join(registered)}")
    return chosen


@click.command()
@click.argument("inventory")
@click.option(
    "--modes",
    default=",".join(smoke_settings.SMOKE_MODES),
    show_default=True,
    callback=_modes,
    help="Modes to test, comma-separated.",
)
@click.option(
    "--report-dir",
    default="reports/latest",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where report.json and junit.xml go.",
)
@click.option("--limit", help="Only these hosts or groups (pyinfra --limit).")
def smoke(inventory: str, modes: list[str], report_dir: str, limit: str | None) -> None:
    """Smoke-test each Docker-in-Docker mode on INVENTORY's hosts (pyinfra deploys/smoke.py)."""
    code = run_and_report(
        inventory, paths.deploy_file("smoke"), {"smoke_modes": modes}, report_dir, limit
    )
    raise SystemExit(code)


@click.command()
@click.argument("report_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--html", is_flag=True, help=f"Also write (or refresh) DIR/{REPORT_HTML}.")
@click.option(
    "--markdown",
    is_flag=True,
    help="Print the escape matrix as Markdown (for docs/modes.md) instead of the table.",
)
@click.option(
    "--measured",
    default=None,
    help="With --markdown: when and where it was measured  [default: report.json's date]",
)
def report(report_dir: Path, html: bool, markdown: bool, measured: str | None) -> None:
    """Print the table of the smoke report saved in DIR (report.json).

    Exit status: 0 when no mode failed, 1 when one did, 2 when DIR holds no readable report.
    """
    try:
        saved = read_report(report_dir)
    except ReportError as error:
        click.echo(f"dindkit report: {error}", err=True)
        raise SystemExit(2) from None
    if saved is None:
        if report_dir.is_dir():
            problem = f"{report_dir / REPORT_JSON}: no such file (no smoke report in this folder)"
        else:
            problem = f"{report_dir}: no such folder"
        click.echo(f"dindkit report: {problem}", err=True)
        raise SystemExit(2)
    if html:
        write_html(report_dir, saved)
    if markdown:
        stamp = datetime.fromtimestamp((report_dir / REPORT_JSON).stat().st_mtime, UTC)
        click.echo(to_markdown(saved, measured or f"on {stamp:%Y-%m-%d %H:%M} UTC"), nl=False)
    else:
        print_report(saved, report_dir)
    raise SystemExit(1 if saved.failed else 0)
