"""What every policysync spider shares: start at one landing page, request the documents it links,
hand each fetched document (or the reason it could not be fetched) to the artifact pipeline.

A source's spider says only how its landing page links its documents: ``parse`` turns the page into
document requests (``self.document_request``) and reports a page without any (``self.no_links``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from crawlers.pipelines import DocumentItem, document_item, error_item, failure_item
from crawlers.runner import CrawlContext


def page_links(response: Response) -> Iterator[tuple[str, str]]:
    """Every followable ``<a href>`` of a page as ``(href, link text with whitespace collapsed)``, in
    page order; fragments, mailto: and javascript: links are left out."""
    for a in response.css("a[href]"):
        href = (a.attrib.get("href") or "").strip()
        if not href or href.startswith(("#", "mailto:", "javascript:")):
            continue
        yield href, " ".join(" ".join(a.css("::text").getall()).split())


T = TypeVar("T")


def sort_links(
    response: Response, info: Callable[[str, str], T | None], looks_like: Callable[[str, str], bool]
) -> tuple[list[tuple[str, T]], list[str]]:
    """A landing page's links as ``([(absolute url, info(href, text))...], [urls that look like a
    document (``looks_like``) but that ``info`` cannot place: no release, setting or kind])``, in page
    order, each URL once."""
    found: list[tuple[str, T]] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for href, text in page_links(response):
        url = response.urljoin(href)
        if url in seen:
            continue
        got = info(href, text)
        if got is not None:
            seen.add(url)
            found.append((url, got))
        elif looks_like(href, text):
            seen.add(url)
            unknown.append(url)
    return found, unknown


class LandingPageSpider(scrapy.Spider):
    landing_url: str = ""

    def __init__(self, *args: Any, ctx: CrawlContext | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ctx = ctx if ctx is not None else CrawlContext(source=self.name)

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(self.landing_url, callback=self.parse, errback=self.landing_failed, dont_filter=True)

    def document_request(self, url: str, meta: dict[str, Any]) -> scrapy.Request:
        """A request for one document; ``meta`` carries release, filename and the like."""
        return scrapy.Request(
            url, callback=self.parse_document, errback=self.document_failed, meta={"doc_url": url, **meta}
        )

    def report_unrecognised(self, urls: Iterable[str], what: str) -> None:
        """Links that look like documents but whose quarter (or setting) cannot be told: logged and
        counted, never guessed."""
        for url in urls:
            self.logger.warning("%s: %s link without %s (not fetched): %s", self.name, *what.split("|", 1), url)
            self.crawler.stats.inc_value(f"{self.name}/undated_link")

    def no_links(self, response: Response, what: str) -> DocumentItem:
        return error_item(
            self.name, self.landing_url, f"no {what} links found on the landing page", status=response.status
        )

    def parse_document(self, response: Response) -> Iterator[DocumentItem]:
        yield document_item(self.name, response)

    def document_failed(self, failure: Failure) -> Iterator[DocumentItem]:
        yield failure_item(self.name, failure)

    def landing_failed(self, failure: Failure) -> Iterator[DocumentItem]:
        yield failure_item(self.name, failure, url=self.landing_url, prefix="landing page: ")
