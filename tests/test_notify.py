"""Notifications (issue 8 part 5): a digest by SMTP (aiosmtpd on 127.0.0.1, started here) and by
webhook (http.server on 127.0.0.1), the outbox and its retry on the next run. The syncs run over the
loopback mirror on the recorded HCPCS files; expected codes come from CMS's own change report."""

from __future__ import annotations

import email
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from policysync.cli import cli
from policysync.config import Home, init_home
from policysync.mirror import MirrorServer, hcpcs_release_zip
from policysync.pipeline import sync
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions
from tests.test_diff_cms_trans import FOLDER, TransReport

OCTOBER = "/www.cms.gov/files/zip/october-2020-alpha-numeric-hcpcs-file.zip"
JULY = "/www.cms.gov/files/zip/july-2020-alpha-numeric-hcpcs-file.zip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


class Smtp:
    def __init__(self, port: int) -> None:
        self.sink = Sink()
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=port)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self.sink

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint on 127.0.0.1: answers with ``status`` and keeps each JSON body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.status = 200
        self.bodies: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Hook(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.headers["Content-Type"] == "application/json"
        if self.server.status == 200:
            self.server.bodies.append(json.loads(body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def make_home(root: Path, notify: str) -> Home:
    """A home with only cms_hcpcs enabled and the given [notify] settings."""
    home = Home(root)
    init_home(home)
    cfg = home.config_path.read_text()
    # Every other configured source (more are being added) is switched off.
    cfg = re.sub(r"(\[sources\.(?!cms_hcpcs\])[a-z0-9_]+\]\n)enabled = true", r"\1enabled = false", cfg)
    assert "cms_hcpcs]\nenabled = true" in cfg and cfg.count("enabled = true") == 1
    assert cfg.count("[notify]\n") == 1
    home.config_path.write_text(cfg.replace("[notify]\n", "[notify]\n" + notify))
    return home


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_digest_by_email_and_webhook(tmp_path: Path, shared_data: Path, receiver: Receiver) -> None:
    port = free_port()
    home = make_home(
        tmp_path,
        f'email_to = ["rules@example.org", "billing@example.org"]\nemail_from = "policysync@example.org"\n'
        f'smtp_host = "127.0.0.1"\nsmtp_port = {port}\nwebhook_url = "{receiver.url}"\ntimeout_s = 5\n',
    )
    with Smtp(port) as smtp, MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        first = sync(home, mirror=mirror.url)
        assert first.notifications == {"queued": 2, "delivered": 2, "failed": 0, "pending": 0}
        # No change at all: nothing to tell.
        again = sync(home, mirror=mirror.url)
        assert again.substantive_changes == 0 and again.notifications["queued"] == 0
        mirror.put(OCTOBER, hcpcs_release_zip(shared_data, "2020-10"),
                   link_text="October 2020 Alpha-Numeric HCPCS File (ZIP)")
        report = sync(home, mirror=mirror.url)
    assert report.status == "committed" and report.substantive_changes > 0
    assert report.notifications == {"queued": 2, "delivered": 2, "failed": 0, "pending": 0}
    assert len(smtp.messages) == 2 and len(receiver.bodies) == 2

    digest = receiver.bodies[1]
    assert digest["version"] == report.version == 3
    # The high-severity list is exactly the diff's substantive high-severity changes...
    db = open_rulebook(home.db_path)
    high = [c for c in diff_versions(db, 2, 3).changes if c.severity == "high" and c.substantive]
    assert [h["code"] for h in digest["high_severity"]] == [c.key for c in high]
    assert digest["high_severity_total"] == len(high)
    # ...and holds every code CMS's October 2020 change report marks discontinued, with its end date.
    cms = TransReport(shared_data / FOLDER / "HCPC2020_10_trans_alpha.xlsx")
    discontinued = {code for code in cms.by_hcpc if cms.letters(code) == "D"}
    assert discontinued
    listed = {h["code"]: h for h in digest["high_severity"]}
    for code in discontinued:
        assert listed[code]["what"].startswith("discontinued: ")
        assert listed[code]["table"] == "hcpcs_codes"
        assert listed[code]["document"] == "october-2020-alpha-numeric-hcpcs-file.zip (release 2020-10)"
        assert listed[code]["effective_end"] is not None
    assert digest["failed_sources"] == [] and digest["stale_sources"] == []
    assert Path(digest["run_report"]) == (home.reports / "sync-00003.json").resolve()
    # The change-set report is the HTML one `policysync diff --format html` writes, for the same versions.
    change_report = Path(digest["change_report"])
    assert change_report == (home.reports / "changes-00002-00003.html").resolve()
    html = change_report.read_text(encoding="utf-8")
    assert all(code in html for code in discontinued)

    mail_from, rcpts, msg = smtp.messages[1]
    assert mail_from == "policysync@example.org"
    assert rcpts == ["rules@example.org", "billing@example.org"]
    assert msg["Subject"] == (
        f"policysync: version 3: {report.substantive_changes} substantive changes, {len(high)} high severity"
    )
    body = msg.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    some = sorted(discontinued)[0]
    line = next(x for x in body.splitlines() if x.startswith(f"- {some} "))
    assert "[hcpcs_codes, october-2020-alpha-numeric-hcpcs-file.zip (release 2020-10)] effective " in line
    assert f"Run report: {digest['run_report']}" in body


def test_undeliverable_is_kept_and_retried_on_the_next_run(
    tmp_path: Path, shared_data: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there yet: the SMTP connection is refused
    home = make_home(
        tmp_path,
        f'email_to = ["rules@example.org"]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        f'webhook_url = "{receiver.url}"\ntimeout_s = 5\n',
    )
    receiver.status = 503
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        with caplog.at_level(logging.WARNING, logger="policysync.notify"):
            report = sync(home, mirror=mirror.url)
        # Never fatal: the version is committed and the exit code is the sync's own.
        assert report.status == "committed" and report.exit_code == 0
        assert report.notifications == {"queued": 2, "delivered": 0, "failed": 2, "pending": 2}
        warnings = [r.getMessage() for r in caplog.records if r.name == "policysync.notify"]
        assert len(warnings) == 2 and all("\n" not in w for w in warnings)
        assert warnings[0].startswith("notification 1 (email to rules@example.org, version 1): not delivered: ")
        assert warnings[1] == (
            f"notification 2 (webhook to {receiver.url}, version 1): not delivered: HTTP 503 Service Unavailable; "
            "kept in the outbox, retried on the next run"
        )
        db = open_rulebook(home.db_path)
        rows = list(db.query("SELECT * FROM notifications ORDER BY id"))
        assert [(r["channel"], r["attempts"], r["delivered_at"]) for r in rows] == [
            ("email", 1, None), ("webhook", 1, None)
        ]
        assert rows[1]["last_error"] == "HTTP 503 Service Unavailable"

        # Next week both ends are back; the run has nothing new to tell but delivers what waited.
        receiver.status = 200
        with Smtp(port) as smtp:
            code = CliRunner().invoke(cli, ["--home", str(home.root), "sync", "--mirror", mirror.url, "--json"])
        out = json.loads(code.stdout)
        assert code.exit_code == 0
        assert out["notifications"] == {"queued": 0, "delivered": 2, "failed": 0, "pending": 0}
    assert len(smtp.messages) == 1 and smtp.messages[0][2]["Subject"].startswith("policysync: version 1: ")
    assert receiver.bodies[0]["version"] == 1
    rows = list(db.query("SELECT * FROM notifications ORDER BY id"))
    assert [(r["attempts"], r["last_error"]) for r in rows] == [(2, None), (2, None)]
    assert all(r["delivered_at"] for r in rows)


def test_failed_and_stale_source_is_told(tmp_path: Path, shared_data: Path, receiver: Receiver) -> None:
    home = make_home(tmp_path, f'webhook_url = "{receiver.url}"\n')
    overrides = {JULY: (404, {"Content-Type": "text/html"}, b"<html>Not Found</html>")}
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"], overrides=overrides) as mirror:
        report = sync(home, mirror=mirror.url)
    assert report.status == "failed" and report.exit_code == 3
    assert report.notifications["delivered"] == 1
    (digest,) = receiver.bodies
    assert digest["subject"] == f"policysync: version {report.version}: nothing committed; failed: cms_hcpcs; " \
                                "stale: cms_hcpcs"
    (failed,) = digest["failed_sources"]
    assert failed["source"] == "cms_hcpcs" and failed["errors"] == report.sources[0].errors
    assert len(failed["errors"]) == 1 and "404" in failed["errors"][0]
    assert digest["stale_sources"] == [
        {"source": "cms_hcpcs", "last_successful_fetch": None, "cadence_days": 91}
    ]
    assert digest["high_severity"] == []


def test_bad_notify_config_is_a_usage_error_before_the_run(tmp_path: Path) -> None:
    home = make_home(tmp_path, 'webhook_url = "ftp://example.org/x"\n')
    res = CliRunner().invoke(cli, ["--home", str(home.root), "sync"])
    assert res.exit_code == 2
    assert res.stderr == (
        f"error: {home.config_path}: [notify] webhook_url must be an http(s) URL, got 'ftp://example.org/x'\n"
    )
    assert list(open_rulebook(home.db_path).query("SELECT * FROM versions")) == []
