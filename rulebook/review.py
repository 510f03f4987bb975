"""The review workflow: approving or rejecting a committed version, and the append-only audit log.

A version whose changes include anything substantive is committed as ``pending_review``; one with no
substantive change as ``none``. A reviewer approves or rejects it; each decision is one row in
``audit_log``, which SQLite triggers keep append-only (m005_audit_log).

Facts are cumulative: a version holds every fact of the versions before it. So a ``none`` version
(no substantive change against the previous committed version) carries exactly the substantive
facts of the nearest earlier version that had some, and is as compilable as that one is
(``effective_state``). Time is an input: callers pass ``now``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlite_utils

from parsers.errors import RulebookError, UsageError
from rulebook import versions as vers

ACTIONS = {"approve": "approved", "reject": "rejected"}
DECIDED = ("approved", "rejected")


class ReviewError(RulebookError):
    """A review decision that cannot be recorded (not committed, already decided, ...)."""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    version_id: int
    note: str
    previous_state: str
    new_state: str
    forced: bool
    # What a forced decision overrode (an earlier decision, a rejected or quarantined version), else None.
    overrode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        version_id=row["version_id"],
        note=row["note"],
        previous_state=row["previous_state"],
        new_state=row["new_state"],
        forced=bool(row["forced"]),
        overrode=row.get("overrode"),
    )


def audit_log(db: sqlite_utils.Database) -> list[AuditEntry]:
    """Every review decision, oldest first."""
    return [_entry(r) for r in db.table("audit_log").rows_where(order_by="id")]


def _states(db: sqlite_utils.Database) -> list[tuple[int, str]]:
    return [
        (int(r["id"]), str(r["review_state"]))
        for r in db.query("SELECT id, review_state FROM versions WHERE status = 'committed' ORDER BY id")
    ]


def deciding_version(db: sqlite_utils.Database, version: int) -> int | None:
    """The version whose review state ``version``'s facts have: itself, or for a ``none`` version the
    nearest earlier committed version with substantive changes (None if there is none)."""
    for vid, state in reversed(_states(db)):
        if vid <= version and state != "none":
            return vid
    return None


def effective_state(db: sqlite_utils.Database, version: int) -> str:
    """The review state of the facts ``version`` holds (see ``deciding_version``)."""
    base = deciding_version(db, version)
    return "none" if base is None else vers.get_version(db, base).review_state


def compilable_default(db: sqlite_utils.Database) -> int | None:
    """The newest committed version whose facts are approved (or hold nothing substantive at all)."""
    for vid, _ in reversed(_states(db)):
        if effective_state(db, vid) in ("approved", "none"):
            return vid
    return None


def _rejected_since_approval(db: sqlite_utils.Database, version: int) -> list[int]:
    """Rejected committed versions older than ``version`` and newer than the last approved one."""
    out: list[int] = []
    for vid, state in reversed(_states(db)):
        if vid >= version:
            continue
        if state == "approved":
            break
        if state == "rejected":
            out.append(vid)
    return sorted(out)


def quarantine_blockers(db: sqlite_utils.Database, version: int) -> list[dict[str, Any]]:
    """Quarantines an approval of ``version`` would override: its own, and those of the versions not
    yet approved between it and the last approved one, whose facts it carries (facts are cumulative).
    Rejected versions are left to the rejected-version check."""
    ids: list[int] = []
    for vid, state in reversed(_states(db)):
        if vid > version:
            continue
        if vid < version and state == "approved":
            break
        if vid == version or state != "rejected":
            ids.append(vid)
    return vers.quarantines(db, ids)


def pending_count(db: sqlite_utils.Database) -> int:
    return sum(1 for _, state in _states(db) if state == "pending_review")


def decide(
    db: sqlite_utils.Database,
    version: int,
    *,
    action: str,
    actor: str | None,
    note: str | None,
    now: str,
    force: bool = False,
) -> AuditEntry:
    """Approve or reject ``version``: set its review state and append one audit row, atomically."""
    if action not in ACTIONS:
        raise UsageError(f"review: unknown action {action!r} (use approve or reject)")
    actor = (actor or "").strip()
    note = (note or "").strip()
    if not actor:
        raise UsageError(f"review {action}: --by NAME is required (who decides)")
    if not note:
        raise UsageError(f"review {action}: --note TEXT is required (why)")
    v = vers.get_version(db, version)
    if v.status != "committed":
        raise ReviewError(f"version {version} is {v.status}, not committed: only committed versions can be reviewed")
    previous = v.review_state
    overrode: list[str] = []
    if previous in DECIDED:
        if not force:
            last = [e for e in audit_log(db) if e.version_id == version]
            by = f" by {last[-1].actor} at {last[-1].at}" if last else ""
            raise ReviewError(
                f"version {version} was already {previous}{by}; use --force to record a new decision"
            )
        overrode.append(f"earlier decision: {previous}")
    if action == "approve":
        base = max([vid for vid, st in _states(db) if vid < version and st == "approved"], default=0)
        carried = _rejected_since_approval(db, version)
        if carried:
            ids = ", ".join(map(str, carried))
            if not force:
                raise ReviewError(
                    f"version {version} also carries the facts of rejected version {ids} (facts are cumulative); "
                    f"review `policysync diff {base} {version}` and use --force to approve anyway"
                )
            overrode.append(f"rejected version {ids}")
        blockers = quarantine_blockers(db, version)
        if blockers:
            if not force:
                q = blockers[0]
                whose = "is"
                if q["version_id"] != version:
                    whose = f"carries the facts of version {q['version_id']}, which is"
                raise ReviewError(
                    f"version {version} {whose} quarantined: {q['message']}; review `policysync diff {base} "
                    f"{version}` and use --force with a --note giving the reason to approve anyway"
                )
            overrode.extend(f"quarantine of version {q['version_id']}: {q['message']}" for q in blockers)
    new_state = ACTIONS[action]
    with db.conn:
        db.execute("UPDATE versions SET review_state = ? WHERE id = ?", [new_state, version])
        table = db.table("audit_log")
        table.insert(
            {
                "at": now,
                "actor": actor,
                "action": action,
                "version_id": version,
                "note": note,
                "previous_state": previous,
                "new_state": new_state,
                "forced": int(bool(overrode)),
                "overrode": "; ".join(overrode) or None,
            }
        )
        rowid = int(table.last_pk)  # type: ignore[arg-type]
    return _entry(next(iter(db.table("audit_log").rows_where("id = ?", [rowid]))))
