"""One ``policysync sync``: crawl the configured sources, parse only what is new (by sha256), and
load the result as ONE new rulebook version, atomically. A source that fails keeps its previous
facts; a failure never deletes anything.

Stages: (1) crawl every selected source (fetch log and artifact rows are written as they come, so a
weekly job can be audited even when it fails later); (2) parse new documents — pure functions, no
database; (3) one transaction loads every source's records, classifies the change set and commits the
version.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from crawlers.runner import FetchOutcome, Known, run_crawl
from parsers.errors import ConfigError, ParseError, PolicySyncError
from parsers.records import SourceMeta
from policysync import interrupt
from policysync.config import QUARANTINE_DROP, Home, SourceConfig, load_sources
from policysync.lock import hold
from rulebook import versions as vers
from rulebook.blobs import BlobStore
from rulebook.db import open_rulebook
from rulebook.diff import iter_changes
from rulebook.facts import LoadCounts, load_chunks, load_release
from rulebook.kinds import KINDS, KINDS_BY_SOURCE

Progress = Callable[[str], None]
log = logging.getLogger("policysync.sync")

# Above this many changed fact rows a sync summarises its changes from load counts rather than
# classifying each one (which is what `policysync diff` is for).
CLASSIFY_LIMIT = 200_000


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SourceReport:
    source: str
    outcome: str = "unchanged"  # "changed" | "unchanged" | "failed"
    requests: int = 0
    not_modified: int = 0
    new_documents: int = 0
    documents_parsed: int = 0
    records: int = 0
    added: int = 0
    removed: int = 0
    modified: int = 0
    counted: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0  # crawl + parse + load of this source; the shared commit is not included
    # Set when the run quarantined the source (rulebook.versions.quarantine_check): the version then
    # waits for review, and approving it needs --force and a note.
    quarantine: dict[str, Any] | None = None
    # Substantive changes of this source in the version: what a reviewer must look at before the
    # version reaches a pack (the version is then pending_review).
    needs_review: int = 0


@dataclass
class SyncReport:
    version: int
    kind: str
    status: str  # "committed" | "failed"
    review_state: str
    started_at: str
    finished_at: str
    sources: list[SourceReport]
    changes: dict[str, int] = field(default_factory=dict)
    substantive_changes: int = 0
    # Filled in after the commit (_after_run): wall time of the whole run under the lock, the JSON
    # report's path, the notification outbox counts and the metrics file written.
    duration_s: float = 0.0
    report_path: str | None = None
    notifications: dict[str, int] = field(default_factory=dict)
    metrics_path: str | None = None
    # "SIGTERM" when a signal stopped the loads: the sources that finished were committed, the one
    # being loaded and those after it are "failed" with the cause (policysync/interrupt.py).
    interrupted: str | None = None

    @property
    def exit_code(self) -> int:
        if self.status != "committed":
            return 3
        return 1 if any(s.outcome == "failed" for s in self.sources) else 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"exit_code": self.exit_code}


def parser_for(source: str) -> Callable[..., Any]:
    module = importlib.import_module(f"parsers.{source}")
    return module.parse  # type: ignore[no-any-return]


def parser_name(cfg: SourceConfig) -> str:
    """The parser (and spider) a source uses: its ``parser`` config key when several sources share
    one (every ``<payer>_<docset>`` source has ``parser = "payer"``), else the source id itself."""
    return str(cfg.extra.get("parser") or cfg.id)


def _with_parser(arts: list[dict[str, Any]], cfg: SourceConfig) -> list[dict[str, Any]]:
    """Artifact rows tagged with the parser of their source and the source's config options."""
    for art in arts:
        art["parser"] = parser_name(cfg)
        art["options"] = dict(cfg.extra)
    return arts


def _meta(art: dict[str, Any]) -> SourceMeta:
    return SourceMeta(
        source=art["source"],
        url=art["url"],
        sha256=art["sha256"],
        filename=art["filename"] or art["url"],
        release=art["release"],
    )


