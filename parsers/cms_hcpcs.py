"""CMS HCPCS Level II alpha-numeric file -> :class:`HcpcsRecord` (DOMAIN.md §3.4, PROVENANCE.md §1).

``body`` is one of

* a CMS zip (annual ``YYYY-Alpha-Numeric-HCPCS-File.zip`` or a quarterly zip). The data file is the
  member whose name holds ``ANWEB`` (``HCPC17_CONTR_ANWEB.txt``, ``HCPC2018_CONTR_ANWEB_disc.txt``,
  ``HCPC2020_ANWEB_w_disclaimer.xlsx``, ``HCPC2024_JAN_ANWEB_v4.xlsx`` ...); trans reports, readme,
  proc notes and NOC files are ignored. When the zip holds both, the fixed-width txt is read: it is
  the layout CMS documents byte by byte, while the xlsx is an export that drifts (header on row 1, 8
  or 11, numbers where text is expected) and, in the same zip, loses data: the 2019 xlsx has no
  ACT EFF DT for 115 codes the txt dates (A0130 ...), the 2017 xlsx has a different one for
  L5638, L5640 and L5643;
* a bare ``.xlsx``/``.xls`` (the quarterly files as recorded), or
* a CSV export of the xlsx with the same column names.

Decisions, each measured on the recorded 2017-2026 files:

* **Fixed-width lines.** Only lines whose RECID (column 11) is 3/4/7/8 and whose first five bytes are
  a code are records. Anything else (the "***Disclaimers" preamble of 2018/2019, blank lines) is
  skipped and counted as ``txt_preamble_line`` / ``txt_blank_line``. A first record (RECID 3/7) must
  be exactly 320 bytes or the file is refused ("FILE line N: record is X bytes, expected 320").
  Continuation records (RECID 4/8) carry only the description (bytes 1-91), and CMS trims their
  padding: every continuation in 2017 is 91 bytes and one 2019 line (G8891) is 316. So a
  continuation of 91 to 320 bytes whose bytes past 91 are blank is accepted and counted as
  ``txt_short_continuation``; any other length is the same error.
* **Continuations** (txt RECID 4/8, and the xlsx too: from 2019 G0503's description overflows into a
  second row, SEQNUM 0020 / RECID 4) are joined to the code's first record with one space.
* **Whitespace** in descriptions is collapsed to single spaces. The txt and the xlsx of one release
  differ only in spacing where the txt wraps (double spaces in the 2017 xlsx for G0417-G0419, in the
  2018 txt for K2, K3, TC ...); keeping it would make a snapshot diff report description changes that
  are not.
* **eff_start** is ADD DT. For action **R** (re-activated) ADD DT still holds the original add date
  (S3854 in 2017: ADD 2006-01-01, ACT EFF 2016-07-01; J0570 in Oct 2025: ADD 2017-01-01,
  ACT EFF 2025-10-01), so eff_start is ACT EFF DT: the code is valid from its re-activation, not over
  the gap when it was discontinued. Only the release carrying the R shows this: the next one lists the
  code under action N (S3854 in 2018), so eff_start is ADD DT again and the gap must come from diffing
  snapshots (DOMAIN.md §3.4). A missing ADD DT falls back to ACT EFF DT (counted as
  ``start_from_action_date``). A record with neither date is skipped and counted as ``no_start_date``:
  there is no day on which it can be said to begin. None of the recorded files has such a record.
* **eff_end** = TERM DT + 1 day (TERM DT is the last day the code may be used, inclusive).
* **Duplicates.** No recorded file repeats a code's first record. If one does, an identical repeat is
  dropped and counted (``duplicate_code``); a repeat that disagrees is a :class:`ParseError`, since
  choosing one of two conflicting CMS rows would be a guess.
* **Cells.** xlsx cells that should be text are sometimes numbers (RECID ``7.0`` and dates
  ``20201001.0`` in Oct 2020, TOS1 ``2.0`` in 2025); integral floats are read as their digits.
  The Oct 2020 modifier J5 has no left padding; codes are stripped, modifiers are RECID 7/8.
* **billing_unit** is read from the long description for procedure codes of the drug-bearing series
  (see :func:`parsers.units.carries_billing_unit`), ``None`` otherwise.

Counts (``meta.counts``, by reason): ``txt_preamble_line``, ``txt_blank_line``,
``txt_short_continuation``, ``preamble_row`` (non-empty rows above the xlsx/csv header), ``blank_row``,
``duplicate_code``, ``start_from_action_date``, ``no_start_date``, ``csv_decoded_as_cp1252``.

``locator`` is ``"<member> line N"`` (txt, first line of the record) or ``"<member> row N"``
(xlsx: 1-based sheet row; csv: 1-based CSV record, the header being row 1).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

import python_calamine

from parsers.archive import looks_like_html, open_zip, read_member, safe_members
from parsers.errors import LayoutChanged, ParseError, with_context
from parsers.records import HcpcsRecord, SourceMeta
from parsers.units import billing_unit, carries_billing_unit

__all__ = ["parse", "REQUIRED_COLUMNS"]

RECORD_LENGTH = 320
_CONTINUATION_MIN = 91  # HCPC + SEQNUM + RECID + the 80-byte long description

#: The xlsx/csv columns this parser reads (spaces as CMS writes them).
REQUIRED_COLUMNS = (
    "HCPC",
    "RECID",
    "LONG DESCRIPTION",
    "SHORT DESCRIPTION",
    "PRICE1",
    "COV",
    "BETOS",
    "TOS1",
    "ADD DT",
    "ACT EFF DT",
    "TERM DT",
    "ACTION CD",
)
_HEADER_SEARCH_ROWS = 50

_FIRST = {"3": "procedure", "7": "modifier"}
_CONTINUATION = {"4": "procedure", "8": "modifier"}
_CODE_SHAPE = {"procedure": re.compile(r"[A-Z]\d{4}"), "modifier": re.compile(r"[A-Z0-9]{2}")}
# Fixed-width: a record starts with a 5-char code (modifiers right-aligned), a numeric SEQNUM, a RECID.
_TXT_RECORD = re.compile(rb"(?:[A-Z]\d{4}|   [A-Z0-9]{2})\d{5}[3478]")
_DATA_MEMBER = re.compile(r"anweb", re.IGNORECASE)
_NOT_DATA = re.compile(r"trans|readme|proc_?notes|noc|correction", re.IGNORECASE)
_DATE = re.compile(r"\d{8}")


def parse(body: bytes, meta: SourceMeta) -> Iterator[HcpcsRecord]:
    """Yield one :class:`HcpcsRecord` per code or modifier in a CMS HCPCS zip, xlsx or csv."""
    return with_context(_parse(body, meta), meta.source, meta.url)


def _parse(body: bytes, meta: SourceMeta) -> Iterator[HcpcsRecord]:
    name = meta.filename
    lower = name.lower()
    if body.startswith(b"PK\x03\x04") or lower.endswith(".zip"):
        zf = open_zip(body, name)
        members = safe_members(zf, name)
        if "xl/workbook.xml" in members:
            yield from _parse_xlsx(body, name, meta)
        else:
            member = _pick_data_member(members, name)
            data = read_member(zf, member, name)
            yield from _parse_member(data, member, meta)
        return
    yield from _parse_member(body, name, meta)


def _parse_member(data: bytes, name: str, meta: SourceMeta) -> Iterator[HcpcsRecord]:
    lower = name.lower()
    if looks_like_html(data):
        raise ParseError(f"{name}: expected an HCPCS data file, got an HTML page", locator=name)
    if lower.endswith((".xlsx", ".xls")):
        if lower.endswith(".xlsx"):
            # An xlsx is a zip too: check its members before calamine inflates them.
            safe_members(open_zip(data, name), name)
        yield from _parse_xlsx(data, name, meta)
    elif lower.endswith(".csv"):
        yield from _parse_csv(data, name, meta)
    elif lower.endswith(".txt"):
        yield from _parse_txt(data, name, meta)
    else:
        raise ParseError(f"{name}: not an HCPCS zip, xlsx, csv or txt file (unknown extension)", locator=name)


# Preference order: the fixed-width txt is the documented record layout; the csv is only a
# re-export of the xlsx (the 2026 excerpt), so it comes last.
_DATA_SUFFIXES = (".txt", ".xlsx", ".xls", ".csv")


def _pick_data_member(members: Sequence[str], zip_name: str) -> str:
    candidates = [
        m
        for m in members
        if _DATA_MEMBER.search(PurePosixPath(m).name)
        and not _NOT_DATA.search(PurePosixPath(m).name)
        and PurePosixPath(m).suffix.lower() in _DATA_SUFFIXES
    ]
    for suffix in _DATA_SUFFIXES:
        found = [m for m in candidates if PurePosixPath(m).suffix.lower() == suffix]
        if len(found) > 1:
            raise LayoutChanged(
                f"{zip_name}: more than one HCPCS data file ({', '.join(found)}); cannot tell which to read",
                locator=zip_name,
            )
        if found:
            return found[0]
    raise ParseError(
        f"{zip_name}: no HCPCS data file (*ANWEB*.txt or *ANWEB*.xlsx) in the zip "
        f"(members: {', '.join(members) or 'none'})",
        locator=zip_name,
    )


# --- assembling records -------------------------------------------------------------------------


@dataclass
class _Draft:
    """A code's first record plus the description parts its continuation records add."""

    code: str
    kind: str
    fields: dict[str, Any]
    locator: str
    parts: list[str] = field(default_factory=list)


