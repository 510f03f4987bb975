"""Loading releases into bitemporal fact tables, and as-of queries.

Rows are never updated in place except to close them: a change closes the current row
(``v_to = version``) and inserts its successor (``v_from = version``). The one exception is a row
inserted by the same, still uncommitted version (several releases loaded in one sync): no version
ever saw it, so it is replaced or trimmed directly and record time stays ``v_from < v_to``.

Loading is set-based: a release's rows stream into a temporary stage table and a handful of SQL
statements compare them with the current rows. That keeps memory flat and a 2.6-million-row PTP
file in SQLite's own speed class, and it is the same code for 8,000 HCPCS codes.

A source whose parser offers ``parse_chunks`` (PTP) loads through :func:`load_chunks` instead: the
parser checks each line in Python on a second thread and hands over batches of raw lines, and SQLite
builds the rows itself, one statement per ~60,000 rows, while the parser reads the next batch. A
first load that matches nothing inserts straight into the fact table; anything else goes through the
same stage and compare as :func:`load_release`, with the same results (tests/test_facts.py checks
both paths give the same rows and counts).

Two modes (``FactKind.mode``):

* ``stated`` — each row states its own valid time (HCPCS add/term dates, PTP effective/deletion
  dates). A row whose key is in the release is replaced when its payload or interval differs. What
  absence means is ``FactKind.absent``.
* ``timeline`` — a release is a snapshot table that is in force from its effective date until the
  next one (MUE tables). A value that continues is kept as one interval; a changed or withdrawn value
  has its open interval ended at the new table's date and the new value starts there.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import sqlite_utils

from rulebook.kinds import FactKind

CHUNK = 50_000


@dataclass
class LoadCounts:
    added: int = 0
    removed: int = 0
    modified: int = 0
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    def merge(self, other: LoadCounts) -> None:
        self.added += other.added
        self.removed += other.removed
        self.modified += other.modified
        self.unchanged += other.unchanged
        for k, v in other.skipped.items():
            self.skip(k, v)


def _eq(cols: Iterable[str], a: str, b: str) -> str:
    return " AND ".join(f"{a}.[{c}] IS {b}.[{c}]" for c in cols) or "1"


def _stage(db: sqlite_utils.Database, kind: FactKind, rows: Iterable[Any]) -> tuple[str, int]:
    """Stream ``rows`` (tuples in ``kind.row_columns`` order, or dicts) into a fresh temp table with a
    unique key: a repeated key is dropped as it arrives. Returns the table name and rows offered."""
    stage = f"stage_{kind.name}"
    cols = kind.row_columns
    keys = ", ".join(f"[{c}]" for c in kind.key)
    db.execute(f"DROP TABLE IF EXISTS temp.[{stage}]")
    db.execute(f"CREATE TEMP TABLE [{stage}] ({', '.join(f'[{c}]' for c in cols)}, _act TEXT, UNIQUE ({keys}))")
    sql = (
        f"INSERT OR IGNORE INTO temp.[{stage}] ({', '.join(f'[{c}]' for c in cols)}) "
        f"VALUES ({', '.join('?' * len(cols))})"
    )
    n = 0
    batch: list[Any] = []
    for row in rows:
        batch.append(tuple(row.get(c) for c in cols) if isinstance(row, dict) else row)
        if len(batch) >= CHUNK:
            db.conn.executemany(sql, batch)
            n += len(batch)
            batch = []
    if batch:
        db.conn.executemany(sql, batch)
        n += len(batch)
    return stage, n


def _drop_duplicates(db: sqlite_utils.Database, stage: str, offered: int, counts: LoadCounts) -> None:
    kept = db.execute(f"SELECT COUNT(*) FROM temp.[{stage}]").fetchone()[0]
    counts.skip("duplicate key in release", offered - kept)


def _partition(kind: FactKind, alias: str, stage: str) -> str:
    """Restrict ``alias`` rows to the partitions (e.g. settings) the release covers."""
    return " AND ".join(f"{alias}.[{c}] IN (SELECT DISTINCT [{c}] FROM temp.[{stage}])" for c in kind.partition) or "1"


def _insert_stage(db: sqlite_utils.Database, kind: FactKind, stage: str, params: dict[str, Any]) -> int:
    cols = ", ".join(f"[{c}]" for c in kind.row_columns)
    cur = db.execute(
        f"INSERT INTO [{kind.name}] ({cols}, release, v_from, v_to, artifact_sha256) "
        f"SELECT {cols}, :release, :v, NULL, :sha FROM temp.[{stage}] WHERE _act IS NULL",
        params,
    )
    return cur.rowcount


def _close_or_drop(db: sqlite_utils.Database, kind: FactKind, where: str, params: dict[str, Any]) -> int:
    """Close current rows matching ``where`` (alias c); rows opened by this same version are deleted.
    Returns how many rows visible in an earlier version were closed; ``params["_dropped"]`` counts
    the deleted ones."""
    t = kind.name
    params["_dropped"] = (
        params.get("_dropped", 0)
        + db.execute(f"DELETE FROM [{t}] AS c WHERE c.v_to IS NULL AND c.v_from = :v AND ({where})", params).rowcount
    )
    return db.execute(
        f"UPDATE [{t}] AS c SET v_to = :v WHERE c.v_to IS NULL AND c.v_from < :v AND ({where})", params
    ).rowcount


def _load_stated(db: sqlite_utils.Database, kind: FactKind, stage: str, n: int, params: dict[str, Any]) -> LoadCounts:
    t = kind.name
    counts = LoadCounts()
    if db.execute(f"SELECT 1 FROM [{t}] WHERE v_to IS NULL LIMIT 1").fetchone() is None:
        # Nothing current to compare with (a first load): every staged row is new.
        counts.added = _insert_stage(db, kind, stage, params)
        return counts
    key_eq = _eq(kind.key, "c", "s")
    same = _eq(kind.compared + ("eff_start", "eff_end"), "c", "s")
    # One index lookup per staged row decides its fate: older than the current fact, the same, or new.
    db.execute(
        f"UPDATE temp.[{stage}] AS s SET _act = (SELECT CASE WHEN c.release > :release THEN 'older' "
        f"WHEN {same} THEN 'same' END FROM [{t}] c WHERE c.v_to IS NULL AND {key_eq})",
        params,
    )
    acts = dict(db.execute(f"SELECT _act, COUNT(*) FROM temp.[{stage}] GROUP BY _act").fetchall())
    counts.skip("older release than current fact", acts.get("older", 0))
    counts.unchanged = acts.get("same", 0)
    # The current rows the release replaces, found from the stage side through the current-row
    # index (a scan of every current row would cost seconds at 2.6 M PTP edits).
    db.execute("DROP TABLE IF EXISTS temp.replaced_ids")
    db.execute(
        f"CREATE TEMP TABLE replaced_ids AS SELECT c.id FROM temp.[{stage}] s JOIN [{t}] c "
        f"ON c.v_to IS NULL AND {key_eq} WHERE s._act IS NULL"
    )
    counts.modified = _close_or_drop(db, kind, "c.id IN (SELECT id FROM temp.replaced_ids)", params)
    if kind.absent == "close":
        gone = (
            f"c.release <= :release AND {_partition(kind, 'c', stage)} AND NOT EXISTS "
            f"(SELECT 1 FROM temp.[{stage}] s WHERE {key_eq})"
        )
        counts.removed = _close_or_drop(db, kind, gone, params)
    elif kind.count_absent:
        # Kept in force, but counted: a fact a newer release no longer states without ever ending
        # it (a gap in the recorded releases, or a publisher error) deserves a look.
        kept = db.execute(
            f"SELECT COUNT(*) FROM [{t}] c WHERE c.v_to IS NULL AND c.eff_end IS NULL AND c.release < :release "
            f"AND {_partition(kind, 'c', stage)} AND NOT EXISTS (SELECT 1 FROM temp.[{stage}] s WHERE {key_eq})",
            params,
        ).fetchone()[0]
        counts.skip("absent from newer release without an end date (kept)", kept)
    inserted = _insert_stage(db, kind, stage, params)
    counts.added = inserted - counts.modified - params["_dropped"]
    return counts


def _load_timeline(db: sqlite_utils.Database, kind: FactKind, stage: str, n: int, params: dict[str, Any]) -> LoadCounts:
    t = kind.name
    counts = LoadCounts()
    starts = [r[0] for r in db.execute(f"SELECT DISTINCT eff_start FROM temp.[{stage}]")]
    if len(starts) != 1:
        raise ValueError(f"{t}: a timeline release must have one effective date, found {starts}")
    params = params | {"E": starts[0]}
    part = _partition(kind, "c", stage)
    later = db.execute(
        f"SELECT COUNT(*) FROM [{t}] c WHERE c.v_to IS NULL AND {part} AND c.eff_start > :E", params
    ).fetchone()[0]
    if later:
        # An older table than one already loaded (a backfill): it must not end newer values.
        counts.skip("older table than current facts (release not applied)", n)
        return counts
    series_eq = _eq(kind.series, "c", "s")
    same_value = _eq(kind.compared, "c", "s")
    # Same table loaded again (or corrected in place): handled as stated facts of date E.
    at_e = f"c.eff_start = :E AND {part}"
    counts.unchanged = db.execute(
        f"UPDATE temp.[{stage}] AS s SET _act = 'same' WHERE EXISTS (SELECT 1 FROM [{t}] c "
        f"WHERE c.v_to IS NULL AND {series_eq} AND c.eff_end IS NULL AND {same_value})",
        params,
    ).rowcount
    counts.modified = _close_or_drop(
        db,
        kind,
        f"{at_e} AND NOT EXISTS (SELECT 1 FROM temp.[{stage}] s WHERE {series_eq} AND s._act = 'same')",
        params,
    )
    # Open intervals from earlier tables whose value changes or is withdrawn at E end there.
    ending = (
        f"c.eff_end IS NULL AND c.eff_start < :E AND {part} AND NOT EXISTS "
        f"(SELECT 1 FROM temp.[{stage}] s WHERE {series_eq} AND s._act = 'same')"
    )
    db.execute(f"UPDATE [{t}] AS c SET eff_end = :E WHERE c.v_to IS NULL AND c.v_from = :v AND {ending}", params)
    cols = [c for c in kind.row_columns if c != "eff_end"]
    collist = ", ".join(f"[{c}]" for c in cols)
    db.execute("DROP TABLE IF EXISTS temp.ending_ids")
    db.execute(
        f"CREATE TEMP TABLE ending_ids AS SELECT c.id FROM [{t}] c WHERE c.v_to IS NULL AND c.v_from < :v AND {ending}",
        params,
    )
    ended = db.execute(
        f"INSERT INTO [{t}] ({collist}, eff_end, release, v_from, v_to, artifact_sha256) "
        f"SELECT {', '.join('c.[' + c + ']' for c in cols)}, :E, c.release, :v, NULL, c.artifact_sha256 "
        f"FROM [{t}] c WHERE c.id IN (SELECT id FROM temp.ending_ids)",
        params,
    ).rowcount
    db.execute(f"UPDATE [{t}] SET v_to = :v WHERE id IN (SELECT id FROM temp.ending_ids)", params)
    withdrawn = db.execute(
        f"SELECT COUNT(*) FROM [{t}] c WHERE c.id IN (SELECT id FROM temp.ending_ids) AND NOT EXISTS "
        f"(SELECT 1 FROM temp.[{stage}] s WHERE {series_eq})"
    ).fetchone()[0]
    counts.removed = withdrawn
    counts.modified += ended - withdrawn
    counts.added = _insert_stage(db, kind, stage, params) - counts.modified - params.get("_dropped", 0)
    return counts


def load_release(
    db: sqlite_utils.Database,
    kind: FactKind,
    rows: Iterable[Any],
    *,
    version: int,
    release: str,
    artifact_sha256: str,
) -> LoadCounts:
    """Apply one release (one document) of a source to ``kind``'s table inside the caller's
    transaction. A release older than the one that stated the current row does not override it,
    so documents fetched out of order (a backfill) never roll a fact back."""
    stage, n = _stage(db, kind, rows)
    return _apply_stage(db, kind, stage, n, {"v": version, "release": release, "sha": artifact_sha256})


def _apply_stage(db: sqlite_utils.Database, kind: FactKind, stage: str, n: int, params: dict[str, Any]) -> LoadCounts:
    counts = LoadCounts()
    _drop_duplicates(db, stage, n, counts)
    loader = _load_timeline if kind.mode == "timeline" else _load_stated
    result = loader(db, kind, stage, n, params)
    result.merge(LoadCounts(skipped=counts.skipped))
    db.execute(f"DROP TABLE IF EXISTS temp.[{stage}]")
    return result


# --- chunks: a release as batches of raw lines that SQLite turns into rows -----------------------


class Chunk(Protocol):
    """A batch of checked rows in a parser's own text form (``parsers.cms_ncci_ptp.PtpChunk``):
    ``row_sql`` maps each of ``kind.row_columns`` to an SQL expression over ``j`` (``json_each`` of
    the ``lines`` parameter) and ``t`` (the row's tail in a temp table of ``tail_columns``, the first
    an integer key, joined on ``tail_join``), with :meth:`params` as named parameters. ``lo`` and
    ``hi`` are the first and last rows' leading key columns and ``fixed`` the key columns every row
    shares (the setting)."""

    count: int
    tails: list[tuple[Any, ...]]
    lo: tuple[str, ...]
    hi: tuple[str, ...]
    fixed: dict[str, Any]
    ordered: bool
    row_sql: dict[str, str]
    tail_columns: tuple[str, ...]
    tail_join: str

    def params(self) -> dict[str, Any]: ...


_T = TypeVar("_T")
_END = object()
#: sys.setswitchinterval while a parser thread runs (see _in_background).
SWITCH_INTERVAL = 0.0005


def _in_background(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """``items`` produced by a second thread, ``depth`` ahead: a parser's Python runs while SQLite
    (which releases the GIL for the length of a statement) inserts the previous chunk. An exception
    in the producer is raised here; when the consumer stops early the producer is closed and joined."""
    q: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any, exc: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                q.put((item, exc), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    break
            else:
                put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(_END, exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's finally (e.g. the parser's counts) runs in this thread

    worker = threading.Thread(target=run, name="policysync-parse", daemon=True)
    # Every statement the consumer runs lets the GIL go; getting it back from a producer in a
    # pure-Python loop takes a whole switch interval (5 ms by default), several times per chunk.
    # Shorter while the producer runs (process-wide, so restored afterwards).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    worker.start()
    try:
        while True:
            item, exc = q.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)


def _current_index(db: sqlite_utils.Database, kind: FactKind, width: int) -> str | None:
    """A partial index of ``kind``'s current rows (``WHERE v_to IS NULL``) led by the first ``width``
    key columns (PTP: ``idx_ptp_edits_current``), or None."""
    for name, sql in db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", [kind.name]
    ).fetchall():
        cols = [r[2] for r in db.execute(f"PRAGMA index_info([{name}])").fetchall()]
        if cols[:width] == list(kind.key[:width]) and " ".join(sql.split()).upper().endswith("WHERE V_TO IS NULL"):
            return str(name)
    return None


def _occupied(db: sqlite_utils.Database, kind: FactKind, index: str, chunk: Chunk, base: int) -> bool:
    """Whether a current row from before this release (``id <= base``) has a key in the chunk's range.
    Through ``index`` by name: without statistics the planner would walk the whole ``v_to`` index."""
    cols = ", ".join(f"[{c}]" for c in kind.key[: len(chunk.lo)])
    marks = ", ".join("?" * len(chunk.lo))
    fixed = "".join(f" AND [{c}] = ?" for c in chunk.fixed)
    sql = (
        f"SELECT 1 FROM [{kind.name}] INDEXED BY [{index}] WHERE v_to IS NULL "
        f"AND ({cols}) BETWEEN ({marks}) AND ({marks}){fixed} AND id <= ? LIMIT 1"
    )
    return db.execute(sql, [*chunk.lo, *chunk.hi, *chunk.fixed.values(), base]).fetchone() is not None


def load_chunks(
    db: sqlite_utils.Database,
    kind: FactKind,
    chunks: Iterator[Chunk],
    *,
    version: int,
    release: str,
    artifact_sha256: str,
    on_chunk: Callable[[], None] | None = None,
) -> tuple[LoadCounts, int]:
    """:func:`load_release` for a release given as :class:`Chunk` batches (PTP: 2.6 M rows): the same
    rows, counts and semantics, returned with the number of rows offered. ``chunks`` is consumed on
    a second thread while SQLite inserts; ``on_chunk`` is called before each chunk is applied.

    The fast path: while the release's rows come in key order with no key twice (``chunk.ordered``)
    and no current row has a key in a chunk's range, nothing can match, so a stated kind whose absent
    rows are retained and not counted (PTP) inserts the chunk straight into its table, one statement
    per chunk. At the first chunk where that does not hold, the rows inserted so far move to the
    stage table and the rest follows them there: :func:`load_release`'s compare, as if staged from
    the start."""
    t = kind.name
    cols = kind.row_columns
    collist = ", ".join(f"[{c}]" for c in cols)
    params = {"v": version, "release": release, "sha": artifact_sha256}
    direct = kind.mode == "stated" and kind.absent == "retain" and not kind.count_absent
    base = db.execute(f"SELECT COALESCE(MAX(id), 0) FROM [{t}]").fetchone()[0]
    tails = f"tails_{t}"
    stage: str | None = None
    index: str | None = None
    offered = inserted = 0
    db.execute(f"DROP TABLE IF EXISTS temp.[{tails}]")
    try:
        for chunk in _in_background(chunks):
            if on_chunk is not None:
                on_chunk()
            if offered == 0:
                tcols = chunk.tail_columns
                db.execute(
                    f"CREATE TEMP TABLE [{tails}] ([{tcols[0]}] INTEGER PRIMARY KEY, "
                    f"{', '.join(f'[{c}]' for c in tcols[1:])})"
                )
            if chunk.tails:
                # One statement, not executemany: that takes the GIL back after every row, and the
                # parser thread holds it for up to a switch interval (5 ms) each time.
                values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(chunk.tail_columns)))
                db.execute(
                    f"INSERT OR IGNORE INTO temp.[{tails}] SELECT {values} FROM json_each(?)",
                    [json.dumps(chunk.tails)],
                )
            select = (
                f"SELECT {', '.join(chunk.row_sql[c] for c in cols)} "
                f"FROM json_each(:lines) AS j CROSS JOIN temp.[{tails}] AS t ON {chunk.tail_join}"
            )
            offered += chunk.count
            if offered == chunk.count and direct:
                index = _current_index(db, kind, len(chunk.lo))
                direct = index is not None
            if stage is None and direct and chunk.ordered and not _occupied(db, kind, index or "", chunk, base):
                n = db.execute(
                    f"INSERT INTO [{t}] ({collist}, release, v_from, v_to, artifact_sha256) "
                    f"SELECT *, :release, :v, NULL, :sha FROM ({select})",
                    chunk.params() | params,
                ).rowcount
                if n != chunk.count:
                    raise RuntimeError(f"{t}: a chunk of {chunk.count} rows inserted {n} (a tail row is missing)")
                inserted += n
                continue
            if stage is None:
                stage, _ = _stage(db, kind, ())
                if inserted:
                    # Not (or no longer) the fast path: what went in directly moves to the stage.
                    db.execute(
                        f"INSERT OR IGNORE INTO temp.[{stage}] ({collist}) SELECT {collist} FROM [{t}] "
                        "WHERE id > ? ORDER BY id",
                        [base],
                    )
                    db.execute(f"DELETE FROM [{t}] WHERE id > ?", [base])
            db.execute(f"INSERT OR IGNORE INTO temp.[{stage}] ({collist}) {select}", chunk.params())
    finally:
        db.execute(f"DROP TABLE IF EXISTS temp.[{tails}]")
    if stage is None:
        return LoadCounts(added=inserted), offered
    return _apply_stage(db, kind, stage, offered, params), offered


def as_of(
    db: sqlite_utils.Database,
    kind: FactKind,
    version: int,
    *,
    window: tuple[str, str] | None = None,
    where: str = "",
    params: dict[str, Any] | None = None,
) -> Iterable[dict[str, Any]]:
    """Rows as the rulebook knew them in ``version``; with ``window=(from, to)`` only those whose
    valid time intersects ``[from, to)``. Ordered by natural key. Streams."""
    sql = f"SELECT * FROM [{kind.name}] WHERE v_from <= :v AND (v_to IS NULL OR v_to > :v)"
    p: dict[str, Any] = {"v": version, **(params or {})}
    if window is not None:
        # An empty interval (eff_end = eff_start: a PTP edit deleted retroactively, never in force)
        # intersects no window, even when its date lies inside it.
        sql += " AND eff_start < :to AND (eff_end IS NULL OR (eff_end > :from AND eff_end > eff_start))"
        p.update({"from": window[0], "to": window[1]})
    if where:
        sql += f" AND ({where})"
    sql += " ORDER BY " + ", ".join(kind.key)
    cur = db.execute(sql, p)
    names = [d[0] for d in cur.description]
    for r in cur:
        yield dict(zip(names, r, strict=True))