def parse_rows(art: dict[str, Any], body: bytes, meta: SourceMeta) -> dict[str, Iterator[tuple[Any, ...]]]:
    """The source's parser over one stored document, as fact-row tuples by kind. Streams when the
    source has one kind (PTP: millions of rows never held in memory)."""
    name = art.get("parser") or art["source"]
    kinds = KINDS_BY_SOURCE[name]
    if name != art["source"]:
        # A shared parser gets the source's config (payer, lines of business, states, profile).
        records = parser_for(name)(body, meta, options=art.get("options") or {})
    else:
        records = parser_for(name)(body, meta)
    if len(kinds) == 1:
        values = kinds[0].values
        return {kinds[0].name: (values(r) for r in records)}
    by_type = {k.record_type: k for k in kinds}
    out: dict[str, list[tuple[Any, ...]]] = {k.name: [] for k in kinds}
    for rec in records:
        kind = by_type[type(rec)]
        out[kind.name].append(kind.values(rec))
    return {name: iter(rows) for name, rows in out.items()}


class _Counted:
    """Counts rows as they stream past."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.n = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for row in self.rows:
            self.n += 1
            if interrupt.WATCH:  # SIGTERM came, or a crash test pauses here (policysync/interrupt.py)
                interrupt.row()
            yield row


def _selected(home: Home, only: list[str] | None) -> list[SourceConfig]:
    configured = load_sources(home)
    if only:
        unknown = [s for s in only if s not in configured]
        if unknown:
            raise ConfigError(f"unknown source {unknown[0]!r} (configured: {', '.join(sorted(configured))})")
        return [configured[s] for s in only]
    return [s for s in configured.values() if s.enabled]


def _record_outcomes(
    db: sqlite_utils.Database, version: int, rep: SourceReport, outs: list[FetchOutcome]
) -> None:
    for o in outs:
        rep.requests += 1
        vers.record_fetch(
            db,
            version,
            {
                "source": o.source,
                "url": o.url,
                "status": o.status,
                "outcome": o.outcome,
                "sha256": o.sha256,
                "etag": o.etag,
                "last_modified": o.last_modified,
                "fetched_at": o.fetched_at,
                "error": o.error,
            },
        )
        if o.outcome == "not_modified":
            rep.not_modified += 1
        elif o.outcome == "error":
            rep.errors.append(o.error or f"{o.url}: fetch failed")
        elif o.outcome == "fetched" and o.sha256:
            if vers.upsert_artifact(db, asdict(o)):
                rep.new_documents += 1


def _in_load_order(db: sqlite_utils.Database, source: str, arts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Artifacts in the order they are applied: by release, then in the order they were first
    downloaded (fetch log id). Within a release the later download wins, so a file CMS re-issues
    under the same URL and release is never rolled back by the copy it replaced, and ``reparse``
    applies documents in the order ``sync`` did (the sha256 only breaks ties)."""
    first = {
        r["sha256"]: r["n"]
        for r in db.query(
            "SELECT sha256, MIN(id) AS n FROM fetches WHERE source = ? AND outcome = 'fetched' "
            "AND sha256 IS NOT NULL GROUP BY sha256",
            [source],
        )
    }
    return sorted(arts, key=lambda r: (r["release"] or "", first.get(r["sha256"], 0), r["sha256"]))


def _to_parse(db: sqlite_utils.Database, source: str, outs: list[FetchOutcome]) -> list[dict[str, Any]]:
    """Documents seen in this run (fetched or 304) that were never parsed successfully."""
    shas = {o.sha256 for o in outs if o.outcome in ("fetched", "not_modified") and o.sha256}
    rows = [
        r
        for r in db.table("artifacts").rows_where("source = ?", [source])
        if r["sha256"] in shas and r["parse_status"] != "parsed"
    ]
    return _in_load_order(db, source, rows)


