"""End-to-end in a real browser (issue 7 part 5): headless Chromium (Debian's `chromium` package, which
`make test` installs) driven by Playwright through `executable_path`, against `policysync serve`'s app
on 127.0.0.1.

The rulebook is synced from the recorded July and October 2020 HCPCS files through the loopback
mirror (versions 1 and 2, both pending review); version 1 is approved in setup, so version 2 is the
one in the queue. The test opens the queue, opens the change set, filters to high severity, approves
with a note and sees the version become the one `compile` uses. Screenshots are kept under the test's
tmp dir and in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler.packs import default_version
from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.pipeline import sync
from policysync.web import AppServer, create_app
from rulebook import review
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
REVIEWERS = ["Ada Lovelace", "Bo Diddley"]


def chromium_path() -> str:
    """Debian's chromium ($POLICYSYNC_CHROMIUM overrides). Missing: a skip on a developer machine,
    a failure in CI, where `make test` must have installed it."""
    found = os.environ.get("POLICYSYNC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        msg = "no chromium binary: `make chromium` installs Debian's package (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return found


@pytest.fixture(scope="module")
def home(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = resolve_home(tmp_path_factory.mktemp("browser-home"))
    init_home(h)
    for release in ("2020-07", "2020-10"):
        with MirrorServer(shared_data, releases=[release], sources=["cms_hcpcs"]) as mirror:
            report = sync(h, sources=["cms_hcpcs"], mirror=mirror.url)
        assert report.exit_code == 0 and report.review_state == "pending_review", report.to_json()
    cfg = h.config_path.read_text(encoding="utf-8")
    h.config_path.write_text(cfg.replace("reviewers = []", 'reviewers = ["Ada Lovelace", "Bo Diddley"]'), "utf-8")
    db = open_rulebook(h.db_path)
    review.decide(db, 1, action="approve", actor="Ada Lovelace", note="July 2020 checked", now="2026-11-01T09:00:00Z")
    db.close()
    return h.root


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    with AppServer(create_app(resolve_home(home))) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright import sync_api
    except ImportError:
        msg = "playwright is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    path = chromium_path()
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True)
        try:
            yield b
        finally:
            b.close()


def keep(page: object, name: str, tmp_path: Path) -> Path:
    """A full-page screenshot in the test's tmp dir, copied to tests/artifacts/."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / name)
    return shot


def state(home: Path, version: int) -> str:
    db = open_rulebook(home / "rulebook.db")
    try:
        return str(db.execute("SELECT review_state FROM versions WHERE id = ?", [version]).fetchone()[0])
    finally:
        db.close()


def audit_rows(home: Path) -> int:
    db = open_rulebook(home / "rulebook.db")
    try:
        return len(review.audit_log(db))
    finally:
        db.close()


def test_forged_and_unconfigured_posts_are_refused(browser: object, server: str, home: Path) -> None:
    ctx = browser.new_context()  # type: ignore[attr-defined]
    page = ctx.new_page()
    try:
        page.goto(server + "/versions/2")
        # A POST without the token, from the browser's own session (cookies included): 400.
        resp = page.request.post(
            server + "/versions/2/decision",
            form={"action": "approve", "reviewer": "Ada Lovelace", "note": "no token"},
        )
        assert resp.status == 400 and "CSRF" in resp.text()
        # A cross-site form (another origin) that auto-submits to the app: refused.
        page.set_content(
            f'<form id="f" method="post" action="{server}/versions/2/decision">'
            '<input name="action" value="approve"><input name="reviewer" value="Ada Lovelace">'
            '<input name="note" value="forged"></form>'
        )
        with page.expect_navigation():
            page.evaluate("document.getElementById('f').submit()")
        assert "CSRF check failed" in page.inner_text("#error")
        # A reviewer name typed into the form that config.toml does not list: refused.
        page.goto(server + "/versions/2")
        page.evaluate(
            "const o = document.createElement('option'); o.value = o.text = 'Mallory';"
            "document.getElementById('reviewer').appendChild(o);"
        )
        page.select_option("#reviewer", "Mallory")
        page.fill("#note", "I approve of myself")
        with page.expect_navigation():
            page.click("#approve")
        assert page.inner_text("#error") == (
            "review approve: reviewer 'Mallory' is not in [review] reviewers of config.toml (Ada Lovelace, Bo Diddley)"
        )
    finally:
        ctx.close()
    assert (state(home, 2), audit_rows(home)) == ("pending_review", 1)


def test_queue_filter_approve_and_the_version_becomes_compilable(
    browser: object, server: str, home: Path, tmp_path: Path
) -> None:
    db = open_rulebook(home / "rulebook.db")
    cs = diff_versions(db, 1, 2)
    assert default_version(db) == 1
    db.close()
    high = [c.key for c in cs.changes if c.severity == "high"]
    assert high and len(high) < len(cs.changes)

    ctx = browser.new_context(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    page = ctx.new_page()
    try:
        page.goto(server + "/")
        assert page.title() == "Review queue"
        pending = page.locator("table#pending tr.pending")
        assert pending.count() == 1 and pending.first.get_attribute("data-version") == "2"
        assert "Compilable: version 1" in page.inner_text("#compilable")

        pending.first.get_by_role("link", name="version 2").click()
        page.wait_for_url(re.compile(r"/versions/2$"))
        assert page.locator("tr.change").count() == len(cs.changes)

        page.select_option("#severity", "high")
        with page.expect_navigation():
            page.click("#apply-filters")
        assert "severity=high" in page.url
        rows = page.locator("tr.change")
        assert rows.count() == len(high)
        visible = [r for r in rows.all() if r.is_visible()]
        assert [r.get_attribute("data-key") for r in visible] == high
        assert {r.get_attribute("data-severity") for r in visible} == {"high"}
        assert {r.locator("td").first.inner_text() for r in visible} == {"high"}
        keep(page, "serve-changes-high.png", tmp_path)

        page.select_option("#reviewer", "Bo Diddley")
        page.fill("#note", "October 2020 discontinuations checked against the CMS notice")
        with page.expect_navigation():
            page.click("#approve")
        page.wait_for_url(re.compile(r"/versions/2$"))
        assert page.inner_text(".flash").startswith("version 2: pending_review -> approved by Bo Diddley at ")
        assert page.inner_text("#review-state") == "approved"
        assert page.inner_text("#compilable").startswith(
            "Compilable: yes, `policysync compile` uses version 2 by default"
        )
        audit = page.locator("table#audit tr").last.inner_text()
        assert "Bo Diddley" in audit and "October 2020 discontinuations checked" in audit
        shot = keep(page, "serve-approved.png", tmp_path)
        assert shot.stat().st_size > 10_000

        page.goto(server + "/")
        assert page.locator("table#pending").count() == 0
        assert "Compilable: version 2" in page.inner_text("#compilable")
    finally:
        ctx.close()

    db = open_rulebook(home / "rulebook.db")
    assert default_version(db) == 2
    last = review.audit_log(db)[-1]
    assert (last.actor, last.action, last.version_id, last.forced) == ("Bo Diddley", "approve", 2, False)
    db.close()
