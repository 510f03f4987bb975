"""icd10cm: the ICD-10-CM code set from the CMS "ICD-10" pages (DOMAIN.md §3.9).

The landing page https://www.cms.gov/medicare/coding-billing/icd-10-codes links one page per fiscal
year ("2026 ICD-10-CM", ``.../icd-10-codes/2026-icd-10-cm``); each links the year's zips, e.g.

* ``/files/zip/2026-code-descriptions-tabular-order.zip`` (the fixed-width order file; kind "order"),
* ``/files/zip/2026-code-tables-tabular-and-index.zip`` (the tabular list XML; kind "tabular"),
* the April 1 update: ``april-1-2026-code-descriptions-tabular-order.zip``,
  ``april-1-2026-code-tables-tabular-and-index.zip``; re-issues carry a suffix
  (``2024-code-tables-tabular-and-index-updated-02/01/2024.zip``).

Names as public downloaders record them; the spider reads the pages and never builds URLs. Zips
linked straight from the landing page are taken too. Only the ``max_years`` newest fiscal-year pages
are followed (the current year, and the next one once CMS posts it in summer). The release is the
first month the code set is in force: FY2026 base = "2025-10", its April update = "2026-04".

Which files feed the rulebook is ``files``: by default only the tabular list, which is the whole code
set (categories, subcategories and seventh-character codes) in one document per release. The order
file states the same codes with short descriptions (``files=("order",)`` takes it instead); taking
both would give two statements of one release.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from scrapy.http import Response

from crawlers.pipelines import filename_of
from crawlers.spiders._base import LandingPageSpider, page_links

__all__ = ["LANDING_URL", "CmsIcd10cmSpider", "icd10cm_link_info", "year_page_year"]

LANDING_URL = "https://www.cms.gov/medicare/coding-billing/icd-10-codes"

_FILE = re.compile(
    r"^(?:(april)-1-)?(20\d{2})-code-(tables-(?:tabular-)?and-index|descriptions-(?:in-)?tabular-order)(?![a-z])",
    re.IGNORECASE,
)
_YEAR_PAGE = re.compile(r"/icd-10-codes/(20\d{2})-icd-10-cm/?$", re.IGNORECASE)
_LOOKS_ICD10CM = re.compile(r"code-(?:tables|descriptions)", re.IGNORECASE)


def icd10cm_link_info(href: str) -> tuple[str, str] | None:
    """``(kind, release)`` for a link to an ICD-10-CM code-set zip, else None.

    ``kind`` is "tabular" (code tables, tabular and index) or "order" (code descriptions in tabular
    order); ``release`` "2025-10" for the FY2026 base files, "2026-04" for the April 1 2026 update.
    """
    name = unquote(PurePosixPath(urlsplit(href.strip()).path).name)
    if not name.lower().endswith(".zip"):
        # "...-updated-02/01/2024.zip" puts slashes in the name: look at the whole path's tail too.
        return None
    path = unquote(urlsplit(href.strip()).path)
    tail = path.split("/files/zip/", 1)[-1] if "/files/zip/" in path else name
    m = _FILE.match(tail)
    if m is None:
        return None
    april, year, what = m.group(1), int(m.group(2)), m.group(3).lower()
    kind = "tabular" if what.startswith("tables") else "order"
    release = f"{year}-04" if april else f"{year - 1}-10"
    return kind, release


def year_page_year(href: str) -> int | None:
    """2026 for a link to ``.../icd-10-codes/2026-icd-10-cm``, else None (ICD-10-PCS pages too)."""
    m = _YEAR_PAGE.search(urlsplit(href.strip()).path)
    return int(m.group(1)) if m else None


class CmsIcd10cmSpider(LandingPageSpider):
    name = "icd10cm"
    landing_url = LANDING_URL
    files: tuple[str, ...] = ("tabular",)
    max_years = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        files = kwargs.pop("files", None)
        super().__init__(*args, **kwargs)
        if files is not None:
            self.files = tuple(files)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """The landing page: its fiscal-year pages (newest ``max_years``), and any zips it links itself."""
        years: dict[int, str] = {}
        for href, _text in page_links(response):
            year = year_page_year(href)
            if year is not None:
                years.setdefault(year, response.urljoin(href))
        direct = list(self._documents(response))
        yield from direct
        if not years and not direct:
            yield self.no_links(response, "ICD-10-CM fiscal-year page or code-set zip")
            return
        for year in sorted(years, reverse=True)[: self.max_years]:
            yield response.follow(years[year], callback=self.parse_year, errback=self.landing_failed, meta={"fy": year})

    def parse_year(self, response: Response) -> Iterator[Any]:
        """A fiscal-year page: one request per wanted code-set zip."""
        found = list(self._documents(response))
        if not found:
            self.logger.warning("%s: no ICD-10-CM code-set zip on %s", self.name, response.url)
            self.crawler.stats.inc_value(f"{self.name}/empty_year_page")
        yield from found

    def _documents(self, response: Response) -> Iterator[Any]:
        unknown: list[str] = []
        seen: set[str] = set()
        for href, _text in page_links(response):
            url = response.urljoin(href)
            if url in seen:
                continue
            info = icd10cm_link_info(href)
            if info is None:
                name = PurePosixPath(urlsplit(href).path).name
                if name.lower().endswith(".zip") and _LOOKS_ICD10CM.search(name) and "pcs" not in name.lower():
                    unknown.append(url)
                continue
            seen.add(url)
            kind, release = info
            if kind in self.files:
                yield self.document_request(url, {"release": release, "kind": kind, "filename": filename_of(url)})
        self.report_unrecognised(unknown, "ICD-10-CM zip|a fiscal year")
