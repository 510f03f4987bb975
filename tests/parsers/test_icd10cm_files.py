"""parsers/icd10cm_files.py on the recorded CMS ICD-10-CM files (April 1 2026 update).

Expected values are read from the files themselves: the order excerpt's rows are counted and split
here by the documented fixed columns, independently of the parser; the tabular list is checked
against the simple-icd-10-cm package, which ships the same XML and builds its code list on its own.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import Path

import pytest

import parsers.icd10cm as icd
from parsers.errors import ParseError
from parsers.icd10cm_files import Icd10CodeRecord, dotted, fiscal_year, parse, release_start
from parsers.records import SourceMeta

ORDER = "icd10cm/icd10cm_order_2026.excerpt.txt"
TABULAR = "icd10cm/icd10cm_tabular_2026_April-1.xml"


def meta(filename: str, release: str | None = "2026-04") -> SourceMeta:
    return SourceMeta(source="icd10cm", url=f"https://www.cms.gov/files/zip/{filename}", sha256="x",
                      filename=filename, release=release)  # fmt: skip


@pytest.fixture(scope="module")
def order_lines(shared_data: Path) -> list[str]:
    return (shared_data / ORDER).read_text(encoding="ascii").splitlines()


@pytest.fixture(scope="module")
def tabular(shared_data: Path) -> tuple[list[Icd10CodeRecord], SourceMeta]:
    m = meta("icd10cm_tabular_2026.xml")
    return list(parse((shared_data / TABULAR).read_bytes(), m)), m


def test_helpers() -> None:
    assert dotted("A0100") == "A01.00" and dotted("A00") == "A00" and dotted("s020xxa") == "S02.0XXA"
    assert release_start("2026-04") == date(2026, 4, 1) and release_start("2025-10") == date(2025, 10, 1)
    assert release_start(None) is None
    assert fiscal_year(date(2025, 10, 1)) == 2026 == fiscal_year(date(2026, 9, 30))


def test_order_excerpt_every_row(shared_data: Path, order_lines: list[str]) -> None:
    m = meta("icd10cm_order_2026.excerpt.txt")
    recs = list(parse((shared_data / ORDER).read_bytes(), m))
    rows = [ln for ln in order_lines if ln.strip()]
    assert len(recs) == len(rows) == 100  # first 60 lines + the M54 block (PROVENANCE.md §7)
    for rec, line in zip(recs, rows, strict=True):
        # the documented columns: code 7-13, flag 15, short 17-76, long 78-
        assert rec.code.replace(".", "") == line[6:13].strip()
        assert rec.billable == (line[14] == "1")
        assert rec.short_description == line[16:76].strip()
        assert rec.long_description == line[77:].strip()
        assert (rec.eff_start, rec.eff_end) == (date(2026, 4, 1), None)
    assert sum(r.billable for r in recs) == sum(ln[14] == "1" for ln in rows)
    assert not m.counts
    first, m5450 = recs[0], next(r for r in recs if r.code == "M54.50")
    assert (first.code, first.billable, first.long_description) == ("A00", False, "Cholera")
    assert (m5450.billable, m5450.long_description) == (True, "Low back pain, unspecified")
    m5401 = next(r for r in recs if r.code == "M54.01")
    assert m5401.short_description == "Panniculitis aff regions of neck/bk, occipt-atlan-ax region"
    lineno = next(i for i, ln in enumerate(order_lines, start=1) if ln[6:13].strip() == "M5401")
    assert m5401.locator == f"icd10cm_order_2026.excerpt.txt line {lineno}" and lineno > 60


def test_tabular_is_the_whole_code_set(tabular: tuple[list[Icd10CodeRecord], SourceMeta]) -> None:
    recs, m = tabular
    codes = [r.code for r in recs]
    # The same codes in the same (tabular) order as simple-icd-10-cm builds from the same file, and
    # the same billable leaves: 98,186 codes, 74,719 billable, 23,467 headers.
    assert codes == icd.codes_in_order()
    assert {r.code for r in recs if r.billable} == set(icd.billable_codes())
    assert (len(recs), sum(r.billable for r in recs)) == (98_186, 74_719)
    assert all(r.short_description is None and r.long_description for r in recs)
    by = {r.code: r for r in recs}
    # seventh characters: S02.0 is a header; S02.0XXA its extension, described as the order file does
    assert not by["S02.0"].billable
    assert by["S02.0XXA"].long_description == "Fracture of vault of skull, initial encounter for closed fracture"
    assert by["C34.90"].billable and by["C34.90"].locator == "icd10cm_tabular_2026.xml diag C34.90"
    # the category S06 note withdraws D and S from the death codes (6th character 7 or 8): 38 x 2
    assert "S06.367A" in by and "S06.367D" not in by and "S06.367S" not in by
    assert m.counts == {"icd10cm extension withdrawn by a tabular note": 76}


def test_order_excerpt_agrees_with_tabular(
    shared_data: Path, tabular: tuple[list[Icd10CodeRecord], SourceMeta]
) -> None:
    by = {r.code: r for r in tabular[0]}
    for rec in parse((shared_data / ORDER).read_bytes(), meta("icd10cm_order_2026.excerpt.txt")):
        assert (rec.billable, rec.long_description) == (by[rec.code].billable, by[rec.code].long_description)


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_zip_layouts(shared_data: Path) -> None:
    order = (shared_data / ORDER).read_bytes()
    m = meta("april-1-2026-code-descriptions-tabular-order.zip")
    body = zipped({"Code Descriptions/icd10cm_order_2026.txt": order, "Code Descriptions/icd10OrderFiles.pdf": b"%PDF"})
    recs = list(parse(body, m))
    assert len(recs) == 100 and recs[0].locator == "icd10cm_order_2026.txt line 1"
    assert m.counts["icd10cm zip member not read"] == 1


def test_bad_input(shared_data: Path) -> None:
    order = (shared_data / ORDER).read_bytes()
    # constructed: a garbled line among the real ones is counted and skipped, the rest are read
    garbled = order.replace(b"00005 A01     0 ", b"0000X A01     0 ", 1)
    m = meta("icd10cm_order_2026.txt")
    assert len(list(parse(garbled, m))) == 99 and m.counts["icd10cm malformed order line"] == 1
    with pytest.raises(ParseError, match=r"x\.zip: no icd10cm_order_<year>\.txt or icd10cm_tabular_<year>\.xml"):
        list(parse(zipped({"readme.txt": b"hello"}), meta("x.zip")))
    with pytest.raises(ParseError, match="FY2026 code set but release 2026-10 is in FY2027"):
        list(parse(order, meta("icd10cm_order_2026.txt", release="2026-10")))
    with pytest.raises(ParseError, match="not well-formed XML"):
        list(parse(b"<ICD10CM.tabular><chapter>", meta("icd10cm_tabular_2026.xml")))
    with pytest.raises(ParseError, match="got an HTML page"):
        list(parse(b"<!DOCTYPE html><html><body>Access denied</body></html>", meta("icd10cm_order_2026.txt")))
    with pytest.raises(ParseError, match="no ICD-10-CM code lines"):
        list(parse(b"not an order file\r\n", meta("icd10cm_order_2026.txt")))


def test_entry_point_is_the_source_parser(shared_data: Path) -> None:
    recs = list(icd.parse((shared_data / ORDER).read_bytes(), meta("icd10cm_order_2026.excerpt.txt")))
    assert len(recs) == 100
