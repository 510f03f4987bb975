"""The cms_asp spider: link reading on its own, the landing-page callback on a built response, and a
whole crawl against the loopback mirror (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse

from crawlers.pipelines import DocumentItem
from crawlers.runner import Known, build_settings, run_crawl
from crawlers.spiders import SPIDERS
from crawlers.spiders.cms_asp import LANDING_URL, CmsAspSpider, asp_file_links, asp_link_info
from policysync.mirror import MirrorServer, mirror_path
from policysync.mirror_asp import ASP_LANDING_PATH
from rulebook.blobs import BlobStore

CMS = "https://www.cms.gov"


@pytest.mark.parametrize(
    ("href", "text", "expected"),
    [
        # Link shapes recorded by public downloaders of the page (see crawlers/spiders/cms_asp.py).
        ("/files/zip/january-2025-asp-pricing-file.zip", "", ("pricing", "2025-01")),
        ("/files/zip/october-2025-asp-pricing-final-file.zip", "", ("pricing", "2025-10")),
        (
            "/files/zip/april-2026-medicare-part-b-payment-limit-files-03-30-2026-final-file.zip",
            "",
            ("pricing", "2026-04"),
        ),
        ("/files/zip/october-2021-asp-ndc-hcpcs-crosswalk.zip", "", ("crosswalk", "2021-10")),
        ("/files/zip/october-2025-asp-ndc-hcpcs-crosswalk-final-file.zip", "", ("crosswalk", "2025-10")),
        ("/files/zip/April_2020_ASP_Pricing_File_updated_022421.zip", "", ("pricing", "2020-04")),
        ("/files/zip/2013-July-ASP-Pricing-File.zip", "", ("pricing", "2013-07")),
        ("/files/zip/asp-file.zip", "July 2024 ASP Pricing File (ZIP)", ("pricing", "2024-07")),
    ],
)
def test_asp_link_info_reads_kind_and_quarter(href: str, text: str, expected: tuple[str, str]) -> None:
    assert asp_link_info(href, text) == expected


@pytest.mark.parametrize(
    ("href", "text"),
    [
        ("/files/zip/october-2025-asp-noc-pricing-file.zip", ""),
        ("/files/zip/january-2026-awp-ndc-hcpcs-crosswalk.zip", ""),
        ("/files/zip/january-2026-opps-ndc-hcpcs-crosswalk.zip", ""),
        ("/files/zip/january-2026-drugs-not-payable.zip", "Payment limit: drugs not payable"),
        ("/files/document/january-2026-asp-pricing-file.pdf", ""),
        ("/files/zip/october-2025-asp-pricing-file.zip", "July 2025 ASP Pricing File"),  # name and text disagree
        ("/files/zip/march-2025-asp-pricing-file.zip", ""),  # not a quarter's first month
    ],
)
def test_asp_link_info_skips_everything_else(href: str, text: str) -> None:
    assert asp_link_info(href, text) is None


def test_link_discovery_reports_an_undatable_asp_link() -> None:
    body = b"""<html><body>
      <a href="/files/zip/july-2025-asp-pricing-file.zip">July 2025</a>
      <a href="https://www.cms.gov/files/zip/july-2025-asp-pricing-file.zip">again</a>
      <a href="/files/zip/latest-asp-pricing-file.zip">ASP Pricing File (ZIP)</a>
    </body></html>"""
    links, unknown = asp_file_links(HtmlResponse(url=LANDING_URL, body=body, request=Request(LANDING_URL)))
    assert links == [(f"{CMS}/files/zip/july-2025-asp-pricing-file.zip", "pricing", "2025-07")]
    assert unknown == [f"{CMS}/files/zip/latest-asp-pricing-file.zip"]


def test_landing_page_without_asp_links_is_an_error_item() -> None:
    body = b"<html><body><a href='/files/zip/october-2025-alpha-numeric-hcpcs-file.zip'>HCPCS</a></body></html>"
    (item,) = CmsAspSpider().parse(HtmlResponse(url=LANDING_URL, body=body, request=Request(LANDING_URL)))
    assert isinstance(item, DocumentItem) and item.outcome == "error"
    assert item.error == f"{LANDING_URL}: no ASP payment limit or NDC-HCPCS crosswalk links found on the landing page"


def test_spider_is_registered_with_its_allow_list() -> None:
    assert SPIDERS["cms_asp"] is CmsAspSpider
    assert build_settings().getdict("ALLOWED_DOMAINS")["cms_asp"] == ["www.cms.gov", "cms.gov"]


def test_landing_page_callback_requests_nine_quarters_of_both_files(shared_data: Path) -> None:
    mirror = MirrorServer(shared_data, sources=["cms_asp"])
    body = mirror.document(ASP_LANDING_PATH).body()  # rendered, no socket
    out = list(CmsAspSpider().parse(HtmlResponse(url=LANDING_URL, body=body, request=Request(LANDING_URL))))
    assert all(isinstance(r, Request) for r in out)
    got = {(r.meta["kind"], r.meta["release"]) for r in out}
    quarters = {f"{y}-{m:02d}" for y in (2024, 2025) for m in (1, 4, 7, 10)} | {"2026-01"}
    assert got == {(k, q) for k in ("pricing", "crosswalk") for q in quarters}
    # The constructed page also links a NOC pricing file and an AWP crosswalk: never requested.
    assert not any("noc" in r.url or "awp" in r.url for r in out)
    assert f"{CMS}/files/zip/january-2026-medicare-part-b-payment-limit-files.zip" in {r.url for r in out}


def test_whole_crawl_fetches_the_zips_and_then_gets_304s(shared_data: Path, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with MirrorServer(shared_data, sources=["cms_asp"], releases=["2025-10"]) as mirror:
        first = run_crawl("cms_asp", blobs=blobs, mirror=mirror.url)
        known = {o.url: Known(etag=o.etag, last_modified=o.last_modified, sha256=o.sha256) for o in first}
        second = run_crawl("cms_asp", blobs=blobs, mirror=mirror.url, known=known)
        served = {o.url: mirror.document(mirror_path(o.url)).body() for o in first}
    assert {o.url for o in first} == {
        f"{CMS}/files/zip/october-2025-asp-pricing-file.zip",
        f"{CMS}/files/zip/october-2025-asp-ndc-hcpcs-crosswalk.zip",
    }
    for o in first:
        assert (o.source, o.outcome, o.status, o.release) == ("cms_asp", "fetched", 200, "2025-10")
        assert o.sha256 == hashlib.sha256(served[o.url]).hexdigest()
        names = zipfile.ZipFile(io.BytesIO(blobs.get(o.sha256 or ""))).namelist()
        assert len(names) == 1 and names[0].startswith("section 508 version of Oct")
    assert {(o.outcome, o.status) for o in second} == {("not_modified", 304)}
