"""The cms_mcd spider against the loopback mirror: the downloads page (constructed), the licence page
(constructed) and an export linked directly (redirected to the licence page, then accepted)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from scrapy.http import HtmlResponse, Request

from crawlers.runner import run_crawl
from crawlers.spiders import SPIDERS
from crawlers.spiders.cms_mcd import EXPORTS_BASE, CmsMcdSpider, export_links
from policysync.mirror import MirrorServer
from policysync.mirror_mcd import LANDING_PATH, export_zip, mirror_file_path, publish_export
from rulebook.blobs import BlobStore
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"


def test_registered() -> None:
    assert SPIDERS["cms_mcd"] is CmsMcdSpider


def test_export_links_on_the_mirror_page(shared_data: Path) -> None:
    body = MirrorServer(shared_data, sources=["cms_mcd"]).document(f"/www.cms.gov{LANDING_PATH}").body()
    url = f"https://www.cms.gov{LANDING_PATH}"
    resp = HtmlResponse(url, body=body, request=Request(url))
    links = export_links(resp)
    assert [(name, gated) for name, _, gated in links] == [("current_article", True), ("current_lcd", True)]
    assert links[0][1] == (
        "https://www.cms.gov/medicare-coverage-database/downloads/license.aspx"
        "?file=/medicare-coverage-database/downloads/exports/current_article.zip"
    )


def test_direct_links_and_plain_hrefs() -> None:
    url = "https://www.cms.gov/medicare-coverage-database/downloads/downloads.aspx"
    html = (
        b'<a href="https://downloads.cms.gov/medicare-coverage-database/downloads/exports/all_article.zip">All</a>'
        b'<a href="/x/current_lcd.zip">LCDs</a><a href="/x/readme.pdf">readme</a>'
    )
    links = export_links(HtmlResponse(url, body=html, request=Request(url)))
    assert [(n, g) for n, _, g in links] == [("all_article", False), ("current_lcd", False)]


def test_crawl_accepts_the_licence_page(shared_data: Path, tmp_path: Path) -> None:
    body = export_zip("current_article", [shared_data / "mcd/export_2026-01/current_article/csv", FIXTURES])
    with MirrorServer(shared_data, sources=["cms_mcd"]) as mirror:
        publish_export(mirror, "current_article", body, last_modified=datetime(2026, 1, 8, 14, 0, tzinfo=UTC))
        blobs = BlobStore(tmp_path / "blobs")
        outs = {o.url: o for o in run_crawl("cms_mcd", blobs=blobs, mirror=mirror.url)}
    art = outs[f"{EXPORTS_BASE}current_article.zip"]
    assert (art.outcome, art.release) == ("fetched", "2026-01-08")  # the export's Last-Modified date
    assert blobs.get(art.sha256) == body
    gate = [r for r in mirror.requests if "license.aspx" in r.path]
    assert gate and gate[0].status == 200


def test_a_direct_link_is_redirected_to_the_licence_page_and_accepted(shared_data: Path, tmp_path: Path) -> None:
    """A downloads page that links the zip itself: the mirror (like the real site's modal) answers the
    file with the licence page first; the spider accepts it and gets the file."""
    body = export_zip("current_article", [shared_data / "mcd/export_2026-01/current_article/csv", FIXTURES])
    page = (
        b"<html><body><!-- constructed --><a href='https://downloads.cms.gov/medicare-coverage-database/downloads/"
        b"exports/current_article.zip'>Current Articles</a></body></html>"
    )
    with MirrorServer(shared_data, sources=["cms_mcd"]) as mirror:
        publish_export(mirror, "current_article", body)
        mirror.override(f"/www.cms.gov{LANDING_PATH}", 200, {"Content-Type": "text/html"}, page)
        blobs = BlobStore(tmp_path / "blobs")
        outs = {o.url: o for o in run_crawl("cms_mcd", blobs=blobs, mirror=mirror.url)}
    art = outs[f"{EXPORTS_BASE}current_article.zip"]
    assert art.outcome == "fetched", art.error
    assert blobs.get(art.sha256) == body
    first = [r for r in mirror.requests if r.path == mirror_file_path("current_article")]
    assert first and first[0].status == 302  # asked without accepting: sent to the licence page


def test_history_exports_on_request(shared_data: Path, tmp_path: Path) -> None:
    body = export_zip("all_article", [shared_data / "mcd/export_2026-01/current_article/csv", FIXTURES])
    with MirrorServer(shared_data, sources=["cms_mcd"]) as mirror:
        publish_export(mirror, "all_article", body)
        outs = run_crawl(
            "cms_mcd", blobs=BlobStore(tmp_path / "b"), mirror=mirror.url, spider_kwargs={"exports": "all_article"}
        )
    assert [(o.url, o.outcome) for o in outs] == [(f"{EXPORTS_BASE}all_article.zip", "fetched")]
