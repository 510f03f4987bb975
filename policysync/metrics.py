"""Prometheus text-format metrics of the last run, for node_exporter's textfile collector.

After every run the file is rewritten whole: written to a temporary file in the same directory and
renamed over the old one, so the collector never reads half a file. ``sync`` writes the configured
path (``[metrics] path``, default ``metrics/policysync.prom`` in the home); other run kinds write
``<stem>-<kind>.prom`` beside it, so a ``reparse`` never hides the last sync's figures.

The values are gauges describing that one run (its durations, counts and failures per source), plus
per source whether it is stale and when it was last fetched successfully. Alert on, for example,
``time() - policysync_run_finished_timestamp_seconds{kind="sync"} > 8 * 86400`` or
``policysync_source_failed == 1``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parsers.errors import ConfigError
from policysync.config import Home, load_table

if TYPE_CHECKING:
    from policysync.pipeline import SyncReport

DEFAULT_PATH = "metrics/policysync.prom"


def metrics_path(home: Home, kind: str = "sync") -> Path:
    raw = load_table(home, "metrics").get("path", DEFAULT_PATH)
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{home.config_path}: [metrics] path must be a file path, got {raw!r}")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = home.root / path
    if kind != "sync":
        path = path.with_name(f"{path.stem}-{kind}{path.suffix}")
    return path


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class _Family:
    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.samples: list[tuple[dict[str, str], float]] = []

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))

    def render(self) -> Iterable[str]:
        if not self.samples:
            return
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in self.samples:
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            yield f"{self.name}{{{lab}}} {float(value)!r}" if lab else f"{self.name} {float(value)!r}"


def render_metrics(
    report: SyncReport, source_status: list[dict[str, Any]], pending_notifications: int | None = None
) -> str:
    """The text exposition format (version 0.0.4) of one run's report and the sources' staleness."""
    kind = report.kind
    fams: dict[str, _Family] = {}

    def fam(name: str, help_text: str) -> _Family:
        return fams.setdefault(name, _Family(name, help_text))

    finished = _ts(report.finished_at)
    if finished is not None:
        fam("policysync_run_finished_timestamp_seconds", "When the last run of this kind finished (Unix time).").add(
            finished, kind=kind
        )
    fam("policysync_run_duration_seconds", "Wall time of the last run.").add(
        getattr(report, "duration_s", 0.0), kind=kind
    )
    fam("policysync_run_version", "Rulebook version the last run opened.").add(report.version, kind=kind)
    fam("policysync_run_committed", "1 when the last run committed its version, else 0.").add(
        1 if report.status == "committed" else 0, kind=kind
    )
    fam("policysync_run_exit_code", "Exit code of the last run (0 ok, 1 some sources failed, 3 failed).").add(
        report.exit_code, kind=kind
    )
    fam("policysync_run_substantive_changes", "Substantive changes the last run committed.").add(
        report.substantive_changes, kind=kind
    )
    fam("policysync_run_pending_review", "1 when the last run's version waits for review.").add(
        1 if report.review_state == "pending_review" else 0, kind=kind
    )
    for s in report.sources:
        src = s.source
        fam("policysync_source_duration_seconds", "Crawl, parse and load time of the source in the last run.").add(
            s.duration_s, kind=kind, source=src
        )
        fam("policysync_source_requests", "Requests the source's crawl made in the last run.").add(
            s.requests, kind=kind, source=src
        )
        fam("policysync_source_not_modified", "Requests answered 304 Not Modified in the last run.").add(
            s.not_modified, kind=kind, source=src
        )
        fam("policysync_source_new_documents", "Documents never seen before, fetched in the last run.").add(
            s.new_documents, kind=kind, source=src
        )
        fam("policysync_source_documents_parsed", "Documents parsed and loaded in the last run.").add(
            s.documents_parsed, kind=kind, source=src
        )
        fam("policysync_source_records", "Records the parsers produced in the last run.").add(
            s.records, kind=kind, source=src
        )
        for change in ("added", "removed", "modified"):
            fam("policysync_source_facts_changed", "Fact rows added, removed or modified in the last run.").add(
                getattr(s, change), kind=kind, source=src, change=change
            )
        fam("policysync_source_errors", "Errors (one line each) the source had in the last run.").add(
            len(s.errors), kind=kind, source=src
        )
        fam("policysync_source_failed", "1 when the source failed in the last run (its old facts stay).").add(
            1 if s.outcome == "failed" else 0, kind=kind, source=src
        )
        quarantine = getattr(s, "quarantine", None)
        fam("policysync_source_quarantined", "1 when the last run quarantined the source for review.").add(
            1 if quarantine else 0, kind=kind, source=src
        )
    for st in source_status:
        fam("policysync_source_stale", "1 when the source had no successful fetch within 1.5 x its cadence.").add(
            1 if st["stale"] else 0, source=st["source"]
        )
        last = _ts(st.get("last_successful_fetch"))
        if last is not None:
            fam(
                "policysync_source_last_success_timestamp_seconds",
                "When the source was last fetched successfully, 200 or 304 (Unix time).",
            ).add(last, source=st["source"])
    if pending_notifications is not None:
        fam("policysync_notifications_pending", "Digests in the outbox not delivered yet.").add(pending_notifications)
    lines = [line for f in fams.values() for line in f.render()]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # the collector runs as another user
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_metrics(
    home: Home, report: SyncReport, source_status: list[dict[str, Any]], pending_notifications: int | None = None
) -> Path:
    path = metrics_path(home, report.kind)
    write_atomic(path, render_metrics(report, source_status, pending_notifications))
    return path
