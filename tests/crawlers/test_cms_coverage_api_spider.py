"""The cms_coverage_api spider: the week windows on their own, and whole crawls against the loopback
mirror's constructed Coverage API (127.0.0.1 only; CONVENTIONS.md 4): what it asks for and in what
form, the token renewed mid-run, the last sync's date taken from the fetch log, and failing calls.

The API answers are built from the recorded ``mcd/export_2026-01`` tables completed with the
constructed ``tests/fixtures/cms_mcd`` tables (A52370 v128 and A52369 v16, both last updated
2025-12-22 per ``article.csv``; L33394 v54, 2025-05-22 per ``lcd.csv``).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from crawlers.runner import FetchOutcome, Known, run_crawl
from crawlers.spiders import SPIDERS
from crawlers.spiders.cms_coverage_api import ARTICLE_ENDPOINTS, REFERENCE, CmsCoverageApiSpider, weeks
from policysync.mirror import MirrorServer
from policysync.mirror_coverage_api import API_HOST, coverage_api, publish_tables, read_tables
from policysync.mirror_faults import Fault
from rulebook.blobs import BlobStore
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"
API = f"https://{API_HOST}/v1/"


def fixture_rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((FIXTURES / name).read_bytes().decode("cp1252"), newline="")))


def articles_updated_on(day: str) -> list[tuple[str, str]]:
    return sorted(
        (r["article_id"], r["article_version"]) for r in fixture_rows("article.csv") if r["last_updated"][:10] == day
    )


@pytest.fixture
def mirror(shared_data: Path) -> Iterator[MirrorServer]:
    with MirrorServer(shared_data, sources=["cms_coverage_api"]) as m:
        publish_tables(m, read_tables([FIXTURES]))
        yield m


def crawl(m: MirrorServer, tmp_path: Path, known: dict[str, Known] | None = None, **kwargs: str) -> list[FetchOutcome]:
    return run_crawl(
        "cms_coverage_api", blobs=BlobStore(tmp_path / "blobs"), mirror=m.url, known=known, spider_kwargs=kwargs
    )


def api_paths(m: MirrorServer) -> list[tuple[str, dict[str, list[str]], dict[str, str]]]:
    out = []
    for r in m.requests:
        parts = urlsplit(r.path)
        if parts.path.startswith(f"/{API_HOST}/v1/"):
            out.append((parts.path[len(f"/{API_HOST}/v1/") :], parse_qs(parts.query), r.headers))
    return out


def test_registered() -> None:
    assert SPIDERS["cms_coverage_api"] is CmsCoverageApiSpider


def test_weeks_are_half_open_and_at_most_seven_days() -> None:
    w = weeks(date(2025, 12, 20), date(2026, 1, 26), 51)
    assert w[0] == (date(2025, 12, 20), date(2025, 12, 27))
    assert w[-1] == (date(2026, 1, 24), date(2026, 1, 26))
    assert all((b - a).days <= 7 and a < b for a, b in w)
    assert all(w[i][1] == w[i + 1][0] for i in range(len(w) - 1))
    assert weeks(date(2026, 1, 26), date(2026, 1, 26), 51) == []
    assert len(weeks(date(2020, 1, 1), date(2026, 1, 26), 51)) == 51


def test_fetches_only_the_changed_versions(mirror: MirrorServer, tmp_path: Path) -> None:
    outs = crawl(mirror, tmp_path, since="2025-12-20")
    changed = articles_updated_on("2025-12-22")
    assert changed  # the constructed fixture has versions created that day
    assert sorted((o.url, o.outcome) for o in outs) == sorted(
        (f"{API}data/article/?articleid={a}&ver={v}", "fetched") for a, v in changed
    )
    calls = api_paths(mirror)
    listings = [q for p, q, _ in calls if p == "reports/whats-new/local/"]
    # from the 20th to the day after data_captured_through (01/25/2026): six windows, none over 7 days
    assert [(q["start_date"][0], q["end_date"][0]) for q in listings][0] == ("20251220", "20251227")
    assert listings[-1]["end_date"] == ["20260126"]
    details = [(p, q, h) for p, q, h in calls if p.startswith("data/article/")]
    assert {p for p, _, _ in details} == set(ARTICLE_ENDPOINTS)
    for p, q, h in details:
        assert q["articleid"][0].isdigit()  # no "A" prefix
        assert h.get("Authorization", "").startswith("Bearer ")
        assert ("ver" in q) is (not p.endswith("future-retire"))
    # nothing else was asked for: no other article, no LCD (L33394 v54 is from May)
    assert {q["articleid"][0] for _, q, _ in details} == {a for a, _ in changed}
    assert not any(p.startswith("data/lcd/") for p, _, _ in calls)
    # reports and metadata go without the token
    assert all("Authorization" not in h for p, _, h in calls if not p.startswith("data/article/"))
    o = next(o for o in outs if "52370" in o.url)
    # the release is the day the snapshot was captured through (data_captured_through)
    assert o.release == "2026-01-25" and o.filename == "article_52370_v128.json"
    stored = json.loads(BlobStore(tmp_path / "blobs").get(o.sha256 or ""))
    assert [r["endpoint"] for r in stored["responses"]] == list(ARTICLE_ENDPOINTS) + list(REFERENCE)
    assert stored["listing"]["document_display_id"] == "A52370"


def test_token_expiring_mid_run_is_renewed(mirror: MirrorServer, tmp_path: Path) -> None:
    api = coverage_api(mirror)
    api.expire_after = 4  # every token dies after the 4th detail call
    outs = crawl(mirror, tmp_path, since="2025-12-20")
    assert outs and all(o.outcome == "fetched" for o in outs)
    assert api.rejected_tokens >= 1 and api.tokens_issued >= 2
    statuses = [r.status for r in mirror.requests if "/v1/data/article/" in r.path]
    assert 401 in statuses
    # the call answered 401 was made again and every bundle is whole
    for o in outs:
        stored = json.loads(BlobStore(tmp_path / "blobs").get(o.sha256 or ""))
        assert all(r["status"] == 200 for r in stored["responses"])
        assert len(stored["responses"]) == len(ARTICLE_ENDPOINTS) + len(REFERENCE)


def test_since_comes_from_the_fetch_log(mirror: MirrorServer, tmp_path: Path) -> None:
    first = crawl(mirror, tmp_path, since="2025-12-20")
    known = {o.url: Known(etag=o.etag, last_modified=o.last_modified, sha256=o.sha256) for o in first}
    assert {o.last_modified for o in first} == {"Sat, 27 Dec 2025 00:00:00 GMT"}  # end of the window listing them
    mirror.requests.clear()
    again = crawl(mirror, tmp_path, known=known)
    assert again == []  # the versions already fetched are not fetched again
    listings = [q for p, q, _ in api_paths(mirror) if p == "reports/whats-new/local/"]
    assert listings[0]["start_date"] == ["20251227"]
    assert not any(p.startswith("data/") and p != "data/contractor/" for p, _, _ in api_paths(mirror))


def test_without_history_reads_the_last_week(mirror: MirrorServer, tmp_path: Path) -> None:
    assert crawl(mirror, tmp_path) == []  # nothing in the fixtures was updated 01/19-01/25/2026
    listings = [q for p, q, _ in api_paths(mirror) if p == "reports/whats-new/local/"]
    assert [(q["start_date"], q["end_date"]) for q in listings] == [(["20260119"], ["20260126"])]


def test_a_failing_detail_call_fails_that_version_only(mirror: MirrorServer, tmp_path: Path) -> None:
    path = f"/{API_HOST}/v1/data/article/icd10-covered?articleid=52370&ver=128"
    mirror.fault(path, Fault.burst(500))
    outs = crawl(mirror, tmp_path, since="2025-12-20")
    by = {o.url: o for o in outs}
    bad = by[f"{API}data/article/?articleid=52370&ver=128"]
    assert bad.outcome == "error" and bad.status == 500
    assert bad.error is not None and "\n" not in bad.error
    assert "A52370 v128: data/article/icd10-covered: HTTP 500" in bad.error
    assert by[f"{API}data/article/?articleid=52369&ver=16"].outcome == "fetched"
    assert len(mirror.requests_for(path)) == 3  # the first try and two retries


def test_a_400_is_not_retried_and_names_the_message(mirror: MirrorServer, tmp_path: Path) -> None:
    path = f"/{API_HOST}/v1/data/article/hcpc-code?articleid=52369&ver=16"
    body = json.dumps({"message": "Invalid parameter value", "code": 400}).encode()
    mirror.fault(path, Fault.answer(400, {"Content-Type": "application/json"}, body))
    outs = crawl(mirror, tmp_path, since="2025-12-20")
    (bad,) = [o for o in outs if o.outcome == "error"]
    assert bad.error == (
        f"{API}data/article/?articleid=52369&ver=16: "
        "A52369 v16: data/article/hcpc-code: HTTP 400: Invalid parameter value"
    )
    assert len(mirror.requests_for(path)) == 1


def test_a_failing_listing_fails_the_run(mirror: MirrorServer, tmp_path: Path) -> None:
    mirror.fault(f"/{API_HOST}/v1/reports/whats-new/local/", Fault.burst(503))
    outs = crawl(mirror, tmp_path, since="2025-12-20")
    (o,) = outs
    assert o.outcome == "error" and o.status == 503 and "what's-new listing: HTTP 503" in (o.error or "")


def test_a_version_listed_again_is_not_fetched_again(mirror: MirrorServer, tmp_path: Path) -> None:
    first = crawl(mirror, tmp_path, since="2025-12-20")
    known = {o.url: Known(etag=o.etag, last_modified=o.last_modified, sha256=o.sha256) for o in first}
    mirror.requests.clear()
    again = crawl(mirror, tmp_path, known=known, since="2025-12-20")
    assert sorted((o.url, o.outcome) for o in again) == sorted((o.url, "not_modified") for o in first)
    assert not any(p.startswith("data/article/") for p, _, _ in api_paths(mirror))


def test_an_old_token_is_renewed_before_the_call(mirror: MirrorServer, tmp_path: Path) -> None:
    api = coverage_api(mirror)
    outs = crawl(mirror, tmp_path, since="2025-12-20", token_max_age="0")  # every token is "old" at once
    assert outs and all(o.outcome == "fetched" for o in outs)
    details = [r for r in mirror.requests if "/v1/data/article/" in r.path]
    assert api.rejected_tokens == 0 and all(r.status == 200 for r in details)
    assert api.tokens_issued == len(details) + 1  # the first token, then one before each call


def test_listing_callback_on_the_recorded_report_rows(shared_data: Path) -> None:
    """The what's-new callback on an answer built from the recorded 2025-08 report rows (genuine
    fields: MM/DD/YYYY dates, N/A, CRLF inside contractor_name_type)."""
    from scrapy import Request
    from scrapy.http import TextResponse

    from policysync.mirror_coverage_api import CoverageApi, recorded_listing

    listing = shared_data / "mcd" / "coverage_api_reports_documents_latest_2025-08.csv"
    rows = list(csv.DictReader(io.StringIO(listing.read_text(encoding="utf-8-sig"), newline="")))
    week = [
        r for r in rows if date(2025, 8, 1) <= datetime.strptime(r["updated_on"], "%m/%d/%Y").date() < date(2025, 8, 8)
    ]
    assert ("52370", "122") in {(r["document_id"], r["document_version"]) for r in week}
    api = CoverageApi(dict, lambda: recorded_listing(listing))
    answer = api.handle(f"/{API_HOST}/v1/reports/whats-new/local/", "start_date=20250801&end_date=20250808", {})
    assert answer is not None and answer[0] == 200
    assert b"\\r\\n(MAC - Part A" in answer[2]  # CRLF inside contractor_name_type, JSON-escaped
    spider = CmsCoverageApiSpider()
    spider.windows = [(date(2025, 8, 1), date(2025, 8, 8))]
    spider.token, spider.token_at = "t0", time.monotonic()  # a fresh token, as after the token call
    url = f"{API}reports/whats-new/local/?start_date=20250801&end_date=20250808"
    response = TextResponse(url, body=answer[2], encoding="utf-8", request=Request(url, meta={"i": 0}))
    requests = list(spider.parse_listing(response))
    expected = {(r["document_type"].lower(), r["document_id"], int(r["document_version"])) for r in week}
    assert {(c.doc_type, c.doc_id, c.version) for c in spider.changed.values()} == expected
    first = {r.meta["changed"].label: r.url for r in requests}
    assert first["A52370 v122"] == f"{API}data/article/?articleid=52370&ver=122"
    assert all(r.headers.get("Authorization") == b"Bearer t0" for r in requests)
