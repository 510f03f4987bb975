"""``init``, ``versions``, ``verify``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

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
    """List rulebook versions with their status, review state, per-source outcome and quarantined
    sources, then each source's last run and staleness.

    \b
    Example:
      policysync versions --json
    """
    home = resolve_home(obj["home"]).require()
    db = open_rulebook(home.db_path)
    rows = vers.list_versions(db)
    cadences = {sid: cfg.cadence_days for sid, cfg in load_sources(home).items() if cfg.enabled}
    sources = vers.source_status(db, cadences, datetime.now(UTC))
    for s in sources:
        s["last_run"] = _last_run(db, s["source"])
    quarantined: dict[int, list[dict[str, object]]] = {}
    for q in vers.quarantines(db):
        quarantined.setdefault(q["version_id"], []).append(q)
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
                "quarantined": [
                    {k: q[k] for k in ("source", "reason", "message")} for q in quarantined.get(v.id, [])
                ],
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
        for q in quarantined.get(v.id, []):
            click.echo(f"      QUARANTINED {q['message']} (approval needs --force and a --note)")
    click.echo("sources:")
    for s in sources:
        flag = "STALE" if s["stale"] else "ok"
        last = s["last_successful_fetch"] or "never"
        line = f"  {s['source']}: {flag} (last successful fetch {last}; cadence {s['cadence_days']} days)"
        if s["last_outcome"]:
            line += f"; last run: {s['last_outcome']} in version {s['last_version']}"
        if s["last_error"]:
            line += f": {s['last_error']}"
        run = s["last_run"]
        if run:
            line += (
                f" ({run['requests']} requests, {run['not_modified']} not modified, {run['new_documents']} new "
                f"documents, {run['records']} records, facts +{run['added']} -{run['removed']} ~{run['modified']}, "
                f"{run['duration_s']:.1f}s)"
            )
        click.echo(line)


def _last_run(db: Any, source: str) -> dict[str, Any] | None:
    """The counts of the source's last run report (table source_runs), or None if it never ran."""
    rows = list(
        db.query(
            "SELECT version_id, outcome, requests, not_modified, new_documents, records, added, removed, "
            "modified, duration_s, error FROM source_runs WHERE source = ? ORDER BY version_id DESC LIMIT 1",
            [source],
        )
    )
    if not rows:
        return None
    run = dict(rows[0])
    run["errors"] = (run.pop("error") or "").splitlines()
    run["duration_s"] = run["duration_s"] or 0.0
    return run


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
