"""icd10cm: the CMS ICD-10-CM code set files as published (DOMAIN.md §3.9, PROVENANCE.md §7).

CMS publishes each fiscal year's code set (in force October 1 - September 30) and an April 1
update that supersedes it, as zips on https://www.cms.gov/medicare/coding-billing/icd-10-codes:

* "Code Descriptions in Tabular Order" (``2026-code-descriptions-tabular-order.zip``,
  ``april-1-2026-code-descriptions-tabular-order.zip``) holds ``Code Descriptions/icd10cm_order_2026.txt``,
  a fixed-width file, one line per code, CRLF:

  ====== ======================================================================
  1-5    order number, zero-filled
  7-13   the code without its dot (``A0100``), left-justified
  15     ``1`` valid for a claim (billable), ``0`` a header (category/subcategory)
  17-76  short description (60 characters, blank-padded)
  78-    long description
  ====== ======================================================================

* "Code Tables, Tabular and Index" (``2026-code-tables-tabular-and-index.zip``) holds
  ``Table and Index/icd10cm_tabular_2026.xml``, the tabular list: chapters, sections and nested
  ``<diag>`` elements (name, desc). A ``<sevenChrDef>`` on a diag gives the seventh characters of
  every leaf under it: the leaf, padded with ``X`` to six characters, takes each extension
  (``S02.0`` -> ``S02.0XXA`` "Fracture of vault of skull, initial encounter for closed fracture"),
  and the leaf itself becomes a header. A leaf outside any such scope is billable.

Both give :class:`Icd10CodeRecord` rows: the dotted code, billable flag, descriptions (the tabular
list has no short descriptions: None) and the release's valid time. ICD-10-CM descriptors are public
domain. The valid time is the release's: FY2026 from 2025-10-01, the April update from 2026-04-01
(``meta.release`` "2025-10" / "2026-04"), open-ended until the next release replaces it (the
``icd10_codes`` kind is a timeline). The file's own year (member name, ``<version>``) must be the
fiscal year of that date. A malformed order line is counted and skipped; a document without any code,
a zip without either file or XML that does not parse is a one-line ParseError.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import PurePosixPath

from parsers.archive import looks_like_html, open_zip, read_member, safe_members
from parsers.errors import ParseError
from parsers.records import SourceMeta

__all__ = [
    "Icd10CodeRecord",
    "dotted",
    "fiscal_year",
    "parse",
    "parse_order",
    "parse_tabular",
    "release_start",
]

SOURCE = "icd10cm"
_ORDER_MEMBER = re.compile(r"icd10cm[-_]order[-_](\d{4})(?:[-_][A-Za-z0-9-]+)?(?:\.excerpt)?\.txt$", re.IGNORECASE)
_TABULAR_MEMBER = re.compile(r"icd10cm[-_]tabular[-_](\d{4})(?:[-_][A-Za-z0-9-]+)?\.xml$", re.IGNORECASE)
_ORDER_HEAD = re.compile(r"^(\d{5}) ([A-Z][0-9A-Z]{2}[0-9A-Z]{0,4}) *([01]) $")
_RELEASE = re.compile(r"^(\d{4})-(\d{2})")
_XML_MAX_BYTES = 64 * 1024 * 1024
# A note of the tabular list that withdraws extensions from some codes, e.g. (S06, FY2026):
# "7th characters D and S do not apply to codes in category S06 with 6th character 7 - death due to
# brain injury ..., or 8 - death due to other cause ...".
_NOT_APPLY = re.compile(
    r"7th characters? (.+?) do(?:es)? not apply to codes in category ([A-Z][0-9A-Z]{2}) with 6th character (.+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Icd10CodeRecord:
    """One ICD-10-CM code as one release states it."""

    code: str  # dotted: "A01.00", "S02.0XXA"
    billable: bool  # valid for a claim (a leaf); False for a category or subcategory header
    short_description: str | None  # order file only
    long_description: str
    eff_start: date  # the release's first day (2025-10-01 for FY2026, 2026-04-01 for its April update)
    eff_end: date | None  # None: until a later release replaces it
    locator: str  # "icd10cm_order_2026.txt line 7" | "icd10cm_tabular_2026.xml diag A01.00"


def dotted(code: str) -> str:
    """``A0100`` -> ``A01.00``; a three-character category stays as is."""
    code = code.strip().upper().replace(".", "")
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 else code


def release_start(release: str | None) -> date | None:
    """``"2026-04"`` -> 2026-04-01; None for no (or an unreadable) release."""
    m = _RELEASE.match(release or "")
    if not m:
        return None
    year, month = int(m.group(1)), int(m.group(2))
    return date(year, month, 1) if 1 <= month <= 12 else None


def fiscal_year(day: date) -> int:
    """The federal fiscal year ``day`` is in (October 1 starts the next one)."""
    return day.year + 1 if day.month >= 10 else day.year


def _valid_from(meta: SourceMeta, name: str, file_year: int | None) -> date:
    start = release_start(meta.release)
    if start is None:
        if file_year is None:
            raise ParseError(
                f"{name}: no release given and no fiscal year in the file: cannot date the code set",
                source=SOURCE,
                locator=name,
            )
        return date(file_year - 1, 10, 1)  # the fiscal year's base release
    if file_year is not None and fiscal_year(start) != file_year:
        raise ParseError(
            f"{name}: the file is the FY{file_year} code set but release {meta.release} is in FY{fiscal_year(start)}",
            source=SOURCE,
            locator=name,
        )
    return start


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def parse_order(raw: bytes, name: str, meta: SourceMeta) -> Iterator[Icd10CodeRecord]:
    """The fixed-width order file ``name``: one record per code line; bad lines counted and skipped."""
    m = _ORDER_MEMBER.search(name)
    start = _valid_from(meta, name, int(m.group(1)) if m else None)
    base = PurePosixPath(name).name
    seen: set[str] = set()
    last_order = 0
    n = 0
    for lineno, line in enumerate(_decode(raw).splitlines(), start=1):
        if not line.strip():
            continue
        # Fixed columns (1-based): order 1-5, code 7-13, flag 15, short 17-76, long 78-.
        hit = _ORDER_HEAD.match(line[:16])
        short, long = line[16:76].strip(), line[77:].strip()
        if hit is None or not short or (len(line) > 76 and line[76] != " "):
            meta.counts["icd10cm malformed order line"] += 1
            continue
        order, code, flag = hit.groups()
        order_no = int(order)
        if order_no <= last_order:
            meta.counts["icd10cm order number out of sequence"] += 1
        last_order = order_no
        code = dotted(code)
        if code in seen:
            meta.counts["icd10cm duplicate code"] += 1
            continue
        seen.add(code)
        n += 1
        yield Icd10CodeRecord(
            code=code,
            billable=flag == "1",
            short_description=short.strip(),
            long_description=(long or short).strip(),
            eff_start=start,
            eff_end=None,
            locator=f"{base} line {lineno}",
        )
    if n == 0:
        raise ParseError(f"{name}: no ICD-10-CM code lines in the order file", source=SOURCE, locator=name)


def _text(el: ET.Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def _seven(el: ET.Element) -> list[tuple[str, str]]:
    return [(x.get("char", "").strip().upper(), _text(x)) for x in el.findall("extension") if x.get("char")]


def _exclusions(root: ET.Element) -> dict[tuple[str, str], set[str]]:
    """``(category, 6th character)`` -> the extensions the list's notes say do not apply there."""
    out: dict[tuple[str, str], set[str]] = {}
    for note in root.iter("note"):
        m = _NOT_APPLY.search(_text(note))
        if not m:
            continue
        chars = set(re.findall(r"\b([A-Z])\b", m.group(1)))
        sixth = re.findall(r"(?:^|\bor\s+|,\s*)([0-9A-Z])\s+-", m.group(3))
        for s6 in sixth:
            out.setdefault((m.group(2).upper(), s6), set()).update(chars)
    return out