def chunk_parser(source: str) -> Callable[..., Any] | None:
    """A source's ``parse_chunks`` (rows as batches SQLite inserts itself: PTP), if it has one kind."""
    if len(KINDS_BY_SOURCE[source]) != 1:
        return None
    return getattr(importlib.import_module(f"parsers.{source}"), "parse_chunks", None)


def _chunk_watch() -> None:
    if interrupt.WATCH:  # per chunk what _Counted does per row
        interrupt.row()


def load_document(
    db: sqlite_utils.Database, art: dict[str, Any], body: bytes, meta: SourceMeta, version: int
) -> tuple[LoadCounts, int]:
    """Parse ``body`` and load its rows into the caller's transaction: (counts, rows offered)."""
    release, sha = art["release"] or "", art["sha256"]
    chunked = chunk_parser(art.get("parser") or art["source"])
    if chunked is not None:
        kind = KINDS_BY_SOURCE[art.get("parser") or art["source"]][0]
        return load_chunks(
            db,
            kind,
            chunked(body, meta),
            version=version,
            release=release,
            artifact_sha256=sha,
            on_chunk=_chunk_watch,
        )
    total, records = LoadCounts(), 0
    for name, rows in parse_rows(art, body, meta).items():
        counted = _Counted(rows)
        total.merge(load_release(db, KINDS[name], counted, version=version, release=release, artifact_sha256=sha))
        records += counted.n
    return total, records


def _load_artifact(
    db: sqlite_utils.Database,
    blobs: BlobStore,
    version: int,
    art: dict[str, Any],
    rep: SourceReport,
    progress: Progress | None,
) -> None:
    """Parse and load one document inside a savepoint: a document that fails loads nothing."""
    if progress:
        progress(f"{art['source']}: parsing and loading {art['filename']} ({art['release']})")
    meta = _meta(art)
    total = LoadCounts()
    records = 0
    try:
        with db.atomic():
            total, records = load_document(db, art, blobs.get(art["sha256"]), meta, version)
            if records == 0:
                raise ParseError(
                    f"{meta.filename}: no records in the document (a source that yields nothing is an error)"
                )
    except Exception as exc:  # noqa: BLE001 - one bad document must not abort the other sources
        if isinstance(exc, PolicySyncError):
            message = str(exc)
        else:
            # Not a refusal the parser chose: a bug, or a malformation nobody anticipated. Still one
            # line, still only this document rolled back.
            message = f"{meta.filename}: unexpected {type(exc).__name__} while parsing: {exc}"
        db.table("artifacts").update(art["sha256"], {"parse_status": "failed", "parse_error": message})
        rep.errors.append(message)
        return
    db.table("artifacts").update(
        art["sha256"],
        {
            "parse_status": "parsed",
            "parsed_in_version": version,
            "record_count": records,
            "parse_error": None,
        },
    )
    rep.documents_parsed += 1
    rep.records += records
    rep.added += total.added
    rep.removed += total.removed
    rep.modified += total.modified
    for k, v in list(meta.counts.items()) + list(total.skipped.items()):
        rep.counted[k] = rep.counted.get(k, 0) + v


def _stopped(rep: SourceReport, cause: str) -> None:
    """A source a SIGTERM stopped before it finished loading: failed, nothing of it loaded."""
    rep.outcome = "failed"
    rep.errors.append(f"{cause}; its previous facts stay in force and the next run loads it")
    rep.documents_parsed = rep.records = rep.added = rep.removed = rep.modified = rep.needs_review = 0
    rep.counted = {}
    rep.quarantine = None


