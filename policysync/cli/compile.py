"""``compile``."""

from __future__ import annotations

import json
from pathlib import Path

import click
import sqlite_utils

from compiler.packs import compile_packs
from policysync.cli import cli
from policysync.config import configured_payers, resolve_home
from rulebook import review
from rulebook.db import open_rulebook


def _why(version: int, db: sqlite_utils.Database) -> str:
    """Why the default picked ``version``: approved itself, or unchanged since an approved one."""
    base = review.deciding_version(db, version)
    if base == version:
        return "the newest approved version"
    if base is None:
        return "no substantive facts to review"
    return f"no substantive change since approved version {base}"


@cli.command(name="compile")
@click.option("--from", "start", required=True, metavar="DATE", help="Window start (inclusive), YYYY-MM-DD.")
@click.option("--to", "end", required=True, metavar="DATE", help="Window end (exclusive), YYYY-MM-DD.")
@click.option(
    "--scope",
    default="medicare",
    show_default=True,
    help="medicare, medicare:<jurisdiction> (medicare:JK), medicare:<state> (medicare:NY), payer:<id>.",
)
@click.option(
    "--version",
    "version",
    type=int,
    help="Rulebook version (default: newest approved; a pending one compiles with a warning, a rejected one never).",
)
@click.option("-o", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def compile_cmd(
    obj: dict[str, str], start: str, end: str, scope: str, version: int | None, out_dir: str, as_json: bool
) -> None:
    """Compile the rules in force at some point in [FROM, TO) into a rule pack and manifest.json.

    \b
    Example:
      policysync compile --from 2020-07-01 --to 2020-10-01 --scope medicare -o packs/2020q3
    """
    home = resolve_home(obj["home"]).require()
    db = open_rulebook(home.db_path)
    res = compile_packs(
        db, start=start, end=end, scope=scope, out_dir=Path(out_dir), version=version, payers=configured_payers(home)
    )
    if res.review_state == "pending_review":
        click.echo(
            f"warning: version {res.version} is pending review, not approved: compiled only because --version "
            "was given (see `policysync review approve`)",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(res.manifest, indent=2, sort_keys=True))
        return
    click.echo(f"compiled from rulebook version {res.version}" + ("" if version else f" ({_why(res.version, db)})"))
    for p in res.manifest["packs"]:
        counts = ", ".join(f"{n} {k}" for k, n in p["sections"].items())
        click.echo(
            f"  {Path(out_dir) / p['file']}: {p['scope']} [{p['window']['from']}, {p['window']['to']}) "
            f"{counts}; pack_id {p['pack_id'][:16]}"
        )
    click.echo(f"  {Path(out_dir) / 'manifest.json'}")
