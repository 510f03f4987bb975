"""Rulebook versions (one per sync or reparse), the artifact rows and the fetch log."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from parsers.errors import RulebookError


@dataclass(frozen=True)
class Version:
    id: int
    kind: str
    started_at: str
    finished_at: str | None
    status: str
    review_state: str
    summary: dict[str, Any]


def _version(row: dict[str, Any]) -> Version:
    return Version(
        id=row["id"],
        kind=row["kind"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        review_state=row["review_state"],
        summary=json.loads(row["summary"] or "{}"),
    )


def begin_version(db: sqlite_utils.Database, *, kind: str, now: str) -> int:
    """Open a version in state ``building``; its facts become visible only on commit. While it builds,
    its summary names the process (pid, host), so ``verify`` can tell a live build from one left by a
    process that died (rulebook/verify.py)."""
    table = db.table("versions")
    builder = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    table.insert(
        {"kind": kind, "started_at": now, "status": "building", "review_state": "none", "summary": builder}
    )
    return int(table.last_pk)  # type: ignore[arg-type]


def finish_version(
    db: sqlite_utils.Database,
    version: int,
    *,
    status: str,
    now: str,
    summary: dict[str, Any],
    review_state: str,
) -> None:
    db.table("versions").update(
        version,
        {
            "status": status,
            "finished_at": now,
            "summary": json.dumps(summary, sort_keys=True),
            "review_state": review_state,
        },
    )


def list_versions(db: sqlite_utils.Database) -> list[Version]:
    return [_version(r) for r in db.table("versions").rows_where(order_by="id")]


def get_version(db: sqlite_utils.Database, version: int) -> Version:
    rows = list(db.table("versions").rows_where("id = ?", [version]))
    if not rows:
        raise RulebookError(f"no rulebook version {version} (see `policysync versions`)")
    return _version(rows[0])


def committed_versions(db: sqlite_utils.Database) -> list[int]:
    return [r["id"] for r in db.table("versions").rows_where("status = 'committed'", order_by="id")]


def latest_committed(db: sqlite_utils.Database) -> int | None:
    ids = committed_versions(db)
    return ids[-1] if ids else None


def previous_committed(db: sqlite_utils.Database, version: int) -> int | None:
    ids = [v for v in committed_versions(db) if v < version]
    return ids[-1] if ids else None


def fail_building_versions(db: sqlite_utils.Database, now: str) -> None:
    """A version left ``building`` by a crash never committed anything; mark it failed so it is
    not mistaken for a live one. Its fact rows were rolled back with its transaction."""
    db.execute("UPDATE versions SET status = 'failed', finished_at = ? WHERE status = 'building'", [now])


def record_fetch(db: sqlite_utils.Database, version: int, fetch: dict[str, Any]) -> None:
    db.table("fetches").insert({"version_id": version, **fetch})


def upsert_artifact(db: sqlite_utils.Database, art: dict[str, Any]) -> bool:
    """Record a fetched document. Returns True when this sha256 was not known before."""
    table = db.table("artifacts")
    existing = list(table.rows_where("sha256 = ?", [art["sha256"]]))
    if existing:
        table.update(art["sha256"], {"last_fetched_at": art["fetched_at"]})
        return False
    table.insert(
        {
            "sha256": art["sha256"],
            "source": art["source"],
            "url": art["url"],
            "release": art.get("release"),
            "filename": art.get("filename"),
            "content_type": art.get("content_type"),
            "size": art.get("size"),
            "etag": art.get("etag"),
            "last_modified": art.get("last_modified"),
            "first_fetched_at": art["fetched_at"],
            "last_fetched_at": art["fetched_at"],
        }
    )
    return True


def latest_fetch_validators(db: sqlite_utils.Database, source: str) -> dict[str, dict[str, Any]]:
    """Per URL, the validators and sha256 of the last document fetched from it (for conditional GET)."""
    out: dict[str, dict[str, Any]] = {}
    for row in db.query(
        "SELECT url, etag, last_modified, sha256 FROM fetches WHERE source = ? AND outcome = 'fetched' "
        "ORDER BY id",
        [source],
    ):
        out[row["url"]] = row
    return out


def artifact_for_url(db: sqlite_utils.Database, source: str, url: str) -> dict[str, Any] | None:
    """The artifact last fetched from ``url`` (what a 304 refers to)."""
    rows = list(
        db.query(
            "SELECT a.* FROM fetches f JOIN artifacts a ON a.sha256 = f.sha256 "
            "WHERE f.source = ? AND f.url = ? AND f.outcome = 'fetched' ORDER BY f.id DESC LIMIT 1",
            [source, url],
        )
    )
    return rows[0] if rows else None


def source_status(db: sqlite_utils.Database, cadences: dict[str, int], now: datetime) -> list[dict[str, Any]]:
    """Per configured source: the outcome of its last run, its last successful fetch, and whether it
    is stale — no successful fetch (200 or 304) within 1.5 x its cadence of ``now``."""
    out = []
    for source, cadence in cadences.items():
        last_ok = db.execute(
            "SELECT MAX(fetched_at) FROM fetches WHERE source = ? AND outcome IN ('fetched', 'not_modified')",
            [source],
        ).fetchone()[0]
        last_run = db.execute(
            "SELECT version_id, outcome, error FROM source_runs WHERE source = ? ORDER BY version_id DESC LIMIT 1",
            [source],
        ).fetchone()
        stale = True
        if last_ok:
            fetched = datetime.strptime(last_ok, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            stale = now - fetched > timedelta(days=1.5 * cadence)
        out.append(
            {
                "source": source,
                "cadence_days": cadence,
                "last_successful_fetch": last_ok,
                "stale": stale,
                "last_version": last_run[0] if last_run else None,
                "last_outcome": last_run[1] if last_run else None,
                "last_error": (last_run[2] or "").split("\n")[0] or None if last_run else None,
            }
        )
    return out


# --- quarantine (issue 7 part 3) ------------------------------------------------------------------


def release_record_counts(db: sqlite_utils.Database, source: str) -> dict[str, int]:
    """Per release, the records its parsed documents yielded. A document re-issued under the same
    file name and release replaces the earlier copy (the later download wins, as in loading), so a
    re-issue is not counted twice; a release of several documents (MUE: one per setting) sums them."""
    latest: dict[tuple[str, str], tuple[str, int]] = {}
    for r in db.query(
        "SELECT release, filename, url, record_count, first_fetched_at FROM artifacts "
        "WHERE source = ? AND parse_status = 'parsed' AND release IS NOT NULL",
        [source],
    ):
        slot = (r["release"], r["filename"] or r["url"])
        seen = latest.get(slot)
        if seen is None or (r["first_fetched_at"] or "") >= seen[0]:
            latest[slot] = (r["first_fetched_at"] or "", int(r["record_count"] or 0))
    out: dict[str, int] = {}
    for (release, _), (_, n) in latest.items():
        out[release] = out.get(release, 0) + n
    return out


def quarantine_check(
    db: sqlite_utils.Database,
    source: str,
    attempted: list[dict[str, Any]],
    records: int,
    threshold: float,
) -> dict[str, Any] | None:
    """Whether a source is quarantined after a run that tried to parse the documents ``attempted``
    (artifact rows) and loaded ``records`` records from them: it yielded nothing, or a release it
    touched has more than ``threshold`` (a share) fewer records than the source's previous release.
    Returns the quarantine row (without version_id), the worst release first, or None."""
    if not attempted:
        return None
    if records == 0:
        names = ", ".join(sorted({a["filename"] or a["url"] for a in attempted}))
        return {
            "source": source,
            "reason": "empty",
            "message": f"{source}: yielded no records from {len(attempted)} document(s) ({names})",
            "release": max((a["release"] or "" for a in attempted), default="") or None,
            "records": 0,
            "previous_release": None,
            "previous_records": None,
            "drop_share": None,
            "threshold": threshold,
        }
    counts = release_record_counts(db, source)
    worst: dict[str, Any] | None = None
    for release in sorted({a["release"] for a in attempted if a["release"]}):
        earlier = [r for r in counts if r < release and counts[r] > 0]
        if not earlier:
            continue  # the source's first release: nothing to compare with
        prev = max(earlier)
        n, before = counts.get(release, 0), counts[prev]
        drop = 1 - n / before
        if drop > threshold and (worst is None or drop > worst["drop_share"]):
            worst = {
                "source": source,
                "reason": "drop",
                "message": (
                    f"{source}: release {release} yielded {n:,} records against {before:,} in release {prev} "
                    f"(-{drop:.1%}, more than the configured quarantine_drop of {threshold:.0%})"
                ),
                "release": release,
                "records": n,
                "previous_release": prev,
                "previous_records": before,
                "drop_share": round(drop, 4),
                "threshold": threshold,
            }
    return worst


def record_quarantine(db: sqlite_utils.Database, version: int, row: dict[str, Any]) -> None:
    db.table("quarantines").insert({"version_id": version, **row}, replace=True)


def quarantines(db: sqlite_utils.Database, versions: list[int] | None = None) -> list[dict[str, Any]]:
    """Quarantine rows, by version then source; only those of ``versions`` when given."""
    rows = list(db.table("quarantines").rows_where(order_by="version_id, source"))
    if versions is not None:
        wanted = set(versions)
        rows = [r for r in rows if r["version_id"] in wanted]
    return rows