class _Builder:
    """Turns first/continuation rows into records; shared by the txt, xlsx and csv readers."""

    def __init__(self, meta: SourceMeta) -> None:
        self.meta = meta
        self.current: _Draft | None = None
        self.seen: dict[str, HcpcsRecord] = {}

    def first(self, code: str, kind: str, fields: dict[str, Any], locator: str) -> Iterator[HcpcsRecord]:
        yield from self.flush()
        self.current = _Draft(code, kind, fields, locator, [fields["long_description"]])

    def continuation(self, code: str, kind: str, text: str, locator: str) -> None:
        if self.current is None or self.current.code != code or self.current.kind != kind:
            raise ParseError(
                f"{locator}: continuation record for {code} does not follow a first record of {code}",
                locator=locator,
            )
        self.current.parts.append(text)

    def flush(self) -> Iterator[HcpcsRecord]:
        draft, self.current = self.current, None
        if draft is None:
            return
        record = self._record(draft)
        if record is None:
            return
        previous = self.seen.get(record.code)
        if previous is not None:
            if _same_but_locator(previous, record):
                self.meta.counts["duplicate_code"] += 1
                return
            raise ParseError(
                f"{record.locator}: {record.code} appears again with different data "
                f"(first at {previous.locator})",
                locator=record.locator,
            )
        self.seen[record.code] = record
        yield record

    def _record(self, draft: _Draft) -> HcpcsRecord | None:
        f = draft.fields
        loc = draft.locator
        add_date = _date(f["add_date"], "ADD DT", loc)
        action_eff_date = _date(f["action_eff_date"], "ACT EFF DT", loc)
        term_date = _date(f["term_date"], "TERM DT", loc)
        action_code = f["action_code"] or None
        if action_code == "R" and action_eff_date is not None:
            eff_start = action_eff_date
        elif add_date is not None:
            eff_start = add_date
        elif action_eff_date is not None:
            self.meta.counts["start_from_action_date"] += 1
            eff_start = action_eff_date
        else:
            self.meta.counts["no_start_date"] += 1
            return None
        long_description = " ".join(" ".join(draft.parts).split())
        unit = (
            billing_unit(long_description)
            if draft.kind == "procedure" and carries_billing_unit(draft.code)
            else None
        )
        return HcpcsRecord(
            code=draft.code,
            kind=draft.kind,
            long_description=long_description,
            short_description=" ".join(f["short_description"].split()),
            coverage_code=f["coverage_code"] or None,
            pricing_indicator=f["pricing_indicator"] or None,
            betos=f["betos"] or None,
            tos=f["tos"] or None,
            add_date=add_date,
            action_eff_date=action_eff_date,
            term_date=term_date,
            action_code=action_code,
            billing_unit=unit,
            eff_start=eff_start,
            eff_end=term_date + timedelta(days=1) if term_date else None,
            locator=loc,
        )


