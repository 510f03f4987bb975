"""cms_asp: the CMS Medicare Part B drug payment limit file and the ASP NDC-HCPCS crosswalk
(DOMAIN.md §3.8, PROVENANCE.md §4).

Both are quarterly "section 508" CSV files, cp1252, inside zips on the CMS "ASP pricing files" page.
One parser reads both, and tells them apart by their header row, never by the file name (CMS has
renamed the payment limit file, and names differ by quarter). What it copes with, as recorded in the
nine quarters 2024 Q1 - 2026 Q1:

* a preamble of 8 rows (pricing: title, blank, "Effective <start> through <end>", blank, Note 1,
  Note 2, two blanks; crosswalk: title, the effective line indented by five spaces, blank, a long
  disclaimer, four blanks) before the header row, which is found, not assumed;
* the effective dates: only in the preamble line "Effective January 1, 2026 through March 31, 2026".
  They are the facts' valid time: ``eff_start`` = the start, ``eff_end`` = the day after "through";
* the pricing header ``HCPCS Code, Short Description, HCPCS Code Dosage, Payment Limit,
  Co-insurance Percentage, ...`` (the co-insurance column exists only from 2023 Q2; it is optional);
  trailing empty columns that come and go (one from Jan 2025, two in Jul 2024);
* the crosswalk's first column named for the HCPCS year (``_2023_CODE`` in the January 2024 file,
  ``_2024_CODE``, ``_2025_CODE``, ``_2026_CODE``), and since January 2025 up to ~240 empty trailing
  columns on every row;
* the 2026 rename of the pricing file to "Medicare Part B Payment Limit File" (same content);
* "N/A" payment limits (A9606: the note gives AWP/WAC instead; J0739/J0750: "determined by the
  MAC") become ``payment_limit=None`` and are counted, never 0;
* notes with embedded line breaks (one CSV record spans two lines: locators count records);
* crosswalk rows identified by a UPC/GTIN or catalogue number instead of a 5-4-2 NDC (skin
  substitutes, devices: about 1,000 rows a quarter since 2025) are kept as printed and counted.

A document may be a zip (as fetched) or one CSV. Every CSV member that is a payment limit file or a
crosswalk is read; other members (xlsx copies, NOC files, readme) are counted as not read.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath

from parsers.archive import looks_like_html, open_zip, read_member, safe_members
from parsers.errors import LayoutChanged, ParseError, with_context
from parsers.records import NdcRecord, PriceRecord, SourceMeta

__all__ = ["effective_dates", "parse"]

_HEADER_SEARCH_ROWS = 25
_EFFECTIVE = re.compile(
    r"effective\s+([a-z]+)\.?\s+(\d{1,2}),?\s+(\d{4})\s+(?:through|thru|to|-)\s+([a-z]+)\.?\s+(\d{1,2}),?\s+(\d{4})",
    re.IGNORECASE,
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_CODE = re.compile(r"^[A-Z0-9]{5}$")
_NDC = re.compile(r"^\d{5}-\d{4}-\d{2}$")
_CROSSWALK_CODE = re.compile(r"^_?\d{4}_?CODE$|^HCPCS(CODE)?$")

# Column names compacted (upper case, no spaces): pricing and crosswalk.
_P_CODE, _P_DESC, _P_DOSAGE, _P_LIMIT, _P_COINS, _P_NOTES = (
    "HCPCSCODE",
    "SHORTDESCRIPTION",
    "HCPCSCODEDOSAGE",
    "PAYMENTLIMIT",
    "CO-INSURANCEPERCENTAGE",
    "NOTES",
)
_X_COLUMNS = ("LABELERNAME", "NDC2", "DRUGNAME", "HCPCSDOSAGE", "PKGSIZE", "PKGQTY", "BILLUNITS", "BILLUNITSPKG")
_X_SHOWN = ("LABELER NAME", "NDC2", "Drug Name", "HCPCS dosage", "PKG SIZE", "PKG QTY", "BILLUNITS", "BILLUNITSPKG")


def parse(body: bytes, meta: SourceMeta) -> Iterator[PriceRecord | NdcRecord]:
    """Yield a :class:`PriceRecord` per payment limit row and an :class:`NdcRecord` per crosswalk row."""
    return with_context(_parse(body, meta), meta.source, meta.url)


def _parse(body: bytes, meta: SourceMeta) -> Iterator[PriceRecord | NdcRecord]:
    name = meta.filename
    lower = PurePosixPath(name).name.lower()
    if body.startswith(b"PK\x03\x04") or lower.endswith(".zip"):
        zf = open_zip(body, name)
        members = [m for m in safe_members(zf, name) if m.lower().endswith(".csv")]
        read = 0
        for member in sorted(members):
            data = read_member(zf, member, name)
            rows = _csv_rows(data, PurePosixPath(member).name, meta)
            if _kind(rows) is None:
                meta.counts["zip member not a payment limit file or crosswalk (not read)"] += 1
                continue
            read += 1
            yield from _records(rows, PurePosixPath(member).name, meta)
        others = len(safe_members(zf, name)) - len(members)
        if others:
            meta.counts["zip member not a CSV (not read)"] += others
        if not read:
            raise ParseError(
                f"{name}: no ASP payment limit file or NDC-HCPCS crosswalk CSV in the zip "
                f"(members: {', '.join(zf.namelist()) or 'none'})",
                locator=name,
            )
        return
    if looks_like_html(body):
        raise ParseError(f"{name}: expected an ASP zip or CSV file, got an HTML page", locator=name)
    member = PurePosixPath(name).name
    yield from _records(_csv_rows(body, member, meta), member, meta)


def _csv_rows(data: bytes, member: str, meta: SourceMeta) -> list[list[str]]:
    if looks_like_html(data):
        raise ParseError(f"{member}: expected an ASP CSV file, got an HTML page", locator=member)
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; Latin-1 decodes every byte.
        text = data.decode("latin-1")
        meta.counts["csv decoded as latin-1"] += 1
    try:
        return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    except csv.Error as err:
        raise ParseError(f"{member}: not readable as CSV ({err})", locator=member) from err


def _compact(cell: str) -> str:
    return "".join(cell.split()).upper()


def _header(rows: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    for index, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        first = _compact(row[0]) if row else ""
        if first == _P_CODE:
            return index, "pricing"
        if _CROSSWALK_CODE.match(first) and {"NDC2", "NDC"} & {_compact(c) for c in row}:
            return index, "crosswalk"
    return None


def _kind(rows: Sequence[Sequence[str]]) -> str | None:
    found = _header(rows)
    return None if found is None else found[1]


def _month(word: str, member: str) -> int:
    try:
        return _MONTHS.index(word[:3].lower()) + 1
    except ValueError:
        raise LayoutChanged(f"{member}: effective line names no month ({word!r})", locator=member) from None


def effective_dates(rows: Sequence[Sequence[str]], member: str) -> tuple[date, date]:
    """``(eff_start, eff_end)`` from the preamble's "Effective <start> through <end>" line; ``eff_end``
    is the day after the inclusive "through" date."""
    header = _header(rows)
    limit = header[0] if header else _HEADER_SEARCH_ROWS
    for row in rows[:limit]:
        for cell in row:
            m = _EFFECTIVE.search(cell)
            if m:
                try:
                    start = date(int(m.group(3)), _month(m.group(1), member), int(m.group(2)))
                    through = date(int(m.group(6)), _month(m.group(4), member), int(m.group(5)))
                except ValueError as err:
                    raise LayoutChanged(
                        f"{member}: bad effective date in {cell.strip()!r} ({err})", locator=member
                    ) from None
                if through < start:
                    raise ParseError(
                        f"{member}: effective period ends before it starts ({cell.strip()!r})", locator=member
                    )
                return start, through + timedelta(days=1)
    raise LayoutChanged(f"{member}: no 'Effective <date> through <date>' line before the header row", locator=member)


def _check_release(release: str | None, start: date, member: str) -> None:
    if release and release != f"{start.year:04d}-{start.month:02d}":
        raise ParseError(
            f"{member}: the file is effective {start.isoformat()} but was published as release {release} "
            "(wrong file behind the link?)",
            locator=member,
        )


def _decimal(cell: str) -> str | None:
    text = cell.strip().replace(",", "").replace("$", "")
    if not text:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    return text


def _records(rows: list[list[str]], member: str, meta: SourceMeta) -> Iterator[PriceRecord | NdcRecord]:
    found = _header(rows)
    if found is None:
        raise LayoutChanged(
            f"{member}: no header row starting 'HCPCS Code' (payment limit file) or '_YYYY_CODE' with "
            f"'NDC2' (crosswalk) in the first {_HEADER_SEARCH_ROWS} records",
            locator=member,
        )
    index, kind = found
    start, end = effective_dates(rows, member)
    _check_release(meta.release, start, member)
    header = [_compact(c) for c in rows[index]]
    if kind == "pricing":
        yield from _prices(rows, index, header, member, start, end, meta)
    else:
        yield from _crosswalk(rows, index, header, member, start, end, meta)


def _positions(
    header: list[str], wanted: Sequence[str], shown: Sequence[str], row: list[str], index: int, member: str
) -> list[int]:
    out = []
    for col, label in zip(wanted, shown, strict=True):
        if col not in header:
            found = ", ".join(c.strip() for c in row if c.strip())
            raise LayoutChanged(
                f"{member}: no column '{label}' in header row {index + 1} (found: {found})", locator=member
            )
        out.append(header.index(col))
    return out


def _cell(row: Sequence[str], i: int | None) -> str:
    return row[i].strip() if i is not None and i < len(row) else ""


def _prices(
    rows: list[list[str]], index: int, header: list[str], member: str, start: date, end: date, meta: SourceMeta
) -> Iterator[PriceRecord]:
    code_i, dose_i, limit_i = _positions(
        header,
        (_P_CODE, _P_DOSAGE, _P_LIMIT),
        ("HCPCS Code", "HCPCS Code Dosage", "Payment Limit"),
        rows[index],
        index,
        member,
    )
    desc_i = header.index(_P_DESC) if _P_DESC in header else None
    coins_i = header.index(_P_COINS) if _P_COINS in header else None
    notes_i = header.index(_P_NOTES) if _P_NOTES in header else None
    if coins_i is None:
        meta.counts["payment limit file without a co-insurance column"] += 1
    seen: dict[str, int] = {}
    for n in range(index + 1, len(rows)):
        row = rows[n]
        if not any(c.strip() for c in row):
            continue  # trailing blank records
        locator = f"{member} row {n + 1}"
        code = _cell(row, code_i).upper()
        if not _CODE.match(code):
            meta.counts["payment limit row without a valid HCPCS code (skipped)"] += 1
            continue
        if code in seen:
            raise ParseError(f"{locator}: {code} appears twice (rows {seen[code]} and {n + 1})", locator=locator)
        seen[code] = n + 1
        raw_limit = _cell(row, limit_i)
        limit = _decimal(raw_limit)
        if limit is None:
            if raw_limit.upper() in ("N/A", "NA", ""):
                meta.counts["payment limit N/A (priced by the MAC)"] += 1
            else:
                meta.counts["unreadable payment limit (skipped)"] += 1
                continue
        yield PriceRecord(
            code=code,
            short_description=_cell(row, desc_i),
            dosage=" ".join(_cell(row, dose_i).split()),
            payment_limit=limit,
            coinsurance_pct=_decimal(_cell(row, coins_i)),
            notes=" ".join(_cell(row, notes_i).split()) or None,
            eff_start=start,
            eff_end=end,
            locator=locator,
        )
    if not seen:
        raise ParseError(f"{member}: the payment limit file has a header but no rows", locator=member)


def _crosswalk(
    rows: list[list[str]], index: int, header: list[str], member: str, start: date, end: date, meta: SourceMeta
) -> Iterator[NdcRecord]:
    if "NDC2" not in header and "NDC" in header:
        header = ["NDC2" if c == "NDC" else c for c in header]
    labeler_i, ndc_i, drug_i, dose_i, size_i, qty_i, bu_i, bupkg_i = _positions(
        header, _X_COLUMNS, _X_SHOWN, rows[index], index, member
    )
    padded = len(rows[index]) - len([c for c in rows[index] if c.strip()])
    if padded > 1:
        meta.counts["crosswalk empty trailing columns (ignored)"] += padded
    count = 0
    seen: set[tuple[str, str]] = set()
    for n in range(index + 1, len(rows)):
        row = rows[n]
        if not any(c.strip() for c in row):
            continue
        locator = f"{member} row {n + 1}"
        code = _cell(row, 0).upper()
        ndc = _cell(row, ndc_i)
        if not _CODE.match(code) or not ndc:
            meta.counts["crosswalk row without a valid HCPCS code or product identifier (skipped)"] += 1
            continue
        if not _NDC.match(ndc):
            # Skin substitutes and devices are listed under UPC/GTIN or catalogue numbers
            # ("888867413689", "GG100"): real rows, kept as printed.
            meta.counts["crosswalk row identified by a non-NDC product code (kept as printed)"] += 1
        per_pkg = _decimal(_cell(row, bupkg_i))
        if per_pkg is None or Decimal(per_pkg) <= 0:
            meta.counts["crosswalk row without billing units per package (skipped)"] += 1
            continue
        if (ndc, code) in seen:
            raise ParseError(f"{locator}: NDC {ndc} for {code} appears twice", locator=locator)
        seen.add((ndc, code))
        count += 1
        yield NdcRecord(
            ndc=ndc,
            code=code,
            labeler=_cell(row, labeler_i),
            drug_name=_cell(row, drug_i),
            dosage=" ".join(_cell(row, dose_i).split()),
            pkg_size=_decimal(_cell(row, size_i)) or "",
            pkg_qty=_decimal(_cell(row, qty_i)) or "",
            bill_units=_decimal(_cell(row, bu_i)) or "",
            bill_units_pkg=per_pkg,
            eff_start=start,
            eff_end=end,
            locator=locator,
        )
    if not count:
        raise ParseError(f"{member}: the crosswalk has a header but no rows", locator=member)