def _finish(
    db: sqlite_utils.Database,
    version: int,
    kind: str,
    started: str,
    reports: list[SourceReport],
    loaded_any: bool,
    interrupted: str | None = None,
) -> SyncReport:
    for rep in reports:
        if rep.outcome != "failed":
            rep.outcome = "changed" if (rep.added or rep.removed or rep.modified) else "unchanged"
    prev = vers.previous_committed(db, version) or 0
    status = "committed" if loaded_any else "failed"
    counts: dict[str, int] = {}
    substantive = 0
    if status == "committed":
        touched = sum(
            db.execute(f"SELECT COUNT(*) FROM [{k}] WHERE v_from = :v OR v_to = :v", {"v": version}).fetchone()[0]
            for k in KINDS
        )
        if touched <= CLASSIFY_LIMIT:
            # Counted as they come: diff_versions' sorted list of every change (180k on a cold sync of
            # every source) is what held a cold sync's peak memory (bench/README.md, bench_weekly).
            per_source: dict[str, int] = {}
            for c in iter_changes(db, prev, version):
                counts[c.category] = counts.get(c.category, 0) + 1
                if c.substantive:
                    substantive += 1
                    per_source[c.source] = per_source.get(c.source, 0) + 1
            counts = dict(sorted(counts.items()))  # as ChangeSet.counts()
            for rep in reports:
                rep.needs_review = per_source.get(rep.source, 0)
        else:
            # A first load of a national table (2.6 M PTP edits) is all additions: count them from
            # the load instead of classifying each; `policysync diff` still classifies on request.
            for rep in reports:
                for name, n in (("added", rep.added), ("removed", rep.removed), ("modified", rep.modified)):
                    if n:
                        counts[f"{rep.source}:{name}"] = n
            substantive = sum(counts.values())
            for rep in reports:
                rep.needs_review = rep.added + rep.removed + rep.modified
    quarantined = [rep.quarantine for rep in reports if rep.quarantine] if status == "committed" else []
    for q in quarantined:
        vers.record_quarantine(db, version, q)
    # A quarantined source waits for a reviewer even when its facts did not change.
    review = "pending_review" if substantive or quarantined else "none"
    finished = utcnow()
    report = SyncReport(version, kind, status, review, started, finished, reports, counts, substantive)
    report.interrupted = interrupted
    for rep in reports:
        db.table("source_runs").insert(
            {
                "version_id": version,
                "source": rep.source,
                "outcome": rep.outcome,
                "requests": rep.requests,
                "not_modified": rep.not_modified,
                "new_documents": rep.new_documents,
                "records": rep.records,
                "added": rep.added,
                "removed": rep.removed,
                "modified": rep.modified,
                "counted": json.dumps(rep.counted, sort_keys=True),
                "error": "\n".join(rep.errors) or None,
                "duration_s": round(rep.duration_s, 3),
            }
        )
    vers.finish_version(
        db, version, status=status, now=finished, summary=report.to_json(), review_state=review
    )
    return report


def _write_report(home: Home, report: SyncReport) -> None:
    home.reports.mkdir(parents=True, exist_ok=True)
    path = home.reports / f"{report.kind}-{report.version:05d}.json"
    path.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


Work = list[tuple[SourceReport, list[dict[str, Any]], float]]


@interrupt.stoppable
def sync(
    home: Home,
    *,
    sources: list[str] | None = None,
    mirror: str | None = None,
    progress: Progress | None = None,
    crawl_settings: dict[str, Any] | None = None,
    wait: float = 0.0,
) -> SyncReport:
    """One sync under the home's lock (policysync/lock.py): a second run raises LockBusy, or waits
    up to ``wait`` seconds for the first to finish."""
    _selected(home, sources)  # a usage error is reported before waiting for anyone's lock
    _check_ops_config(home)
    with hold(home, command="sync", wait=wait):
        t0 = time.perf_counter()
        report = _sync(home, sources=sources, mirror=mirror, progress=progress, crawl_settings=crawl_settings)
        _after_run(home, report, t0)
    return report


def _check_ops_config(home: Home) -> None:
    """A broken [notify] or [metrics] table is a usage error before the run, not a surprise after it."""
    from policysync.metrics import metrics_path
    from policysync.notify import load_notify_config

    load_notify_config(home)
    metrics_path(home)


