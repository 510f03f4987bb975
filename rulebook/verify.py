"""Integrity checks of a rulebook (``policysync verify``).

Besides the checks of the facts, it checks what a crash could leave behind (README "Crash safety and
faults"): SQLite's own ``PRAGMA integrity_check``; no fact row and no parsed document belonging to a
version that never committed; and no version left ``building`` by a process that is gone. Such a
version is repaired, not reported: it never committed anything (its transaction died with its
process), so it is marked ``failed`` with ``"abandoned"`` in its summary. A version whose process is
still running on this host (or runs on another host) is a sync in progress and is left alone. Bytes
a killed run stored without committing their row are harmless orphans; ``policysync gc`` removes them.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from rulebook.blobs import BlobStore, sha256_hex
from rulebook.db import MIGRATIONS
from rulebook.kinds import KINDS


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (the sync lock and abandoned-build repair)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def repair_abandoned(db: sqlite_utils.Database, now: str | None = None) -> dict[str, int]:
    """Mark versions left ``building`` by a dead process ``failed`` (abandoned). Returns what it
    found: builds in progress, versions marked."""
    now = now or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    here = socket.gethostname()
    live = abandoned = 0
    for row in list(db.query("SELECT id, summary FROM versions WHERE status = 'building' ORDER BY id")):
        try:
            builder: dict[str, Any] = json.loads(row["summary"] or "{}")
        except ValueError:
            builder = {}
        pid, host = builder.get("pid"), builder.get("host")
        if isinstance(pid, int) and (host != here or pid_alive(pid)):
            live += 1  # running here, or on another host where its pid cannot be checked
            continue
        note = {
            "abandoned": f"left building by pid {pid} on {host}, which is no longer running; "
            "nothing of it was committed",
            "pid": pid,
            "host": host,
        }
        with db.atomic():
            db.execute(
                "UPDATE versions SET status = 'failed', finished_at = ?, summary = ? "
                "WHERE id = ? AND status = 'building'",
                [now, json.dumps(note, sort_keys=True), row["id"]],
            )
        abandoned += 1
    return {"builds in progress": live, "abandoned versions marked failed": abandoned}


def verify_rulebook(
    db: sqlite_utils.Database, artifacts_dir: Path, *, repair: bool = True
) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    checked: dict[str, int] = {}
    pending = MIGRATIONS.pending(db)
    if pending:
        problems.append("migrations not applied: " + ", ".join(m.name for m in pending))
    integrity = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
    if integrity != ["ok"]:
        problems.append("SQLite integrity_check: " + "; ".join(str(x) for x in integrity[:5]))
    for fk in db.execute("PRAGMA foreign_key_check").fetchall()[:5]:
        problems.append(f"{fk[0]}: row {fk[1]} refers to a missing {fk[2]} row")
    if repair:
        checked.update({k: n for k, n in repair_abandoned(db).items() if n})
    for row in db.query("SELECT id FROM versions WHERE status = 'building' ORDER BY id"):
        if not repair:
            problems.append(f"version {row['id']}: still building (in progress, or left by a process that died)")
    uncommitted = "(SELECT id FROM versions WHERE status = 'committed')"
    for row in db.query(
        f"SELECT parsed_in_version AS v, COUNT(*) AS n FROM artifacts WHERE parse_status = 'parsed' "
        f"AND parsed_in_version NOT IN {uncommitted} GROUP BY parsed_in_version"
    ):
        problems.append(f"artifacts: {row['n']} documents marked parsed in version {row['v']}, which never committed")
    blobs = BlobStore(artifacts_dir)
    n = 0
    for art in db.table("artifacts").rows:
        n += 1
        path = blobs.path(art["sha256"])
        if not path.exists():
            problems.append(f"artifact {art['sha256'][:12]} ({art['url']}): raw bytes missing")
        elif sha256_hex(path.read_bytes()) != art["sha256"]:
            problems.append(
                f"artifact {art['sha256'][:12]} ({art['url']}): bytes on disk do not match sha256"
            )
    checked["artifacts"] = n
    for kind in KINDS.values():
        t = kind.name
        checked[f"{t} rows"] = db.table(t).count
        for row in db.query(
            f"SELECT COUNT(*) AS n FROM [{t}] f LEFT JOIN artifacts a ON a.sha256 = f.artifact_sha256 "
            "WHERE a.sha256 IS NULL"
        ):
            if row["n"]:
                problems.append(f"{t}: {row['n']} rows whose provenance artifact is not in the rulebook")
        keys = ", ".join(kind.key)
        for row in db.query(
            f"SELECT {keys}, COUNT(*) AS n FROM [{t}] WHERE v_to IS NULL GROUP BY {keys} HAVING n > 1 LIMIT 5"
        ):
            problems.append(f"{t}: {row['n']} current rows for key {[row[k] for k in kind.key]}")
        for col, what in (("v_from", "opened"), ("v_to", "closed")):
            for row in db.query(
                f"SELECT {col} AS v, COUNT(*) AS n FROM [{t}] WHERE {col} IS NOT NULL "
                f"AND {col} NOT IN {uncommitted} GROUP BY {col}"
            ):
                problems.append(f"{t}: {row['n']} rows {what} by version {row['v']}, which never committed")
        for row in db.query(f"SELECT COUNT(*) AS n FROM [{t}] WHERE v_to IS NOT NULL AND v_to <= v_from"):
            if row["n"]:
                problems.append(f"{t}: {row['n']} rows closed in or before the version that opened them")
        for row in db.query(
            # eff_end == eff_start is a fact that was never in force (a PTP edit deleted retroactively).
            f"SELECT COUNT(*) AS n FROM [{t}] WHERE eff_end IS NOT NULL AND eff_end < eff_start"
        ):
            if row["n"]:
                problems.append(f"{t}: {row['n']} rows with an empty valid-time interval")
    return problems, checked
