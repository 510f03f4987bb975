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
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from crawlers.runner import FetchOutcome, Known, run_crawl
from parsers.errors import ConfigError, PolicySyncError
from parsers.records import SourceMeta
from policysync.config import Home, SourceConfig, load_sources
from rulebook import versions as vers
from rulebook.blobs import BlobStore
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions
from rulebook.facts import LoadCounts, current_rows, load_release
from rulebook.kinds import KINDS_BY_SOURCE

Progress = Callable[[str], None]


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
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0


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

    @property
    def exit_code(self) -> int:
        if self.status != "committed":
            return 3
        return 1 if any(s.outcome == "failed" for s in self.sources) else 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"exit_code": self.exit_code}


@dataclass
class _Parsed:
    sha256: str
    release: str
    rows: list[dict[str, Any]]
    counts: Counter[str]


def parser_for(source: str) -> Callable[..., Any]:
    module = importlib.import_module(f"parsers.{source}")
    return module.parse  # type: ignore[no-any-return]


def parse_artifact(art: dict[str, Any], body: bytes) -> _Parsed:
    """Run the source's parser over one stored document. Raises ParseError; zero records is an error."""
    meta = SourceMeta(
        source=art["source"],
        url=art["url"],
        sha256=art["sha256"],
        filename=art["filename"] or art["url"],
        release=art["release"],
    )
    kinds = KINDS_BY_SOURCE[art["source"]]
    kind = kinds[0]
    rows = [kind.to_row(rec) for rec in parser_for(art["source"])(body, meta)]
    if not rows:
        from parsers.errors import ParseError

        raise ParseError(
            f"{meta.filename}: no records in the document (a source that yields nothing is an error)"
        )
    return _Parsed(art["sha256"], art["release"] or "", rows, meta.counts)


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


def _to_parse(db: sqlite_utils.Database, source: str, outs: list[FetchOutcome]) -> list[dict[str, Any]]:
    """Documents seen in this run (fetched or 304) that were never parsed successfully."""
    shas = {o.sha256 for o in outs if o.outcome in ("fetched", "not_modified") and o.sha256}
    rows = [
        r
        for r in db.table("artifacts").rows_where("source = ?", [source])
        if r["sha256"] in shas and r["parse_status"] != "parsed"
    ]
    return sorted(rows, key=lambda r: (r["release"] or "", r["sha256"]))


def _parse_all(
    blobs: BlobStore, arts: list[dict[str, Any]], rep: SourceReport, progress: Progress | None
) -> tuple[list[_Parsed], dict[str, str]]:
    parsed: list[_Parsed] = []
    failed: dict[str, str] = {}
    for art in arts:
        if progress:
            progress(f"{art['source']}: parsing {art['filename']} ({art['release']})")
        try:
            p = parse_artifact(art, blobs.get(art["sha256"]))
        except PolicySyncError as exc:
            failed[art["sha256"]] = str(exc)
            rep.errors.append(str(exc))
            continue
        rep.documents_parsed += 1
        rep.records += len(p.rows)
        for k, v in p.counts.items():
            rep.skipped[k] = rep.skipped.get(k, 0) + v
        parsed.append(p)
    return parsed, failed


def _load(
    db: sqlite_utils.Database,
    version: int,
    source: str,
    parsed: list[_Parsed],
    rep: SourceReport,
    progress: Progress | None,
) -> None:
    kind = KINDS_BY_SOURCE[source][0]
    current = current_rows(db, kind)
    total = LoadCounts()
    for p in parsed:
        if progress:
            progress(f"{source}: loading {len(p.rows)} rows of release {p.release}")
        total.merge(
            load_release(
                db,
                kind,
                p.rows,
                version=version,
                release=p.release,
                artifact_sha256=p.sha256,
                current=current,
            )
        )
    rep.added, rep.removed, rep.modified = total.added, total.removed, total.modified
    for k, v in total.skipped.items():
        rep.skipped[k] = rep.skipped.get(k, 0) + v


def _finish(
    db: sqlite_utils.Database,
    version: int,
    kind: str,
    started: str,
    reports: list[SourceReport],
    loaded_any: bool,
) -> SyncReport:
    for rep in reports:
        if rep.outcome != "failed":
            rep.outcome = "changed" if (rep.added or rep.removed or rep.modified) else "unchanged"
    prev = vers.previous_committed(db, version) or 0
    status = "committed" if loaded_any else "failed"
    counts: dict[str, int] = {}
    substantive = 0
    if status == "committed":
        cs = diff_versions(db, prev, version)
        counts = cs.counts()
        substantive = sum(1 for c in cs.changes if c.substantive)
    review = "pending_review" if substantive else "none"
    finished = utcnow()
    report = SyncReport(version, kind, status, review, started, finished, reports, counts, substantive)
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
                "skipped": json.dumps(rep.skipped, sort_keys=True),
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


def sync(
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
    reports: list[SyncReport | Any] = []
    work: list[tuple[SourceReport, list[_Parsed], dict[str, str], float]] = []
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
                spider_kwargs={"landing_url": cfg.start_url} if cfg.start_url else None,
            )
        except PolicySyncError as exc:
            rep.errors.append(str(exc))
            outs = []
        with db.atomic():
            _record_outcomes(db, version, rep, outs)
        parsed, failed = _parse_all(blobs, _to_parse(db, cfg.id, outs), rep, progress)
        work.append((rep, parsed, failed, time.perf_counter() - t0))
        reports.append(rep)
    return _commit(home, db, version, "sync", started, work, progress)


def _commit(
    home: Home,
    db: sqlite_utils.Database,
    version: int,
    kind: str,
    started: str,
    work: list[tuple[SourceReport, list[_Parsed], dict[str, str], float]],
    progress: Progress | None,
) -> SyncReport:
    loaded_any = False
    with db.atomic():
        for rep, parsed, failed, elapsed in work:
            t0 = time.perf_counter()
            if rep.errors:
                rep.outcome = "failed"
            _load(db, version, rep.source, parsed, rep, progress)
            if parsed or not rep.errors:
                loaded_any = True
            now = utcnow()
            for p in parsed:
                db.table("artifacts").update(
                    p.sha256,
                    {
                        "parse_status": "parsed",
                        "parsed_in_version": version,
                        "record_count": len(p.rows),
                        "parse_error": None,
                    },
                )
            for sha, err in failed.items():
                db.table("artifacts").update(sha, {"parse_status": "failed", "parse_error": err})
            rep.duration_s = elapsed + (time.perf_counter() - t0)
            del now
        report = _finish(db, version, kind, started, [w[0] for w in work], loaded_any)
    _write_report(home, report)
    return report


def reparse(home: Home, *, sources: list[str] | None = None, progress: Progress | None = None) -> SyncReport:
    """Replay the parsers over every stored document of the sources, into a new version, without
    crawling. With unchanged parsers this is a no-op version; after a parser fix it shows the fix."""
    selected = _selected(home, sources)
    db = open_rulebook(home.db_path)
    blobs = BlobStore(home.artifacts)
    started = utcnow()
    vers.fail_building_versions(db, started)
    version = vers.begin_version(db, kind="reparse", now=started)
    work = []
    for cfg in selected:
        rep = SourceReport(cfg.id)
        t0 = time.perf_counter()
        arts = sorted(
            db.table("artifacts").rows_where("source = ?", [cfg.id]),
            key=lambda r: (r["release"] or "", r["sha256"]),
        )
        parsed, failed = _parse_all(blobs, arts, rep, progress)
        work.append((rep, parsed, failed, time.perf_counter() - t0))
    return _commit(home, db, version, "reparse", started, work, progress)
