"""CMS NCCI Medically Unlikely Edits (MUE) table -> :class:`UnitLimitRecord` (DOMAIN.md §3.5,
PROVENANCE.md §2 and "Format notes: MUE CSV").

``body`` is one of

* a CMS zip, one per setting and quarter: ``medicare-ncci-2026-q3-practitioner-services-mue-table.zip``,
  ``medicare-ncci-2026-q3-facility-outpatient-hospital-services-mue-table.zip`` (the word "facility-" is
  in CMS's links; it is optional here), ``medicare-ncci-2026-q3-dme-supplier-services-mue-table.zip``.
  Each holds the same table as ``MCR_MUE_<Setting>Services_Eff_MM-DD-YYYY.csv`` and ``.xlsx``. The csv
  is read when present (it is what the recorded slice is, and cp1252 text needs no workbook reader);
  the xlsx only when no csv is there (read with python_calamine). Other members are ignored;
* a bare ``.csv`` or ``.xlsx`` named like the member.

Decisions, each measured on the recorded practitioner slice (2026-07-01) or taken from the cited
sources:

* **Setting and effective date come from the file name only**: the table has no date column. The
  member name ``MCR_MUE_PractitionerServices_Eff_07-01-2026`` gives practitioner / 2026-07-01,
  ``...OutpatientHospitalServices_Eff_...`` outpatient_hospital, ``...DMESupplierServices_Eff_...`` dme
  (the three names in andrewallenbruce/northstar data-raw/ncci.R). A file name without them is a
  :class:`ParseError`: guessing the date of a unit limit is not an option.
* **The names must agree.** A zip named for one setting or quarter that holds another's table (the
  practitioner zip holding the DME csv) is a :class:`ParseError` naming both; so is an effective
  date outside the quarter the zip name or ``meta.release`` gives. ``meta.release`` may be written
  ``2026-07``, ``2026-07-01`` or ``2026-Q3``.
* **cp1252.** The slice is cp1252/Latin-1 (a ``®`` byte 0xAE in the notice). Bytes cp1252 leaves
  undefined fall back to Latin-1, counted as ``csv_decoded_as_latin1``.
* **Records before the header** (the quoted multi-line AMA notice, record 1, followed by ``,,,``)
  are skipped and counted as ``notice_record``. The header is found by content in the first
  20 records: its first cell is ``"HCPCS/\\nCPT Code"`` (an embedded newline, compared without
  whitespace). The value column is named for the setting (``Practitioner Services MUE Values``,
  ``Outpatient Hospital Services MUE Values``, ``DME Supplier Services MUE Values``) and must be the
  one of the setting the file name says; another setting's column is a :class:`ParseError`, a renamed
  or missing column :class:`LayoutChanged` naming the header row and what it holds.
* **Values.** A whole number is the limit; 0 is a real value (not payable: V5364 has MUE 0). A blank
  cell or one that says confidential / not published is an unpublished limit: ``max_units`` None,
  ``published`` False, never 0 (counted as ``unpublished_value``). Anything else is a
  :class:`ParseError` ("FILE row N: MUE value 'abc' for 0001U is not a number").
* **MAI** ``"3 Date of Service Edit: Clinical"`` gives ``mai`` 3 and ``mai_label`` "Date of Service
  Edit: Clinical". The digit and the label must be one of CMS's three pairs (1 Line Edit, 2 Date of
  Service Edit: Policy, 3 Date of Service Edit: Clinical); a bare digit gets its label
  (``mai_without_label``); a blank cell gives None (``no_mai``; tables before Q3 2014 had no MAI).
* **Codes** are five letters or digits (CPT, PLA ``0001U``, HCPCS ``J9035``). An xlsx may store an
  all-digit code as a number; it is zero-padded back to five digits.
* **A code twice in one table** is a :class:`ParseError` naming both rows: the table is one limit per
  code and setting, and choosing between two would be a guess.
* ``eff_start`` is the table's effective date and ``eff_end`` None: a table is in force until the
  next one (the rulebook's timeline mode closes it).

Counts (``meta.counts``): ``notice_record``, ``blank_row``, ``unpublished_value``, ``no_mai``,
``mai_without_label``, ``numeric_code_cell``, ``csv_decoded_as_latin1``, ``xlsx_copy_not_read``.

``locator`` is ``"<member> row N"``: the 1-based CSV record number counting the notice and the
header (0001U, the first code, is row 3 of the recorded slice), or the 1-based sheet row of an xlsx.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any

import python_calamine

from parsers.archive import looks_like_html, open_zip, read_member, safe_members
from parsers.errors import LayoutChanged, ParseError, with_context
from parsers.records import SourceMeta, UnitLimitRecord

__all__ = ["MAI_LABELS", "VALUE_COLUMNS", "parse", "table_name"]

#: The value column of each setting's table, as CMS names it.
VALUE_COLUMNS = {
    "practitioner": "Practitioner Services MUE Values",
    "outpatient_hospital": "Outpatient Hospital Services MUE Values",
    "dme": "DME Supplier Services MUE Values",
}
#: The setting word of the member name (``MCR_MUE_<word>Services_Eff_...``).
_MEMBER_WORDS = {"Practitioner": "practitioner", "OutpatientHospital": "outpatient_hospital", "DMESupplier": "dme"}
#: The setting words of the zip name (``medicare-ncci-2026-q3-<words>-services-mue-table.zip``).
_ZIP_WORDS = {
    "practitioner": "practitioner",
    "facility-outpatient-hospital": "outpatient_hospital",
    "outpatient-hospital": "outpatient_hospital",
    "dme-supplier": "dme",
}
_HUMAN = {
    "practitioner": "practitioner services",
    "outpatient_hospital": "outpatient hospital services",
    "dme": "DME supplier services",
}
#: MUE Adjudication Indicators (DOMAIN.md §3.5).
MAI_LABELS = {1: "Line Edit", 2: "Date of Service Edit: Policy", 3: "Date of Service Edit: Clinical"}

CODE_COLUMN = "HCPCS/CPT Code"
MAI_COLUMN = "MUE Adjudication Indicator"
RATIONALE_COLUMN = "MUE Rationale"
_HEADER_SEARCH_ROWS = 20

_MEMBER_NAME = re.compile(
    r"MCR_MUE_(?P<word>[A-Za-z]+?)Services_Eff_(?P<m>\d{2})-(?P<d>\d{2})-(?P<y>\d{4})", re.IGNORECASE
)
_ZIP_NAME = re.compile(r"ncci-(?P<y>\d{4})-?q(?P<q>[1-4])-(?P<words>[a-z-]+?)-services-mue-table", re.IGNORECASE)
_RELEASE_QUARTER = re.compile(r"(?P<y>\d{4})-?q(?P<q>[1-4])\b", re.IGNORECASE)
_RELEASE_MONTH = re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})(?:-(?P<d>\d{2}))?")
_CODE = re.compile(r"[A-Z0-9]{5}")
_WHOLE = re.compile(r"\d+(?:\.0*)?")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_UNPUBLISHED = re.compile(r"confidential|not\s+published|unpublished", re.IGNORECASE)
_MAI = re.compile(r"(?P<digit>\d)(?:\s+(?P<label>.+))?", re.DOTALL)


@dataclass(frozen=True)
class TableName:
    """What a member or file name says: the setting and the effective date of the table."""

    setting: str
    effective: date


def table_name(name: str) -> TableName | None:
    """Setting and effective date from ``MCR_MUE_<Setting>Services_Eff_MM-DD-YYYY``, or None."""
    found = _MEMBER_NAME.search(PurePosixPath(name).name)
    if found is None:
        return None
    setting = next((s for w, s in _MEMBER_WORDS.items() if w.lower() == found["word"].lower()), None)
    if setting is None:
        return None
    try:
        effective = date(int(found["y"]), int(found["m"]), int(found["d"]))
    except ValueError:
        return None
    return TableName(setting, effective)


def parse(body: bytes, meta: SourceMeta) -> Iterator[UnitLimitRecord]:
    """Yield one :class:`UnitLimitRecord` per code of a CMS MUE table (zip, csv or xlsx)."""
    return with_context(_parse(body, meta), meta.source, meta.url)


def _parse(body: bytes, meta: SourceMeta) -> Iterator[UnitLimitRecord]:
    name = meta.filename
    lower = PurePosixPath(name).name.lower()
    if lower.endswith((".csv", ".xlsx")):
        member, data = PurePosixPath(name).name, body
    elif body.startswith(b"PK\x03\x04") or lower.endswith(".zip"):
        zf = open_zip(body, name)
        member = _pick_member(safe_members(zf, name), name, meta)
        data = read_member(zf, member, name)
        member = PurePosixPath(member).name
    else:
        raise ParseError(f"{name}: not an MUE zip, csv or xlsx file (unknown extension)", locator=name)
    if looks_like_html(data):
        raise ParseError(f"{member}: expected an MUE table, got an HTML page", locator=member)
    table = table_name(member) or table_name(name)
    if table is None:
        raise ParseError(
            f"{member}: no setting and effective date in the file name "
            "(expected MCR_MUE_<Practitioner|OutpatientHospital|DMESupplier>Services_Eff_MM-DD-YYYY)",
            locator=member,
        )
    _check_zip_name(name, member, table)
    _check_release(meta.release, member, table)
    if member.lower().endswith(".xlsx"):
        rows = _xlsx_rows(data, member)
    else:
        rows = _csv_rows(data, member, meta)
    yield from _records(rows, member, table, meta)


def _pick_member(members: Sequence[str], zip_name: str, meta: SourceMeta) -> str:
    tables = [m for m in members if table_name(m) and PurePosixPath(m).suffix.lower() in (".csv", ".xlsx")]
    settings = sorted({t.setting for t in map(table_name, tables) if t})
    if len(settings) > 1:
        raise ParseError(
            f"{zip_name}: holds MUE tables for more than one setting ({', '.join(tables)})", locator=zip_name
        )
    for suffix in (".csv", ".xlsx"):
        found = [m for m in tables if PurePosixPath(m).suffix.lower() == suffix]
        if len(found) > 1:
            raise LayoutChanged(
                f"{zip_name}: more than one MUE table ({', '.join(found)}); cannot tell which to read",
                locator=zip_name,
            )
        if found:
            if suffix == ".csv" and any(PurePosixPath(m).suffix.lower() == ".xlsx" for m in tables):
                meta.counts["xlsx_copy_not_read"] += 1
            return found[0]
    raise ParseError(
        f"{zip_name}: no MUE table (MCR_MUE_*Services_Eff_MM-DD-YYYY.csv or .xlsx) in the zip "
        f"(members: {', '.join(members) or 'none'})",
        locator=zip_name,
    )


def _quarter(d: date) -> tuple[int, int]:
    return d.year, (d.month - 1) // 3 + 1


def _check_zip_name(name: str, member: str, table: TableName) -> None:
    """The CMS zip name carries setting and quarter too; a zip holding another table is refused."""
    found = _ZIP_NAME.search(PurePosixPath(name).name)
    if found is None or PurePosixPath(name).name == member:
        return
    setting = _ZIP_WORDS.get(found["words"].lower())
    if setting is not None and setting != table.setting:
        raise ParseError(
            f"{name}: the zip is named for the {_HUMAN[setting]} MUE table but holds {member} "
            f"({_HUMAN[table.setting]})",
            locator=name,
        )
    year, q = int(found["y"]), int(found["q"])
    if (year, q) != _quarter(table.effective):
        raise ParseError(
            f"{name}: the zip is named for {year} Q{q} but holds {member} (effective {table.effective.isoformat()})",
            locator=name,
        )


def _check_release(release: str | None, member: str, table: TableName) -> None:
    if not release:
        return
    eff = table.effective
    quarter = _RELEASE_QUARTER.search(release)
    month = _RELEASE_MONTH.search(release)
    if quarter is not None:
        agrees = (int(quarter["y"]), int(quarter["q"])) == _quarter(eff)
    elif month is not None:
        agrees = (int(month["y"]), int(month["m"])) == (eff.year, eff.month) and (
            month["d"] is None or int(month["d"]) == eff.day
        )
    else:
        raise ParseError(
            f"{member}: release {release!r} names no quarter (expected 2026-07, 2026-07-01 or 2026-Q3)",
            locator=member,
        )
    if not agrees:
        raise ParseError(
            f"{member}: effective {eff.isoformat()} (from the file name) does not agree with release {release!r}",
            locator=member,
        )


# --- reading cells ------------------------------------------------------------------------------


def _csv_rows(data: bytes, member: str, meta: SourceMeta) -> list[list[Any]]:
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; Latin-1 decodes every byte, and the file is Latin-1 text.
        text = data.decode("latin-1")
        meta.counts["csv_decoded_as_latin1"] += 1
    # A table is ~15,000 short rows (about 1 MB): reading it whole costs nothing and lets the header
    # be found before any row is read.
    try:
        return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    except csv.Error as err:
        raise ParseError(f"{member}: not readable as CSV ({err})", locator=member) from err


def _xlsx_rows(data: bytes, member: str) -> list[list[Any]]:
    safe_members(open_zip(data, member), member)  # an xlsx is a zip: check it before calamine inflates it
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        # skip_empty_area=False keeps index i == sheet row i + 1.
        rows: list[list[Any]] = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except (python_calamine.CalamineError, ValueError) as err:
        raise ParseError(f"{member}: not a readable workbook ({err})", locator=member) from err
    return rows


def _text(value: Any) -> str:
    if type(value) is str:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value).strip()


def _compact(value: Any) -> str:
    return "".join(_text(value).split()).upper()


def _shown(value: Any) -> str:
    return " ".join(_text(value).split())


# --- header and rows ----------------------------------------------------------------------------


def _find_header(rows: Sequence[Sequence[Any]], member: str, setting: str) -> tuple[int, tuple[int, ...]]:
    """Index of the header row and the positions of code, value, MAI and rationale columns."""
    code_key = _compact(CODE_COLUMN)
    for index, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        compact = [_compact(c) for c in row]
        if not (any(c.startswith("HCPCS") for c in compact) or sum("MUE" in c for c in compact) >= 2):
            continue
        positions: dict[str, int] = {}
        for position, cell in enumerate(compact):
            positions.setdefault(cell, position)
        found = ", ".join(_shown(c) for c in row if _shown(c))
        wanted = (CODE_COLUMN, VALUE_COLUMNS[setting], MAI_COLUMN, RATIONALE_COLUMN)
        for column in wanted:
            if _compact(column) in positions:
                continue
            if column == VALUE_COLUMNS[setting]:
                for other, other_column in VALUE_COLUMNS.items():
                    if _compact(other_column) in positions:
                        raise ParseError(
                            f"{member}: header row {index + 1} has '{other_column}', the "
                            f"{_HUMAN[other]} column, but the file name says {_HUMAN[setting]}",
                            locator=member,
                        )
            raise LayoutChanged(
                f"{member}: no column '{column}' in header row {index + 1} (found: {found})", locator=member
            )
        return index, tuple(positions[_compact(c)] for c in (code_key, *wanted[1:]))
    raise LayoutChanged(
        f"{member}: no header row with '{CODE_COLUMN}' and the MUE column names in the first "
        f"{_HEADER_SEARCH_ROWS} records",
        locator=member,
    )


def _records(
    rows: Sequence[Sequence[Any]], member: str, table: TableName, meta: SourceMeta
) -> Iterator[UnitLimitRecord]:
    header, columns = _find_header(rows, member, table.setting)
    notice = sum(1 for row in rows[:header] if any(_text(c) for c in row))
    if notice:
        meta.counts["notice_record"] += notice
    value_name = VALUE_COLUMNS[table.setting]
    seen: dict[str, int] = {}
    for index in range(header + 1, len(rows)):
        row = rows[index]
        number = index + 1
        code_cell, value_cell, mai_cell, rationale_cell = (row[i] if i < len(row) else None for i in columns)
        if not any(_text(c) for c in row):
            meta.counts["blank_row"] += 1
            continue
        locator = f"{member} row {number}"
        code = _code(code_cell, locator, meta)
        if code in seen:
            raise ParseError(
                f"{locator}: {code} appears twice in the {_HUMAN[table.setting]} table "
                f"(rows {seen[code]} and {number})",
                locator=locator,
            )
        seen[code] = number
        max_units = _value(value_cell, code, value_name, locator, meta)
        mai, mai_label = _mai(mai_cell, code, locator, meta)
        yield UnitLimitRecord(
            code=code,
            setting=table.setting,
            max_units=max_units,
            published=max_units is not None,
            mai=mai,
            mai_label=mai_label,
            rationale=_shown(rationale_cell) or None,
            eff_start=table.effective,
            eff_end=None,
            locator=locator,
        )
    if not seen:
        # Quality is counted, and zero is a failure (CONVENTIONS.md 13).
        raise ParseError(f"{member}: the MUE table has a header but no rows", locator=member)


def _code(cell: Any, locator: str, meta: SourceMeta) -> str:
    if isinstance(cell, (int, float)) and not isinstance(cell, bool) and float(cell).is_integer():
        meta.counts["numeric_code_cell"] += 1
        code = f"{int(cell):05d}"
    else:
        code = _text(cell).upper()
    if not _CODE.fullmatch(code):
        raise ParseError(f"{locator}: {_text(cell)!r} is not a HCPCS/CPT code", locator=locator)
    return code


def _value(cell: Any, code: str, column: str, locator: str, meta: SourceMeta) -> int | None:
    text = _text(cell)
    if not text or _UNPUBLISHED.search(text):
        meta.counts["unpublished_value"] += 1
        return None
    if _WHOLE.fullmatch(text):
        return int(text.split(".")[0])
    if _NUMBER.fullmatch(text):
        raise ParseError(f"{locator}: MUE value {text!r} for {code} is not a whole number", locator=locator)
    raise ParseError(f"{locator}: MUE value {text!r} for {code} is not a number", locator=locator)


def _mai(cell: Any, code: str, locator: str, meta: SourceMeta) -> tuple[int | None, str | None]:
    text = _shown(cell)
    if not text:
        meta.counts["no_mai"] += 1
        return None, None
    found = _MAI.fullmatch(text)
    digit = int(found["digit"]) if found else None
    if found is None or digit not in MAI_LABELS:
        raise ParseError(
            f"{locator}: MUE Adjudication Indicator {text!r} for {code} is not 1, 2 or 3 with its label",
            locator=locator,
        )
    label = MAI_LABELS[digit]
    if found["label"] is None:
        meta.counts["mai_without_label"] += 1
    elif found["label"].casefold() != label.casefold():
        raise ParseError(
            f"{locator}: MUE Adjudication Indicator {text!r} for {code}: MAI {digit} is '{label}'",
            locator=locator,
        )
    return digit, label
