"""The cms_hcpcs spider: link discovery on its own, callbacks on built responses, whole crawls
against the loopback mirror (127.0.0.1 only; CONVENTIONS.md 4)."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse, Response
from scrapy.settings import Settings

from crawlers.middlewares import BackoffRetryMiddleware, MirrorMap
from crawlers.pipelines import DocumentItem
from crawlers.runner import FetchOutcome, Known, build_settings, run_crawl
from crawlers.spiders import SPIDERS
from crawlers.spiders.cms_hcpcs import LANDING_URL, CmsHcpcsSpider, hcpcs_file_links, release_from_link
from parsers.errors import UsageError
from policysync.mirror import HCPCS_LANDING_PATH, HCPCS_RELEASES, MirrorServer, hcpcs_release_zip, mirror_path
from rulebook.blobs import BlobStore

CMS = "https://www.cms.gov"
APRIL_2020 = f"{CMS}/files/zip/april-2020-alpha-numeric-hcpcs-file.zip"
JULY_2020 = f"{CMS}/files/zip/july-2020-alpha-numeric-hcpcs-file.zip"
ANNUAL_2019 = f"{CMS}/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2019-Alpha-Numeric-HCPCS-File.zip"


# --- release_from_link ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "text", "release"),
    [
        # quarterly files under /files/zip/, singular and plural
        ("/files/zip/october-2025-alpha-numeric-hcpcs-file.zip", "", "2025-10"),
        ("/files/zip/january-2026-alpha-numeric-hcpcs-files.zip", "", "2026-01"),
        (
            "/files/zip/april-2024-alpha-numeric-hcpcs-files.zip",
            "April 2024 Alpha-Numeric HCPCS Files (ZIP)",
            "2024-04",
        ),
        (
            "/files/zip/july-2026-alpha-numeric-hcpcs-file.zip",
            "July 2026 Alpha-Numeric HCPCS File",
            "2026-07",
        ),
        (
            "https://www.cms.gov/files/zip/october-2023-alpha-numeric-hcpcs-files.zip",
            "October 2023",
            "2023-10",
        ),
        ("/files/zip/april-2020-alpha-numeric-hcpcs-file.zip?download=1", "", "2020-04"),
        # suffix drift
        ("/files/zip/january-2024-alpha-numeric-hcpcs-file-v4.zip", "", "2024-01"),
        ("/files/zip/HCPC2024_JAN_ANWEB_v4.zip", "", "2024-01"),
        ("/files/zip/2020-alpha-numeric-hcpcs-file-w_disclaimer.zip", "", "2020-01"),
        ("/files/zip/2026-alpha-numeric-hcpcs-file-update.zip", "", "2026-01"),
        ("/files/zip/Oct-2021-Alpha-Numeric-HCPCS-File.zip", "", "2021-10"),
        # annual files (January), new and old site layout
        ("/files/zip/2024-alpha-numeric-hcpcs-file.zip", "", "2024-01"),
        ("/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2019-Alpha-Numeric-HCPCS-File.zip", "", "2019-01"),
        (
            "/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2015-Annual-Alpha-Numeric-HCPCS-File.zip",
            "",
            "2015-01",
        ),
        (
            "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/14anweb.zip",
            "14anweb",
            "2014-01",
        ),
        # the name says nothing, the link text does
        ("/files/zip/hcpcs-update.zip", "July 2021 Alpha-Numeric HCPCS File (ZIP)", "2021-07"),
        ("/files/zip/alpha-numeric-hcpcs-file.zip", "October 2022 Alpha-Numeric HCPCS File (ZIP)", "2022-10"),
        ("/files/zip/alpha%20numeric%20hcpcs%20q3%202022.zip", "", "2022-07"),
    ],
)
def test_release_from_link_finds_the_hcpcs_file(href: str, text: str, release: str) -> None:
    assert release_from_link(href, text) == release


@pytest.mark.parametrize(
    ("href", "text"),
    [
        # the companion files on the same page
        (
            "/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2019-HCPCS-Alpha-Numeric-Corrections.zip",
            "2019 HCPCS Alpha Numeric Corrections (ZIP)",
        ),
        ("/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2017-NOC-Codes.zip", "2017 NOC Codes (ZIP)"),
        ("/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2019-HCPCS-Record-Layout.zip", ""),
        ("/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2018-HCPCS-Record-Layout-.zip", ""),
        ("/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2017-Alpha-Numeric-Index.pdf", ""),
        ("/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2019-Table-of-Drugs.pdf", ""),
        ("/files/zip/october-2025-alpha-numeric-hcpcs-file-corrections.zip", ""),
        # not a zip, or not HCPCS
        ("/files/document/october-2025-alpha-numeric-hcpcs-file.pdf", ""),
        ("/files/zip/2026-code-descriptions-tabular-order.zip", "2026 Code Descriptions in Tabular Order"),
        ("/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip", ""),
        ("/medicare/coding-billing/healthcare-common-procedure-system", "HCPCS"),
        ("#main-content", "Skip to main content"),
        # an HCPCS file whose quarter cannot be told
        ("/files/zip/alpha-numeric-hcpcs-file.zip", "Alpha-Numeric HCPCS File (ZIP)"),
        ("/files/zip/march-2021-alpha-numeric-hcpcs-file.zip", ""),
    ],
)
def test_release_from_link_skips_everything_else(href: str, text: str) -> None:
    assert release_from_link(href, text) is None


# --- callbacks on built responses ----------------------------------------------------------------


def _landing_response(shared_data: Path) -> HtmlResponse:
    body = MirrorServer(shared_data).document(HCPCS_LANDING_PATH).body()  # rendered, no socket
    return HtmlResponse(url=LANDING_URL, body=body, encoding="utf-8", request=Request(LANDING_URL))


def test_landing_page_callback_requests_every_hcpcs_file_and_nothing_else(shared_data: Path) -> None:
    spider = CmsHcpcsSpider()
    out = list(spider.parse(_landing_response(shared_data)))
    assert all(isinstance(r, Request) for r in out)
    got = {r.url: r.meta["release"] for r in out}
    assert got == {CMS + rel.path: rel.release for rel in HCPCS_RELEASES}
    for r in out:
        assert r.meta["doc_url"] == r.url
        assert r.meta["filename"] == r.url.rsplit("/", 1)[1]
        assert r.callback == spider.parse_document and r.errback == spider.document_failed


def test_landing_page_without_links_is_an_error_item() -> None:
    body = b"<html><body><a href='/files/zip/2026-code-descriptions-tabular-order.zip'>ICD</a></body></html>"
    response = HtmlResponse(url=LANDING_URL, body=body, request=Request(LANDING_URL))
    (item,) = CmsHcpcsSpider().parse(response)
    assert isinstance(item, DocumentItem) and item.outcome == "error"
    assert item.url == LANDING_URL
    assert item.error == f"{LANDING_URL}: no HCPCS file links found on the landing page"


def test_link_discovery_resolves_relative_links_once_and_reports_undated_files() -> None:
    body = b"""<html><body>
      <a href="/files/zip/april-2020-alpha-numeric-hcpcs-file.zip">April 2020 Alpha-Numeric HCPCS File</a>
      <a href="https://www.cms.gov/files/zip/april-2020-alpha-numeric-hcpcs-file.zip">again</a>
      <a href="files/zip/july-2020-alpha-numeric-hcpcs-file.zip"><span>July 2020</span> file</a>
      <a href="/files/zip/alpha-numeric-hcpcs-file.zip">Alpha-Numeric HCPCS File (ZIP)</a>
    </body></html>"""
    response = HtmlResponse(url=f"{CMS}/medicare/x/", body=body, request=Request(f"{CMS}/medicare/x/"))
    links, undated = hcpcs_file_links(response)
    assert links == [
        (APRIL_2020, "2020-04"),
        (f"{CMS}/medicare/x/files/zip/july-2020-alpha-numeric-hcpcs-file.zip", "2020-07"),
    ]
    assert undated == [f"{CMS}/files/zip/alpha-numeric-hcpcs-file.zip"]


def _doc_response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
    request = Request(
        APRIL_2020,
        meta={
            "doc_url": APRIL_2020,
            "release": "2020-04",
            "filename": "april-2020-alpha-numeric-hcpcs-file.zip",
        },
    )
    return Response(url=APRIL_2020, status=status, body=body, headers=headers or {}, request=request)


def test_document_callback_reports_fetched_bytes_and_validators() -> None:
    headers = {
        "Content-Type": "application/zip",
        "ETag": '"abc"',
        "Last-Modified": "Sat, 01 Feb 2020 00:00:00 GMT",
    }
    (item,) = CmsHcpcsSpider().parse_document(_doc_response(200, b"PK\x03\x04zip", headers))
    assert (item.outcome, item.status, item.url, item.release) == ("fetched", 200, APRIL_2020, "2020-04")
    assert item.body == b"PK\x03\x04zip"
    assert (item.content_type, item.etag, item.last_modified) == (
        "application/zip",
        '"abc"',
        headers["Last-Modified"],
    )
    assert item.filename == "april-2020-alpha-numeric-hcpcs-file.zip"
    assert item.fetched_at.endswith("Z")


def test_document_callback_reports_304_as_not_modified() -> None:
    (item,) = CmsHcpcsSpider().parse_document(_doc_response(304, headers={"ETag": '"abc"'}))
    assert (item.outcome, item.status, item.body) == ("not_modified", 304, None)


# --- settings and the pieces the crawl is made of ------------------------------------------------


def test_settings_are_polite() -> None:
    s = build_settings()
    assert s.getbool("ROBOTSTXT_OBEY") and s.getbool("AUTOTHROTTLE_ENABLED") and s.getbool("RETRY_ENABLED")
    assert (
        s["USER_AGENT"]
        == "policysync/0.1 (+https://github.com/policysync/policysync; payer policy surveillance)"
    )
    assert s.getint("RETRY_TIMES") >= 2 and s.getfloat("DOWNLOAD_DELAY") >= 1
    assert not s.getbool("HTTPCACHE_ENABLED") and not s.getbool("REMOTE_CONTROL_ENABLED")
    assert s["LOG_LEVEL"] == "WARNING"
    assert s.getdict("ALLOWED_DOMAINS")["cms_hcpcs"] == ["www.cms.gov", "cms.gov", "downloads.cms.gov"]
    assert s["MIRROR_URL"] is None
    mirrored = build_settings("http://127.0.0.1:8765/", {"RETRY_TIMES": 5})
    assert mirrored["MIRROR_URL"] == "http://127.0.0.1:8765"
    assert mirrored.getfloat("DOWNLOAD_DELAY") == 0 and mirrored.getfloat("AUTOTHROTTLE_START_DELAY") < 0.1
    assert mirrored.getint("RETRY_TIMES") == 5


def test_retry_backoff_is_exponential_and_capped() -> None:
    mw = BackoffRetryMiddleware(Settings({"RETRY_BACKOFF_BASE": 2.0, "RETRY_BACKOFF_MAX": 10.0}))
    assert [mw.backoff_delay(n) for n in range(6)] == [0.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_mirror_mapping_both_ways() -> None:
    m = MirrorMap("http://127.0.0.1:8765")
    assert (
        m.to_mirror(f"{CMS}/files/zip/a.zip?x=1") == "http://127.0.0.1:8765/www.cms.gov/files/zip/a.zip?x=1"
    )
    assert m.to_real("http://127.0.0.1:8765/www.cms.gov/files/zip/a.zip?x=1") == f"{CMS}/files/zip/a.zip?x=1"
    here = "http://127.0.0.1:8765/www.cms.gov/files/zip/a.zip"
    assert (
        m.real_location("/evil.example/x.zip", here, f"{CMS}/files/zip/a.zip") == "https://evil.example/x.zip"
    )
    assert m.real_location("b.zip", here, f"{CMS}/files/zip/a.zip") == f"{CMS}/files/zip/b.zip"
    assert m.real_location("https://evil.example/x", here, "") == "https://evil.example/x"
    assert m.real_location("//evil.example/x", here, f"{CMS}/files/zip/a.zip") == "https://evil.example/x"
    assert mirror_path(f"{CMS}/files/zip/a.zip") == "/www.cms.gov/files/zip/a.zip"
    with pytest.raises(ValueError):
        MirrorMap("http://127.0.0.1:8765/some/prefix")


def test_every_source_id_names_its_spider() -> None:
    assert SPIDERS["cms_hcpcs"] is CmsHcpcsSpider
    assert all(cls.name == sid for sid, cls in SPIDERS.items())


def test_unknown_source_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown source 'nope'"):
        run_crawl("nope", blobs=BlobStore(tmp_path))


# --- whole crawls against the mirror -------------------------------------------------------------


def _by_url(outcomes: list[FetchOutcome]) -> dict[str, FetchOutcome]:
    by_url = {o.url: o for o in outcomes}
    assert len(by_url) == len(outcomes), "one outcome per document"
    return by_url


def test_whole_crawl_fetches_every_hcpcs_file(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with MirrorServer(shared_data) as mirror:
        outcomes = run_crawl("cms_hcpcs", blobs=blobs, mirror=mirror.url)
        served = {CMS + rel.path: mirror.document(f"/www.cms.gov{rel.path}").body() for rel in HCPCS_RELEASES}
        seen = [r.path for r in mirror.requests]
    by_url = _by_url(outcomes)
    assert set(by_url) == set(served)  # real URLs, every file, nothing else (no corrections, NOC, PDFs)
    releases = {CMS + rel.path: rel.release for rel in HCPCS_RELEASES}
    for url, o in by_url.items():
        body = served[url]
        assert (o.source, o.outcome, o.status, o.error) == ("cms_hcpcs", "fetched", 200, None)
        assert o.sha256 == hashlib.sha256(body).hexdigest() and o.size == len(body)
        assert blobs.get(o.sha256) == body
        assert o.release == releases[url]
        assert o.filename == url.rsplit("/", 1)[1]
        assert o.content_type == "application/zip"
        assert o.etag == f'"{o.sha256}"' and o.last_modified and o.fetched_at
    # the recorded annual zips are served byte for byte
    assert (
        by_url[ANNUAL_2019].sha256
        == hashlib.sha256(
            (shared_data / "hcpcs/annual_2019/2019-Alpha-Numeric-HCPCS-File.zip").read_bytes()
        ).hexdigest()
    )
    assert by_url[APRIL_2020].sha256 == hashlib.sha256(hcpcs_release_zip(shared_data, "2020-04")).hexdigest()
    assert seen[0] == "/www.cms.gov/robots.txt" and seen[1] == HCPCS_LANDING_PATH


def test_second_crawl_with_known_is_all_not_modified(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with MirrorServer(shared_data, releases=["2019-01", "2020-04", "2020-07"]) as mirror:
        first = run_crawl("cms_hcpcs", blobs=blobs, mirror=mirror.url)
        known = {o.url: Known(etag=o.etag, last_modified=o.last_modified, sha256=o.sha256) for o in first}
        mirror.requests.clear()
        second = run_crawl("cms_hcpcs", blobs=blobs, mirror=mirror.url, known=known)
        doc_requests = [r for r in mirror.requests if r.path.endswith(".zip")]
    assert {o.outcome for o in first} == {"fetched"}
    by_url = _by_url(second)
    assert set(by_url) == set(known)
    for url, o in by_url.items():
        assert (o.outcome, o.status, o.error, o.size) == ("not_modified", 304, None, None)
        assert o.sha256 == known[url].sha256 and o.etag == known[url].etag
    assert len(doc_requests) == 3
    for r in doc_requests:
        assert r.status == 304
        assert r.headers["If-None-Match"] == f'"{hashlib.sha256(mirror.document(r.path).body()).hexdigest()}"'
        assert r.headers["If-Modified-Since"]


def test_run_crawl_runs_many_times_in_one_process(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with MirrorServer(shared_data, releases=["2020-04"]) as mirror:
        runs = [run_crawl("cms_hcpcs", blobs=blobs, mirror=mirror.url) for _ in range(3)]
    assert [[(o.url, o.outcome, o.sha256) for o in run] for run in runs] == [
        [(APRIL_2020, "fetched", hashlib.sha256(hcpcs_release_zip(shared_data, "2020-04")).hexdigest())]
    ] * 3


def test_a_newly_published_quarter_is_fetched_and_the_rest_not_modified(
    shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with MirrorServer(shared_data, releases=["2020-04"]) as mirror:
        first = run_crawl("cms_hcpcs", blobs=blobs, mirror=mirror.url)
        known = {o.url: Known(o.etag, o.last_modified, o.sha256) for o in first}
        mirror.put(
            "/www.cms.gov/files/zip/july-2020-alpha-numeric-hcpcs-files.zip",
            hcpcs_release_zip(shared_data, "2020-07"),
            link_text="July 2020 Alpha-Numeric HCPCS Files (ZIP)",
        )
        second = run_crawl("cms_hcpcs", blobs=blobs, mirror=mirror.url, known=known)
    by_url = _by_url(second)
    assert by_url[APRIL_2020].outcome == "not_modified"
    new = by_url[f"{CMS}/files/zip/july-2020-alpha-numeric-hcpcs-files.zip"]
    assert (new.outcome, new.release) == ("fetched", "2020-07")


def test_redirect_off_the_allow_list_is_refused_and_reported(shared_data: Path, tmp_path: Path) -> None:
    overrides = {mirror_path(APRIL_2020): (302, {"Location": "/evil.example/x.zip"}, b"")}
    with MirrorServer(shared_data, overrides=overrides, releases=["2020-04", "2020-07"]) as mirror:
        outcomes = run_crawl("cms_hcpcs", blobs=BlobStore(tmp_path), mirror=mirror.url)
        asked = [r.path for r in mirror.requests]
    by_url = _by_url(outcomes)
    refused = by_url[APRIL_2020]
    assert (refused.outcome, refused.status, refused.sha256, refused.release) == (
        "error",
        None,
        None,
        "2020-04",
    )
    assert refused.error == (
        f"{APRIL_2020}: redirect to https://evil.example/x.zip refused: "
        "evil.example is not on the allow-list for cms_hcpcs"
    )
    assert by_url[JULY_2020].outcome == "fetched"
    assert not any(p.startswith("/evil.example") for p in asked)


def test_redirect_within_the_allow_list_is_followed(shared_data: Path, tmp_path: Path) -> None:
    target = f"{CMS}/files/zip/july-2020-alpha-numeric-hcpcs-file.zip"
    overrides = {mirror_path(APRIL_2020): (301, {"Location": target}, b"")}
    with MirrorServer(shared_data, overrides=overrides, releases=["2020-04", "2020-07"]) as mirror:
        outcomes = run_crawl("cms_hcpcs", blobs=BlobStore(tmp_path), mirror=mirror.url)
    by_url = _by_url(outcomes)
    assert by_url[APRIL_2020].outcome == "fetched"
    assert by_url[APRIL_2020].sha256 == by_url[JULY_2020].sha256  # the redirect target's bytes


def test_robots_txt_disallow_is_honoured(shared_data: Path, tmp_path: Path) -> None:
    overrides = {
        "/www.cms.gov/robots.txt": (
            200,
            {"Content-Type": "text/plain"},
            b"User-agent: *\nDisallow: /files/\n",
        )
    }
    with MirrorServer(shared_data, overrides=overrides, releases=["2019-01", "2020-04"]) as mirror:
        outcomes = run_crawl("cms_hcpcs", blobs=BlobStore(tmp_path), mirror=mirror.url)
        asked = [r.path for r in mirror.requests]
    by_url = _by_url(outcomes)
    assert by_url[ANNUAL_2019].outcome == "fetched"
    forbidden = by_url[APRIL_2020]
    assert (forbidden.outcome, forbidden.status) == ("error", None)
    assert forbidden.error == f"{APRIL_2020}: disallowed by robots.txt"
    assert mirror_path(APRIL_2020) not in asked


def test_server_error_is_retried_then_reported(shared_data: Path, tmp_path: Path) -> None:
    overrides = {mirror_path(APRIL_2020): (500, {"Content-Type": "text/plain"}, b"down")}
    with MirrorServer(shared_data, overrides=overrides, releases=["2020-04", "2020-07"]) as mirror:
        outcomes = run_crawl("cms_hcpcs", blobs=BlobStore(tmp_path), mirror=mirror.url)
        tries = mirror.requests_for(mirror_path(APRIL_2020))
    failed = _by_url(outcomes)[APRIL_2020]
    assert (failed.outcome, failed.status) == ("error", 500)
    assert failed.error == f"{APRIL_2020}: HTTP 500 Internal Server Error (after 2 retries)"
    assert len(tries) == 3  # RETRY_TIMES = 2


def test_not_found_is_reported(shared_data: Path, tmp_path: Path) -> None:
    overrides = {mirror_path(JULY_2020): (404, {"Content-Type": "text/html"}, b"<html>Page not found</html>")}
    with MirrorServer(shared_data, overrides=overrides, releases=["2020-04", "2020-07"]) as mirror:
        outcomes = run_crawl("cms_hcpcs", blobs=BlobStore(tmp_path), mirror=mirror.url)
        tries = mirror.requests_for(mirror_path(JULY_2020))
    by_url = _by_url(outcomes)
    assert (by_url[JULY_2020].outcome, by_url[JULY_2020].status) == ("error", 404)
    assert by_url[JULY_2020].error == f"{JULY_2020}: HTTP 404 Not Found"
    assert len(tries) == 1  # a 404 is not retried
    assert by_url[APRIL_2020].outcome == "fetched"


def test_landing_page_failure_is_an_error_outcome(shared_data: Path, tmp_path: Path) -> None:
    overrides = {HCPCS_LANDING_PATH: (503, {}, b"maintenance")}
    with MirrorServer(shared_data, overrides=overrides, releases=["2020-04"]) as mirror:
        (outcome,) = run_crawl("cms_hcpcs", blobs=BlobStore(tmp_path), mirror=mirror.url)
    assert (outcome.url, outcome.outcome, outcome.status) == (LANDING_URL, "error", 503)
    assert outcome.error == f"{LANDING_URL}: landing page: HTTP 503 Service Unavailable (after 2 retries)"


def test_landing_page_without_file_links_is_an_error_outcome(shared_data: Path, tmp_path: Path) -> None:
    overrides = {
        HCPCS_LANDING_PATH: (200, {"Content-Type": "text/html"}, b"<html><body>We moved.</body></html>")
    }
    with MirrorServer(shared_data, overrides=overrides) as mirror:
        (outcome,) = run_crawl("cms_hcpcs", blobs=BlobStore(tmp_path), mirror=mirror.url)
    assert (outcome.url, outcome.outcome, outcome.status) == (LANDING_URL, "error", 200)
    assert outcome.error == f"{LANDING_URL}: no HCPCS file links found on the landing page"


def test_connection_refused_is_an_error_outcome(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (outcome,) = run_crawl(
        "cms_hcpcs", blobs=BlobStore(tmp_path), mirror=f"http://127.0.0.1:{port}", settings={"RETRY_TIMES": 0}
    )
    assert (outcome.url, outcome.outcome, outcome.status, outcome.sha256) == (
        LANDING_URL,
        "error",
        None,
        None,
    )
    assert outcome.error is not None and outcome.error.startswith(f"{LANDING_URL}: landing page: ")
    assert "refused" in outcome.error.lower()
