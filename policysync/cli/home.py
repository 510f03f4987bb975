"""``init``, ``versions``, ``verify``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from policysync.cli import cli
from policysync.config import init_home, load_sources, resolve_home
from rulebook import versions as vers
from rulebook.db import open_rulebook
from rulebook.verify import verify_rulebook


@cli.command()
@click.pass_obj
def init(obj: dict[str, str]) -> None:
    """Create the home: config.toml, rulebook.db, artifacts/, packs/, reports/.

    \b
    Example:
      policysync --home ~/policysync init
    """
    home = resolve_home(obj["home"])
    created = init_home(home)
    if created:
        click.echo(f"created {home.root}/ (config.toml, rulebook.db, artifacts/, packs/, reports/)")
    else:
        click.echo(f"{home.root}/ already exists; config kept, rulebook migrated to the current schema")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def versions(obj: dict[str, str], as_json: bool) -> None:
    """List rulebook versions with their status, review state and per-source outcome.

    \b
    Example:
      policysync versions --json
    """
    home = resolve_home(obj["home"]).require()
    db = open_rulebook(home.db_path)
    rows = vers.list_versions(db)
    cadences = {sid: cfg.cadence_days for sid, cfg in load_sources(home).items() if cfg.enabled}
    sources = vers.source_status(db, cadences, datetime.now(UTC))
    if as_json:
        listed = [
            {
                "id": v.id,
                "kind": v.kind,
                "status": v.status,
                "review_state": v.review_state,
                "started_at": v.started_at,
                "finished_at": v.finished_at,
                "sources": {s["source"]: s["outcome"] for s in v.summary.get("sources", [])},
                "changes": v.summary.get("changes", {}),
            }
            for v in rows
        ]
        click.echo(json.dumps({"versions": listed, "sources": sources}, indent=2))
        return
    if not rows:
        click.echo("no versions yet (run `policysync sync`)")
    else:
        click.echo(f"{'ver':>4}  {'kind':<8} {'status':<10} {'review':<15} {'finished':<21} sources")
    for v in rows:
        srcs = ", ".join(f"{s['source']}={s['outcome']}" for s in v.summary.get("sources", []))
        click.echo(
            f"{v.id:>4}  {v.kind:<8} {v.status:<10} {v.review_state:<15} {v.finished_at or '-':<21} {srcs}"
        )
    click.echo("sources:")
    for s in sources:
        flag = "STALE" if s["stale"] else "ok"
        last = s["last_successful_fetch"] or "never"
        line = f"  {s['source']}: {flag} (last successful fetch {last}; cadence {s['cadence_days']} days)"
        if s["last_outcome"]:
            line += f"; last run: {s['last_outcome']} in version {s['last_version']}"
        if s["last_error"]:
            line += f": {s['last_error']}"
        click.echo(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def verify(obj: dict[str, str], as_json: bool) -> None:
    """Check the rulebook: raw documents match their sha256, every fact's provenance exists,
    at most one current row per fact key, record times well-formed. Exit 3 on any problem.

    \b
    Example:
      policysync verify
    """
    home = resolve_home(obj["home"]).require()
    problems, checked = verify_rulebook(open_rulebook(home.db_path), home.artifacts)
    if as_json:
        click.echo(json.dumps({"ok": not problems, "checked": checked, "problems": problems}, indent=2))
    else:
        click.echo("checked: " + ", ".join(f"{n} {k}" for k, n in checked.items()))
        for p in problems:
            click.echo(f"problem: {p}")
        click.echo("ok" if not problems else f"{len(problems)} problems")
    if problems:
        raise SystemExit(3)
