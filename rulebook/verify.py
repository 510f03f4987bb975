"""Integrity checks of a rulebook (``policysync verify``)."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from rulebook.blobs import BlobStore, sha256_hex
from rulebook.db import MIGRATIONS
from rulebook.kinds import KINDS


def verify_rulebook(db: sqlite_utils.Database, artifacts_dir: Path) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    checked: dict[str, int] = {}
    pending = MIGRATIONS.pending(db)
    if pending:
        problems.append("migrations not applied: " + ", ".join(m.name for m in pending))
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