def parse_tabular(raw: bytes, name: str, meta: SourceMeta) -> Iterator[Icd10CodeRecord]:
    """The tabular list XML ``name``: every category, subcategory and seventh-character code, in order."""
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as err:
        raise ParseError(f"{name}: not well-formed XML ({err})", source=SOURCE, locator=name) from None
    if root.tag != "ICD10CM.tabular":
        raise ParseError(
            f"{name}: root element <{root.tag}>, expected <ICD10CM.tabular> (not an ICD-10-CM tabular list)",
            source=SOURCE,
            locator=name,
        )
    version = (root.findtext("version") or "").strip()
    m = _TABULAR_MEMBER.search(name)
    year = int(version) if version.isdigit() else (int(m.group(1)) if m else None)
    start = _valid_from(meta, name, year)
    base = PurePosixPath(name).name
    seen: set[str] = set()
    withdrawn = _exclusions(root)

    def emit(code: str, billable: bool, desc: str) -> Iterator[Icd10CodeRecord]:
        if code in seen:
            meta.counts["icd10cm duplicate code"] += 1
            return
        seen.add(code)
        yield Icd10CodeRecord(code, billable, None, desc, start, None, f"{base} diag {code}")

    def walk(parent: ET.Element, scope: list[tuple[str, str]] | None) -> Iterator[Icd10CodeRecord]:
        for el in parent:
            if el.tag == "section":
                yield from walk(el, scope)
                continue
            if el.tag != "diag":
                continue
            raw_name = _text(el.find("name"))
            desc = _text(el.find("desc"))
            if not re.fullmatch(r"[A-Z][0-9A-Z]{2}(?:\.[0-9A-Z]{1,4})?", raw_name.upper()) or not desc:
                meta.counts["icd10cm malformed diag"] += 1
                continue
            code = dotted(raw_name)
            sdef = el.find("sevenChrDef")
            here = _seven(sdef) if sdef is not None else scope
            children = el.findall("diag")
            if children:
                yield from emit(code, False, desc)
                yield from walk(el, here)
            elif here:
                yield from emit(code, False, desc)
                stem = code.replace(".", "").ljust(6, "X")
                not_here = withdrawn.get((stem[:3], stem[5]), set())
                for char, text in here:
                    if char in not_here:
                        meta.counts["icd10cm extension withdrawn by a tabular note"] += 1
                        continue
                    yield from emit(dotted(stem + char), True, f"{desc}, {text}")
            else:
                yield from emit(code, True, desc)

    n = 0
    for chapter in root.findall("chapter"):
        for rec in walk(chapter, None):
            n += 1
            yield rec
    if n == 0:
        raise ParseError(f"{name}: no <diag> codes in the tabular list", source=SOURCE, locator=name)


