"""`policysync serve` (issue 7 part 4): the review web app over a real rulebook.

The rulebook is synced once through the loopback mirror from the recorded files: version 1 is the
July 2020 HCPCS file, version 2 the October 2020 one, version 3 the recorded NCCI MUE and PTP
excerpts; all three are substantive, so all start pending review. Each test works on a copy. Pages
are requested through Flask's test client (the real app, CSRF protection on), and one test runs
the real `policysync serve` command and talks HTTP to it.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from compiler.packs import default_version
from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.pipeline import sync
from policysync.web import create_app, queries
from rulebook import review
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions

REVIEWERS = ["Ada Lovelace", "Bo Diddley"]
NOW = "2026-11-24T12:00:00Z"
MUE_FILE = "mue/MCR_MUE_PractitionerServices_Eff_07-01-2026.excerpt.csv"
PTP_FILE = "ncci_ptp/ccipra-v322r0-f1.excerpt.txt"


def set_reviewers(home: Path, names: list[str]) -> None:
    cfg = home / "config.toml"
    text = cfg.read_text(encoding="utf-8")
    listed = ", ".join(f'"{n}"' for n in names)
    new, n = re.subn(r"(?m)^reviewers = \[.*\]$", f"reviewers = [{listed}]", text)
    assert n == 1, "config.toml has no [review] reviewers line"
    cfg.write_text(new, encoding="utf-8")


@pytest.fixture(scope="module")
def synced(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = resolve_home(tmp_path_factory.mktemp("serve-home"))
    init_home(home)
    for release in ("2020-07", "2020-10"):
        with MirrorServer(shared_data, releases=[release], sources=["cms_hcpcs"]) as mirror:
            report = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
        assert report.exit_code == 0 and report.review_state == "pending_review", report.to_json()
    ncci = ["cms_ncci_mue", "cms_ncci_ptp"]
    with MirrorServer(shared_data, sources=ncci) as mirror:
        report = sync(home, sources=ncci, mirror=mirror.url)
    assert report.exit_code == 0 and report.review_state == "pending_review", report.to_json()
    set_reviewers(home.root, REVIEWERS)
    return home.root


@pytest.fixture
def home(synced: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "home"
    db = sqlite3.connect(synced / "rulebook.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    shutil.copytree(synced, dest)
    return dest


@pytest.fixture
def client(home: Path) -> Iterator[FlaskClient]:
    app = create_app(resolve_home(home), clock=lambda: NOW)
    with app.test_client() as c:
        yield c


def soup(resp: object) -> BeautifulSoup:
    return BeautifulSoup(resp.get_data(as_text=True), "html.parser")  # type: ignore[attr-defined]


def csrf_token(client: FlaskClient, version: int) -> str:
    page = soup(client.get(f"/versions/{version}"))
    field = page.select_one("form#decision input[name=csrf_token]")
    assert field is not None
    return str(field["value"])


def state_and_log(home: Path, version: int) -> tuple[str, int]:
    db = open_rulebook(home / "rulebook.db")
    try:
        st = db.execute("SELECT review_state FROM versions WHERE id = ?", [version]).fetchone()[0]
        return st, len(review.audit_log(db))
    finally:
        db.close()


def test_queue_lists_pending_versions_with_their_change_counts(client: FlaskClient, home: Path) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    page = soup(resp)
    rows = page.select("table#pending tr.pending")
    assert [int(r["data-version"]) for r in rows] == [3, 2, 1]
    db = open_rulebook(home / "rulebook.db")
    for row, (v1, v2) in zip(rows, [(2, 3), (1, 2), (0, 1)], strict=True):
        cs = diff_versions(db, v1, v2)
        cells = [td.get_text(strip=True) for td in row.find_all("td")]
        expected = [str(len(cs.changes))] + [
            str(sum(c.severity == s for c in cs.changes)) for s in ("high", "medium", "low")
        ]
        assert cells[4:8] == expected
        assert cells[1] == str(v1)
    db.close()
    assert "Compilable: nothing (nothing to compile: no approved version (pending review: 3" in page.select_one(
        "#compilable"
    ).get_text(" ", strip=True)


def test_queue_shows_stale_sources(home: Path) -> None:
    # Synced "now" (the test's run time); a clock 200 days later makes every 91-day source stale.
    db = open_rulebook(home / "rulebook.db")
    last = db.execute("SELECT MAX(fetched_at) FROM fetches WHERE source = 'cms_hcpcs'").fetchone()[0]
    db.close()
    fresh = create_app(resolve_home(home), clock=lambda: last).test_client()
    rows = soup(fresh.get("/")).select("table#sources tr[data-source]")
    synced = {"cms_hcpcs", "cms_ncci_mue", "cms_ncci_ptp"}
    shown = {r["data-source"]: "stale" in (r.get("class") or []) for r in rows}
    assert synced <= set(shown)
    # Configured sources never fetched (none but these three was synced) are stale from the start.
    assert shown == {sid: sid not in synced for sid in shown}
    later = (date.fromisoformat(last[:10]) + timedelta(days=200)).isoformat() + "T00:00:00Z"
    stale = create_app(resolve_home(home), clock=lambda: later).test_client()
    rows = soup(stale.get("/")).select("table#sources tr.stale")
    assert {r["data-source"] for r in rows} == set(shown)
    hcpcs = next(r for r in rows if r["data-source"] == "cms_hcpcs")
    assert hcpcs.find_all("td")[2].get_text() == last


def test_self_contained_report_of_a_change_set(client: FlaskClient) -> None:
    pytest.importorskip("rulebook.report_html")
    page = soup(client.get("/versions/2"))
    link = page.find("a", string="self-contained HTML report")
    assert link is not None
    resp = client.get(link["href"])
    assert resp.status_code == 200
    section = soup(resp).select_one("section.ps-changeset")
    assert (section["data-from"], section["data-to"]) == ("1", "2")


def test_a_change_set_too_large_for_the_browser_points_to_the_cli(
    client: FlaskClient, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit is 200,000 changes (a first full PTP load is 2.6 M); lowered here so that versions
    # 1 (every HCPCS code added) and 3 (the NCCI excerpts) are over it and version 2 is not.
    monkeypatch.setattr(queries, "BROWSER_LIMIT", 100)
    db = open_rulebook(home / "rulebook.db")
    sizes = {v: len(diff_versions(db, v - 1, v).changes) for v in (1, 2, 3)}
    db.close()
    assert sizes[1] > 100 and sizes[2] <= 100 and sizes[3] > 100
    page = soup(client.get("/"))
    for v in (1, 3):
        cells = page.select_one(f'tr.pending[data-version="{v}"]').find_all("td")
        assert cells[4].get_text() == str(sizes[v])  # as counted by the sync
        assert cells[5].get_text(" ", strip=True) == (
            f"too many to classify here: policysync diff {v - 1} {v} --format html -o changes.html"
        )
    cells = page.select_one('tr.pending[data-version="2"]').find_all("td")
    assert cells[4].get_text() == str(sizes[2])
    resp = client.get("/versions/3")
    assert resp.status_code == 400
    assert soup(resp).select_one("#error").get_text() == (
        f"version 3: {sizes[3]} changes against version 2, more than the browser shows (100); read "
        "`policysync diff 2 3 --format html -o changes.html` and decide with `policysync review approve|reject 3`"
    )


def test_change_set_page_filters_by_severity_source_and_code(client: FlaskClient, home: Path) -> None:
    db = open_rulebook(home / "rulebook.db")
    cs = diff_versions(db, 1, 2)
    db.close()
    high = [c for c in cs.changes if c.severity == "high"]
    assert high and len(high) < len(cs.changes)

    page = soup(client.get("/versions/2"))
    assert len(page.select("tr.change")) == len(cs.changes)
    page = soup(client.get("/versions/2?severity=high"))
    rows = page.select("tr.change")
    assert {r["data-severity"] for r in rows} == {"high"}
    assert [r["data-key"] for r in rows] == [c.key for c in high]
    # Provenance: the real CMS URL and the sha256 of the document that states the change.
    first = rows[0]
    link = first.select_one("a")
    assert link is not None and link["href"] == high[0].provenance["url"]
    assert link["href"].startswith("https://www.cms.gov/")
    assert first.find(title=high[0].provenance["sha256"]) is not None

    code = high[0].key
    rows = soup(client.get(f"/versions/2?code={code.lower()}")).select("tr.change")
    assert [r["data-key"] for r in rows] == [code]
    rows = soup(client.get("/versions/3?source=cms_ncci_mue")).select("tr.change")
    assert rows and all(r.find_all("td")[1].get_text() == "cms_ncci_mue" for r in rows)


def test_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    client: FlaskClient, home: Path
) -> None:
    form = {"action": "approve", "reviewer": REVIEWERS[0], "note": "looks fine"}
    resp = client.post("/versions/1/decision", data=form)
    assert resp.status_code == 400
    assert "CSRF" in soup(resp).select_one("#error").get_text()
    resp = client.post("/versions/1/decision", data=form | {"csrf_token": "forged"})
    assert resp.status_code == 400
    assert state_and_log(home, 1) == ("pending_review", 0)


def test_a_token_from_another_session_is_refused(home: Path) -> None:
    app = create_app(resolve_home(home), clock=lambda: NOW)
    with app.test_client() as alice, app.test_client() as mallory:
        token = csrf_token(alice, 1)
        form = {"action": "approve", "reviewer": REVIEWERS[0], "note": "n", "csrf_token": token}
        mallory.get("/")
        assert mallory.post("/versions/1/decision", data=form).status_code == 400
    assert state_and_log(home, 1) == ("pending_review", 0)


def test_unconfigured_reviewer_and_blank_note_are_refused(client: FlaskClient, home: Path) -> None:
    token = csrf_token(client, 1)
    resp = client.post(
        "/versions/1/decision", data={"action": "approve", "reviewer": "Mallory", "note": "ok", "csrf_token": token}
    )
    assert resp.status_code == 400
    assert soup(resp).select_one("#error").get_text() == (
        "review approve: reviewer 'Mallory' is not in [review] reviewers of config.toml (Ada Lovelace, Bo Diddley)"
    )
    resp = client.post(
        "/versions/1/decision", data={"action": "approve", "reviewer": REVIEWERS[0], "note": "  ", "csrf_token": token}
    )
    assert resp.status_code == 400
    assert soup(resp).select_one("#error").get_text() == "review approve: --note TEXT is required (why)"
    assert state_and_log(home, 1) == ("pending_review", 0)


def test_approve_and_reject_go_through_the_review_workflow(client: FlaskClient, home: Path) -> None:
    token = csrf_token(client, 1)
    page = soup(client.get("/versions/1"))
    assert [o["value"] for o in page.select("select#reviewer option") if o["value"]] == REVIEWERS
    resp = client.post(
        "/versions/1/decision",
        data={"action": "approve", "reviewer": "Ada Lovelace", "note": "July 2020 checked", "csrf_token": token},
    )
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/versions/1")
    page = soup(client.get("/versions/1"))
    assert page.select_one(".flash").get_text() == (
        f"version 1: pending_review -> approved by Ada Lovelace at {NOW} (audit #1)"
    )
    assert page.select_one("#review-state").get_text() == "approved"
    assert "Compilable: yes, `policysync compile` uses version 1 by default" in page.select_one("#compilable").get_text(
        " ", strip=True
    )
    db = open_rulebook(home / "rulebook.db")
    assert default_version(db) == 1
    entry = review.audit_log(db)[-1]
    assert (entry.actor, entry.action, entry.version_id, entry.note, entry.at) == (
        "Ada Lovelace",
        "approve",
        1,
        "July 2020 checked",
        NOW,
    )
    db.close()

    # A final decision is not re-made without force (the CLI's rule, through the same function).
    resp = client.post(
        "/versions/1/decision",
        data={"action": "reject", "reviewer": "Bo Diddley", "note": "second thoughts", "csrf_token": token},
    )
    assert resp.status_code == 409
    assert soup(resp).select_one("#error").get_text().startswith("version 1 was already approved by Ada Lovelace")

    resp = client.post(
        "/versions/2/decision",
        data={"action": "reject", "reviewer": "Bo Diddley", "note": "October file truncated", "csrf_token": token},
    )
    assert resp.status_code == 303
    assert state_and_log(home, 2) == ("rejected", 2)
    db = open_rulebook(home / "rulebook.db")
    assert default_version(db) == 1
    db.close()


def test_a_quarantined_version_is_shown_and_needs_force(client: FlaskClient, home: Path) -> None:
    # A constructed quarantine row (the pipeline writes these when a source's record count drops;
    # tests/test_quarantine.py covers that): version 1's HCPCS load, marked as if it had dropped 40 %.
    message = "cms_hcpcs: release 2020-07 has 40% fewer records than 2020-04 (constructed for this test)"
    db = open_rulebook(home / "rulebook.db")
    if not db["quarantines"].exists():
        db.close()
        pytest.skip("this rulebook has no quarantines table")
    db["quarantines"].insert({"version_id": 1, "source": "cms_hcpcs", "reason": "drop", "message": message})
    db.close()
    badge = soup(client.get("/")).select_one('tr.pending[data-version="1"] .badge')
    assert badge is not None and (badge.get_text(), badge["title"]) == ("cms_hcpcs", message)
    page = soup(client.get("/versions/1"))
    assert page.select_one(".quarantine").get_text() == f"Quarantined: {message}"

    token = csrf_token(client, 1)
    form = {"action": "approve", "reviewer": "Ada Lovelace", "note": "drop explained by CMS", "csrf_token": token}
    resp = client.post("/versions/1/decision", data=form)
    assert resp.status_code == 409
    assert soup(resp).select_one("#error").get_text().startswith(f"version 1 is quarantined: {message}; ")
    assert state_and_log(home, 1) == ("pending_review", 0)

    assert client.post("/versions/1/decision", data=form | {"force": "1"}).status_code == 303
    db = open_rulebook(home / "rulebook.db")
    entry = review.audit_log(db)[-1]
    db.close()
    assert (entry.version_id, entry.new_state, entry.forced, entry.note) == (
        1,
        "approved",
        True,
        "drop explained by CMS",
    )


def _ptp_in_force(path: Path, code: str, day: str) -> list[tuple[str, str]]:
    """Rows of the recorded PTP excerpt naming ``code`` in force on ``day``, read from the file:
    effective date <= day, and no deletion date or one on or after day (the deletion date is the last
    day in force; a row deleted on its effective date was never in force)."""
    out = []
    for line in path.read_text(encoding="latin-1").splitlines():
        cols = line.split("\t")
        if len(cols) < 6 or not re.fullmatch(r"\d{8}", cols[3]):
            continue
        eff, deletion = cols[3], cols[4].strip()
        start = f"{eff[:4]}-{eff[4:6]}-{eff[6:]}"
        last = None if deletion in ("", "*") else f"{deletion[:4]}-{deletion[4:6]}-{deletion[6:]}"
        if code in (cols[0], cols[1]) and start <= day and (last is None or (day <= last and last > start)):
            out.append((cols[0], cols[1]))
    return sorted(out)


def test_rules_for_a_code_with_provenance(client: FlaskClient, home: Path, shared_data: Path) -> None:
    # 0001U in the recorded July 2026 practitioner MUE table: "0001U,1,2 Date of Service Edit: Policy,..."
    mue_line = next(
        line
        for line in (shared_data / MUE_FILE).read_text(encoding="latin-1").splitlines()
        if line.startswith("0001U,")
    )
    units, mai = mue_line.split(",")[1], mue_line.split(",")[2][0]
    day = "2026-08-15"
    page = soup(client.get(f"/rules?code=0001u&scope=medicare&date={day}&version=3"))
    assert (
        page.select_one("#answer")
        .get_text(" ", strip=True)
        .startswith(f"0001U for medicare on {day}, as known in version 3")
    )
    mue = page.select_one("#section-unit_limits")
    rows = mue.select("tr.rule")
    assert len(rows) == 1
    header = [th.get_text() for th in mue.select("th")]
    cells = dict(zip(header, [td.get_text(strip=True) for td in rows[0].find_all("td")], strict=False))
    assert (cells["code"], cells["setting"], cells["max_units"], cells["mai"]) == ("0001U", "practitioner", units, mai)
    db = open_rulebook(home / "rulebook.db")
    art = db.execute("SELECT sha256, url FROM artifacts WHERE source = 'cms_ncci_mue'").fetchone()
    db.close()
    prov = rows[0].select_one(".provenance")
    assert prov.select_one(".sha").get_text() == art[0]
    assert prov.select_one("a")["href"] == art[1]
    assert prov.select_one(".locator").get_text().strip()

    expected = _ptp_in_force(shared_data / PTP_FILE, "0001U", day)
    ptp = page.select_one("#section-ptp_edits")
    header = [th.get_text() for th in ptp.select("th")]
    got = sorted(
        (tds[header.index("column1")].get_text(), tds[header.index("column2")].get_text())
        for tds in (r.find_all("td") for r in ptp.select("tr.rule"))
    )
    assert expected and got == expected
    # The HCPCS table holds no 0001U (a CPT PLA code): its section says so.
    assert page.select_one("#section-hcpcs_codes .none") is not None

    # A commercial payer scope gets no Medicare NCCI rules, and an unknown payer is refused.
    resp = client.get(f"/rules?code=0001U&scope=payer:acme&date={day}")
    assert resp.status_code == 400 and "unknown scope 'payer:acme'" in soup(resp).select_one("#error").get_text()


def test_rules_for_a_hcpcs_code_as_of_a_version_and_date(client: FlaskClient, home: Path) -> None:
    db = open_rulebook(home / "rulebook.db")
    cs = diff_versions(db, 1, 2)
    # A code the October 2020 file discontinued: in force before its end, gone after it.
    gone = next(c for c in cs.changes if c.fact_kind == "hcpcs_codes" and c.category == "discontinued")
    end = gone.fields["eff_end"]["after"]
    db.close()
    last_day = (date.fromisoformat(end) - timedelta(1)).isoformat()
    page = soup(client.get(f"/rules?code={gone.key}&date={last_day}&version=2"))
    rows = page.select("#section-hcpcs_codes tr.rule")
    assert len(rows) == 1
    assert rows[0].select_one(".sha").get_text() == gone.provenance["sha256"]
    assert rows[0].select_one(".locator").get_text() == gone.provenance["locator"]
    page = soup(client.get(f"/rules?code={gone.key}&date={end}&version=2"))
    assert page.select("#section-hcpcs_codes tr.rule") == []
    # As known in version 1 (July), the code was still open-ended on that date.
    page = soup(client.get(f"/rules?code={gone.key}&date={end}&version=1"))
    assert len(page.select("#section-hcpcs_codes tr.rule")) == 1


def test_bad_requests_are_one_line_errors(client: FlaskClient, home: Path) -> None:
    resp = client.get("/rules?code=J9035&date=15/08/2026")
    assert resp.status_code == 400
    assert soup(resp).select_one("#error").get_text() == "rules: date '15/08/2026' must be YYYY-MM-DD"
    resp = client.get("/rules?code=x;drop&date=2026-01-01")
    assert resp.status_code == 400
    resp = client.get("/versions/99")
    assert resp.status_code == 404
    assert soup(resp).select_one("#error").get_text() == "no rulebook version 99 (see `policysync versions`)"
    resp = client.get("/versions/2?from=99")
    assert resp.status_code == 400
    assert soup(resp).select_one("#error").get_text() == (
        "changes: ?from=99 must be an older version than 2 (0: the empty rulebook)"
    )
    # From the empty rulebook: every code is a change; the page shows the first 1,000 and says so.
    db = open_rulebook(home / "rulebook.db")
    total = len(diff_versions(db, 0, 2).changes)
    db.close()
    page = soup(client.get("/versions/2?from=0"))
    assert total > 1000 and len(page.select("tr.change")) == 1000
    assert page.select_one("#matched").get_text(" ", strip=True) == (
        f"{total} change(s) match; showing the first 1000 (narrow the filters to see the rest)."
    )
    # Whatever is typed is escaped where it is shown again.
    resp = client.get("/versions/2?code=%3Cscript%3Ealert(1)%3C/script%3E")
    assert resp.status_code == 200 and b"<script>" not in resp.data
    assert soup(resp).select_one("input#code")["value"] == "<SCRIPT>ALERT(1)</SCRIPT>"


def test_redlines_page_says_there_are_no_payer_policies(client: FlaskClient) -> None:
    page = soup(client.get("/redlines"))
    assert (
        page.select_one("#no-payer-policies")
        .get_text(" ", strip=True)
        .startswith("No payer policies in this rulebook.")
    )


def test_redline_of_two_versions_of_a_payer_policy(client: FlaskClient, home: Path) -> None:
    redline_mod = pytest.importorskip("parsers.payer_redline")
    # Constructed: two versions of one made-up payer policy, stated in versions 1 and 3 of the
    # rulebook (no payer policy is recorded in two versions). Section text is untrusted input.
    db = open_rulebook(home / "rulebook.db")
    if not db["payer_documents"].exists():
        db.close()
        pytest.skip("this rulebook has no payer_documents table")
    url = "https://example.org/policies/bevacizumab.pdf"
    base = {"payer": "acme", "url": url, "status": "parsed", "policy": "RX-1", "title": "Bevacizumab <b>"}
    old_sections = {"Criteria": "Adults with colorectal cancer\nPrior therapy required", "Coding": "J9035"}
    new_sections = {"Criteria": "Adults with colorectal cancer\nNo prior therapy required", "Coding": "J9035\nQ5107"}
    db["payer_documents"].insert_all(
        [
            base
            | {
                "sections": json.dumps(old_sections),
                "effective_date": "2026-01-01",
                "eff_start": "2026-01-01",
                "v_from": 1,
                "v_to": 3,
                "artifact_sha256": "a" * 64,
                "locator": "p1:l1",
            },
            base
            | {
                "sections": json.dumps(new_sections),
                "effective_date": "2026-07-01",
                "eff_start": "2026-07-01",
                "v_from": 3,
                "v_to": None,
                "artifact_sha256": "b" * 64,
                "locator": "p1:l1",
            },
        ]
    )
    rows = [dict(r) for r in db.query("SELECT * FROM payer_documents ORDER BY v_from")]
    db.close()

    page = soup(client.get("/redlines"))
    assert page.select_one("#no-payer-policies") is None
    doc = page.select_one("tr.payer-document")
    assert doc is not None and "Bevacizumab <b>" in doc.get_text()
    link = doc.select_one("a.redline-link")
    resp = client.get(link["href"])
    assert resp.status_code == 200
    assert b"Bevacizumab <b>" not in resp.data  # escaped
    shown = soup(resp).select_one("#redline section.redline")
    expected = BeautifulSoup(redline_mod.render_html(redline_mod.redline(rows[0], rows[1])), "html.parser")
    assert shown is not None and shown.get_text() == expected.get_text()
    assert "No prior therapy required" in shown.get_text() and "Q5107" in shown.get_text()
    assert "Rulebook version 1" in soup(resp).select_one("#compared").get_text()


def test_scope_narrows_rows_by_their_jurisdiction_or_state_lists() -> None:
    # Constructed rows in the shapes fact tables use: JSON lists, plain lists, NULL (national).
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE f (id INTEGER, jurisdictions TEXT, states TEXT)")
    rows = [
        (1, '["JK", "J6"]', '["NY", "CT"]'),
        (2, None, None),
        (3, '["J5"]', '["IA"]'),
        (4, "[]", "[]"),
        (5, "JK; JL", "NY,NJ"),
        (6, '["JKX"]', '["NYC"]'),
    ]
    conn.executemany("INSERT INTO f VALUES (?, ?, ?)", rows)

    def ids(scope: str) -> list[int]:
        narrowed = queries._scope_filter(["id", "jurisdictions", "states"], scope)
        assert narrowed is not None
        sql, params, _ = narrowed
        return [r[0] for r in conn.execute(f"SELECT id FROM f WHERE {sql} ORDER BY id", params)]

    assert ids("medicare") == [1, 2, 3, 4, 5, 6]
    assert ids("medicare:JK") == [1, 2, 4, 5]
    assert ids("medicare:NY") == [1, 2, 4, 5]
    assert ids("medicare:IA") == [2, 3, 4]
    assert queries._scope_filter(["id", "jurisdictions"], "payer:acme") is None


def test_only_loopback_host_names_are_served(client: FlaskClient) -> None:
    assert client.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/", headers={"Host": "localhost:8765"}).status_code == 200
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400


def test_no_reviewers_configured_means_no_decision_form(home: Path) -> None:
    set_reviewers(home, [])
    with create_app(resolve_home(home)).test_client() as c:
        page = soup(c.get("/versions/1"))
        assert page.select_one("form#decision") is None
        assert page.select_one("#no-reviewers") is not None
        token = str(page.select_one("meta[name=csrf-token]")["content"])
        resp = c.post(
            "/versions/1/decision",
            data={"action": "approve", "reviewer": "Ada Lovelace", "note": "n", "csrf_token": token},
        )
        assert resp.status_code == 400
    assert state_and_log(home, 1) == ("pending_review", 0)


def test_serve_command_serves_on_loopback(home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from policysync.cli import main; main()", "--home", str(home), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.fullmatch(r"serving (.+) on (http://127\.0\.0\.1:\d+)/ \(Ctrl-C stops\)\n", line)
        assert m, line
        with urllib.request.urlopen(m.group(2) + "/", timeout=30) as resp:
            body = resp.read().decode()
        assert resp.status == 200 and "Review queue" in body and 'data-version="3"' in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(m.group(2) + "/versions/1/decision", data=b"x=1"), timeout=30)
        assert err.value.code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert state_and_log(home, 1) == ("pending_review", 0)
