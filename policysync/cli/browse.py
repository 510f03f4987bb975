"""``browse``."""

from __future__ import annotations

import json

import click

from policysync import browse as br
from policysync.cli import cli
from policysync.config import load_sources, resolve_home
from rulebook.db import open_rulebook


@cli.command()
@click.option("--port", type=int, default=8001, show_default=True, help="Port on 127.0.0.1.")
@click.option("--dry-run", is_flag=True, help="Print what would be served (command, canned queries) and exit.")
@click.option("--print-metadata", is_flag=True, help="Print the Datasette metadata JSON and exit.")
@click.pass_obj
def browse(obj: dict[str, str], port: int, dry_run: bool, print_metadata: bool) -> None:
    """Browse the rulebook in Datasette on 127.0.0.1, read-only (immutable mode), with canned
    queries: coverage of a drug by jurisdiction as of a date, what changed this week (versions and
    facts), which sources are stale. Restart it after a sync to see the new version.

    \b
    Example:
      policysync browse --port 8001
      policysync browse --dry-run
    """
    home = resolve_home(obj["home"]).require()
    open_rulebook(home.db_path).close()  # migrated to the current schema before it is frozen
    cadences = {sid: cfg.cadence_days for sid, cfg in load_sources(home).items() if cfg.enabled}
    served = br.build(home.db_path, cadences)
    if print_metadata:
        click.echo(json.dumps(served.metadata, indent=2))
        return
    queries = served.metadata["databases"][br.DB_NAME]["queries"]
    url = f"http://127.0.0.1:{port}/{br.DB_NAME}"
    if dry_run:
        click.echo(f"would serve {home.db_path} read-only (immutable) at {url}")
        click.echo(f"  as: {served.command_line(port)}")
        for name, q in queries.items():
            click.echo(f"  canned query {url}/{name}: {q['title']}")
        return
    click.echo(f"serving {home.db_path} read-only at {url} (Ctrl-C stops)", err=True)
    br.serve(served, port)
