"""cms_hcpcs: the CMS HCPCS Level II Alpha-Numeric files (DOMAIN.md §3.4).

The spider reads the CMS "Quarterly Update" page, keeps the links to Alpha-Numeric HCPCS file zips
and downloads each one. It never opens a zip: the parser (``parsers/cms_hcpcs.py``) does.

The zip names drift, so links are scraped, never templated: ``october-2025-alpha-numeric-hcpcs-file.zip``,
``january-2026-alpha-numeric-hcpcs-files.zip``, suffixes such as ``-v2``/``_v4``/``w_disclaimer``, the
older annual ``/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2019-Alpha-Numeric-HCPCS-File.zip``
and ``2015-Annual-Alpha-Numeric-HCPCS-File.zip``, and the oldest ``14anweb.zip``. The companion
zips on the same page (corrections, NOC codes, record layout) and the index and drug-table PDFs
are not the file and are skipped.
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

__all__ = ["LANDING_URL", "CmsHcpcsSpider", "hcpcs_file_links", "release_from_link"]

LANDING_URL = (
    "https://www.cms.gov/medicare/coding-billing/healthcare-common-procedure-system/quarterly-update"
)

# Words are separated by anything that is not a letter or digit ("-", "_", " ", "%20" unquoted).
_ALPHA_NUMERIC = re.compile(r"alpha[^a-z0-9]?numeric", re.IGNORECASE)
_HCPCS = re.compile(r"hcpcs?", re.IGNORECASE)
_ANWEB = re.compile(r"anweb", re.IGNORECASE)
_NOT_THE_FILE = re.compile(
    r"correction|(?<![a-z])noc(?![a-z])|not[^a-z]?otherwise|record[^a-z]?layout|index|table[^a-z]?of[^a-z]?drugs"
    r"|trans(?:action)?[^a-z]?report|readme|proc[^a-z]?notes",
    re.IGNORECASE,
)
_MONTH = re.compile(
    r"(?<![a-z])(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])",
    re.IGNORECASE,
)
_QUARTER = re.compile(r"(?<![a-z0-9])q([1-4])(?![0-9])", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
_YY_ANWEB = re.compile(r"^(\d{2})anweb", re.IGNORECASE)
_MONTH_NUMBER = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}


def _month(text: str) -> int | None:
    m = _MONTH.search(text)
    if m:
        return _MONTH_NUMBER[m.group(1)[:3].lower()]
    q = _QUARTER.search(text)
    if q:
        return 1 + 3 * (int(q.group(1)) - 1)
    return None


def _year(text: str, name: str = "") -> int | None:
    m = _YEAR.search(text)
    if m:
        return int(m.group(1))
    yy = _YY_ANWEB.match(name)
    return 2000 + int(yy.group(1)) if yy else None


def release_from_link(href: str, text: str) -> str | None:
    """The release ("YYYY-MM") an Alpha-Numeric HCPCS file link is for, or None if it is not one.

    Only ``.zip`` links count, and only those whose file name or link text says Alpha-Numeric HCPCS
    (or the old ``anweb``) and neither says corrections, NOC codes, record layout, index, table of
    drugs. The month comes from the file name, else the link text (month names or Q1-Q4); a link
    with a year and no month is an annual file, released in January (``YYYY-01``). Quarterly files
    start in January, April, July or October: a link naming another month is not a release we
    know how to date, and gives None (the spider logs it).
    """
    name = unquote(PurePosixPath(urlsplit(href.strip()).path).name)
    if not name.lower().endswith(".zip"):
        return None
    stem = name[: -len(".zip")]
    says_file = bool(_ALPHA_NUMERIC.search(stem) and _HCPCS.search(stem)) or bool(_ANWEB.search(stem))
    says_file = says_file or bool(_ALPHA_NUMERIC.search(text) and _HCPCS.search(text))
    if not says_file or _NOT_THE_FILE.search(stem) or _NOT_THE_FILE.search(text):
        return None
    year = _year(stem, stem) or _year(text)
    if year is None:
        return None
    month = _month(stem) or _month(text)
    if month is None:
        month = 1  # an annual file
    if month not in (1, 4, 7, 10):
        return None
    return f"{year:04d}-{month:02d}"


def _looks_like_hcpcs_file(href: str, text: str) -> bool:
    name = PurePosixPath(urlsplit(href).path).name
    blob = f"{name} {text}"
    return bool(_HCPCS.search(blob) and (_ALPHA_NUMERIC.search(blob) or _ANWEB.search(blob))) and not (
        _NOT_THE_FILE.search(blob)
    )


def hcpcs_file_links(response: Response) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(absolute url, release)...], [urls that look like the file but give no release])``
    from the landing page, in page order, each URL once."""
    return sort_links(
        response,
        release_from_link,
        lambda href, text: href.lower().split("?")[0].endswith(".zip") and _looks_like_hcpcs_file(href, text),
    )


class CmsHcpcsSpider(LandingPageSpider):
    name = "cms_hcpcs"
    landing_url = LANDING_URL

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """The landing page: one request per Alpha-Numeric HCPCS file zip."""
        links, undated = hcpcs_file_links(response)
        self.report_unrecognised(undated, "HCPCS file|a quarter")
        if not links:
            yield self.no_links(response, "HCPCS file")
            return
        for url, release in links:
            yield self.document_request(url, {"release": release, "filename": filename_of(url)})
