"""``sync`` and ``reparse``."""

from __future__ import annotations

import json

import click

from policysync import pipeline
from policysync.cli import cli, progress_printer
from policysync.config import resolve_home
from policysync.report import render_sync_report


@cli.command()
@click.option("--source", "sources", multiple=True, metavar="ID", help="Only this source (repeatable).")
@click.option(
    "--mirror", metavar="URL", help="Fetch https://HOST/PATH from URL/HOST/PATH (a loopback mirror)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="If another run holds the home's lock, wait up to SECONDS for it (default: exit 2 at once).",
)
@click.pass_obj
def sync(obj: dict[str, str], sources: tuple[str, ...], mirror: str | None, as_json: bool, wait: float) -> None:
    """Crawl the configured sources, parse what is new and commit ONE new rulebook version.

    Exit 0: committed (changed or not); 1: some sources failed, the others were committed;
    2: another run holds the home's lock (the line names it: pid, host, start time), or a usage
    error; 3: nothing could be committed. A failed source keeps all its previous facts.

    \b
    Example:
      policysync sync --source cms_hcpcs
      policysync sync --mirror http://127.0.0.1:8765
      policysync sync --wait 600
    """
    home = resolve_home(obj["home"]).require()
    report = pipeline.sync(
        home, sources=list(sources) or None, mirror=mirror, progress=progress_printer(), wait=wait
    )
    click.echo(
        json.dumps(report.to_json(), indent=2) if as_json else render_sync_report(report), nl=not as_json
    )
    raise SystemExit(report.exit_code)


@cli.command()
@click.option("--source", "sources", multiple=True, metavar="ID", help="Only this source (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="If another run holds the home's lock, wait up to SECONDS for it (default: exit 2 at once).",
)
@click.pass_obj
def reparse(obj: dict[str, str], sources: tuple[str, ...], as_json: bool, wait: float) -> None:
    """Replay the parsers over every stored raw document into a new version, without crawling.

    \b
    Example:
      policysync reparse --source cms_hcpcs
    """
    home = resolve_home(obj["home"]).require()
    report = pipeline.reparse(home, sources=list(sources) or None, progress=progress_printer(), wait=wait)
    click.echo(
        json.dumps(report.to_json(), indent=2) if as_json else render_sync_report(report), nl=not as_json
    )
    raise SystemExit(report.exit_code)
