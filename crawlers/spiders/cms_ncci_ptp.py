"""cms_ncci_ptp: the Medicare NCCI procedure-to-procedure (PTP) edit files (DOMAIN.md §3.5).

The spider reads the CMS "Medicare NCCI Procedure to Procedure (PTP) Edits" page, keeps the links
to the quarterly edit files and downloads each one. It never opens a zip: the parser
(``parsers/cms_ncci_ptp.py``) does.

The links, as the page has them (``shared/data/pages/cms/ncci_ptp_page.links.excerpt.html``)::

    <a href="/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip">
      Practitioner PTP Edits v322r0 (675,037 Records) 0001A/0591T -- 25441/G0471</a>

* Each quarter ships in four parts (``-f1`` .. ``-f4``) per setting: ``ccipra`` practitioner,
  ``ccioph`` outpatient hospital (``medicare-ncci-2026q2-hospital-ptp-edits-ccioph-v321r0-f1.zip``;
  one public source spells it ``2026-q4``). The page lists the current and the previous quarter.
* ``2026q3`` is the quarter the edits take effect; the version says the same: ``v322r0`` is
  version 32.2 revision 0, where the version's first two digits count years from 1994 (32 = 2026)
  and the third is the quarter less one (2 = Q3). v301 = 2024 Q2, v313 = 2025 Q4, v320 = 2026 Q1.
  The release is the quarter's first month ("2026-07"); a name and version that disagree give none.
* The quarterly additions/deletions/revisions zips on the same page are change reports, not the
  edit table, and are skipped.

**The licence gate.** The files sit behind CMS's AMA "End User Point and Click Agreement": the
link goes to ``/license/ama?file=/files/zip/...zip``, a page that shows the agreement with an
Accept button. As public scrapers of the page describe it, Accept is a GET form that asks for the
file URL with ``?agree=yes``. The spider does what a person does: it opens the licence page, finds
the Accept form (else an Accept link) and submits it. If the licence page has neither, or Accept
answers with an HTML page instead of the file, that is an error outcome for the file.

The document URL recorded is the file's own URL, ``https://www.cms.gov/files/zip/...zip`` (the
licence page's ``file=`` parameter made absolute, without ``?agree=yes``): it names the document
whatever the gate looks like, and it is what conditional requests are keyed on. The licence page
itself is fetched on every crawl (it is small and has no validators); the file request is
conditional, so an unchanged file costs a 304.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, TypedDict
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import lxml.html
import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from crawlers.pipelines import DocumentItem, document_item, error_item, failure_item
from crawlers.spiders._base import LandingPageSpider, page_links

__all__ = [
    "LANDING_URL",
    "CmsNcciPtpSpider",
    "PtpLink",
    "accept_request",
    "ptp_file_links",
    "ptp_link_info",
    "release_from_version",
]

LANDING_URL = (
    "https://www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
    "medicare-ncci-procedure-procedure-ptp-edits"
)


class PtpLink(TypedDict):
    """What a PTP edit file link says about the file."""

    setting: str  # "practitioner" | "outpatient_hospital" (parsers.records.SETTINGS)
    release: str  # "2026-07": the first month of the quarter the edits take effect
    version: str | None  # "v322r0"
    part: int  # 1 for "-f1"
    file_path: str  # "/files/zip/...-f1.zip": the file itself, outside any licence gate
    filename: str  # "medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
    gated: bool  # the link goes through the licence page


_LICENSE_PATH = re.compile(r"/license/[^/]+/?$", re.IGNORECASE)
_PTP = re.compile(r"(?<![a-z])ptp(?![a-z])|procedure[^a-z]?to[^a-z]?procedure|cci(?:pra|oph)", re.IGNORECASE)
_NOT_THE_TABLE = re.compile(
    r"quarterly|addition|deletion|revision|change|medicaid|(?<![a-z])mues?(?![a-z])|(?<![a-z])aoc(?![a-z])"
    r"|add[^a-z]?on|policy[^a-z]?manual|faq",
    re.IGNORECASE,
)
_SETTING_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("practitioner", re.compile(r"ccipra|practitioner", re.IGNORECASE)),
    ("outpatient_hospital", re.compile(r"ccioph|hospital|outpatient", re.IGNORECASE)),
)
_YEAR_Q = re.compile(r"(?<!\d)(20\d{2})[^a-z0-9]?q([1-4])(?!\d)", re.IGNORECASE)
_VERSION = re.compile(r"(?<![a-z0-9])v(\d{2})(\d)r(\d+)(?![0-9])", re.IGNORECASE)
_PART = re.compile(r"(?<![a-z0-9])f(\d{1,2})(?![0-9a-z])", re.IGNORECASE)


def release_from_version(version: str) -> str | None:
    """``"v322r0"`` -> ``"2026-07"``: NCCI version 32.2 is 2026 Q3 (years count from 1994)."""
    m = _VERSION.fullmatch(version.strip())
    if m is None or int(m.group(2)) > 3:
        return None
    year = 1994 + int(m.group(1))
    return f"{year:04d}-{1 + 3 * int(m.group(2)):02d}"


def _setting(text: str) -> str | None:
    found = {setting for setting, pattern in _SETTING_WORDS if pattern.search(text)}
    return found.pop() if len(found) == 1 else None


def _file_path(href: str) -> tuple[str, bool] | None:
    """``(path of the file, went through the licence gate)`` for a link, or None."""
    parts = urlsplit(href.strip())
    if _LICENSE_PATH.search(parts.path):
        target = parse_qs(parts.query).get("file", [""])[0].strip()
        if not target:
            return None
        path = urlsplit(target).path  # the parameter is a site path; tolerate an absolute URL
        return "/" + re.sub(r"/{2,}", "/", path).lstrip("/"), True
    return parts.path, False


def ptp_link_info(href: str, text: str) -> PtpLink | None:
    """What a link to a PTP edit file part says (:class:`PtpLink`), or None if it is not one.

    Only links to a ``.zip`` (directly or through ``/license/ama?file=``) count, and only those
    whose file name or text says PTP (or ``ccipra``/``ccioph``) and neither says quarterly
    additions/deletions/revisions, Medicaid, MUE or add-on codes. The setting comes from the file
    name (``ccipra``/``practitioner``, ``ccioph``/``hospital``), else the link text; the release
    from the name's ``2026q3``, else the version ``v322r0`` in the name or text; the part from
    ``-f1``. A link that lacks any of them, or whose name, version and text disagree, gives None.
    """
    located = _file_path(href)
    if located is None:
        return None
    file_path, gated = located
    name = unquote(PurePosixPath(file_path).name)
    if not name.lower().endswith(".zip"):
        return None
    stem = name[: -len(".zip")]
    text = " ".join(text.split())
    if not (_PTP.search(stem) or _PTP.search(text)):
        return None
    if _NOT_THE_TABLE.search(stem) or _NOT_THE_TABLE.search(text):
        return None

    setting_name, setting_text = _setting(stem), _setting(text)
    if setting_name and setting_text and setting_name != setting_text:
        return None
    setting = setting_name or setting_text

    versions = {m.group(0).lower() for m in _VERSION.finditer(f"{stem} {text}")}
    if len(versions) > 1:
        return None
    version = versions.pop() if versions else None
    by_version = release_from_version(version) if version else None
    q = _YEAR_Q.search(stem) or _YEAR_Q.search(text)
    by_name = f"{int(q.group(1)):04d}-{1 + 3 * (int(q.group(2)) - 1):02d}" if q else None
    if by_name and by_version and by_name != by_version:
        return None
    release = by_name or by_version

    part_match = _PART.search(stem)
    if setting is None or release is None or part_match is None:
        return None
    return PtpLink(
        setting=setting,
        release=release,
        version=version,
        part=int(part_match.group(1)),
        file_path=file_path,
        filename=name,
        gated=gated,
    )


def _looks_like_ptp_file(href: str, text: str) -> bool:
    located = _file_path(href)
    if located is None:
        return False
    name = PurePosixPath(located[0]).name
    blob = f"{name} {text}"
    return bool(name.lower().endswith(".zip") and _PTP.search(blob) and not _NOT_THE_TABLE.search(blob))


def ptp_file_links(response: Response) -> tuple[list[tuple[str, PtpLink]], list[str]]:
    """``([(absolute href, info)...], [hrefs that look like a PTP file but say too little])``
    from the landing page, in page order, each file once."""
    found: list[tuple[str, PtpLink]] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for href, text in page_links(response):
        info = ptp_link_info(href, text)
        if info is not None:
            file_url = response.urljoin(info["file_path"])
            if file_url not in seen:
                seen.add(file_url)
                found.append((response.urljoin(href), info))
        elif _looks_like_ptp_file(href, text):
            url = response.urljoin(href)
            if url not in seen:
                seen.add(url)
                unknown.append(url)
    return found, unknown


# --- the licence gate ----------------------------------------------------------------------------

_ACCEPT = re.compile(r"\b(?:i\s+)?(?:accept|agree)\b", re.IGNORECASE)
_DECLINE = re.compile(r"\b(?:not|decline|disagree|reject|cancel)\b|n't", re.IGNORECASE)


def _says_accept(label: str) -> bool:
    label = " ".join(label.split())
    return bool(_ACCEPT.search(label)) and not _DECLINE.search(label)


def _control_label(el: Any) -> str:
    return " ".join(
        s for s in (el.get("value"), el.text_content() if el.tag == "button" else None, el.get("name")) if s
    )


def accept_request(response: Response, **kwargs: Any) -> scrapy.Request | None:
    """The request a person makes by clicking Accept on a licence page, or None if there is none.

    First choice: a form with a submit control labelled Accept/I Accept/Agree (not "Do Not
    Accept"), submitted as a browser would (its fields, with unticked agree/accept boxes ticked,
    plus the clicked control's name and value; GET in the query, POST as a form body). Else: a
    link whose text says Accept. ``kwargs`` go to the request (callback, meta, ...).

    Scrapy 2.19 deprecates ``FormRequest.from_response`` in favour of the form2request package,
    which this project does not depend on; lxml's form model (Scrapy's own parser) does the same.
    """
    doc = lxml.html.fromstring(response.body, base_url=response.url)
    for form in doc.forms:
        submits = [
            el
            for el in form.iter("input", "button")
            if (el.get("type") or ("submit" if el.tag == "button" else "text")).lower() in ("submit", "image")
        ]
        clicked = next((el for el in submits if _says_accept(_control_label(el))), None)
        if clicked is None:
            continue
        fields = [(k, v) for k, v in form.form_values()]
        for box in form.inputs:
            is_box = getattr(box, "type", None) == "checkbox"
            if is_box and not box.checked and re.search(r"accept|agree", box.name or "", re.IGNORECASE):
                fields.append((box.name, box.get("value") or "on"))
        if clicked.get("name"):
            fields.append((clicked.get("name"), clicked.get("value") or ""))
        action = response.urljoin(form.get("action") or response.url)
        if (form.get("method") or "get").lower() == "post":
            return scrapy.FormRequest(action, formdata=fields, **kwargs)
        parts = urlsplit(action)
        query = urlencode(fields)
        return scrapy.Request(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")), **kwargs)
    for a in response.css("a[href]"):
        if _says_accept(" ".join(a.css("::text").getall())):
            return scrapy.Request(response.urljoin(a.attrib["href"]), **kwargs)
    return None


class CmsNcciPtpSpider(LandingPageSpider):
    name = "cms_ncci_ptp"
    landing_url = LANDING_URL

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """The landing page: each edit file part, through its licence page where it has one."""
        links, unknown = ptp_file_links(response)
        self.report_unrecognised(unknown, "PTP file|a setting, quarter or part")
        if not links:
            yield self.no_links(response, "PTP edit file")
            return
        for href, info in links:
            file_url = response.urljoin(info["file_path"])
            meta = {
                "doc_url": file_url,
                "release": info["release"],
                "setting": info["setting"],
                "part": info["part"],
                "filename": info["filename"],
            }
            if info["gated"]:
                # No doc_url on the licence page request: it is not the document, and is not
                # made conditional. The file URL travels as gate_for.
                gate_meta = {k: v for k, v in meta.items() if k != "doc_url"} | {"gate_for": file_url}
                yield scrapy.Request(
                    href, callback=self.parse_gate, errback=self.gate_failed, meta=gate_meta, dont_filter=True
                )
            else:
                yield self.document_request(file_url, meta)

    def parse_gate(self, response: Response) -> Iterator[Any]:
        """The licence page: accept it, as a person would, and ask for the file."""
        file_url = response.meta["gate_for"]
        meta = {k: v for k, v in response.meta.items() if k in ("release", "setting", "part", "filename")}
        meta |= {"doc_url": file_url, "gated": True}
        request = accept_request(
            response,
            callback=self.parse_document,
            errback=self.document_failed,
            meta=meta,
            dont_filter=True,
        )
        if request is None:
            yield error_item(
                self.name,
                file_url,
                f"license gate: no Accept form or link on {response.url}",
                status=response.status,
                release=meta.get("release"),
                filename=meta.get("filename"),
            )
            return
        yield request

    def parse_document(self, response: Response) -> Iterator[DocumentItem]:
        content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1").lower()
        if response.meta.get("gated") and response.status != 304 and content_type.startswith("text/html"):
            # Accept led back to a web page (the licence page again, an error page) and not the file.
            yield error_item(
                self.name,
                response.meta["doc_url"],
                f"license gate: accepting led to an HTML page ({response.url}), not the file",
                status=response.status,
                release=response.meta.get("release"),
                filename=response.meta.get("filename"),
            )
            return
        yield document_item(self.name, response)

    def gate_failed(self, failure: Failure) -> Iterator[DocumentItem]:
        request = getattr(failure, "request", None)
        file_url = request.meta.get("gate_for") if request is not None else None
        yield failure_item(self.name, failure, url=file_url, prefix="license gate: ")
