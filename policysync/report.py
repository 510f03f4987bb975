"""Readable summaries of run reports for the terminal."""

from __future__ import annotations

from policysync.pipeline import SyncReport


def render_sync_report(report: SyncReport) -> str:
    lines = [
        f"version {report.version} ({report.kind}): {report.status}"
        + (f", review: {report.review_state}" if report.status == "committed" else "")
    ]
    for s in report.sources:
        lines.append(
            f"  {s.source}: {s.outcome} — {s.requests} requests, {s.not_modified} not modified, "
            f"{s.new_documents} new documents, {s.documents_parsed} parsed, {s.records} records; "
            f"facts +{s.added} -{s.removed} ~{s.modified}; {s.duration_s:.1f}s"
        )
        for reason, n in sorted(s.counted.items()):
            lines.append(f"    counted: {reason}: {n}")
        for err in s.errors:
            lines.append(f"    error: {err}")
    if report.changes:
        lines.append("  changes: " + ", ".join(f"{n} {k}" for k, n in report.changes.items()))
    elif report.status == "committed":
        lines.append("  no changes")
    return "\n".join(lines) + "\n"
