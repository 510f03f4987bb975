"""cms_ncci_mue: the Medicare NCCI Medically Unlikely Edits tables (DOMAIN.md §3.5).

The spider reads the CMS "Medicare NCCI Medically Unlikely Edits (MUEs)" page, keeps the links to
the quarterly MUE table zips of the three settings and downloads each one. It never opens a zip:
the parser (``parsers/cms_ncci_mue.py``) does.

What the links look like (public repositories that scrape the page, 2026):

* ``/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip``
* ``/files/zip/medicare-ncci-2026-q2-facility-outpatient-hospital-services-mue-table.zip``
* ``/files/zip/medicare-ncci-2026-q2-dme-supplier-services-mue-table.zip``
* an older shape, ``/files/zip/january-2021-practitioner-mue-table.zip``.

They link the zip directly (no AMA licence gate, unlike the PTP files). The quarter in the name is
the quarter the table takes effect: ``2026-q3`` is effective 2026-07-01, which the zip's member
name repeats (``MCR_MUE_PractitionerServices_Eff_07-01-2026.csv``). The release is the quarter's
first month (``"2026-07"``). Quarterly additions/deletions/revisions files and Medicaid tables are
not the table and are skipped.
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

__all__ = [
    "LANDING_URL",
    "MUE_SETTINGS",
    "CmsNcciMueSpider",
    "mue_file_links",
    "mue_link_info",
]

# The page's current address (its title "Medicare NCCI Medically Unlikely Edits (MUEs)" made into a
# path, like the PTP page's). Public scrapers also use the same path without "-mues"; either can
# be configured as ``landing_url``.
LANDING_URL = (
    "https://www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
    "medicare-ncci-medically-unlikely-edits-mues"
)

#: The three MUE tables, as named in :data:`parsers.records.SETTINGS`.
MUE_SETTINGS = ("practitioner", "outpatient_hospital", "dme")

# Words are separated by anything that is not a letter or digit; CamelCase member-style names
# (``MCR_MUE_PractitionerServices_Eff_07-01-2026``) are matched case-insensitively.
_MUE = re.compile(r"(?<![a-z])mues?(?![a-z])|medically[^a-z]?unlikely", re.IGNORECASE)
_NOT_THE_TABLE = re.compile(
    r"quarterly|addition|deletion|revision|change|medicaid|announcement|policy[^a-z]?manual|faq"
    r"|(?<![a-z])ptp(?![a-z])|(?<![a-z])aoc(?![a-z])|add[^a-z]?on",
    re.IGNORECASE,
)
_SETTING_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("practitioner", re.compile(r"practitioner", re.IGNORECASE)),
    ("outpatient_hospital", re.compile(r"outpatient|hospital|facility", re.IGNORECASE)),
    ("dme", re.compile(r"(?<![a-z])dme|durable[^a-z]?medical|supplier", re.IGNORECASE)),
)
_YEAR_Q = re.compile(r"(?<!\d)(20\d{2})[^a-z0-9]?q([1-4])(?!\d)", re.IGNORECASE)
_Q_YEAR = re.compile(r"(?<![a-z0-9])q([1-4])[^a-z0-9]?(20\d{2})(?!\d)", re.IGNORECASE)
_QUARTER_WORD = re.compile(
    r"(?<![a-z])(first|second|third|fourth|1st|2nd|3rd|4th)[^a-z0-9]+quarter[^a-z0-9]+(?:of[^a-z0-9]+)?"
    r"(20\d{2})(?!\d)",
    re.IGNORECASE,
)
# MM-DD-YYYY (the member names' ``_Eff_07-01-2026``) or MM/DD/YYYY in link text.
_MDY = re.compile(r"(?<!\d)(\d{1,2})[-/_.](\d{1,2})[-/_.](20\d{2})(?!\d)")
_MONTH_YEAR = re.compile(
    r"(?<![a-z])(jan(?:uary)?|apr(?:il)?|july?|oct(?:ober)?|feb(?:ruary)?|mar(?:ch)?|may|june?"
    r"|aug(?:ust)?|sep(?:t(?:ember)?)?|nov(?:ember)?|dec(?:ember)?)[^a-z0-9]+(?:(\d{1,2})[^a-z0-9]+)?"
    r"(20\d{2})(?!\d)",
    re.IGNORECASE,
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}


def _quarter_start(month: int, day: int | None = None) -> bool:
    return month in (1, 4, 7, 10) and day in (None, 1)


def _release(text: str) -> str | None:
    """The release ("YYYY-MM", a quarter's first month) ``text`` names, or None.

    Tried in order: ``2026-q3``/``2026q3``, ``q3-2026``, "third quarter 2026", an effective date
    ``07-01-2026`` / ``07/01/2026``, a month and year ``july-2026`` / "July 1, 2026". A date that is
    not a quarter's first day names no MUE release.
    """
    m = _YEAR_Q.search(text)
    if m:
        return f"{int(m.group(1)):04d}-{1 + 3 * (int(m.group(2)) - 1):02d}"
    m = _Q_YEAR.search(text)
    if m:
        return f"{int(m.group(2)):04d}-{1 + 3 * (int(m.group(1)) - 1):02d}"
    m = _QUARTER_WORD.search(text)
    if m:
        return f"{int(m.group(2)):04d}-{1 + 3 * (_ORDINAL[m.group(1).lower()] - 1):02d}"
    m = _MDY.search(text)
    if m:
        month, day, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return f"{year:04d}-{month:02d}" if _quarter_start(month, day) else None
    m = _MONTH_YEAR.search(text)
    if m:
        month = _MONTHS.index(m.group(1)[:3].lower()) + 1
        day_of_month = int(m.group(2)) if m.group(2) else None
        return f"{int(m.group(3)):04d}-{month:02d}" if _quarter_start(month, day_of_month) else None
    return None


def _setting(text: str) -> str | None:
    """The one setting ``text`` names, or None when it names none or several."""
    found = {setting for setting, pattern in _SETTING_WORDS if pattern.search(text)}
    return found.pop() if len(found) == 1 else None


def mue_link_info(href: str, text: str) -> tuple[str, str] | None:
    """``(setting, release)`` for a link to a quarterly MUE table zip, or None if it is not one.

    ``setting`` is one of :data:`MUE_SETTINGS`; ``release`` is the first month of the quarter the
    table takes effect in ("2026-07" for ``...-2026-q3-...``, effective 2026-07-01).

    Only ``.zip`` links count, and only those whose file name or link text says MUE and neither says
    quarterly changes, Medicaid, PTP or add-on codes. The setting and the release come from the
    file name, else from the link text; a link whose setting or quarter cannot be told (or whose
    name and text disagree) gives None, and the spider reports it.
    """
    name = unquote(PurePosixPath(urlsplit(href.strip()).path).name)
    if not name.lower().endswith(".zip"):
        return None
    stem = name[: -len(".zip")]
    text = " ".join(text.split())
    if not (_MUE.search(stem) or _MUE.search(text)):
        return None
    if _NOT_THE_TABLE.search(stem) or _NOT_THE_TABLE.search(text):
        return None
    setting_name, setting_text = _setting(stem), _setting(text)
    if setting_name and setting_text and setting_name != setting_text:
        return None
    release_name, release_text = _release(stem), _release(text)
    if release_name and release_text and release_name != release_text:
        return None
    setting = setting_name or setting_text
    release = release_name or release_text
    if setting is None or release is None:
        return None
    return setting, release


def _looks_like_mue_table(href: str, text: str) -> bool:
    name = PurePosixPath(urlsplit(href).path).name
    blob = f"{name} {text}"
    return bool(name.lower().endswith(".zip") and _MUE.search(blob) and not _NOT_THE_TABLE.search(blob))


def mue_file_links(response: Response) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``([(absolute url, setting, release)...], [urls that look like an MUE table but cannot be
    dated or placed])`` from the landing page, in page order, each URL once."""
    found, unknown = sort_links(response, mue_link_info, _looks_like_mue_table)
    return [(url, setting, release) for url, (setting, release) in found], unknown


class CmsNcciMueSpider(LandingPageSpider):
    name = "cms_ncci_mue"
    landing_url = LANDING_URL

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """The landing page: one request per MUE table zip (every setting, every quarter listed)."""
        links, unknown = mue_file_links(response)
        self.report_unrecognised(unknown, "MUE table|a setting or quarter")
        if not links:
            yield self.no_links(response, "MUE table")
            return
        missing = set(MUE_SETTINGS) - {setting for _, setting, _ in links}
        for setting in sorted(missing):
            # Worth a look (CMS publishes all three every quarter), not a reason to drop the others.
            self.logger.warning("%s: no %s MUE table linked on %s", self.name, setting, response.url)
            self.crawler.stats.inc_value(f"{self.name}/missing_setting")
        for url, setting, release in links:
            yield self.document_request(url, {"release": release, "setting": setting, "filename": filename_of(url)})