def _after_run(home: Home, report: SyncReport, t0: float) -> None:
    """After the commit: notifications (outbox, retried next run), the final JSON report and the
    Prometheus metrics file. Each step is logged and skipped on failure; none can fail the run."""
    from policysync.metrics import write_metrics
    from policysync.notify import notify_after_run

    report_path = home.reports / f"{report.kind}-{report.version:05d}.json"
    report.report_path = str(report_path)
    status: list[dict[str, Any]] = []
    db = open_rulebook(home.db_path)
    try:
        cadences = {sid: cfg.cadence_days for sid, cfg in load_sources(home).items() if cfg.enabled}
        status = vers.source_status(db, cadences, datetime.now(UTC))
        report.notifications = notify_after_run(home, db, report, status, report_path, utcnow())
    except Exception as exc:  # noqa: BLE001 - the version is committed; notifying is best effort
        log.warning("notifications skipped after version %d: %s", report.version, exc)
    finally:
        db.close()
    report.duration_s = round(time.perf_counter() - t0, 3)
    try:
        pending = report.notifications.get("pending")
        report.metrics_path = str(write_metrics(home, report, status, pending))
    except Exception as exc:  # noqa: BLE001
        log.warning("metrics file not written after version %d: %s", report.version, exc)
    _write_report(home, report)
    for rep in report.sources:
        log.info(
            "%s: %s (%d requests, %d not modified, %d parsed, facts +%d -%d ~%d)%s", rep.source, rep.outcome,
            rep.requests, rep.not_modified, rep.documents_parsed, rep.added, rep.removed, rep.modified,
            f": {rep.errors[0]}" if rep.errors else "",
            extra={"event": "source_done", "version": report.version} | {
                k: getattr(rep, k) for k in ("source", "outcome", "requests", "not_modified", "new_documents",
                                             "documents_parsed", "records", "added", "removed", "modified",
                                             "errors", "duration_s")
            },
        )
    log.info(
        "version %d (%s): %s, review %s, exit %d in %.1fs; report %s", report.version, report.kind, report.status,
        report.review_state, report.exit_code, report.duration_s, report.report_path,
        extra={"event": "run_done", "version": report.version, "kind": report.kind, "status": report.status,
               "exit_code": report.exit_code, "duration_s": report.duration_s, "report_path": report.report_path},
    )


def _sync(
    home: Home,
    *,
    sources: list[str] | None = None,
    mirror: str | None = None,
    progress: Progress | None = None,
    crawl_settings: dict[str, Any] | None = None,
) -> SyncReport:
    selected = _selected(home, sources)
    db = open_rulebook(home.db_path)
    blobs = BlobStore(home.artifacts)
    started = utcnow()
    vers.fail_building_versions(db, started)
    version = vers.begin_version(db, kind="sync", now=started)
    work: Work = []
    for cfg in selected:
        rep = SourceReport(cfg.id)
        t0 = time.perf_counter()
        if progress:
            progress(f"{cfg.id}: crawling" + (f" via mirror {mirror}" if mirror else ""))
        known = {
            url: Known(etag=r["etag"], last_modified=r["last_modified"], sha256=r["sha256"])
            for url, r in vers.latest_fetch_validators(db, cfg.id).items()
        }
        try:
            outs = run_crawl(
                cfg.id,
                blobs=blobs,
                mirror=mirror,
                known=known,
                settings=crawl_settings,
                spider_kwargs=(
                    {"landing_url": cfg.start_url} if cfg.start_url else None
                ) if parser_name(cfg) == cfg.id else {"name": cfg.id, "config": dict(cfg.extra)},
                spider=parser_name(cfg),
            )
        except PolicySyncError as exc:
            rep.errors.append(str(exc))
            outs = []
        with db.atomic():
            _record_outcomes(db, version, rep, outs)
        work.append((rep, _with_parser(_to_parse(db, cfg.id, outs), cfg), time.perf_counter() - t0))
        interrupt.point("crawled")
    return _commit(home, db, blobs, version, "sync", started, work, progress)


