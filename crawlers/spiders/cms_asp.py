"""cms_asp: the CMS Medicare Part B drug payment limit files and ASP NDC-HCPCS crosswalks
(DOMAIN.md §3.8).

The spider reads the CMS "ASP Pricing Files" page and keeps the links to the quarterly zips of two
kinds: the payment limit file (``january-2025-asp-pricing-file.zip``, ``october-2025-asp-pricing-
final-file.zip``; from 2026 ``april-2026-medicare-part-b-payment-limit-files-03-30-2026-final-file.zip``)
and the ASP NDC-HCPCS crosswalk (``october-2021-asp-ndc-hcpcs-crosswalk.zip``). Link shapes are as
public repositories that download them record; names change often, so the page is read and URLs are
never built. The quarter comes from the month and year in the file name (else the link text); it is
the release (``"2025-10"``). The parser checks it against the file's own "Effective ..." line.

Sibling files on the same page are not these facts and are skipped: NOC pricing and NOC crosswalks,
the AWP and OPPS crosswalks, "drugs not payable" lists and restated/archived files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from scrapy.http import Response

from crawlers.pipelines import filename_of
from crawlers.spiders._base import LandingPageSpider, sort_links

__all__ = ["LANDING_URL", "CmsAspSpider", "asp_file_links", "asp_link_info"]

LANDING_URL = "https://www.cms.gov/medicare/payment/part-b-drugs/asp-pricing-files"

_PRICING = re.compile(r"asp[^a-z0-9]*pricing|payment[^a-z0-9]*limit", re.IGNORECASE)
_CROSSWALK = re.compile(r"ndc[^a-z0-9]*(?:to[^a-z0-9]*)?hcpcs|crosswalk", re.IGNORECASE)
_NOT_THESE = re.compile(
    r"(?<![a-z])noc(?![a-z])|not[^a-z0-9]*otherwise|(?<![a-z])awp(?![a-z])|(?<![a-z])opps(?![a-z])"
    r"|not[^a-z0-9]*payable|restat|archive|addendum|faq",
    re.IGNORECASE,
)
_MONTH_YEAR = re.compile(
    r"(?<![a-z])(jan(?:uary)?|apr(?:il)?|july?|oct(?:ober)?)[^a-z0-9]*(20\d{2})(?!\d)", re.IGNORECASE
)
_YEAR_MONTH = re.compile(
    r"(?<!\d)(20\d{2})[^a-z0-9]*(jan(?:uary)?|apr(?:il)?|july?|oct(?:ober)?)(?![a-z])", re.IGNORECASE
)
_MONTH = {"jan": 1, "apr": 4, "jul": 7, "oct": 10}


def _release(text: str) -> str | None:
    m = _MONTH_YEAR.search(text)
    if m:
        return f"{int(m.group(2)):04d}-{_MONTH[m.group(1)[:3].lower()]:02d}"
    m = _YEAR_MONTH.search(text)
    if m:
        return f"{int(m.group(1)):04d}-{_MONTH[m.group(2)[:3].lower()]:02d}"
    return None


def _kind(text: str) -> str | None:
    if _NOT_THESE.search(text):
        return None
    if _CROSSWALK.search(text):
        return "crosswalk"
    if _PRICING.search(text):
        return "pricing"
    return None


def asp_link_info(href: str, text: str) -> tuple[str, str] | None:
    """``(kind, release)`` for a link to a quarterly payment limit or NDC-HCPCS crosswalk zip, else None.

    ``kind`` is "pricing" or "crosswalk"; ``release`` the quarter's first month ("2025-10"). Kind and
    quarter come from the file name, else from the link text; name and text that disagree give None.
    """
    name = unquote(PurePosixPath(urlsplit(href.strip()).path).name)
    if not name.lower().endswith(".zip"):
        return None
    stem = name[: -len(".zip")]
    text = " ".join(text.split())
    if _NOT_THESE.search(stem) or _NOT_THESE.search(text):
        return None
    kind_name, kind_text = _kind(stem), _kind(text)
    if kind_name and kind_text and kind_name != kind_text:
        return None
    release_name, release_text = _release(stem), _release(text)
    if release_name and release_text and release_name != release_text:
        return None
    kind = kind_name or kind_text
    release = release_name or release_text
    if kind is None or release is None:
        return None
    return kind, release


def _looks_like_asp_file(href: str, text: str) -> bool:
    name = PurePosixPath(urlsplit(href).path).name
    blob = f"{name} {text}"
    return bool(name.lower().endswith(".zip") and _kind(blob))


def asp_file_links(response: Response) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``([(absolute url, kind, release)...], [urls that look like ASP files but cannot be dated])``."""
    found, unknown = sort_links(response, asp_link_info, _looks_like_asp_file)
    return [(url, kind, release) for url, (kind, release) in found], unknown


class CmsAspSpider(LandingPageSpider):
    name = "cms_asp"
    landing_url = LANDING_URL

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """The landing page: one request per payment limit and crosswalk zip listed."""
        links, unknown = asp_file_links(response)
        self.report_unrecognised(unknown, "ASP file|a quarter")
        if not links:
            yield self.no_links(response, "ASP payment limit or NDC-HCPCS crosswalk")
            return
        for url, kind, release in links:
            yield self.document_request(url, {"release": release, "kind": kind, "filename": filename_of(url)})
