"""What the review web app shows, as plain functions over the rulebook (no Flask here).

* :func:`review_queue` — committed versions, newest first, with their review state and, for those
  still to be decided, the size and severity of their change set against the previous version.
* :func:`rules_for` — "what rules apply to code X for scope Y on date D, as known in version V, and
  where did each come from": every fact kind with a code column, valid on D, with its provenance
  (source document URL, sha256, locator, release).

Committed versions never change, so change sets between two of them are cached per rulebook file.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from compiler.packs import check_scope
from parsers.errors import UsageError
from rulebook import review as rv
from rulebook import versions as vers
from rulebook.diff import ChangeSet, diff_versions
from rulebook.kinds import KINDS, FactKind

SEVERITIES = ("high", "medium", "low")

# Sections shown for a code: the core kinds first, anything registered later (coverage, prior
# authorization, prices, payer rules) after them, by table name.
_ORDER = ("hcpcs_codes", "unit_limits", "ptp_edits")
_TITLES = {
    "hcpcs_codes": "HCPCS Level II code",
    "unit_limits": "NCCI medically unlikely edits (unit limits)",
    "ptp_edits": "NCCI procedure-to-procedure edits involving the code",
    "coverage_rules": "Medicare coverage (LCDs and billing and coding articles)",
    "drug_prices": "Drug payment limits (ASP)",
    "ndc_crosswalk": "NDCs billed under the code",
}
# Columns that identify where a code sits in a fact table: the code itself, or either side of a pair.
_CODE_COLUMNS = ("code", "hcpcs", "hcpcs_code", "column1", "column2")
# Bookkeeping columns that are not part of the rule a reviewer reads.
_HIDDEN = {"id", "v_from", "v_to", "artifact_sha256", "locator", "release", "artifact_url"}
# The NCCI kinds are Medicare's (compile puts them only in Medicare scopes).
_MEDICARE_ONLY = {"unit_limits", "ptp_edits"}
ROW_LIMIT = 500
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CODE = re.compile(r"[A-Z0-9]{4,7}")


# --- change sets ------------------------------------------------------------------------------

_cache: OrderedDict[tuple[str, int, int], ChangeSet] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 4


def _db_key(db: sqlite_utils.Database) -> str:
    row = db.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row else ""


def change_set(db: sqlite_utils.Database, v1: int, v2: int) -> ChangeSet:
    """``diff_versions(db, v1, v2)``, cached: both versions are committed and never change."""
    key = (_db_key(db), v1, v2)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    cs = diff_versions(db, v1, v2)
    with _cache_lock:
        _cache[key] = cs
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return cs


#: Change sets larger than this are not classified in the browser (a first PTP load is 2.6 M
#: changes, minutes of work and gigabytes): `policysync diff` writes them to a file instead.
BROWSER_LIMIT = 200_000


def recorded_change_count(db: sqlite_utils.Database, version: int) -> int | None:
    """The number of changes the sync recorded for ``version`` against the previous version (its
    summary's ``changes`` counts), or None when the summary has none."""
    counts = vers.get_version(db, version).summary.get("changes")
    if not isinstance(counts, dict):
        return None
    return sum(int(n) for n in counts.values() if isinstance(n, int))


def too_large(db: sqlite_utils.Database, base: int, version: int) -> int | None:
    """The recorded size of the change set base -> version when it is over BROWSER_LIMIT (only known
    for a version against the one before it), else None."""
    if base != previous_version(db, version):
        return None
    n = recorded_change_count(db, version)
    return n if n is not None and n > BROWSER_LIMIT else None


def severity_counts(cs: ChangeSet) -> dict[str, int]:
    return {s: sum(1 for c in cs.changes if c.severity == s) for s in SEVERITIES}


def quarantines(db: sqlite_utils.Database, version: int) -> list[dict[str, Any]]:
    """The sources quarantined in ``version`` (table ``quarantines``; none when it does not exist)."""
    if not db["quarantines"].exists():
        return []
    return list(db.query("SELECT source, message FROM quarantines WHERE version_id = ? ORDER BY source", [version]))


@dataclass
class QueueItem:
    version: int
    previous: int
    kind: str
    finished_at: str | None
    review_state: str
    effective_state: str
    changes: int | None = None
    severity: dict[str, int] = field(default_factory=dict)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    too_large: bool = False  # counted by the sync, not classified here (see BROWSER_LIMIT)


def review_queue(db: sqlite_utils.Database) -> list[QueueItem]:
    """Committed versions, newest first. Change counts are computed for versions pending review only
    (the ones a reviewer has to read); decided versions link to their change set."""
    out: list[QueueItem] = []
    ids = vers.committed_versions(db)
    for i, vid in enumerate(ids):
        v = vers.get_version(db, vid)
        item = QueueItem(
            version=vid,
            previous=ids[i - 1] if i else 0,
            kind=v.kind,
            finished_at=v.finished_at,
            review_state=v.review_state,
            effective_state=rv.effective_state(db, vid),
            quarantined=quarantines(db, vid),
        )
        if v.review_state == "pending_review":
            big = too_large(db, item.previous, vid)
            if big is not None:
                item.changes, item.too_large = big, True
                out.append(item)
                continue
            cs = change_set(db, item.previous, vid)
            item.changes = len(cs.changes)
            item.severity = severity_counts(cs)
        out.append(item)
    out.reverse()
    return out


def previous_version(db: sqlite_utils.Database, version: int) -> int:
    """The committed version before ``version`` (0, the empty rulebook, for the first)."""
    return vers.previous_committed(db, version) or 0


# --- rules for a code -------------------------------------------------------------------------


@dataclass
class RuleSection:
    kind: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    note: str = ""
    excluded: bool = False  # the kind does not belong to the scope asked about


@dataclass
class RulesAnswer:
    code: str
    scope: str
    date: str
    version: int
    version_state: str
    sections: list[RuleSection]


def _columns(db: sqlite_utils.Database, table: str) -> list[str]:
    return [c.name for c in db[table].columns]  # type: ignore[union-attr]


def _kinds_in_order() -> list[FactKind]:
    rest = sorted(k for k in KINDS if k not in _ORDER)
    return [KINDS[k] for k in (*_ORDER, *rest) if k in KINDS]


def _scope_filter(cols: list[str], scope: str) -> tuple[str, dict[str, Any], str] | None:
    """SQL narrowing a fact table's rows to ``scope``, from the scope columns the table has; None
    when the table's rules do not belong to that kind of scope at all."""
    kind, _, value = scope.partition(":")
    if "payer" in cols:
        if kind == "payer":
            return "f.payer = :scope_value", {"scope_value": value}, f"payer {value} only"
        return "(f.payer IS NULL OR f.payer = 'medicare')", {}, "Medicare rules only"
    if kind == "payer":
        return None
    if value:
        place = "state" if len(value) == 2 and not value.startswith("J") else "jurisdiction"
        for col in ("states", "state") if place == "state" else ("jurisdictions", "jurisdiction"):
            if col in cols:
                # One value, a comma/semicolon separated list or a JSON list; NULL or empty: national.
                norm = f"f.[{col}]"
                for ch in (" ", '"', "[", "]"):
                    norm = f"replace({norm}, '{ch}', '')"
                norm = f"replace({norm}, ';', ',')"
                sql = f"(f.[{col}] IS NULL OR {norm} = '' OR (',' || {norm} || ',') LIKE :scope_like)"
                return sql, {"scope_like": f"%,{value},%"}, f"national rows and those for {value}"
    return "1", {}, ""


def rules_for(db: sqlite_utils.Database, code: str, scope: str, date: str, version: int | None = None) -> RulesAnswer:
    """Every rule about ``code`` in force on ``date`` for ``scope``, as known in ``version`` (default:
    the version ``compile`` would use, else the newest committed one), each with its provenance."""
    code = code.strip().upper()
    scope = scope.strip() or "medicare"
    if not _CODE.fullmatch(code):
        raise UsageError(f"rules: {code!r} is not a HCPCS/CPT code (4 to 7 letters and digits, e.g. J9035)")
    if not _DATE.fullmatch(date.strip()):
        raise UsageError(f"rules: date {date!r} must be YYYY-MM-DD")
    date = date.strip()
    check_scope(scope, known_payers(db))
    if version is None:
        version = rv.compilable_default(db) or vers.latest_committed(db)
        if version is None:
            raise UsageError("rules: the rulebook has no committed version yet (run `policysync sync`)")
    v = vers.get_version(db, version)
    if v.status != "committed":
        raise UsageError(f"rules: version {version} is {v.status}, not committed")
    sections: list[RuleSection] = []
    for kind in _kinds_in_order():
        if not db[kind.name].exists():
            continue
        cols = _columns(db, kind.name)
        code_cols = [c for c in _CODE_COLUMNS if c in cols]
        if not code_cols or "eff_start" not in cols:
            continue
        title = _TITLES.get(kind.name, kind.name.replace("_", " ").capitalize())
        if kind.name in _MEDICARE_ONLY and not scope.startswith("medicare"):
            sections.append(RuleSection(kind.name, title, [], [], 0, f"Medicare only: not part of scope {scope}", True))
            continue
        if kind.name.startswith("payer_") and not scope.startswith("payer:"):
            note = f"commercial payer rules: not part of scope {scope}"
            sections.append(RuleSection(kind.name, title, [], [], 0, note, True))
            continue
        narrowed = _scope_filter(cols, scope)
        if narrowed is None:
            sections.append(RuleSection(kind.name, title, [], [], 0, f"not part of scope {scope}", True))
            continue
        scope_sql, scope_params, scope_note = narrowed
        where = " OR ".join(f"f.[{c}] = :code" for c in code_cols)
        # An empty interval (eff_end = eff_start: never in force) is never "in force on D".
        base = (
            f"FROM [{kind.name}] f LEFT JOIN artifacts a ON a.sha256 = f.artifact_sha256 "
            f"WHERE f.v_from <= :v AND (f.v_to IS NULL OR f.v_to > :v) AND ({where}) "
            "AND f.eff_start <= :d AND (f.eff_end IS NULL OR f.eff_end > :d) "
            f"AND ({scope_sql})"
        )
        params = {"v": version, "code": code, "d": date, **scope_params}
        total = db.execute(f"SELECT COUNT(*) {base}", params).fetchone()[0]
        order = ", ".join(f"f.[{c}]" for c in kind.key if c in cols) or "f.rowid"
        cur = db.execute(f"SELECT f.*, a.url AS artifact_url {base} ORDER BY {order} LIMIT {ROW_LIMIT}", params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur]
        shown = [c for c in names if c not in _HIDDEN and not _licensed_text(kind.name, c)]
        for r in rows:
            r["provenance"] = {
                "source": kind.source,
                "url": r.get("artifact_url"),
                "sha256": r.get("artifact_sha256"),
                "locator": r.get("locator"),
                "release": r.get("release"),
            }
        note = scope_note
        if total > len(rows):
            note = (note + "; " if note else "") + f"showing the first {len(rows)} of {total}"
        sections.append(RuleSection(kind.name, title, shown, rows, total, note))
    return RulesAnswer(code, scope, date, version, rv.effective_state(db, version), sections)


def known_payers(db: sqlite_utils.Database) -> set[str]:
    """Payer ids that rules in the rulebook name (any fact table with a ``payer`` column)."""
    out: set[str] = set()
    for kind in KINDS.values():
        if db[kind.name].exists() and "payer" in _columns(db, kind.name):
            out.update(r[0] for r in db.execute(f"SELECT DISTINCT payer FROM [{kind.name}] WHERE payer IS NOT NULL"))
    return out


def _licensed_text(table: str, column: str) -> bool:
    """Descriptor text outside the HCPCS Level II table may be AMA-licensed CPT text: never shown."""
    return table != "hcpcs_codes" and ("desc" in column.lower())


# --- payer policy redlines --------------------------------------------------------------------

PAYER_DOCUMENTS = "payer_documents"


@dataclass
class PayerDocument:
    payer: str
    url: str
    policy: str | None
    title: str | None
    status: str | None
    effective_date: str | None
    versions: list[dict[str, Any]]  # the document's rows, oldest first (one per stated version)

    @property
    def current(self) -> dict[str, Any]:
        return self.versions[-1]


def payer_documents(db: sqlite_utils.Database, version: int | None = None) -> list[PayerDocument]:
    """Every payer policy document known in ``version`` (default: the newest committed), with all
    the versions of it the rulebook has seen up to then. Empty when there is no payer document table."""
    if not db[PAYER_DOCUMENTS].exists():
        return []
    if version is None:
        version = vers.latest_committed(db)
        if version is None:
            return []
    cur = db.execute(
        f"SELECT f.*, a.url AS artifact_url FROM [{PAYER_DOCUMENTS}] f "
        "LEFT JOIN artifacts a ON a.sha256 = f.artifact_sha256 WHERE f.v_from <= :v ORDER BY f.payer, f.url, f.v_from",
        {"v": version},
    )
    names = [d[0] for d in cur.description]
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in cur:
        row = dict(zip(names, r, strict=True))
        grouped.setdefault((row["payer"], row["url"]), []).append(row)
    out = []
    for (payer, url), rows in grouped.items():
        last = rows[-1]
        out.append(
            PayerDocument(
                payer, url, last.get("policy"), last.get("title"), last.get("status"), last.get("effective_date"), rows
            )
        )
    return out


def payer_document(db: sqlite_utils.Database, payer: str, url: str) -> PayerDocument | None:
    return next((d for d in payer_documents(db) if (d.payer, d.url) == (payer, url)), None)