def parse(body: bytes, meta: SourceMeta) -> Iterator[Icd10CodeRecord]:
    """A fetched code-set zip (the tabular XML, else the order file in it), or either file on its own."""
    name = meta.filename or meta.url
    if body[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
        zf = open_zip(body, name)
        members = safe_members(zf, name, max_bytes=_XML_MAX_BYTES)
        tabular = [m for m in members if _TABULAR_MEMBER.search(m)]
        order = [m for m in members if _ORDER_MEMBER.search(m) and "addenda" not in m.lower()]
        skipped = len(members) - len(tabular[:1] or order[:1])
        if skipped:
            meta.counts["icd10cm zip member not read"] += skipped
        if tabular:
            yield from parse_tabular(read_member(zf, tabular[0], name, _XML_MAX_BYTES), f"{name}/{tabular[0]}", meta)
        elif order:
            yield from parse_order(read_member(zf, order[0], name), f"{name}/{order[0]}", meta)
        else:
            raise ParseError(
                f"{name}: no icd10cm_order_<year>.txt or icd10cm_tabular_<year>.xml in the zip "
                f"(members: {', '.join(members[:5]) or 'none'})",
                source=SOURCE,
                locator=name,
            )
        return
    if looks_like_html(body):
        raise ParseError(f"{name}: expected an ICD-10-CM code file, got an HTML page", source=SOURCE, locator=name)
    if body.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"<"):
        yield from parse_tabular(body, name, meta)
    else:
        yield from parse_order(body, name, meta)


def summary(records: list[Icd10CodeRecord]) -> Counter[str]:
    """``billable`` / ``header`` counts of parsed records (the run report and tests)."""
    return Counter("billable" if r.billable else "header" for r in records)