def _same_but_locator(a: HcpcsRecord, b: HcpcsRecord) -> bool:
    return a == dataclasses.replace(b, locator=a.locator)


def _date(value: Any, column: str, locator: str) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return _yyyymmdd(text)
    except ValueError as err:
        raise ParseError(f"{locator}: {column} {text!r} is not a YYYYMMDD date", locator=locator) from err


# A file repeats a few hundred distinct dates over tens of thousands of cells.
@lru_cache(maxsize=4096)
def _yyyymmdd(text: str) -> date:
    if not _DATE.fullmatch(text):
        raise ValueError(text)
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


# --- fixed-width txt ----------------------------------------------------------------------------


def _parse_txt(data: bytes, member: str, meta: SourceMeta) -> Iterator[HcpcsRecord]:
    builder = _Builder(meta)
    # CRLF per the layout; splitting on LF and dropping a CR keeps LF-only copies readable too.
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the final line ending ends a line; it does not start an empty one
    for number, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            meta.counts["txt_blank_line"] += 1
            continue
        if not _TXT_RECORD.match(line):
            meta.counts["txt_preamble_line"] += 1
            continue
        locator = f"{member} line {number}"
        recid = chr(line[10])
        if recid in _FIRST:
            if len(line) != RECORD_LENGTH:
                raise _length_error(locator, len(line))
            text = line.decode("latin-1")
            kind = _FIRST[recid]
            code = text[0:5].strip()
            fields = {
                "long_description": text[11:91],
                "short_description": text[91:119],
                "pricing_indicator": text[119:121].strip(),
                "coverage_code": text[229].strip(),
                "betos": text[256:259].strip(),
                "tos": text[260].strip(),
                "add_date": text[268:276],
                "action_eff_date": text[276:284],
                "term_date": text[284:292],
                "action_code": text[292].strip(),
            }
            yield from builder.first(code, kind, fields, locator)
        else:
            if len(line) != RECORD_LENGTH:
                if not _CONTINUATION_MIN <= len(line) < RECORD_LENGTH or line[_CONTINUATION_MIN:].strip():
                    raise _length_error(locator, len(line))
                meta.counts["txt_short_continuation"] += 1
            text = line[:_CONTINUATION_MIN].decode("latin-1")
            builder.continuation(text[0:5].strip(), _CONTINUATION[recid], text[11:91], locator)
    yield from builder.flush()


