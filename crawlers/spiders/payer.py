"""One spider for every configured payer document set (``[sources.<payer>_<docset>]``, ``parser = "payer"``).

The config entry says where to look and what to take, so a payer whose index page is a plain list of
policy links needs only a config entry:

- ``index_urls``: the index page(s) that link the policies;
- ``link_patterns``: regular expressions a link's absolute URL must match (any of them);
- ``document_kinds``: ``["pdf"]``, ``["html"]`` or both (a link to a ``.pdf`` is a PDF, anything else HTML);
- ``allowed_domains``: extra hosts the documents live on (the index pages' hosts are always allowed);
- ``lines_of_business``, ``states``: carried to the parser and into the rules.

The spider only discovers links and fetches (CONVENTIONS.md 2). Each document's release is the UTC date
it was fetched on, so a later fetch of a policy is a later release of it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlparse

import scrapy
from scrapy.http import Response

from crawlers.pipelines import DocumentItem
from crawlers.spiders._base import LandingPageSpider, page_links


def _hosts(config: dict[str, Any]) -> list[str]:
    hosts = [urlparse(u).hostname or "" for u in config.get("index_urls") or []]
    hosts += list(config.get("allowed_domains") or [])
    return sorted({h.lower() for h in hosts if h})


class PayerSpider(LandingPageSpider):
    name = "payer"

    def __init__(self, *args: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = dict(config or {})
        self.index_urls: list[str] = list(self.config.get("index_urls") or [])
        self.patterns = [re.compile(p) for p in self.config.get("link_patterns") or [r"\.pdf$"]]
        self.kinds = set(self.config.get("document_kinds") or ["pdf", "html"])

    @classmethod
    def allowed_hosts(cls, spider_kwargs: dict[str, Any]) -> list[str]:
        return _hosts(spider_kwargs.get("config") or {})

    async def start(self) -> AsyncIterator[Any]:
        for url in self.index_urls:
            yield scrapy.Request(
                url, callback=self.parse, errback=self.landing_failed, dont_filter=True, meta={"index_url": url}
            )

    def wanted(self, url: str) -> bool:
        kind = "pdf" if urlparse(url).path.lower().endswith(".pdf") else "html"
        return kind in self.kinds and any(p.search(url) for p in self.patterns)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[scrapy.Request | DocumentItem]:
        self.landing_url = response.meta.get("index_url", response.url)
        found = 0
        seen: set[str] = set()
        release = datetime.now(UTC).strftime("%Y-%m-%d")
        for href, _text in page_links(response):
            url = urljoin(self.landing_url, href)
            if url in seen or not self.wanted(url):
                continue
            seen.add(url)
            found += 1
            yield self.document_request(url, {"release": release})
        if not found:
            yield self.no_links(response, "policy document")
