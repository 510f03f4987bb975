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
        if s.needs_review and report.status == "committed":
            lines.append(f"    needs review: {s.needs_review} substantive changes")
        if s.quarantine and report.status == "committed":
            lines.append(f"    QUARANTINED: {s.quarantine['message']} (approval needs --force and a --note)")
    if report.changes:
        lines.append("  changes: " + ", ".join(f"{n} {k}" for k, n in report.changes.items()))
    elif report.status == "committed":
        lines.append("  no changes")
    if report.report_path:
        lines.append(f"  run took {report.duration_s:.1f}s; report: {report.report_path}")
    sent = report.notifications
    if any(sent.values()):
        lines.append(
            f"  notifications: {sent.get('queued', 0)} queued, {sent.get('delivered', 0)} delivered, "
            f"{sent.get('failed', 0)} not delivered ({sent.get('pending', 0)} pending, retried on the next run)"
        )
    return "\n".join(lines) + "\n"