def _commit(
    home: Home,
    db: sqlite_utils.Database,
    blobs: BlobStore,
    version: int,
    kind: str,
    started: str,
    work: Work,
    progress: Progress | None,
) -> SyncReport:
    """Parse and load every pending document and finish the version, all in one transaction, each
    source in its own savepoint. A SIGTERM during the loads rolls back the source being loaded,
    skips the rest and commits the sources that finished (policysync/interrupt.py)."""
    loaded_any = False
    stopped: str | None = None  # the signal that stopped the loads
    drop_limits = {s.id: s.quarantine_drop for s in load_sources(home).values()}
    with db.atomic():
        interrupt.loading()  # from here a SIGTERM rolls back the source being loaded, at its next row
        for rep, arts, elapsed in work:
            t0 = time.perf_counter()
            stopped = stopped or interrupt.requested()
            if stopped:
                _stopped(rep, f"not run: interrupted by {stopped} before {rep.source} was loaded")
                rep.duration_s = elapsed
                continue
            fetch_errors = list(rep.errors)
            try:
                with db.atomic():
                    for art in arts:
                        _load_artifact(db, blobs, version, art, rep, progress)
                    limit = drop_limits.get(rep.source, QUARANTINE_DROP)
                    rep.quarantine = vers.quarantine_check(db, rep.source, arts, rep.records, limit)
            except interrupt.StopRequested:
                stopped = interrupt.requested() or "SIGTERM"
                rep.errors = fetch_errors  # the documents' own errors were rolled back with them
                _stopped(rep, f"interrupted by {stopped} while loading {rep.source}: its load was rolled back")
                rep.duration_s = elapsed + (time.perf_counter() - t0)
                continue
            if rep.errors:
                rep.outcome = "failed"
            if rep.documents_parsed or not fetch_errors and not rep.errors:
                loaded_any = True
            rep.duration_s = elapsed + (time.perf_counter() - t0)
        if stopped and not loaded_any:
            raise interrupt.StopRequested  # no source finished: the whole version rolls back (exit 3)
        interrupt.committing()  # a SIGTERM from here on lets the commit finish
        report = _finish(db, version, kind, started, [w[0] for w in work], loaded_any, stopped)
        interrupt.point("commit")
    interrupt.point("committed")
    _write_report(home, report)
    return report


@interrupt.stoppable
def reparse(
    home: Home, *, sources: list[str] | None = None, progress: Progress | None = None, wait: float = 0.0
) -> SyncReport:
    """Replay the parsers over every stored document of the sources, into a new version, without
    crawling. With unchanged parsers this is a no-op version; after a parser fix it shows the fix.
    Runs under the home's lock, like ``sync``."""
    _selected(home, sources)
    _check_ops_config(home)
    with hold(home, command="reparse", wait=wait):
        t0 = time.perf_counter()
        report = _reparse(home, sources=sources, progress=progress)
        _after_run(home, report, t0)
    return report


def _reparse(home: Home, *, sources: list[str] | None = None, progress: Progress | None = None) -> SyncReport:
    selected = _selected(home, sources)
    db = open_rulebook(home.db_path)
    blobs = BlobStore(home.artifacts)
    started = utcnow()
    vers.fail_building_versions(db, started)
    version = vers.begin_version(db, kind="reparse", now=started)
    work: Work = []
    for cfg in selected:
        # A document that failed and was since replaced at its URL by one that parsed is history,
        # not a pending problem: replaying it would only repeat an error already fixed upstream.
        superseded = (
            "source = ? AND NOT (parse_status = 'failed' AND EXISTS (SELECT 1 FROM artifacts b "
            "WHERE b.url = artifacts.url AND b.parse_status = 'parsed' "
            "AND b.first_fetched_at >= artifacts.first_fetched_at))"
        )
        arts = _in_load_order(db, cfg.id, list(db.table("artifacts").rows_where(superseded, [cfg.id])))
        work.append((SourceReport(cfg.id), _with_parser(arts, cfg), 0.0))
    return _commit(home, db, blobs, version, "reparse", started, work, progress)
