"""The icd10cm spider: link recognition, and Scrapy over 127.0.0.1 through the loopback mirror
(constructed CMS ICD-10 landing and fiscal-year pages, the recorded April 2026 files zipped on the fly)."""

from __future__ import annotations

import zipfile
from io import BytesIO
from pathlib import Path

from scrapy.http import HtmlResponse, Request

from crawlers.runner import run_crawl
from crawlers.spiders import SPIDERS
from crawlers.spiders.icd10cm import LANDING_URL, CmsIcd10cmSpider, icd10cm_link_info, year_page_year
from policysync.mirror import MirrorServer
from policysync.mirror_icd10cm import ICD10_LANDING_PATH, publish_icd10cm, year_page_path
from rulebook.blobs import BlobStore

TABLES = "https://www.cms.gov/files/zip/april-1-2026-code-tables-tabular-and-index.zip"
ORDER = "https://www.cms.gov/files/zip/april-1-2026-code-descriptions-tabular-order.zip"


def test_registered() -> None:
    assert SPIDERS["icd10cm"] is CmsIcd10cmSpider


def test_link_info() -> None:
    assert icd10cm_link_info("/files/zip/2026-code-tables-tabular-and-index.zip") == ("tabular", "2025-10")
    assert icd10cm_link_info("/files/zip/2026-code-descriptions-tabular-order.zip") == ("order", "2025-10")
    assert icd10cm_link_info("/files/zip/april-1-2026-code-tables-tabular-and-index.zip") == ("tabular", "2026-04")
    assert icd10cm_link_info("/files/zip/april-1-2026-code-descriptions-tabular-order.zip") == ("order", "2026-04")
    # a re-issue with the date in its name (slashes and all), as CMS published FY2024's
    assert icd10cm_link_info("/files/zip/2024-code-tables-tabular-and-index-updated-02/01/2024.zip") == (
        "tabular",
        "2023-10",
    )
    assert icd10cm_link_info("/files/zip/2026-icd-10-pcs-codes-file.zip") is None
    assert icd10cm_link_info("/files/document/fy-2026-icd-10-cm-coding-guidelines.pdf") is None
    assert year_page_year("/medicare/coding-billing/icd-10-codes/2026-icd-10-cm") == 2026
    assert year_page_year("/medicare/coding-billing/icd-10-codes/2026-icd-10-pcs") is None


def test_landing_page_links_the_year_page(shared_data: Path) -> None:
    mirror = MirrorServer(shared_data, sources=["icd10cm"])
    body = mirror.document(ICD10_LANDING_PATH).body()
    assert b"CONSTRUCTED PAGE" in body
    resp = HtmlResponse(LANDING_URL, body=body, request=Request(LANDING_URL))
    followed = [r.url for r in CmsIcd10cmSpider().parse(resp)]
    assert followed == [f"{LANDING_URL}/2026-icd-10-cm"]  # not the ICD-10-PCS page


def _crawl(mirror: MirrorServer, tmp_path: Path, **kwargs: object) -> dict[str, object]:
    blobs = BlobStore(tmp_path / "blobs")
    outs = run_crawl("icd10cm", blobs=blobs, mirror=mirror.url, spider_kwargs=kwargs or None)
    return {o.url: (o, blobs) for o in outs}


def test_crawl_takes_the_tabular_zip(shared_data: Path, tmp_path: Path) -> None:
    with MirrorServer(shared_data, sources=["icd10cm"]) as mirror:
        outs = _crawl(mirror, tmp_path)
        served = mirror.document(f"/www.cms.gov{TABLES.partition('www.cms.gov')[2]}").body()
    assert list(outs) == [TABLES]
    out, blobs = outs[TABLES]  # type: ignore[misc]
    assert (out.outcome, out.release, out.status) == ("fetched", "2026-04", 200)
    body = blobs.get(out.sha256)
    assert body == served
    with zipfile.ZipFile(BytesIO(body)) as zf:
        assert zf.namelist() == ["Table and Index/icd10cm_tabular_2026.xml"]
        assert zf.read(zf.namelist()[0]) == (shared_data / "icd10cm/icd10cm_tabular_2026_April-1.xml").read_bytes()


def test_crawl_both_kinds_and_a_new_year(shared_data: Path, tmp_path: Path) -> None:
    with MirrorServer(shared_data, sources=["icd10cm"]) as mirror:
        # constructed: CMS posts FY2027 (its page appears on the landing page)
        publish_icd10cm(
            mirror, 2027, "/files/zip/2027-code-descriptions-tabular-order.zip", b"PK constructed",
            link_text="2027 Code Descriptions in Tabular Order (ZIP)",
        )  # fmt: skip
        outs = _crawl(mirror, tmp_path, files=("tabular", "order"))
        assert year_page_path(2027) in mirror.paths()
        again = _crawl(mirror, tmp_path, files=("order",))
    releases = {url: o.release for url, (o, _) in outs.items()}  # type: ignore[misc]
    assert releases == {
        TABLES: "2026-04",
        ORDER: "2026-04",
        "https://www.cms.gov/files/zip/2027-code-descriptions-tabular-order.zip": "2026-10",
    }
    assert TABLES not in again and ORDER in again


def test_landing_page_without_links(shared_data: Path, tmp_path: Path) -> None:
    with MirrorServer(shared_data, sources=["icd10cm"]) as mirror:
        mirror.override(ICD10_LANDING_PATH, 200, {"Content-Type": "text/html"}, b"<html><body>moved</body></html>")
        outs = _crawl(mirror, tmp_path)
    ((out, _),) = outs.values()  # type: ignore[misc]
    assert out.outcome == "error" and "no ICD-10-CM fiscal-year page or code-set zip links" in (out.error or "")
