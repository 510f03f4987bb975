"""The cms_ncci_ptp spider: link reading (on the real links recorded from the CMS page and other
shapes), the AMA licence gate, callbacks on built responses, and whole crawls against the loopback
mirror (127.0.0.1 only; CONVENTIONS.md 4)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scrapy import FormRequest, Request
from scrapy.http import HtmlResponse, Response

from crawlers.pipelines import DocumentItem
from crawlers.runner import FetchOutcome, Known, build_settings, run_crawl
from crawlers.spiders import SPIDERS
from crawlers.spiders.cms_ncci_ptp import (
    LANDING_URL,
    CmsNcciPtpSpider,
    accept_request,
    ptp_file_links,
    ptp_link_info,
    release_from_version,
)
from policysync.mirror import LICENSE_PATH, PTP_LANDING_PATH, MirrorServer, build_zip, mirror_path
from rulebook.blobs import BlobStore

CMS = "https://www.cms.gov"
Z = f"{CMS}/files/zip"
F1 = f"{Z}/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
GATE_F1 = f"{CMS}/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
LINKS_EXCERPT = "pages/cms/ncci_ptp_page.links.excerpt.html"


# --- ptp_link_info -------------------------------------------------------------------------------


def _recorded_links(shared_data: Path) -> list[tuple[str, str]]:
    text = (shared_data / LINKS_EXCERPT).read_text(encoding="utf-8")
    return re.findall(r'<a href="([^"]+)">([^<]*)</a>', text)


def test_ptp_link_info_reads_every_recorded_link_of_the_cms_page(shared_data: Path) -> None:
    links = _recorded_links(shared_data)
    assert len(links) == 8
    got = [ptp_link_info(href, text) for href, text in links]
    expected = [
        (quarter, version, part)
        for quarter, version in (("2026q3", "v322r0"), ("2026q2", "v321r0"))
        for part in (1, 2, 3, 4)
    ]
    for (href, _), info, (quarter, version, part) in zip(links, got, expected, strict=True):
        name = f"medicare-ncci-{quarter}-practitioner-ptp-edits-ccipra-{version}-f{part}.zip"
        assert info == {
            "setting": "practitioner",
            "release": "2026-07" if quarter == "2026q3" else "2026-04",
            "version": version,
            "part": part,
            "file_path": f"/files/zip/{name}",
            "filename": name,
            "gated": True,
        }, href


@pytest.mark.parametrize(
    ("href", "text", "expected"),
    [
        # the outpatient hospital files (ccioph), both spellings of the quarter
        (
            "/license/ama?file=/files/zip/medicare-ncci-2026q2-hospital-ptp-edits-ccioph-v321r0-f1.zip",
            "",
            ("outpatient_hospital", "2026-04", "v321r0", 1, True),
        ),
        (
            "https://www.cms.gov/license/ama?file=/files/zip/medicare-ncci-2026-q4-hospital-ptp-edits-ccioph-v323r0-f1.zip",
            "",
            ("outpatient_hospital", "2026-10", "v323r0", 1, True),
        ),
        # other quarters and versions
        (
            "https://www.cms.gov/license/ama?file=/files/zip/medicare-ncci-2025q4-practitioner-ptp-edits-ccipra-v313r0-f1.zip",
            "",
            ("practitioner", "2025-10", "v313r0", 1, True),
        ),
        (
            "/license/ama?file=/files/zip/medicare-ncci-2026q1-practitioner-ptp-edits-ccipra-v320r0-f2.zip",
            "",
            ("practitioner", "2026-01", "v320r0", 2, True),
        ),
        # links straight to the file (unwrapped, or with the accepted licence's ?agree=yes)
        (
            "https://www.cms.gov/files/zip/medicare-ncci-2025q1-practitioner-ptp-edits-ccipra-v310r0-f4.zip",
            "",
            ("practitioner", "2025-01", "v310r0", 4, False),
        ),
        (
            "https://www.cms.gov/files/zip/medicare-ncci-2026q4-hospital-ptp-edits-ccioph-v323r0-f3.zip?agree=yes",
            "",
            ("outpatient_hospital", "2026-10", "v323r0", 3, False),
        ),
        # an encoded file parameter; a doubled slash in it
        (
            "/license/ama?file=%2Ffiles%2Fzip%2Fmedicare-ncci-2026q1-practitioner-ptp-edits-ccipra-v320r0-f2.zip",
            "",
            ("practitioner", "2026-01", "v320r0", 2, True),
        ),
        (
            "/license/ama?file=/files/zip//medicare-ncci-2026q2-hospital-ptp-edits-ccioph-v321r0-f3.zip",
            "",
            ("outpatient_hospital", "2026-04", "v321r0", 3, True),
        ),
        # the version alone dates the file (v301 = 2024 Q2, with the 2024 Q2 MUE tables in
        # andrewallenbruce/northstar data-raw/ncci.R)
        ("/license/ama?file=/files/zip/ccipra-v301r0-f1.zip", "", ("practitioner", "2024-04", "v301r0", 1, True)),
        # the name lacks the setting or version, the link text has it
        (
            "/license/ama?file=/files/zip/medicare-ncci-2026q3-ptp-edits-f2.zip",
            "Practitioner PTP Edits v322r0 (675,235 Records) 25442/01810 -- 37252/99452",
            ("practitioner", "2026-07", "v322r0", 2, True),
        ),
    ],
)
def test_ptp_link_info_other_shapes(
    href: str, text: str, expected: tuple[str, str, str, int, bool]
) -> None:
    info = ptp_link_info(href, text)
    assert info is not None
    assert (info["setting"], info["release"], info["version"], info["part"], info["gated"]) == expected
    assert info["file_path"].startswith("/files/zip/medicare-ncci-") or info["file_path"].startswith(
        "/files/zip/ccipra"
    )
    assert "//" not in info["file_path"] and "?" not in info["file_path"]


@pytest.mark.parametrize(
    ("href", "text"),
    [
        # change reports (not gated) are not the edit table
        ("/files/zip/medicare-ncci-2026q2-practitioner-quarterly-additions-deletions-revisions-ptp.zip", ""),
        ("/files/zip/medicare-ncci-2026q3-hospital-quarterly-additions-deletions-revisions-ptp.zip", ""),
        # Medicaid edits, MUE tables, other CMS files
        ("/files/zip/medicaid-ncci-2026-q3-ptp-edits-practitioner-services.zip", ""),
        ("/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip", ""),
        ("/license/ama?file=/files/zip/26clabq3.zip", "26CLABQ3"),
        ("/license/ama?file=/files/document/ncci-ptp-policy-manual.pdf", ""),
        ("/license/ama", "License"),
        ("#main-content", "Skip to main content"),
        # a PTP file whose quarter, part or setting cannot be told, or whose name, version and
        # text disagree
        ("/license/ama?file=/files/zip/medicare-ncci-practitioner-ptp-edits-ccipra-f1.zip", ""),
        ("/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0.zip", ""),
        ("/license/ama?file=/files/zip/medicare-ncci-2026q3-ptp-edits-v322r0-f1.zip", "PTP Edits v322r0"),
        ("/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v321r0-f1.zip", ""),
        (
            "/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip",
            "Hospital PTP Edits v322r0",
        ),
        (
            "/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip",
            "Practitioner PTP Edits v321r0",
        ),
        ("/license/ama?file=/files/zip/ccipra-v324r0-f1.zip", ""),  # no fifth quarter
    ],
)
def test_ptp_link_info_skips_everything_else(href: str, text: str) -> None:
    assert ptp_link_info(href, text) is None


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("v301r0", "2024-04"),
        ("v310r0", "2025-01"),
        ("v313r0", "2025-10"),
        ("v320r0", "2026-01"),
        ("v321r0", "2026-04"),
        ("v322r0", "2026-07"),
        ("v323r1", "2026-10"),
        ("V322R0", "2026-07"),
        ("v324r0", None),
        ("v32r0", None),
        ("322", None),
    ],
)
def test_release_from_version(version: str, release: str | None) -> None:
    assert release_from_version(version) == release


# --- the licence gate on built responses ---------------------------------------------------------


def _gate(body: str, url: str = GATE_F1) -> HtmlResponse:
    return HtmlResponse(url=url, body=body.encode("utf-8"), encoding="utf-8", request=Request(url))


def test_accept_submits_the_get_form_like_a_browser() -> None:
    page = """<html><body>
      <form action="/search" method="get"><input name="q" value=""><input type="submit" value="Search"></form>
      <form action="/files/zip/x-f1.zip" method="get">
        <input type="hidden" name="agree" value="yes"><input type="submit" value="Accept">
      </form>
      <a href="/medicare/x">Decline</a></body></html>"""
    request = accept_request(_gate(page), meta={"k": 1})
    assert request is not None and request.method == "GET"
    assert request.url == f"{Z}/x-f1.zip?agree=yes" and request.meta["k"] == 1


def test_accept_clicks_the_named_button_and_ticks_the_agree_box() -> None:
    page = """<html><body><form action="/files/zip/x.zip">
        <input type="checkbox" name="agree_terms" value="1">
        <button type="submit" name="op" value="decline">I Do Not Accept</button>
        <button type="submit" name="agree" value="yes">I Accept</button>
      </form></body></html>"""
    request = accept_request(_gate(page))
    assert request is not None and request.url == f"{Z}/x.zip?agree_terms=1&agree=yes"


def test_accept_posts_a_post_form() -> None:
    page = """<html><body><form action="/license/ama/accept" method="post">
        <input type="hidden" name="file" value="/files/zip/x.zip"><input type="submit" value="Accept">
      </form></body></html>"""
    request = accept_request(_gate(page))
    assert isinstance(request, FormRequest) and request.method == "POST"
    assert request.url == f"{CMS}/license/ama/accept"
    assert request.body == b"file=%2Ffiles%2Fzip%2Fx.zip"


def test_accept_falls_back_to_an_accept_link_and_never_takes_do_not_accept() -> None:
    link = """<html><body><a href="/files/zip/x.zip?agree=no">Do Not Accept</a>
      <a href="/files/zip/x.zip?agree=yes">Accept</a></body></html>"""
    request = accept_request(_gate(link))
    assert request is not None and request.url == f"{Z}/x.zip?agree=yes"
    refuse_only = """<html><body><form action="/files/zip/x.zip"><input type="submit" value="Do Not Accept">
      </form><a href="/">Cancel</a></body></html>"""
    assert accept_request(_gate(refuse_only)) is None
    assert accept_request(_gate("<html><body>Service unavailable</body></html>")) is None


def test_landing_page_callback_goes_through_the_licence_page(shared_data: Path) -> None:
    body = MirrorServer(shared_data, sources=["cms_ncci_ptp"]).document(PTP_LANDING_PATH).body()
    response = HtmlResponse(url=LANDING_URL, body=body, encoding="utf-8", request=Request(LANDING_URL))
    spider = CmsNcciPtpSpider()
    (request,) = spider.parse(response)  # the change report on the page is skipped
    assert isinstance(request, Request) and request.url == GATE_F1
    assert request.callback == spider.parse_gate and request.errback == spider.gate_failed
    assert "doc_url" not in request.meta  # the licence page is not the document
    assert request.meta["gate_for"] == F1
    assert (request.meta["release"], request.meta["setting"], request.meta["part"]) == ("2026-07", "practitioner", 1)
    assert request.meta["filename"] == F1.rsplit("/", 1)[1]


def _gate_meta() -> dict[str, Any]:
    return {
        "gate_for": F1,
        "release": "2026-07",
        "setting": "practitioner",
        "part": 1,
        "filename": F1.rsplit("/", 1)[1],
    }


def test_gate_callback_accepts_and_asks_for_the_file_under_its_real_url() -> None:
    page = """<html><body><form action="/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
      method="get"><input type="hidden" name="agree" value="yes"><input type="submit" value="Accept"></form>
      </body></html>"""
    response = HtmlResponse(
        url=GATE_F1, body=page.encode(), encoding="utf-8", request=Request(GATE_F1, meta=_gate_meta())
    )
    spider = CmsNcciPtpSpider()
    (request,) = spider.parse_gate(response)
    assert request.url == F1 + "?agree=yes"
    assert request.meta["doc_url"] == F1  # recorded as the file's own URL
    assert request.meta["release"] == "2026-07" and request.meta["gated"] is True
    assert request.callback == spider.parse_document


def test_gate_without_accept_is_an_error_item() -> None:
    page = b"<html><body><p>The licence could not be shown.</p></body></html>"
    response = HtmlResponse(url=GATE_F1, body=page, request=Request(GATE_F1, meta=_gate_meta()))
    (item,) = CmsNcciPtpSpider().parse_gate(response)
    assert isinstance(item, DocumentItem) and item.outcome == "error"
    assert (item.url, item.release) == (F1, "2026-07")
    assert item.error == f"{F1}: license gate: no Accept form or link on {GATE_F1}"


def test_html_instead_of_the_file_after_accepting_is_an_error_item() -> None:
    meta = {"doc_url": F1, "gated": True, "release": "2026-07", "filename": "f1.zip"}
    response = Response(
        url=F1 + "?agree=yes",
        status=200,
        headers={"Content-Type": "text/html; charset=utf-8"},
        body=b"<html>License Agreement</html>",
        request=Request(F1 + "?agree=yes", meta=meta),
    )
    (item,) = CmsNcciPtpSpider().parse_document(response)
    assert item.outcome == "error" and item.url == F1
    assert item.error == f"{F1}: license gate: accepting led to an HTML page ({F1}?agree=yes), not the file"


def test_spider_is_registered_with_its_allow_list() -> None:
    assert SPIDERS["cms_ncci_ptp"] is CmsNcciPtpSpider
    assert build_settings().getdict("ALLOWED_DOMAINS")["cms_ncci_ptp"] == ["www.cms.gov", "cms.gov"]


def test_link_discovery_reports_ptp_files_it_cannot_place() -> None:
    body = b"""<html><body>
      <a href="/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f2.zip">a</a>
      <a href="/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f2.zip?agree=yes">same file</a>
      <a href="/license/ama?file=/files/zip/medicare-ncci-practitioner-ptp-edits.zip">PTP edits</a>
    </body></html>"""
    links, unknown = ptp_file_links(HtmlResponse(url=LANDING_URL, body=body, request=Request(LANDING_URL)))
    assert [(href, info["part"]) for href, info in links] == [
        (f"{CMS}/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f2.zip", 2)
    ]
    assert unknown == [f"{CMS}/license/ama?file=/files/zip/medicare-ncci-practitioner-ptp-edits.zip"]


# --- whole crawls against the mirror -------------------------------------------------------------


def _ptp_zip(code: str, version: str, part: int) -> bytes:
    """A few edits in the real PTP layout (CONSTRUCTED for these tests: the pairs are made up)."""
    txt = (
        "CPT only copyright notice (constructed)\t\t\t\t\t\t\r\nColumn1/Column2 Edits\t\t\t\t\t\t\r\n"
        "Column 1\tColumn 2\t*=in existence\tEffective\tDeletion\tModifier\tPTP Edit Rationale\r\n"
        "\t\tprior to 1996\tDate\tDate\t0=not allowed\t\r\n\t\t\t\t*=no data\t1=allowed\t\r\n"
        "\t\t\t\t\t9=not applicable\t\r\n"
        f"J9035\t96413\t\t2026010{part}\t*\t1\tStandards of medical / surgical practice\r\n"
    ).encode("latin-1")
    return build_zip([(f"{code}-{version}-f{part}.TXT", txt)], datetime(2026, 5, 1, tzinfo=UTC))


def _generated_dir(tmp_path: Path) -> Path:
    """The rest of 2026 Q3 as CMS names it: practitioner f2-f4, hospital f1-f4 (constructed)."""
    out = tmp_path / "generated"
    out.mkdir()
    for part in (2, 3, 4):
        name = f"medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f{part}.zip"
        (out / name).write_bytes(_ptp_zip("ccipra", "v322r0", part))
    for part in (1, 2, 3, 4):
        name = f"medicare-ncci-2026q3-hospital-ptp-edits-ccioph-v322r0-f{part}.zip"
        (out / name).write_bytes(_ptp_zip("ccioph", "v322r0", part))
    return out


def _expected_files() -> dict[str, tuple[str, int]]:
    files = {
        f"{Z}/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f{p}.zip": ("practitioner", p)
        for p in range(1, 5)
    }
    files |= {
        f"{Z}/medicare-ncci-2026q3-hospital-ptp-edits-ccioph-v322r0-f{p}.zip": ("outpatient_hospital", p)
        for p in range(1, 5)
    }
    return files


def _by_url(outcomes: list[FetchOutcome]) -> dict[str, FetchOutcome]:
    by_url = {o.url: o for o in outcomes}
    assert len(by_url) == len(outcomes), "one outcome per document"
    return by_url


def test_whole_crawl_passes_the_gate_for_every_part(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    expected = _expected_files()
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"], extra_dirs=[_generated_dir(tmp_path)]) as mirror:
        outcomes = run_crawl("cms_ncci_ptp", blobs=blobs, mirror=mirror.url)
        served = {url: mirror.document(mirror_path(url)).body() for url in expected}
        asked = [(r.path, r.status) for r in mirror.requests]
    by_url = _by_url(outcomes)
    assert set(by_url) == set(expected)  # the files' own URLs, not the licence page's
    for url, o in by_url.items():
        assert (o.source, o.outcome, o.status, o.error) == ("cms_ncci_ptp", "fetched", 200, None)
        assert o.sha256 == hashlib.sha256(served[url]).hexdigest() and blobs.get(o.sha256) == served[url]
        assert o.release == "2026-07" and o.filename == url.rsplit("/", 1)[1]
        assert o.content_type == "application/zip"
    # the recorded excerpt is the f1 the mirror built from shared/data
    assert blobs.get(by_url[F1].sha256 or "") == mirror.document(mirror_path(F1)).body()
    # every file was asked for once, through its licence page, with the licence accepted
    for url in expected:
        path = mirror_path(url)
        assert (f"{LICENSE_PATH}?file={path[len('/www.cms.gov') :]}", 200) in asked
        assert [s for p, s in asked if p.split("?")[0] == path] == [200]
        assert (f"{path}?agree=yes", 200) in asked
    # the change report on the page is not fetched
    assert not any("quarterly-additions" in p for p, _ in asked)


def test_second_crawl_accepts_again_and_gets_304s(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"], extra_dirs=[_generated_dir(tmp_path)]) as mirror:
        first = run_crawl("cms_ncci_ptp", blobs=blobs, mirror=mirror.url)
        known = {o.url: Known(etag=o.etag, last_modified=o.last_modified, sha256=o.sha256) for o in first}
        mirror.requests.clear()
        second = run_crawl("cms_ncci_ptp", blobs=blobs, mirror=mirror.url, known=known)
        zips = [r for r in mirror.requests if r.path.split("?")[0].endswith(".zip")]
        gates = [r for r in mirror.requests if r.path.startswith(LICENSE_PATH)]
    assert {o.outcome for o in first} == {"fetched"} and len(first) == 8
    by_url = _by_url(second)
    assert set(by_url) == set(known)
    for url, o in by_url.items():
        assert (o.outcome, o.status, o.error) == ("not_modified", 304, None)
        assert o.sha256 == known[url].sha256 and o.release == "2026-07"
    assert len(gates) == 8 and {r.status for r in gates} == {200}
    assert len(zips) == 8 and {r.status for r in zips} == {304}
    assert all(r.path.endswith("?agree=yes") and r.headers["If-None-Match"] for r in zips)


def test_a_newly_published_part_goes_through_the_gate_too(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    q4 = f"{Z}/medicare-ncci-2026q4-practitioner-ptp-edits-ccipra-v323r0-f1.zip"
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"]) as mirror:
        first = run_crawl("cms_ncci_ptp", blobs=blobs, mirror=mirror.url)
        known = {o.url: Known(o.etag, o.last_modified, o.sha256) for o in first}
        mirror.put(
            mirror_path(q4),
            _ptp_zip("ccipra", "v323r0", 1),
            link_text="Practitioner PTP Edits v323r0 (1 Records) J9035/96413 -- J9035/96413",
            page=PTP_LANDING_PATH,
            gated=True,
        )
        second = run_crawl("cms_ncci_ptp", blobs=blobs, mirror=mirror.url, known=known)
    by_url = _by_url(second)
    assert by_url[F1].outcome == "not_modified"
    assert (by_url[q4].outcome, by_url[q4].release) == ("fetched", "2026-10")


def test_robots_disallowing_query_strings_stops_at_the_gate(shared_data: Path, tmp_path: Path) -> None:
    # www.cms.gov's robots.txt is reported to carry "Disallow: /*?" (public scrapers, 2026). The
    # licence page and the accepted file URL both have a query, so an obedient crawler stops there.
    robots = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /*?\n")
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"], overrides={"/www.cms.gov/robots.txt": robots}) as mirror:
        (outcome,) = run_crawl("cms_ncci_ptp", blobs=BlobStore(tmp_path), mirror=mirror.url)
        asked = [r.path for r in mirror.requests]
    assert (outcome.url, outcome.outcome, outcome.status, outcome.release) == (F1, "error", None, "2026-07")
    assert outcome.error == f"{F1}: license gate: disallowed by robots.txt"
    assert not any(p.startswith(LICENSE_PATH) or p.endswith(".zip") for p in asked)


def test_licence_page_without_accept_is_an_error_outcome(shared_data: Path, tmp_path: Path) -> None:
    gate_path = mirror_path(GATE_F1)
    overrides = {gate_path: (200, {"Content-Type": "text/html"}, b"<html><body>Please try later.</body></html>")}
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"], overrides=overrides) as mirror:
        (outcome,) = run_crawl("cms_ncci_ptp", blobs=BlobStore(tmp_path), mirror=mirror.url)
    assert (outcome.url, outcome.outcome, outcome.status) == (F1, "error", 200)
    assert outcome.error == f"{F1}: license gate: no Accept form or link on {GATE_F1}"


def test_licence_page_failure_is_an_error_outcome(shared_data: Path, tmp_path: Path) -> None:
    overrides = {mirror_path(GATE_F1): (503, {}, b"maintenance")}
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"], overrides=overrides) as mirror:
        (outcome,) = run_crawl("cms_ncci_ptp", blobs=BlobStore(tmp_path), mirror=mirror.url)
    assert (outcome.url, outcome.outcome, outcome.status) == (F1, "error", 503)
    assert outcome.error == f"{F1}: license gate: HTTP 503 Service Unavailable (after 2 retries)"


def test_accept_answered_with_a_web_page_is_an_error_outcome(shared_data: Path, tmp_path: Path) -> None:
    overrides = {mirror_path(F1) + "?agree=yes": (200, {"Content-Type": "text/html"}, b"<html>Session expired</html>")}
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"], overrides=overrides) as mirror:
        (outcome,) = run_crawl("cms_ncci_ptp", blobs=BlobStore(tmp_path), mirror=mirror.url)
    assert (outcome.url, outcome.outcome, outcome.sha256) == (F1, "error", None)
    assert outcome.error == f"{F1}: license gate: accepting led to an HTML page ({F1}?agree=yes), not the file"


def test_landing_page_without_ptp_links_is_an_error_outcome(shared_data: Path, tmp_path: Path) -> None:
    overrides = {PTP_LANDING_PATH: (200, {"Content-Type": "text/html"}, b"<html><body>We moved.</body></html>")}
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"], overrides=overrides) as mirror:
        (outcome,) = run_crawl("cms_ncci_ptp", blobs=BlobStore(tmp_path), mirror=mirror.url)
    assert (outcome.url, outcome.outcome) == (LANDING_URL, "error")
    assert outcome.error == f"{LANDING_URL}: no PTP edit file links found on the landing page"