def _length_error(locator: str, length: int) -> ParseError:
    return ParseError(
        f"{locator}: record is {length} bytes, expected {RECORD_LENGTH}",
        locator=locator,
    )


# --- xlsx and csv -------------------------------------------------------------------------------


def _parse_xlsx(data: bytes, member: str, meta: SourceMeta) -> Iterator[HcpcsRecord]:
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        # skip_empty_area=False keeps index i == sheet row i + 1 even if the sheet starts lower down.
        rows: list[list[Any]] = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except (python_calamine.CalamineError, ValueError) as err:
        raise ParseError(f"{member}: not a readable workbook ({err})", locator=member) from err
    yield from _parse_rows(rows, member, meta)


def _parse_csv(data: bytes, member: str, meta: SourceMeta) -> Iterator[HcpcsRecord]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Exports saved by Excel on Windows are cp1252; a UTF-8 export is the recorded one.
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as err:
            raise ParseError(f"{member}: neither UTF-8 nor cp1252 text ({err})", locator=member) from err
        meta.counts["csv_decoded_as_cp1252"] += 1
    rows: list[list[Any]] = list(csv.reader(io.StringIO(text, newline="")))
    yield from _parse_rows(rows, member, meta)


def _cell(value: Any) -> str:
    if type(value) is str:  # the common case first: this runs for every cell of every row
        return value
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (date, datetime)):
        return value.strftime("%Y%m%d")
    return str(value)


