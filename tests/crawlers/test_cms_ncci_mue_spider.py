"""The cms_ncci_mue spider: link reading on its own, callbacks on built responses, whole crawls
against the loopback mirror (127.0.0.1 only; CONVENTIONS.md 4)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse

from crawlers.pipelines import DocumentItem
from crawlers.runner import FetchOutcome, Known, build_settings, run_crawl
from crawlers.spiders import SPIDERS
from crawlers.spiders.cms_ncci_mue import LANDING_URL, CmsNcciMueSpider, mue_file_links, mue_link_info
from policysync.mirror import MUE_LANDING_PATH, MirrorServer, build_zip, mirror_path
from rulebook.blobs import BlobStore

CMS = "https://www.cms.gov"
PRACTITIONER_Q3 = f"{CMS}/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip"
HOSPITAL_Q3 = f"{CMS}/files/zip/medicare-ncci-2026-q3-facility-outpatient-hospital-services-mue-table.zip"
DME_Q3 = f"{CMS}/files/zip/medicare-ncci-2026-q3-dme-supplier-services-mue-table.zip"


# --- mue_link_info -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "text", "expected"),
    [
        # the current shape, all quarters and settings (DOMAIN.md §3.5; public scrapers of the page)
        ("/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip", "", ("practitioner", "2026-07")),
        ("/files/zip/medicare-ncci-2026-q1-practitioner-services-mue-table.zip", "", ("practitioner", "2026-01")),
        (
            "/files/zip/medicare-ncci-2026-q2-facility-outpatient-hospital-services-mue-table.zip",
            "",
            ("outpatient_hospital", "2026-04"),
        ),
        ("/files/zip/medicare-ncci-2026-q2-dme-supplier-services-mue-table.zip", "", ("dme", "2026-04")),
        (
            "https://www.cms.gov/files/zip/medicare-ncci-2025-q4-practitioner-services-mue-table.zip",
            "",
            ("practitioner", "2025-10"),
        ),
        (
            "https://www.cms.gov/files/zip/medicare-ncci-2026-q4-dme-supplier-services-mue-table.zip?agree=yes",
            "",
            ("dme", "2026-10"),
        ),
        (
            "/files/zip/medicare-ncci-2026-q3-facility-outpatient-hospital-services-mue-table.zip",
            "Outpatient Hospital Services MUE Table - Effective July 1, 2026 (ZIP)",
            ("outpatient_hospital", "2026-07"),
        ),
        # without the dash before the quarter, as the PTP files have it
        ("/files/zip/medicare-ncci-2026q3-practitioner-services-mue-table.zip", "", ("practitioner", "2026-07")),
        # an older shape (month and year)
        ("/files/zip/january-2021-practitioner-mue-table.zip", "", ("practitioner", "2021-01")),
        ("/files/zip/october-2020-dme-supplier-services-mue-table.zip", "", ("dme", "2020-10")),
        # zips named like the table they hold (MCR_MUE_<Setting>_Eff_MM-DD-YYYY)
        ("/files/zip/MCR_MUE_PractitionerServices_Eff_07-01-2026.zip", "", ("practitioner", "2026-07")),
        (
            "/files/zip/MCR_MUE_OutpatientHospitalServices_Eff_10-01-2026.zip",
            "",
            ("outpatient_hospital", "2026-10"),
        ),
        ("/files/zip/MCR_MUE_DMESupplierServices_Eff_04-01-2024.zip", "", ("dme", "2024-04")),
        # the name says too little, the link text says the rest
        (
            "/files/zip/mue-table.zip",
            "Practitioner Services MUE Table - Effective July 1, 2026 (ZIP)",
            ("practitioner", "2026-07"),
        ),
        ("/files/zip/medicare-ncci-mue-table-3.zip", "DME Supplier Services MUE Table, Q1 2026", ("dme", "2026-01")),
        (
            "/files/zip/medicare-ncci-2026-q4-mue-table.zip",
            "Facility Outpatient Hospital Services MUE Table",
            ("outpatient_hospital", "2026-10"),
        ),
        (
            "/files/zip/practitioner-services-mue-table.zip",
            "Practitioner MUEs effective 04/01/2025",
            ("practitioner", "2025-04"),
        ),
        ("/files/zip/practitioner-mue.zip", "Third quarter 2026 practitioner MUE table", ("practitioner", "2026-07")),
    ],
)
def test_mue_link_info_reads_setting_and_release(href: str, text: str, expected: tuple[str, str]) -> None:
    assert mue_link_info(href, text) == expected


@pytest.mark.parametrize(
    ("href", "text"),
    [
        # the PTP files and change reports
        (
            "/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip",
            "Practitioner PTP Edits v322r0 (675,037 Records) 0001A/0591T -- 25441/G0471",
        ),
        ("/files/zip/medicare-ncci-2026q3-practitioner-quarterly-additions-deletions-revisions-ptp.zip", ""),
        # MUE change reports and Medicaid tables are not the Medicare table
        ("/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-quarterly-additions-deletions.zip", ""),
        ("/files/zip/medicare-ncci-2026-q3-practitioner-mue-table.zip", "Quarterly changes to the MUE table"),
        ("/files/zip/medicaid-ncci-2026-q3-mue-edits-practitioner-services.zip", ""),
        # not a zip, not MUE
        ("/files/document/medicare-ncci-2026-q3-practitioner-services-mue-table.pdf", ""),
        ("/files/zip/october-2025-alpha-numeric-hcpcs-file.zip", "October 2025 Alpha-Numeric HCPCS File"),
        ("/medicare/coding-billing/national-correct-coding-initiative-ncci-edits", "NCCI Edits"),
        ("#main-content", "Skip to main content"),
        # an MUE table whose setting or quarter cannot be told
        ("/files/zip/medicare-ncci-2026-q3-mue-table.zip", "MUE Table (ZIP)"),
        ("/files/zip/practitioner-services-mue-table.zip", "Practitioner Services MUE Table"),
        ("/files/zip/medicare-ncci-mue-table.zip", "Practitioner and DME MUE tables, Q3 2026"),
        # an effective date that is not a quarter's first day names no release
        ("/files/zip/MCR_MUE_PractitionerServices_Eff_08-15-2026.zip", ""),
        ("/files/zip/march-2021-practitioner-mue-table.zip", ""),
        # name and text disagree
        ("/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip", "DME Supplier Services MUE Table"),
        (
            "/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip",
            "Practitioner Services MUE Table - Effective April 1, 2026",
        ),
    ],
)
def test_mue_link_info_skips_everything_else(href: str, text: str) -> None:
    assert mue_link_info(href, text) is None


# --- callbacks on built responses ----------------------------------------------------------------


def _constructed_mue_zip(setting_word: str, column: str, eff: str) -> bytes:
    """A few rows in the real MUE table layout (CONSTRUCTED for these tests: values are made up)."""
    csv = (
        f'"CPT codes copyright notice (constructed)",,,\r\n"HCPCS/\nCPT Code",{column},'
        "MUE Adjudication Indicator,MUE Rationale\r\n"
        "A0021,1,2 Date of Service Edit: Policy,Nature of Service/Procedure\r\n"
        "J9035,60,3 Date of Service Edit: Clinical,Prescribing Information\r\n"
    ).encode("latin-1")
    return build_zip([(f"MCR_MUE_{setting_word}_Eff_{eff}.csv", csv)], datetime(2026, 5, 1, tzinfo=UTC))


def _generated_dir(tmp_path: Path) -> Path:
    """The two other settings for 2026 Q3, named as CMS names them (constructed contents)."""
    out = tmp_path / "generated"
    out.mkdir()
    (out / HOSPITAL_Q3.rsplit("/", 1)[1]).write_bytes(
        _constructed_mue_zip("OutpatientHospitalServices", "Outpatient Hospital Services MUE Values", "07-01-2026")
    )
    (out / DME_Q3.rsplit("/", 1)[1]).write_bytes(
        _constructed_mue_zip("DMESupplierServices", "DME Supplier Services MUE Values", "07-01-2026")
    )
    (out / "README.txt").write_text("not a zip: ignored by the mirror\n")
    return out


def _landing_response(mirror: MirrorServer) -> HtmlResponse:
    body = mirror.document(MUE_LANDING_PATH).body()  # rendered, no socket
    return HtmlResponse(url=LANDING_URL, body=body, encoding="utf-8", request=Request(LANDING_URL))


def test_landing_page_callback_requests_every_mue_table(shared_data: Path, tmp_path: Path) -> None:
    mirror = MirrorServer(shared_data, sources=["cms_ncci_mue"], extra_dirs=[_generated_dir(tmp_path)])
    spider = CmsNcciMueSpider()
    out = list(spider.parse(_landing_response(mirror)))
    assert all(isinstance(r, Request) for r in out)
    got = {r.url: (r.meta["setting"], r.meta["release"]) for r in out}
    assert got == {
        PRACTITIONER_Q3: ("practitioner", "2026-07"),
        HOSPITAL_Q3: ("outpatient_hospital", "2026-07"),
        DME_Q3: ("dme", "2026-07"),
    }
    for r in out:
        assert r.meta["doc_url"] == r.url
        assert r.meta["filename"] == r.url.rsplit("/", 1)[1]
        assert r.callback == spider.parse_document and r.errback == spider.document_failed


def test_landing_page_without_mue_links_is_an_error_item() -> None:
    body = b"<html><body><a href='/files/zip/october-2025-alpha-numeric-hcpcs-file.zip'>HCPCS</a></body></html>"
    response = HtmlResponse(url=LANDING_URL, body=body, request=Request(LANDING_URL))
    (item,) = CmsNcciMueSpider().parse(response)
    assert isinstance(item, DocumentItem) and item.outcome == "error"
    assert item.error == f"{LANDING_URL}: no MUE table links found on the landing page"


def test_link_discovery_resolves_links_once_and_reports_the_unplaceable() -> None:
    body = b"""<html><body>
      <a href="/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip">Practitioner</a>
      <a href="https://www.cms.gov/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip">again</a>
      <a href="files/zip/medicare-ncci-2026-q2-dme-supplier-services-mue-table.zip"><span>DME</span> table</a>
      <a href="/files/zip/medicare-ncci-2026-q3-mue-table.zip">MUE Table (ZIP)</a>
      <a href="/files/zip/medicare-ncci-2026q3-practitioner-quarterly-additions-deletions-revisions-ptp.zip">x</a>
    </body></html>"""
    page = f"{CMS}/medicare/x/"
    links, unknown = mue_file_links(HtmlResponse(url=page, body=body, request=Request(page)))
    assert links == [
        (PRACTITIONER_Q3, "practitioner", "2026-07"),
        (f"{page}files/zip/medicare-ncci-2026-q2-dme-supplier-services-mue-table.zip", "dme", "2026-04"),
    ]
    assert unknown == [f"{CMS}/files/zip/medicare-ncci-2026-q3-mue-table.zip"]


def test_spider_is_registered_with_its_allow_list() -> None:
    assert SPIDERS["cms_ncci_mue"] is CmsNcciMueSpider
    assert build_settings().getdict("ALLOWED_DOMAINS")["cms_ncci_mue"] == ["www.cms.gov", "cms.gov"]
    assert LANDING_URL == (
        "https://www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
        "medicare-ncci-medically-unlikely-edits-mues"
    )


# --- whole crawls against the mirror -------------------------------------------------------------


def _by_url(outcomes: list[FetchOutcome]) -> dict[str, FetchOutcome]:
    by_url = {o.url: o for o in outcomes}
    assert len(by_url) == len(outcomes), "one outcome per document"
    return by_url


def test_whole_crawl_fetches_the_three_tables(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with MirrorServer(shared_data, sources=["cms_ncci_mue"], extra_dirs=[_generated_dir(tmp_path)]) as mirror:
        outcomes = run_crawl("cms_ncci_mue", blobs=blobs, mirror=mirror.url)
        served = {url: mirror.document(mirror_path(url)).body() for url in (PRACTITIONER_Q3, HOSPITAL_Q3, DME_Q3)}
        seen = [r.path for r in mirror.requests]
    by_url = _by_url(outcomes)
    assert set(by_url) == set(served)  # real URLs, every setting
    for url, o in by_url.items():
        body = served[url]
        assert (o.source, o.outcome, o.status, o.error) == ("cms_ncci_mue", "fetched", 200, None)
        assert o.sha256 == hashlib.sha256(body).hexdigest() and blobs.get(o.sha256) == body
        assert o.release == "2026-07"  # 2026-q3: effective 2026-07-01
        assert o.filename == url.rsplit("/", 1)[1]
        assert o.content_type == "application/zip" and o.etag == f'"{o.sha256}"' and o.last_modified
    assert seen[0] == "/www.cms.gov/robots.txt" and seen[1] == MUE_LANDING_PATH


def test_second_crawl_with_known_is_all_not_modified(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with MirrorServer(shared_data, sources=["cms_ncci_mue"], extra_dirs=[_generated_dir(tmp_path)]) as mirror:
        first = run_crawl("cms_ncci_mue", blobs=blobs, mirror=mirror.url)
        known = {o.url: Known(etag=o.etag, last_modified=o.last_modified, sha256=o.sha256) for o in first}
        mirror.requests.clear()
        second = run_crawl("cms_ncci_mue", blobs=blobs, mirror=mirror.url, known=known)
        zips = [r for r in mirror.requests if r.path.endswith(".zip")]
    assert {o.outcome for o in first} == {"fetched"}
    by_url = _by_url(second)
    assert set(by_url) == set(known)
    for url, o in by_url.items():
        assert (o.outcome, o.status, o.error, o.size) == ("not_modified", 304, None, None)
        assert o.sha256 == known[url].sha256 and o.release == "2026-07"
    assert len(zips) == 3 and {r.status for r in zips} == {304}
    assert all(r.headers["If-None-Match"] == known[CMS + r.path[len("/www.cms.gov") :]].etag for r in zips)


def test_a_newly_published_quarter_is_fetched_and_the_rest_not_modified(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    q4 = f"{CMS}/files/zip/medicare-ncci-2026-q4-practitioner-services-mue-table.zip"
    with MirrorServer(shared_data, sources=["cms_ncci_mue"]) as mirror:
        first = run_crawl("cms_ncci_mue", blobs=blobs, mirror=mirror.url)
        known = {o.url: Known(o.etag, o.last_modified, o.sha256) for o in first}
        mirror.put(
            mirror_path(q4),
            _constructed_mue_zip("PractitionerServices", "Practitioner Services MUE Values", "10-01-2026"),
            link_text="Practitioner Services MUE Table - Effective October 1, 2026 (ZIP)",
            page=MUE_LANDING_PATH,
        )
        second = run_crawl("cms_ncci_mue", blobs=blobs, mirror=mirror.url, known=known)
    by_url = _by_url(second)
    assert by_url[PRACTITIONER_Q3].outcome == "not_modified"
    assert (by_url[q4].outcome, by_url[q4].release) == ("fetched", "2026-10")


def test_missing_table_is_reported_and_the_others_fetched(shared_data: Path, tmp_path: Path) -> None:
    overrides = {mirror_path(DME_Q3): (404, {"Content-Type": "text/html"}, b"<html>Page not found</html>")}
    generated = _generated_dir(tmp_path)
    with MirrorServer(shared_data, overrides=overrides, sources=["cms_ncci_mue"], extra_dirs=[generated]) as mirror:
        by_url = _by_url(run_crawl("cms_ncci_mue", blobs=BlobStore(tmp_path / "b"), mirror=mirror.url))
    assert (by_url[DME_Q3].outcome, by_url[DME_Q3].status, by_url[DME_Q3].release) == ("error", 404, "2026-07")
    assert by_url[DME_Q3].error == f"{DME_Q3}: HTTP 404 Not Found"
    assert by_url[PRACTITIONER_Q3].outcome == by_url[HOSPITAL_Q3].outcome == "fetched"
