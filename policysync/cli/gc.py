"""``gc``."""

from __future__ import annotations

import json

import click

from policysync.cli import cli
from policysync.config import resolve_home
from policysync.gc import collect_garbage


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--wait", type=click.FloatRange(min=0), default=0, metavar="SECONDS",
              help="If another run holds the home's lock, wait up to SECONDS for it.")
@click.pass_obj
def gc(obj: dict[str, str], dry_run: bool, as_json: bool, wait: float) -> None:
    """Remove raw documents no rulebook version needs: blobs without an artifact row (left by a
    crash) and failed downloads a later good copy of the same URL replaced. Never a document any
    fact names as its provenance, one that parsed, or a URL's latest download.

    \b
    Example:
      policysync gc --dry-run
      policysync gc
    """
    home = resolve_home(obj["home"]).require()
    result = collect_garbage(home, dry_run=dry_run, wait=wait)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for r in result.removed:
        what = r.sha256[:12] if r.sha256 else r.path
        click.echo(f"{verb} {what} ({r.reason}, {r.size:,} bytes)" + (f" {r.url}" if r.url else ""))
    click.echo(f"{verb} {len(result.removed)} files, {result.bytes:,} bytes; kept {result.kept} documents")
