"""``review approve``, ``review reject``, ``review log``."""

from __future__ import annotations

import json

import click

from parsers.errors import UsageError
from policysync.cli import cli
from policysync.config import load_reviewers, resolve_home
from policysync.pipeline import utcnow
from rulebook import review as rv
from rulebook.db import open_rulebook


@cli.group()
def review() -> None:
    """Approve or reject rulebook versions; the append-only audit log of decisions.

    \b
    Example:
      policysync review approve 4 --by "J. Doe" --note "Q3 MUE changes checked against the CMS notice"
    """


def _decide(obj: dict[str, str], action: str, version: int, by: str | None, note: str | None, force: bool) -> None:
    home = resolve_home(obj["home"]).require()
    reviewers = load_reviewers(home)
    if reviewers and by is not None and by.strip() not in reviewers:
        raise UsageError(
            f"review {action}: --by {by!r} is not one of the reviewers in [review] reviewers ({', '.join(reviewers)})"
        )
    db = open_rulebook(home.db_path)
    entry = rv.decide(db, version, action=action, actor=by, note=note, now=utcnow(), force=force)
    forced = " (forced)" if entry.forced else ""
    click.echo(
        f"version {entry.version_id}: {entry.previous_state} -> {entry.new_state} by {entry.actor} "
        f"at {entry.at}{forced} (audit #{entry.id})"
    )


_BY = click.option("--by", "by", metavar="NAME", help="Who decides (required).")
_NOTE = click.option("--note", "note", metavar="TEXT", help="Why (required).")
_FORCE = click.option(
    "--force",
    is_flag=True,
    help="Replace an earlier decision, or approve over a rejected earlier version or a quarantined source "
    "(the note says why; the audit log records what was overridden).",
)


@review.command()
@click.argument("version", type=int)
@_BY
@_NOTE
@_FORCE
@click.pass_obj
def approve(obj: dict[str, str], version: int, by: str | None, note: str | None, force: bool) -> None:
    """Approve committed VERSION: `compile` may then use it by default. A version with a quarantined
    source (its record count dropped past quarantine_drop, or it yielded nothing) needs --force.

    \b
    Example:
      policysync review approve 4 --by "J. Doe" --note "checked against the CMS notice"
    """
    _decide(obj, "approve", version, by, note, force)


@review.command()
@click.argument("version", type=int)
@_BY
@_NOTE
@_FORCE
@click.pass_obj
def reject(obj: dict[str, str], version: int, by: str | None, note: str | None, force: bool) -> None:
    """Reject committed VERSION: its facts never reach a pack.

    \b
    Example:
      policysync review reject 5 --by "J. Doe" --note "truncated MUE table"
    """
    _decide(obj, "reject", version, by, note, force)


@review.command(name="log")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def log_cmd(obj: dict[str, str], as_json: bool) -> None:
    """Print the audit log of review decisions, oldest first.

    \b
    Example:
      policysync review log --json
    """
    home = resolve_home(obj["home"]).require()
    db = open_rulebook(home.db_path)
    entries = rv.audit_log(db)
    if as_json:
        click.echo(json.dumps([e.to_json() for e in entries], indent=2, sort_keys=True))
        return
    if not entries:
        click.echo("no review decisions yet")
        return
    for e in entries:
        forced = (f" (forced over {e.overrode})" if e.overrode else " (forced)") if e.forced else ""
        click.echo(
            f"#{e.id} {e.at} {e.actor}: {e.action} version {e.version_id} "
            f"({e.previous_state} -> {e.new_state}){forced}: {e.note}"
        )
