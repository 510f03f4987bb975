"""cms_mcd: the Medicare Coverage Database bulk exports (DOMAIN.md §3.2).

The MCD downloads page (``https://www.cms.gov/medicare-coverage-database/downloads/downloads.aspx``)
offers ``current_article.zip``, ``current_lcd.zip`` and the ``all_*`` history exports, served from
``https://downloads.cms.gov/medicare-coverage-database/downloads/exports/``. A download first shows the
AMA/ADA/AHA licence agreement; the spider accepts it as a person does (the Accept form or link of the
licence page, the same helper as ``cms_ncci_ptp``), and a file asked for directly is redirected to
that page, which the spider also accepts.

The spider fetches the exports of :attr:`CmsMcdSpider.exports` (the two current ones; the
``exports`` spider argument asks for others, e.g. ``"all_article,all_lcd"`` for the history
exports). The document URL recorded is the export's own URL without the licence parameters, so
conditional requests make an unchanged weekly export a 304.
The release is the export's Last-Modified date (``2026-01-08``): the exports are refreshed weekly,
on Thursdays, and carry no date of their own. It never opens a zip: ``parsers/cms_mcd.py`` does.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from crawlers.pipelines import DocumentItem, document_item, error_item, failure_item
from crawlers.spiders._base import LandingPageSpider, page_links
from crawlers.spiders.cms_ncci_ptp import accept_request

LANDING_URL = "https://www.cms.gov/medicare-coverage-database/downloads/downloads.aspx"
EXPORTS_BASE = "https://downloads.cms.gov/medicare-coverage-database/downloads/exports/"
_EXPORT = re.compile(r"(?:^|/)((?:current|all)_(?:article|lcd|data)|ncd)\.zip$", re.IGNORECASE)


def export_links(response: Response) -> list[tuple[str, str, bool]]:
    """``(export name, href to follow, through the licence page)`` of each export the page links."""
    out: list[tuple[str, str, bool]] = []
    seen: set[str] = set()
    for href, _text in page_links(response):
        target = href
        gated = False
        query = parse_qs(urlsplit(href).query)
        if "file" in query:
            target = unquote(query["file"][0])
            gated = True
        m = _EXPORT.search(urlsplit(target).path if "://" in target else target.split("?")[0])
        if not m:
            continue
        name = m.group(1).lower()
        if name not in seen:
            seen.add(name)
            out.append((name, response.urljoin(href), gated))
    return out


def _release(response: Response) -> str | None:
    value = response.headers.get("Last-Modified")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value.decode("latin-1")).date().isoformat()
    except (TypeError, ValueError):
        return None


class CmsMcdSpider(LandingPageSpider):
    name = "cms_mcd"
    landing_url = LANDING_URL
    exports: tuple[str, ...] = ("current_article", "current_lcd")

    def __init__(self, *args: Any, exports: str | tuple[str, ...] | None = None, **kwargs: Any) -> None:
        """``exports``: which exports to fetch, a tuple or a comma-separated string
        (``run_crawl("cms_mcd", ..., spider_kwargs={"exports": "all_article,all_lcd"})``)."""
        super().__init__(*args, **kwargs)
        if exports:
            names = exports.split(",") if isinstance(exports, str) else list(exports)
            self.exports = tuple(n.strip().lower().removesuffix(".zip") for n in names if n.strip())

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        links = [link for link in export_links(response) if link[0] in self.exports]
        if not links:
            yield self.no_links(response, "MCD export (" + ", ".join(f"{e}.zip" for e in self.exports) + ")")
            return
        for name, href, gated in links:
            file_url = f"{EXPORTS_BASE}{name}.zip"
            meta = {"filename": f"{name}.zip", "export": name}
            if gated:
                yield scrapy.Request(
                    href,
                    callback=self.parse_gate,
                    errback=self.gate_failed,
                    meta=meta | {"gate_for": file_url},
                    dont_filter=True,
                )
            else:
                yield self.document_request(file_url, meta | {"gated": True})

    def parse_gate(self, response: Response) -> Iterator[Any]:
        file_url = response.meta["gate_for"]
        meta = {"filename": response.meta["filename"], "doc_url": file_url, "gated": True}
        request = accept_request(
            response, callback=self.parse_document, errback=self.document_failed, meta=meta, dont_filter=True
        )
        if request is None:
            yield error_item(
                self.name,
                file_url,
                f"license gate: no Accept form or link on {response.url}",
                status=response.status,
                filename=meta["filename"],
            )
            return
        yield request

    def parse_document(self, response: Response) -> Iterator[Any]:  # type: ignore[override]
        content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1").lower()
        if response.status != 304 and content_type.startswith("text/html"):
            # A direct request redirected to the licence page: accept it now.
            if response.meta.get("gate_retry") is None:
                request = accept_request(
                    response,
                    callback=self.parse_document,
                    errback=self.document_failed,
                    meta={**response.meta, "gate_retry": 1},
                    dont_filter=True,
                )
                if request is not None:
                    yield request
                    return
            yield error_item(
                self.name,
                response.meta["doc_url"],
                f"license gate: accepting led to an HTML page ({response.url}), not the export",
                status=response.status,
                filename=response.meta.get("filename"),
            )
            return
        response.meta["release"] = _release(response) or response.meta.get("release")
        yield document_item(self.name, response)

    def gate_failed(self, failure: Failure) -> Iterator[DocumentItem]:
        request = getattr(failure, "request", None)
        file_url = request.meta.get("gate_for") if request is not None else None
        yield failure_item(self.name, failure, url=file_url, prefix="license gate: ")
