"""Loading releases into bitemporal fact tables, and as-of queries.

Rows are never updated in place except to close them: a change closes the current row
(``v_to = version``) and inserts its successor (``v_from = version``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from rulebook.kinds import FactKind


@dataclass
class LoadCounts:
    added: int = 0
    removed: int = 0
    modified: int = 0
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def merge(self, other: LoadCounts) -> None:
        self.added += other.added
        self.removed += other.removed
        self.modified += other.modified
        self.unchanged += other.unchanged
        for k, v in other.skipped.items():
            self.skip(k, v)


def current_rows(db: sqlite_utils.Database, kind: FactKind) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The rows current now (``v_to IS NULL``), by natural key."""
    cur = db.execute(f"SELECT * FROM [{kind.name}] WHERE v_to IS NULL")
    names = [d[0] for d in cur.description]
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for values in cur:
        row = dict(zip(names, values, strict=True))
        out[tuple(row[c] for c in kind.key)] = row
    return out


def load_release(
    db: sqlite_utils.Database,
    kind: FactKind,
    rows: Iterable[dict[str, Any]],
    *,
    version: int,
    release: str,
    artifact_sha256: str,
    current: dict[tuple[Any, ...], dict[str, Any]] | None = None,
) -> LoadCounts:
    """Apply one release of a source to ``kind``'s table inside the caller's transaction.

    A release older than the one that stated the current row does not override it, so documents
    fetched out of order (a backfill) never roll a fact back. ``current`` may be passed in (and is
    kept up to date) when several releases are applied in one version.
    """
    counts = LoadCounts()
    if current is None:
        current = current_rows(db, kind)
    inserts: list[dict[str, Any]] = []
    closes: list[int] = []
    drops: list[int] = []
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        key = tuple(row[c] for c in kind.key)
        if key in seen:
            counts.skip("duplicate key in release")
            continue
        seen.add(key)
        row = dict(row)
        row["payload_hash"] = kind.payload_hash(row)
        old = current.get(key)
        if old is not None:
            if (old["release"] or "") > release:
                counts.skip("older release than current fact")
                continue
            if old["payload_hash"] == row["payload_hash"]:
                counts.unchanged += 1
                continue
            if old["v_from"] == version:
                # Stated by an earlier release loaded into this same, uncommitted version: no
                # version ever saw it, so it is replaced, not closed (record time stays v_from < v_to).
                drops.append(old["id"])
            else:
                closes.append(old["id"])
                counts.modified += 1
        else:
            counts.added += 1
        row.update(release=release, v_from=version, v_to=None, artifact_sha256=artifact_sha256)
        inserts.append(row)
    if kind.absent == "close":
        for key, old in current.items():
            if key not in seen and (old["release"] or "") <= release:
                if old["v_from"] == version:
                    drops.append(old["id"])
                    counts.added -= 1
                else:
                    closes.append(old["id"])
                    counts.removed += 1
    else:
        # Kept in force, but counted: a fact a newer release no longer states without ever ending
        # it (a gap in the recorded releases, or a publisher error) deserves a look.
        for key, old in current.items():
            if key not in seen and old["eff_end"] is None and (old["release"] or "") < release:
                counts.skip("absent from newer release without an end date (kept)")
    if drops:
        db.conn.executemany(f"DELETE FROM [{kind.name}] WHERE id = ?", [(i,) for i in drops])
    if closes:
        db.conn.executemany(f"UPDATE [{kind.name}] SET v_to = ? WHERE id = ?", [(version, i) for i in closes])
    if closes or drops:
        closed = set(closes) | set(drops)
        for key in [k for k, r in current.items() if r["id"] in closed]:
            del current[key]
    if inserts:
        cols = list(inserts[0].keys())
        sql = f"INSERT INTO [{kind.name}] ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        cur = db.conn.cursor()
        for row in inserts:
            cur.execute(sql, [row.get(c) for c in cols])
            row["id"] = cur.lastrowid
            current[tuple(row[c] for c in kind.key)] = row
    return counts


def as_of(
    db: sqlite_utils.Database,
    kind: FactKind,
    version: int,
    *,
    window: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Rows as the rulebook knew them in ``version``; with ``window=(from, to)`` only those whose
    valid time intersects ``[from, to)``. Ordered by natural key and eff_start."""
    sql = f"SELECT * FROM [{kind.name}] WHERE v_from <= :v AND (v_to IS NULL OR v_to > :v)"
    params: dict[str, Any] = {"v": version}
    if window is not None:
        sql += " AND eff_start < :to AND (eff_end IS NULL OR eff_end > :from)"
        params.update({"from": window[0], "to": window[1]})
    sql += " ORDER BY " + ", ".join(kind.key) + ", eff_start"
    cur = db.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]
