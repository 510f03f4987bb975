"""Notifications: a digest after a run that matters, by email (SMTP) and/or a JSON webhook POST.

A run matters when it committed a version with substantive changes, or when a source failed in it
or is stale (no successful fetch within 1.5 x its cadence). The digest lists the high-severity
changes (code, table and release, what changed, effective date) and points to the change-set report.

Delivery goes through an outbox (table ``notifications``, migration ``m007_ops``): each digest is
first stored, once per channel, then sent. A delivery that fails is logged as a warning and stays in
the outbox with its error; every later run retries what is still undelivered before anything else.
Nothing here ever raises into the sync: the rulebook is committed before notifications are tried.

Digests carry codes and HCPCS Level II fields only; never CPT descriptor text (the PTP and MUE
tables carry no descriptors, and a change of theirs is described by its fields).
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from parsers.errors import ConfigError
from policysync.config import Home, load_table
from rulebook import diff as diffmod
from rulebook import versions as vers

if TYPE_CHECKING:
    from policysync.pipeline import SyncReport

log = logging.getLogger("policysync.notify")

# Above this many changed fact rows the digest gives counts only (a first load of a national table).
CLASSIFY_LIMIT = 200_000
TEXT_CAP = 120  # characters of a before/after value quoted in a digest


@dataclass(frozen=True)
class NotifyConfig:
    email_to: tuple[str, ...] = ()
    email_from: str = "policysync@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password_env: str | None = None
    webhook_url: str | None = None
    timeout_s: float = 10.0
    report_base_url: str | None = None
    max_changes: int = 50

    @property
    def channels(self) -> list[tuple[str, str]]:
        out = []
        if self.email_to:
            out.append(("email", ", ".join(self.email_to)))
        if self.webhook_url:
            out.append(("webhook", self.webhook_url))
        return out


def load_notify_config(home: Home) -> NotifyConfig:
    table = load_table(home, "notify")
    where = f"{home.config_path}: [notify]"

    def get(name: str, typ: type | tuple[type, ...], default: Any) -> Any:
        value = table.get(name, default)
        if value is not default and (not isinstance(value, typ) or isinstance(value, bool) and typ is not bool):
            raise ConfigError(f"{where} {name} has the wrong type ({value!r})")
        return value

    to = table.get("email_to", [])
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not all(isinstance(a, str) and "@" in a for a in to):
        raise ConfigError(f'{where} email_to must be a list of addresses, e.g. ["rules@example.org"]')
    known = {
        "email_to", "email_from", "smtp_host", "smtp_port", "smtp_starttls", "smtp_user", "smtp_password_env",
        "webhook_url", "timeout_s", "report_base_url", "max_changes",
    }
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where} unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    webhook = get("webhook_url", str, None)
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise ConfigError(f"{where} webhook_url must be an http(s) URL, got {webhook!r}")
    return NotifyConfig(
        email_to=tuple(to),
        email_from=get("email_from", str, NotifyConfig.email_from),
        smtp_host=get("smtp_host", str, NotifyConfig.smtp_host),
        smtp_port=get("smtp_port", int, NotifyConfig.smtp_port),
        smtp_starttls=get("smtp_starttls", bool, False),
        smtp_user=get("smtp_user", str, None),
        smtp_password_env=get("smtp_password_env", str, None),
        webhook_url=webhook,
        timeout_s=float(get("timeout_s", (int, float), NotifyConfig.timeout_s)),
        report_base_url=get("report_base_url", str, None),
        max_changes=get("max_changes", int, NotifyConfig.max_changes),
    )


# --- the digest -------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= TEXT_CAP else text[: TEXT_CAP - 1] + "…"


def _what(change: diffmod.Change) -> str:
    fields = "; ".join(
        f"{name}: {_short(ba['before'])} -> {_short(ba['after'])}" for name, ba in change.fields.items()
    )
    text = ", ".join(change.categories)
    if change.retroactive:
        text += " (RETROACTIVE)"
    return f"{text}: {fields}" if fields else text


def _link(home: Home, cfg: NotifyConfig, path: Path) -> str:
    if cfg.report_base_url:
        try:
            rel = path.relative_to(home.reports)
        except ValueError:
            rel = Path(path.name)
        return cfg.report_base_url.rstrip("/") + "/" + rel.as_posix()
    return str(path.resolve())


def _html_renderer() -> Callable[[diffmod.ChangeSet], str] | None:
    """The renderer of ``policysync diff --format html``, when it is installed."""
    try:
        from rulebook.report_html import render_html
    except ImportError:
        return None
    return render_html


def _change_report(home: Home, db: sqlite_utils.Database, cs: diffmod.ChangeSet | None, run_report: Path) -> Path:
    """The change-set report a reader should open: the HTML one, as ``policysync diff --format html``
    writes it (``reports/changes-V1-V2.html``), when that renderer is installed, else the run's JSON
    report."""
    render_html = _html_renderer()
    if cs is not None and render_html is not None:
        path = home.reports / f"changes-{cs.v1:05d}-{cs.v2:05d}.html"
        try:
            path.write_text(render_html(cs), encoding="utf-8")
            return path
        except Exception as exc:  # noqa: BLE001 - a report that cannot be rendered must not stop the digest
            log.warning("%s: HTML change-set report not written (%s); the digest links the JSON report", path, exc)
    return run_report


def build_digest(
    home: Home,
    db: sqlite_utils.Database,
    report: SyncReport,
    stale: list[dict[str, Any]],
    cfg: NotifyConfig,
    run_report: Path,
) -> dict[str, Any] | None:
    """The digest of one run, or None when nothing in it needs telling."""
    committed = report.status == "committed"
    failed = [s for s in report.sources if s.outcome == "failed"]
    if not (committed and report.substantive_changes) and not failed and not stale and committed:
        return None
    high: list[dict[str, Any]] = []
    high_total = 0
    cs = None
    if committed and report.substantive_changes:
        prev = vers.previous_committed(db, report.version) or 0
        touched = sum(s.added + s.removed + s.modified for s in report.sources)
        if touched <= CLASSIFY_LIMIT:
            cs = diffmod.diff_versions(db, prev, report.version)
            for c in cs.changes:
                if c.severity != "high" or not c.substantive:
                    continue
                high_total += 1
                if len(high) < cfg.max_changes:
                    prov = c.provenance
                    high.append(
                        {
                            "source": c.source,
                            "code": c.key,
                            "table": c.fact_kind,
                            "document": f"{Path(str(prov.get('url') or '')).name} (release {prov.get('release')})",
                            "what": _what(c),
                            "effective": c.eff_start,
                            "effective_end": c.eff_end,
                            "retroactive": c.retroactive,
                        }
                    )
    subject_parts = []
    if committed and report.substantive_changes:
        subject_parts.append(f"version {report.version}: {report.substantive_changes} substantive changes"
                             + (f", {high_total} high severity" if cs is not None else ""))
    elif not committed:
        subject_parts.append(f"version {report.version}: nothing committed")
    if failed:
        subject_parts.append("failed: " + ", ".join(s.source for s in failed))
    if stale:
        subject_parts.append("stale: " + ", ".join(s["source"] for s in stale))
    change_report = _change_report(home, db, cs, run_report)
    return {
        "subject": "policysync: " + "; ".join(subject_parts),
        "version": report.version,
        "kind": report.kind,
        "status": report.status,
        "review_state": report.review_state,
        "finished_at": report.finished_at,
        "substantive_changes": report.substantive_changes,
        "changes": report.changes,
        "high_severity_total": high_total,
        "high_severity": high,
        "failed_sources": [{"source": s.source, "errors": s.errors} for s in failed],
        "stale_sources": [
            {
                "source": s["source"],
                "last_successful_fetch": s.get("last_successful_fetch"),
                "cadence_days": s.get("cadence_days"),
            }
            for s in stale
        ],
        "change_report": _link(home, cfg, change_report),
        "run_report": _link(home, cfg, run_report),
    }


def render_text(digest: dict[str, Any]) -> str:
    lines = [digest["subject"], ""]
    lines.append(
        f"Rulebook version {digest['version']} ({digest['kind']}): {digest['status']}, "
        f"review: {digest['review_state']}, finished {digest['finished_at']}."
    )
    if digest["changes"]:
        lines.append("Changes: " + ", ".join(f"{n} {k}" for k, n in digest["changes"].items()))
    if digest["high_severity"]:
        shown = len(digest["high_severity"])
        lines += ["", f"High-severity changes ({shown} of {digest['high_severity_total']} shown):"]
        for c in digest["high_severity"]:
            end = f" until {c['effective_end']}" if c["effective_end"] else ""
            lines.append(
                f"- {c['code']} [{c['table']}, {c['document']}] effective {c['effective']}{end}: {c['what']}"
            )
    for f in digest["failed_sources"]:
        lines += ["", f"FAILED {f['source']} (its previous facts stay in force):"]
        lines += [f"  {e}" for e in f["errors"]]
    for s in digest["stale_sources"]:
        lines.append(
            f"STALE {s['source']}: last successful fetch {s['last_successful_fetch'] or 'never'} "
            f"(cadence {s['cadence_days']} days)"
        )
    lines += ["", f"Change-set report: {digest['change_report']}", f"Run report: {digest['run_report']}"]
    return "\n".join(lines) + "\n"


# --- the outbox and delivery ------------------------------------------------------------------


def enqueue(db: sqlite_utils.Database, digest: dict[str, Any], cfg: NotifyConfig, now: str) -> list[int]:
    ids = []
    with db.atomic():
        for channel, target in cfg.channels:
            table = db.table("notifications")
            table.insert(
                {
                    "created_at": now,
                    "version_id": digest["version"],
                    "channel": channel,
                    "target": target,
                    "subject": digest["subject"],
                    "payload": json.dumps(digest, sort_keys=True),
                    "attempts": 0,
                }
            )
            ids.append(int(table.last_pk))  # type: ignore[arg-type]
    return ids


def _send_email(cfg: NotifyConfig, to: str, subject: str, digest: dict[str, Any]) -> None:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = cfg.email_from
    msg["To"] = to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="policysync")
    msg.set_content(render_text(digest))
    with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_s) as smtp:
        if cfg.smtp_starttls:
            smtp.starttls()
        if cfg.smtp_user:
            smtp.login(cfg.smtp_user, os.environ.get(cfg.smtp_password_env or "", ""))
        smtp.send_message(msg)


def _post_webhook(cfg: NotifyConfig, url: str, digest: dict[str, Any]) -> None:
    body = json.dumps(digest, sort_keys=True).encode("utf-8")
    req = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "policysync-notify"},
    )
    with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:  # noqa: S310 - configured URL
        if not 200 <= resp.status < 300:
            raise OSError(f"HTTP {resp.status}")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def deliver_pending(db: sqlite_utils.Database, cfg: NotifyConfig, now: str) -> dict[str, int]:
    """Try every undelivered digest, oldest first. Returns counts: delivered, failed, pending."""
    delivered = failed = 0
    rows = list(db.query("SELECT * FROM notifications WHERE delivered_at IS NULL ORDER BY id"))
    for row in rows:
        digest = json.loads(row["payload"])
        try:
            if row["channel"] == "email":
                _send_email(cfg, row["target"], row["subject"] or digest.get("subject", "policysync"), digest)
            elif row["channel"] == "webhook":
                _post_webhook(cfg, row["target"], digest)
            else:
                raise ValueError(f"unknown channel {row['channel']!r}")
        except Exception as exc:  # noqa: BLE001 - undeliverable is logged and retried, never fatal
            failed += 1
            error = _one_line(exc)
            db.table("notifications").update(
                row["id"], {"attempts": (row["attempts"] or 0) + 1, "last_attempt_at": now, "last_error": error}
            )
            log.warning(
                "notification %d (%s to %s, version %s): not delivered: %s; kept in the outbox, "
                "retried on the next run",
                row["id"], row["channel"], row["target"], row["version_id"], error,
                extra={"event": "notify_failed", "notification": row["id"], "channel": row["channel"]},
            )
            continue
        delivered += 1
        db.table("notifications").update(
            row["id"],
            {"attempts": (row["attempts"] or 0) + 1, "last_attempt_at": now, "last_error": None, "delivered_at": now},
        )
        log.info(
            "notification %d (%s to %s, version %s) delivered", row["id"], row["channel"], row["target"],
            row["version_id"], extra={"event": "notify_delivered", "notification": row["id"]},
        )
    pending = db.execute("SELECT COUNT(*) FROM notifications WHERE delivered_at IS NULL").fetchone()[0]
    return {"delivered": delivered, "failed": failed, "pending": int(pending)}


def notify_after_run(
    home: Home,
    db: sqlite_utils.Database,
    report: SyncReport,
    source_status: list[dict[str, Any]],
    run_report: Path,
    now: str,
) -> dict[str, int]:
    """Queue this run's digest (when it needs one and a channel is configured), then deliver
    everything pending. Returns counts: queued, delivered, failed, pending."""
    cfg = load_notify_config(home)
    queued = 0
    if cfg.channels:
        ran = {s.source for s in report.sources}
        stale = [s for s in source_status if s["stale"] and s["source"] in ran]
        digest = build_digest(home, db, report, stale, cfg, run_report)
        if digest is not None:
            queued = len(enqueue(db, digest, cfg, now))
    counts = deliver_pending(db, cfg, now)
    return {"queued": queued, **counts}
