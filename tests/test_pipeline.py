"""``policysync sync`` and ``reparse`` end to end through the real crawl against the loopback mirror:
a no-op re-sync does nothing, the same bytes twice change nothing, bad input never removes a fact,
and the next good sync picks up what failed (DESIGN.md "The rulebook", "Command line": exit codes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from crawlers.spiders.cms_hcpcs import LANDING_URL
from policysync.config import Home, init_home, resolve_home
from policysync.mirror import (
    CMS_HOST,
    HCPCS_LANDING_PATH,
    HCPCS_RELEASES,
    MirrorServer,
    build_zip,
    hcpcs_release_zip,
)
from policysync.pipeline import SyncReport, reparse, sync
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions

RELEASES = {r.release: r for r in HCPCS_RELEASES}
JULY = RELEASES["2020-07"]
JULY_PATH = f"/{CMS_HOST}{JULY.path}"  # the mirror path
JULY_URL = f"https://{CMS_HOST}{JULY.path}"  # the real URL it stands for
JULY_FILE = "july-2020-alpha-numeric-hcpcs-file.zip"
APRIL_PATH = f"/{CMS_HOST}{RELEASES['2020-04'].path}"

ROWS = {"2020-04": 7097, "2020-07": 7158, "2020-10": 7196}  # first records in each ANWEB file


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = resolve_home(tmp_path / "home")
    init_home(h)
    return h


def _db(home: Home) -> Iterator[sqlite_utils.Database]:
    db = open_rulebook(home.db_path)
    try:
        yield db
    finally:
        db.close()


def state(home: Home) -> dict[str, Any]:
    """What "every previous fact is still in force" is checked on."""
    for db in _db(home):
        (current,) = db.execute("SELECT count(*) FROM hcpcs_codes WHERE v_to IS NULL").fetchone()
        (total,) = db.execute("SELECT count(*) FROM hcpcs_codes").fetchone()
        (j9035,) = db.query("SELECT * FROM hcpcs_codes WHERE code = 'J9035' AND v_to IS NULL")
        committed = [r["id"] for r in db.query("SELECT id FROM versions WHERE status = 'committed' ORDER BY id")]
    return {"current": current, "total": total, "J9035": j9035, "committed": committed}


def current_row(home: Home, code: str) -> dict[str, Any] | None:
    for db in _db(home):
        rows = list(db.query("SELECT * FROM hcpcs_codes WHERE code = ? AND v_to IS NULL", [code]))
    return rows[0] if rows else None


def publish(mirror: MirrorServer, shared_data: Path, release: str) -> None:
    """Put a recorded quarter on the mirror and link it from the landing page, as CMS publishes one."""
    rel = RELEASES[release]
    mirror.put(
        f"/{CMS_HOST}{rel.path}",
        hcpcs_release_zip(shared_data, release),
        link_text=rel.text,
        last_modified=rel.published,
    )


def ok(report: SyncReport) -> None:
    assert (report.exit_code, report.status) == (0, "committed"), report.to_json()


# --- nothing new --------------------------------------------------------------------------------


def test_a_no_op_resync_changes_nothing_and_parses_nothing(shared_data: Path, home: Home) -> None:
    with MirrorServer(shared_data, releases=["2020-04", "2020-07"]) as mirror:
        first = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
        ok(first)
        before = state(home)
        seen = len(mirror.requests)
        again = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
        asked = mirror.requests[seen:]
    ok(again)
    (src,) = again.sources
    assert (src.outcome, src.requests, src.not_modified, src.new_documents, src.documents_parsed) == (
        "unchanged", 2, 2, 0, 0,
    )  # fmt: skip
    assert (src.records, src.added, src.removed, src.modified, src.errors) == (0, 0, 0, 0, [])
    assert (again.changes, again.substantive_changes, again.review_state) == ({}, 0, "none")
    assert diff_versions_of(home, first.version, again.version) == []
    after = state(home)
    assert after["committed"] == before["committed"] + [again.version]
    assert {k: v for k, v in after.items() if k != "committed"} == {k: v for k, v in before.items() if k != "committed"}
    documents = [r for r in asked if r.path.endswith(".zip")]
    assert sorted(r.status for r in documents) == [304, 304]
    assert all(r.headers.get("If-None-Match") for r in documents)


def diff_versions_of(home: Home, v1: int, v2: int) -> list[Any]:
    for db in _db(home):
        changes = diff_versions(db, v1, v2).changes
    return changes


def test_the_same_bytes_fetched_again_are_not_parsed_again(shared_data: Path, home: Home) -> None:
    april = hcpcs_release_zip(shared_data, "2020-04")
    with MirrorServer(shared_data, releases=["2020-04"]) as mirror:
        ok(sync(home, sources=["cms_hcpcs"], mirror=mirror.url))
        before = state(home)
        # (1) Served again with 200 and no validators: downloaded, recognised by its sha256.
        mirror.override(APRIL_PATH, 200, {"Content-Type": "application/zip"}, april)
        again = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
        mirror.clear_override(APRIL_PATH)
        # (2) The same bytes published under a second name (CMS's plural "-files.zip").
        mirror.put(
            f"/{CMS_HOST}/files/zip/april-2020-alpha-numeric-hcpcs-files.zip",
            april,
            link_text="April 2020 Alpha-Numeric HCPCS Files (ZIP)",
        )
        renamed = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
    # In (2) April is downloaded once more too: the override sent no ETag/Last-Modified, so the
    # last fetch left nothing to make the request conditional with.
    for report, fetched in ((again, 1), (renamed, 2)):
        ok(report)
        (src,) = report.sources
        assert src.requests - src.not_modified == fetched
        assert (src.new_documents, src.documents_parsed, src.outcome, report.changes) == (0, 0, "unchanged", {})
    after = state(home)
    assert {k: v for k, v in after.items() if k != "committed"} == {k: v for k, v in before.items() if k != "committed"}


def test_reparse_with_unchanged_parsers_is_a_no_op(shared_data: Path, home: Home) -> None:
    with MirrorServer(shared_data, releases=["2020-04", "2020-07"]) as mirror:
        ok(sync(home, sources=["cms_hcpcs"], mirror=mirror.url))
        publish(mirror, shared_data, "2020-10")
        ok(sync(home, sources=["cms_hcpcs"], mirror=mirror.url))
    before = state(home)
    assert before["current"] == ROWS["2020-10"]
    for _ in range(2):
        report = reparse(home, sources=["cms_hcpcs"])
        ok(report)
        assert report.kind == "reparse"
        (src,) = report.sources
        assert (src.documents_parsed, src.requests, src.errors) == (3, 0, [])
        assert (src.added, src.removed, src.modified, report.changes, src.outcome) == (0, 0, 0, {}, "unchanged")
        after = state(home)
        assert {k: v for k, v in after.items() if k != "committed"} == {
            k: v for k, v in before.items() if k != "committed"
        }


def test_reparse_keeps_the_correction_of_a_reissued_file(shared_data: Path, home: Home) -> None:
    """CMS re-issues a file under the same URL and release (2018 was re-issued in March as the
    "_disc" file). A reparse must apply the two copies in the order they were downloaded; applied in
    sha256 order (as it was), the first copy could undo the re-issue: here it brought back 8 codes
    July discontinued."""
    july = hcpcs_release_zip(shared_data, "2020-07")
    april_xlsx = (shared_data / "hcpcs/quarterly_2020/HCPC2020_04_anweb.xlsx").read_bytes()
    # A first "July" whose data is still April's, built so that its sha256 sorts after the real one.
    first = next(
        body
        for day in range(1, 29)
        if (body := build_zip([("HCPC2020_JUL_ANWEB.xlsx", april_xlsx)], datetime(2020, 5, day)))
        and hashlib.sha256(body).hexdigest() > hashlib.sha256(july).hexdigest()
    )
    with MirrorServer(shared_data, releases=[]) as mirror:
        mirror.put(JULY_PATH, first, link_text=JULY.text, last_modified=datetime(2020, 5, 1, tzinfo=UTC))
        ok(sync(home, sources=["cms_hcpcs"], mirror=mirror.url))
        mirror.put(JULY_PATH, july, link_text=JULY.text, last_modified=datetime(2020, 6, 1, tzinfo=UTC))
        reissued = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
    ok(reissued)
    assert reissued.changes["discontinued"] == 9
    before = state(home)
    report = reparse(home, sources=["cms_hcpcs"])
    ok(report)
    assert report.changes == {}
    assert state(home)["J9035"] == before["J9035"]
    j9199 = current_row(home, "J9199")
    assert j9199 is not None and j9199["eff_end"] == "2020-07-01"
    assert j9199["artifact_sha256"] == hashlib.sha256(july).hexdigest()


# --- bad input through the real crawl -------------------------------------------------------------

_NO_DATA_FILE = build_zip(
    [("HCPC2020_JUL_Trans_Alpha.xlsx", b"not read"), ("HCPC2020_README.txt", b"readme")],
    datetime(2020, 5, 1),
)

BAD_INPUT = {
    "truncated zip": (
        JULY_PATH,
        (200, {"Content-Type": "application/zip"}, "first half of the July zip"),
        f"{JULY_FILE}: not a readable zip archive, truncated or corrupt (",
    ),
    "zip without an HCPCS file": (
        JULY_PATH,
        (200, {"Content-Type": "application/zip"}, _NO_DATA_FILE),
        f"{JULY_FILE}: no HCPCS data file (*ANWEB*.txt or *ANWEB*.xlsx) in the zip "
        "(members: HCPC2020_JUL_Trans_Alpha.xlsx, HCPC2020_README.txt)",
    ),
    "HTML error page with 200": (
        JULY_PATH,
        (
            200,
            {"Content-Type": "text/html; charset=utf-8"},
            b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Something went wrong.</body></html>",
        ),
        f"{JULY_FILE}: expected a zip archive, got an HTML page",
    ),
    "landing page without file links": (
        HCPCS_LANDING_PATH,
        (200, {"Content-Type": "text/html"}, b"<html><body><h1>Quarterly Update</h1><p>We moved.</p></body></html>"),
        f"{LANDING_URL}: no HCPCS file links found on the landing page",
    ),
    "HTTP 500": (
        JULY_PATH,
        (500, {"Content-Type": "text/plain"}, b"Internal error"),
        f"{JULY_URL}: HTTP 500 Internal Server Error (after 2 retries)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_fails_the_sync_keeps_every_fact_and_is_retried(shared_data: Path, home: Home, case: str) -> None:
    path, (status, headers, body), error = BAD_INPUT[case]
    if body == "first half of the July zip":
        whole = hcpcs_release_zip(shared_data, "2020-07")
        body = whole[: len(whole) // 2]
    with MirrorServer(shared_data, releases=["2020-04"]) as mirror:
        ok(sync(home, sources=["cms_hcpcs"], mirror=mirror.url))
        good = state(home)
        assert good["current"] == ROWS["2020-04"]
        publish(mirror, shared_data, "2020-07")  # the next quarter appears ...
        mirror.override(path, status, headers, body)  # ... and what comes back is bad
        failed = []
        for _ in range(2):  # the second sync retries what failed in the first
            failed.append(sync(home, sources=["cms_hcpcs"], mirror=mirror.url))
            # Every previous fact is still in force, and no version was committed.
            assert state(home) == good
        mirror.clear_override(path)
        seen = len(mirror.requests)
        fixed = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
        asked = mirror.requests[seen:]

    for report in failed:
        # One source, and it failed: nothing could be committed.
        assert (report.exit_code, report.status, report.changes) == (3, "failed", {}), report.to_json()
        (src,) = report.sources
        assert src.outcome == "failed"
        assert len(src.errors) == 1 and "\n" not in src.errors[0]
        if error.endswith("("):
            assert src.errors[0].startswith(error) and src.errors[0].endswith(")"), src.errors[0]
        else:
            assert src.errors[0] == error
        assert src.documents_parsed == 0
    # The second time the bad bytes are not new (same sha256), yet they were tried again, not skipped.
    assert failed[1].sources[0].new_documents == 0 and failed[1].sources[0].errors == failed[0].sources[0].errors

    ok(fixed)
    (src,) = fixed.sources
    assert (src.errors, src.documents_parsed, src.outcome) == ([], 1, "changed")
    assert [r.status for r in asked if r.path == JULY_PATH] == [200]  # downloaded again, not skipped
    assert fixed.changes["added"] == 61 and fixed.changes["discontinued"] == 9
    after = state(home)
    assert after["current"] == ROWS["2020-07"]
    assert after["J9035"] == good["J9035"]  # unchanged in July
    assert after["committed"] == good["committed"] + [fixed.version]
    c1748 = current_row(home, "C1748")
    assert c1748 is not None and (c1748["eff_start"], c1748["release"]) == ("2020-07-01", "2020-07")
    if error.endswith("(") or "zip" in error:
        # The bad copy was replaced at its URL by one that parsed: a reparse does not replay the old
        # error (it would exit 1 forever), and it changes nothing.
        replay = reparse(home, sources=["cms_hcpcs"])
        assert (replay.exit_code, replay.changes, replay.sources[0].errors) == (0, {}, [])


def test_a_sync_where_one_document_fails_commits_the_others_and_exits_1(shared_data: Path, home: Home) -> None:
    """One source, two new quarters, one of them truncated: the good one is committed (so this is
    not exit 3), the source is reported failed (exit 1), and the next sync loads the other."""
    october = RELEASES["2020-10"]
    october_path = f"/{CMS_HOST}{october.path}"
    whole = hcpcs_release_zip(shared_data, "2020-10")
    with MirrorServer(shared_data, releases=["2020-04"]) as mirror:
        ok(sync(home, sources=["cms_hcpcs"], mirror=mirror.url))
        publish(mirror, shared_data, "2020-07")
        publish(mirror, shared_data, "2020-10")
        mirror.override(october_path, 200, {"Content-Type": "application/zip"}, whole[:4096])
        partial = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
        mirror.clear_override(october_path)
        rest = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
    assert (partial.exit_code, partial.status) == (1, "committed")
    (src,) = partial.sources
    assert src.outcome == "failed" and src.documents_parsed == 1
    assert src.errors == [
        "october-2020-alpha-numeric-hcpcs-file.zip: not a readable zip archive, truncated or corrupt "
        "(File is not a zip file)"
    ]
    assert partial.changes["added"] == 61  # July's additions
    ok(rest)
    assert rest.sources[0].documents_parsed == 1 and rest.changes["added"] == 38  # October's
    assert state(home)["current"] == ROWS["2020-10"]


def test_a_parser_crash_fails_only_its_document(
    shared_data: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception no parser chose to raise (a bug) is one line in the report, rolls back only its
    document, and leaves the other sources of the same sync committed."""
    import policysync.pipeline as pipeline

    real = pipeline.parser_for

    def crashing(source: str) -> Any:
        if source != "cms_ncci_mue":
            return real(source)

        def parse(body: bytes, meta: Any) -> Any:
            yield from real(source)(body, meta)
            raise KeyError("boom")

        return parse

    monkeypatch.setattr(pipeline, "parser_for", crashing)
    with MirrorServer(shared_data, releases=["2020-07"]) as mirror:
        report = sync(home, sources=["cms_hcpcs", "cms_ncci_mue"], mirror=mirror.url)
    assert (report.exit_code, report.status) == (1, "committed")
    hcpcs, mue = report.sources
    assert hcpcs.outcome == "changed" and hcpcs.added == ROWS["2020-07"]
    assert mue.outcome == "failed" and mue.added == 0
    assert mue.errors == [
        "medicare-ncci-2026-q3-practitioner-services-mue-table.zip: unexpected KeyError while parsing: 'boom'"
    ]
    for db in _db(home):
        assert db.execute("SELECT COUNT(*) FROM unit_limits").fetchone()[0] == 0
