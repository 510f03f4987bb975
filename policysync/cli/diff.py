"""``diff``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from parsers.errors import UsageError
from policysync.cli import cli
from policysync.config import load_sources, resolve_home
from rulebook import versions as vers
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions, render_json, render_markdown, render_text
from rulebook.report_html import HTML_LIMIT, render_html

RENDERERS = {"text": render_text, "json": render_json, "md": render_markdown, "html": render_html}


@cli.command()
@click.argument("v1", type=int, required=False)
@click.argument("v2", type=int, required=False)
@click.option("--source", "sources", multiple=True, metavar="ID", help="Only this source (repeatable).")
@click.option("--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="text", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("-o", "output", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
@click.pass_obj
def diff(
    obj: dict[str, str],
    v1: int | None,
    v2: int | None,
    sources: tuple[str, ...],
    fmt: str,
    as_json: bool,
    output: str | None,
) -> None:
    """What changed between two rulebook versions: added, discontinued and reactivated codes,
    descriptor, billing-unit and effective-date changes (retroactive ones flagged), with severity,
    provenance, and the quarantined and stale sources.

    Without versions: the latest committed version against the one before it. --format html writes a
    self-contained page (no network needed) with counts, filters by source, severity and code, and
    the changes grouped by source, then policy or table, then code.

    \b
    Example:
      policysync diff 3 4 --format md -o changes.md
      policysync diff 3 4 --format html -o changes.html
    """
    home = resolve_home(obj["home"]).require()
    db = open_rulebook(home.db_path)
    if v2 is None:
        latest = vers.latest_committed(db)
        if latest is None:
            raise UsageError("nothing to diff: no committed version yet (run `policysync sync`)")
        v2 = latest
    else:
        vers.get_version(db, v2)
    if v1 is None:
        v1 = vers.previous_committed(db, v2) or 0
    elif v1 != 0:
        vers.get_version(db, v1)
    cs = diff_versions(db, v1, v2, sources=list(sources) or None)
    cadences = {sid: cfg.cadence_days for sid, cfg in load_sources(home).items() if cfg.enabled}
    cs.sources = [
        s
        for s in vers.source_status(db, cadences, datetime.now(UTC))
        if not sources or s["source"] in sources
    ]
    if fmt == "html" and not as_json and len(cs.changes) > HTML_LIMIT:
        raise UsageError(
            f"diff {v1} {v2}: {len(cs.changes):,} changes are too many for one HTML page (limit {HTML_LIMIT:,}); "
            "narrow it with --source ID, or use --format md or --json"
        )
    text = RENDERERS["json" if as_json else fmt](cs)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)
