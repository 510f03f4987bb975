"""The review web app (issue 7 part 4): Flask on 127.0.0.1.

Pages: the review queue (``/``), a version's change set with severity/source/code filters and the
approve/reject form (``/versions/<v>``), "what rules apply to code X for scope Y on date D" with
provenance (``/rules``), and the payer policy redline view (``/redlines``).

Safety: every state-changing request is a POST checked by Flask-WTF's ``CSRFProtect`` (a missing or
wrong token is a 400 and changes nothing); the reviewer is picked from ``[review] reviewers`` in
config.toml and any other name is refused; the note is required. Decisions go through
``rulebook.review.decide``, so the CLI's rules (final decisions, ``--force``, quarantine) apply here
too. Only Host headers naming 127.0.0.1 or localhost are served (DNS rebinding).
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlite_utils
from flask import Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from compiler.packs import default_version
from parsers.errors import CompileError, PolicySyncError, RulebookError, UsageError
from policysync.config import Home, load_reviewers, load_sources
from policysync.web import queries as q
from rulebook import review as rv
from rulebook import versions as vers
from rulebook.db import open_rulebook

#: Change rows rendered on one page; the filters narrow a larger change set.
PAGE_ROWS = 1000


def _utcnow() -> str:
    from policysync.pipeline import utcnow

    return utcnow()


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    """A function another part of policysync may provide (the HTML change-set report, payer
    redlines); None while it does not exist."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def create_app(home: Home, *, clock: Callable[[], str] = _utcnow, secret_key: bytes | None = None) -> Flask:
    """The app for the policysync home ``home``. ``clock`` gives the ISO UTC time recorded with a
    decision (time is an input)."""
    home.require()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_bytes(32),
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_HTTPONLY=True,
        TRUSTED_HOSTS=["127.0.0.1", "localhost"],
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session, which ends with the server process
    )
    CSRFProtect(app)
    # Provenance URLs come from crawled documents: only http(s) ones become links.
    app.jinja_env.tests["web_url"] = lambda u: isinstance(u, str) and u.startswith(("https://", "http://"))

    def db() -> sqlite_utils.Database:
        if "db" not in g:
            g.db = open_rulebook(home.db_path)
        return g.db  # type: ignore[no-any-return]

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"home": str(home.root)}

    def compilable() -> tuple[int | None, str]:
        try:
            v = default_version(db())
        except CompileError as exc:
            return None, str(exc)
        return v, f"`policysync compile` uses version {v} by default"

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[str, int]:
        return (
            render_template(
                "error.html",
                title="Request refused",
                message=f"CSRF check failed ({exc.description}): reload the page and submit the form again.",
            ),
            400,
        )

    @app.errorhandler(PolicySyncError)
    def _policysync(exc: PolicySyncError) -> tuple[str, int]:
        status = 400 if isinstance(exc, UsageError) else 409
        return render_template("error.html", title="Refused", message=str(exc)), status

    @app.errorhandler(404)
    def _not_found(exc: HTTPException) -> tuple[str, int]:
        return render_template("error.html", title="Not found", message=exc.description), 404

    def committed(version: int) -> vers.Version:
        try:
            v = vers.get_version(db(), version)
        except RulebookError as exc:
            abort(404, str(exc))
        if v.status != "committed":
            abort(404, f"version {version} is {v.status}, not committed")
        return v

    @app.get("/")
    def queue() -> str:
        items = q.review_queue(db())
        compile_version, compile_note = compilable()
        cadences = {sid: sc.cadence_days for sid, sc in load_sources(home).items() if sc.enabled}
        now = datetime.strptime(clock(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return render_template(
            "queue.html",
            sources=vers.source_status(db(), cadences, now),
            items=items,
            pending=[i for i in items if i.review_state == "pending_review"],
            compile_version=compile_version,
            compile_note=compile_note,
        )

    @app.get("/versions/<int:version>")
    def version_page(version: int) -> str:
        d = db()
        v = committed(version)
        base = request.args.get("from", type=int)
        if base is None:
            base = q.previous_version(d, version)
        elif not 0 <= base < version:
            raise UsageError(f"changes: ?from={base} must be an older version than {version} (0: the empty rulebook)")
        big = q.too_large(d, base, version)
        if big is not None:
            raise UsageError(
                f"version {version}: {big} changes against version {base}, more than the browser shows "
                f"({q.BROWSER_LIMIT}); read `policysync diff {base} {version} --format html -o changes.html` "
                f"and decide with `policysync review approve|reject {version}`"
            )
        cs = q.change_set(d, base, version)
        severity = request.args.get("severity", "")
        source = request.args.get("source", "")
        code = request.args.get("code", "").strip().upper()
        rows = [
            c
            for c in cs.changes
            if (not severity or c.severity == severity)
            and (not source or c.source == source)
            and (not code or code in c.key.upper().split("|"))
        ]
        compile_version, compile_note = compilable()
        return render_template(
            "changes.html",
            v=v,
            base=base,
            cs=cs,
            counts=q.severity_counts(cs),
            sources=sorted({c.source for c in cs.changes}),
            severity=severity,
            source=source,
            code=code,
            rows=rows[:PAGE_ROWS],
            matched=len(rows),
            page_rows=PAGE_ROWS,
            reviewers=load_reviewers(home),
            effective_state=rv.effective_state(d, version),
            audit=[e for e in rv.audit_log(d) if e.version_id == version],
            quarantined=q.quarantines(d, version),
            compile_version=compile_version,
            compile_note=compile_note,
            has_report=_optional("rulebook.report_html", "render_html") is not None,
        )

    @app.post("/versions/<int:version>/decision")
    def decision(version: int) -> Response:
        action = request.form.get("action", "")
        if action not in rv.ACTIONS:
            raise UsageError(f"review: unknown action {action!r} (use approve or reject)")
        reviewer = request.form.get("reviewer", "").strip()
        allowed = load_reviewers(home)
        if reviewer not in allowed:
            configured = ", ".join(allowed) if allowed else "none configured"
            raise UsageError(
                f"review {action}: reviewer {reviewer!r} is not in [review] reviewers of config.toml ({configured})"
            )
        note = request.form.get("note", "")
        force = request.form.get("force") == "1"
        entry = rv.decide(db(), version, action=action, actor=reviewer, note=note, now=clock(), force=force)
        flash(
            f"version {entry.version_id}: {entry.previous_state} -> {entry.new_state} by {entry.actor} "
            f"at {entry.at}{' (forced)' if entry.forced else ''} (audit #{entry.id})"
        )
        return redirect(url_for("version_page", version=version), code=303)

    @app.get("/versions/<int:version>/report.html")
    def report(version: int) -> str:
        render = _optional("rulebook.report_html", "render_html")
        if render is None:
            abort(404, "the HTML change-set report is not available in this installation")
        d = db()
        committed(version)
        base = request.args.get("from", type=int)
        cs = q.change_set(d, q.previous_version(d, version) if base is None else base, version)
        return str(render(cs, standalone=True))

    @app.get("/rules")
    def rules() -> str:
        code = request.args.get("code", "").strip()
        scope = request.args.get("scope", "medicare").strip() or "medicare"
        date = request.args.get("date", "").strip()
        version = request.args.get("version", type=int)
        answer = q.rules_for(db(), code, scope, date, version) if code and date else None
        return render_template(
            "rules.html",
            code=code,
            scope=scope,
            date=date,
            version=version,
            answer=answer,
            versions=list(reversed(vers.committed_versions(db()))),
        )

    @app.get("/redlines")
    def redlines() -> str:
        docs = q.payer_documents(db())
        return render_template(
            "redlines.html", docs=docs, can_redline=_optional("parsers.payer_redline", "redline") is not None
        )

    @app.get("/redlines/document")
    def redline_document() -> str:
        payer, url = request.args.get("payer", ""), request.args.get("url", "")
        doc = q.payer_document(db(), payer, url)
        if doc is None:
            abort(404, f"no payer policy document {url!r} of payer {payer!r} in this rulebook")
        make = _optional("parsers.payer_redline", "redline")
        render = _optional("parsers.payer_redline", "render_html")
        n = len(doc.versions)
        i = request.args.get("version", type=int)  # index of the newer side, default the newest
        i = n - 1 if i is None or not 1 <= i < n else i
        body = None
        if make is not None and render is not None and n >= 2:
            # The renderer escapes the document text itself (parsers/payer_redline.py).
            body = Markup(render(make(doc.versions[i - 1], doc.versions[i])))
        return render_template("redline.html", doc=doc, body=body, index=i, can_redline=make is not None)

    return app