def _parse_rows(rows: Sequence[Sequence[Any]], member: str, meta: SourceMeta) -> Iterator[HcpcsRecord]:
    header_index, columns = _find_header(rows, member)
    preamble = sum(1 for row in rows[:header_index] if any(_cell(c).strip() for c in row))
    if preamble:
        meta.counts["preamble_row"] += preamble
    builder = _Builder(meta)
    for index in range(header_index + 1, len(rows)):
        row = rows[index]
        cells = [_cell(row[i]) if i < len(row) else "" for i in columns]
        if not any(c.strip() for c in cells):
            meta.counts["blank_row"] += 1
            continue
        (hcpc, recid, long_d, short_d, price1, cov, betos, tos1, add, act, term, action) = cells
        locator = f"{member} row {index + 1}"
        recid = recid.strip()
        code = hcpc.strip()
        kind = _FIRST.get(recid) or _CONTINUATION.get(recid)
        if kind is None:
            raise ParseError(
                f"{locator}: RECID {recid!r} for {code!r} is not 3, 4, 7 or 8",
                locator=locator,
            )
        if not _CODE_SHAPE[kind].fullmatch(code):
            raise ParseError(
                f"{locator}: {code!r} is not a {kind} code",
                locator=locator,
            )
        if recid in _CONTINUATION:
            builder.continuation(code, kind, long_d, locator)
            continue
        fields = {
            "long_description": long_d,
            "short_description": short_d,
            "pricing_indicator": price1.strip(),
            "coverage_code": cov.strip(),
            "betos": betos.strip(),
            "tos": tos1.strip(),
            "add_date": add,
            "action_eff_date": act,
            "term_date": term,
            "action_code": action.strip(),
        }
        yield from builder.first(code, kind, fields, locator)
    yield from builder.flush()


def _normal(name: Any) -> str:
    return " ".join(_cell(name).split()).upper()


def _find_header(rows: Sequence[Sequence[Any]], member: str) -> tuple[int, list[int]]:
    """Index of the header row and, for each of REQUIRED_COLUMNS, its column index.

    The header is the first row holding "HCPC" and at least half of the required names, so a
    header that lost one column is still found and reported by name rather than as "no header".
    """
    required = set(REQUIRED_COLUMNS)
    for index, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        names = [_normal(c) for c in row]
        if "HCPC" not in names or len(required.intersection(names)) < len(required) // 2:
            continue
        positions: dict[str, int] = {}
        for position, col in enumerate(names):
            positions.setdefault(col, position)
        for col in REQUIRED_COLUMNS:
            if col not in positions:
                found = ", ".join(_cell(c).strip() for c in row if _cell(c).strip())
                raise LayoutChanged(
                    f"{member}: no column '{col}' in header row {index + 1} (found: {found})", locator=member
                )
        return index, [positions[col] for col in REQUIRED_COLUMNS]
    raise LayoutChanged(
        f"{member}: no header row with 'HCPC' and the HCPCS column names in the first "
        f"{_HEADER_SEARCH_ROWS} rows",
        locator=member,
    )
