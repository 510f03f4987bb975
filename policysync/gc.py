"""``policysync gc``: remove raw documents that no rulebook version needs any more.

What goes:

- **orphan blobs**: files in ``artifacts/`` with no artifact row, left by a run that died between
  storing the bytes and committing their row, and ``.tmp-*`` files left by one that died while
  writing a blob;
- **superseded failures**: a document that never parsed (``parse_status`` failed or never set) and
  that a later download from the same URL replaced with one that did parse. ``reparse`` already skips
  such a document (pipeline.reparse), no fact states its provenance, and no conditional GET refers to
  it; its artifact row goes with its blob. The fetch log keeps its sha256 as history.

What always stays: every document that any fact row, current or closed, names as its provenance
(so ``as_of`` any version keeps its evidence), every document that parsed (``reparse`` replays it),
and every URL's latest download. The run holds the home's lock, so no sync writes blobs meanwhile.
Rows are deleted (one transaction) before their files, so a crash in between leaves only orphans,
which the next ``gc`` removes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from policysync.config import Home
from policysync.lock import hold
from rulebook.blobs import BlobStore
from rulebook.db import open_rulebook
from rulebook.kinds import KINDS


@dataclass
class Removal:
    path: str
    size: int
    reason: str  # "orphan" | "temporary" | "superseded failure"
    sha256: str | None = None
    url: str | None = None


@dataclass
class GcResult:
    dry_run: bool
    removed: list[Removal] = field(default_factory=list)
    kept: int = 0  # blobs kept

    @property
    def bytes(self) -> int:
        return sum(r.size for r in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "removed": [asdict(r) for r in self.removed], "kept": self.kept,
                "bytes": self.bytes}


def protected_shas(db: Any) -> set[str]:
    """sha256 of every document some fact row (in any version) names as its provenance."""
    out: set[str] = set()
    for kind in KINDS.values():
        out |= {r[0] for r in db.execute(f"SELECT DISTINCT artifact_sha256 FROM [{kind.name}]")}
    return out


def _superseded_failures(db: Any) -> list[dict[str, Any]]:
    latest = {
        r["sha256"]
        for r in db.query(
            "SELECT f.sha256 FROM fetches f JOIN (SELECT source, url, MAX(id) AS id FROM fetches "
            "WHERE outcome = 'fetched' GROUP BY source, url) m ON m.id = f.id"
        )
    }
    rows = db.query(
        "SELECT * FROM artifacts a WHERE COALESCE(a.parse_status, '') != 'parsed' AND EXISTS ("
        "SELECT 1 FROM artifacts b WHERE b.url = a.url AND b.sha256 != a.sha256 AND b.parse_status = 'parsed' "
        "AND b.first_fetched_at >= a.first_fetched_at)"
    )
    return [r for r in rows if r["sha256"] not in latest]


def collect_garbage(home: Home, *, dry_run: bool = False, wait: float = 0.0) -> GcResult:
    with hold(home, command="gc" + (" --dry-run" if dry_run else ""), wait=wait):
        db = open_rulebook(home.db_path)
        try:
            return _collect(home, db, dry_run)
        finally:
            db.close()


def _collect(home: Home, db: Any, dry_run: bool) -> GcResult:
    blobs = BlobStore(home.artifacts)
    result = GcResult(dry_run=dry_run)
    protected = protected_shas(db)
    known = {r[0] for r in db.execute("SELECT sha256 FROM artifacts")}
    doomed = [r for r in _superseded_failures(db) if r["sha256"] not in protected]
    for art in doomed:
        path = blobs.path(art["sha256"])
        size = path.stat().st_size if path.exists() else 0
        result.removed.append(Removal(str(path), size, "superseded failure", art["sha256"], art["url"]))
    doomed_shas = {a["sha256"] for a in doomed}
    if home.artifacts.is_dir():
        for dirpath, _dirs, files in os.walk(home.artifacts):
            for name in sorted(files):
                file = os.path.join(dirpath, name)
                if name.startswith(".tmp-"):
                    result.removed.append(Removal(file, os.path.getsize(file), "temporary"))
                elif name not in known:
                    result.removed.append(Removal(file, os.path.getsize(file), "orphan", name))
                elif name not in doomed_shas:
                    result.kept += 1
    result.removed.sort(key=lambda r: (r.reason, r.path))
    if dry_run:
        return result
    if doomed:
        with db.atomic():
            for sha in doomed_shas:
                db.execute("DELETE FROM artifacts WHERE sha256 = ?", [sha])
    for r in result.removed:
        try:
            os.unlink(r.path)
        except FileNotFoundError:
            pass
    return result
