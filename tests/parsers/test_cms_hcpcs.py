"""parsers.cms_hcpcs on every recorded HCPCS file, plus bad inputs constructed here.

Expected values were read from the documents themselves (the txt bytes, the xlsx cells) and are
explained where they differ from PROVENANCE.md. Run ``python -m tests.parsers.test_cms_hcpcs`` to
print the parser's current summary of each recorded file for review.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
import time
import zipfile
from collections import Counter
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import openpyxl
import pytest
import python_calamine

from parsers.archive import open_zip, read_member, safe_members
from parsers.cms_hcpcs import parse
from parsers.errors import LayoutChanged, ParseError, UnsafeArchive
from parsers.records import BillingUnit, HcpcsRecord, SourceMeta
from tests.conftest import shared_data_dir

ZIP_2017 = "annual_2017/2017-Alpha-Numeric-HCPCS-File.zip"
ZIP_2018 = "annual_2018/2018-Alpha-Numeric-HCPCS-File.zip"
ZIP_2019 = "annual_2019/2019-Alpha-Numeric-HCPCS-File.zip"
Q2_2020 = "quarterly_2020/HCPC2020_04_anweb.xlsx"
Q3_2020 = "quarterly_2020/HCPC2020_07_anweb.xlsx"
Q4_2020 = "quarterly_2020/HCPC2020_10_anweb.xlsx"
OCT_2025 = "quarterly_2025/HCPC2025_OCT_ANWEB.xlsx"
OCT_2026 = "quarterly_2026/HCPC2026_OCT_ANWEB.excerpt.csv"
ALL_FILES = (ZIP_2017, ZIP_2018, ZIP_2019, Q2_2020, Q3_2020, Q4_2020, OCT_2025, OCT_2026)
WITH_DRUGS = ALL_FILES[:-1]  # the 2026 excerpt holds modifiers only (A1 ... AW, CP, GD, JF, JG, L1)


def _meta(filename: str) -> SourceMeta:
    return SourceMeta(
        source="cms_hcpcs", url=f"https://example.test/{filename}", sha256="", filename=filename
    )


@cache
def _parsed(path: str) -> tuple[tuple[HcpcsRecord, ...], Counter[str]]:
    """Parse a recorded file once per test session (the files are read-only)."""
    file = Path(path)
    meta = _meta(file.name)
    return tuple(parse(file.read_bytes(), meta)), meta.counts


def _records(shared_data: Path, relative: str) -> dict[str, HcpcsRecord]:
    records, _ = _parsed(str(shared_data / "hcpcs" / relative))
    return {r.code: r for r in records}


@cache
def _zip_member(path: str, suffix: str) -> tuple[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if "ANWEB" in n and n.endswith(suffix)]
        return name, zf.read(name)


def _parse_member(shared_data: Path, relative: str, suffix: str) -> dict[str, HcpcsRecord]:
    name, data = _zip_member(str(shared_data / "hcpcs" / relative), suffix)
    return {r.code: r for r in parse(data, _meta(name))}


# --- every recorded file --------------------------------------------------------------------------


def test_every_recorded_hcpcs_data_file_is_covered(shared_data: Path) -> None:
    hcpcs = shared_data / "hcpcs"
    recorded = {
        str(p.relative_to(hcpcs))
        for p in hcpcs.glob("*/*")
        if p.name.endswith("Alpha-Numeric-HCPCS-File.zip") or "anweb" in p.name.lower()
    }
    assert recorded == set(ALL_FILES)


# (file, records, procedures, modifiers, skipped/tolerated counts)
# PROVENANCE.md counts rows, not codes:
# * 2020 Q2/Q3/Q4 have 7,098 / 7,159 / 7,197 data rows. One of them is G0503's second row (SEQNUM 0020,
#   RECID 4): its 1,000-odd-character description overflows into a continuation row, joined here.
# * 2019 "11,630 records / 6,806 distinct codes" counts every line of the txt: 8 are the disclaimer
#   preamble and blank lines, whose first five bytes add 6 distinct "codes".
#   The txt has 6,800 first records (6,440 procedures + 360 modifiers), as does its xlsx.
# * 2025 has 8,846 rows and 8,846 codes. The 2026 excerpt is 35 rows of modifiers.
# The counts: 2018/2019 preamble lines and blank lines; 2017 trims every continuation record to 91
# bytes (4,330 of them) and 2019 one (G8891, 316 bytes); Q2/Q4 2020 have a 2-paragraph note above
# the header on row 11.
EXPECTED_COUNTS = [
    (ZIP_2017, 6498, 6155, 343, {"txt_short_continuation": 4330}),
    (ZIP_2018, 6559, 6205, 354, {"txt_preamble_line": 6, "txt_blank_line": 5}),
    (ZIP_2019, 6800, 6440, 360, {"txt_preamble_line": 4, "txt_blank_line": 4, "txt_short_continuation": 1}),
    (Q2_2020, 7097, 6728, 369, {"preamble_row": 2}),
    (Q3_2020, 7158, 6789, 369, {}),
    (Q4_2020, 7196, 6825, 371, {"preamble_row": 2}),
    (OCT_2025, 8846, 8463, 383, {}),
    (OCT_2026, 35, 0, 35, {}),
]


@pytest.mark.parametrize(("relative", "total", "procedures", "modifiers", "counts"), EXPECTED_COUNTS)
def test_record_counts(
    shared_data: Path, relative: str, total: int, procedures: int, modifiers: int, counts: dict[str, int]
) -> None:
    records, meta_counts = _parsed(str(shared_data / "hcpcs" / relative))
    kinds = Counter(r.kind for r in records)
    assert (len(records), kinds["procedure"], kinds["modifier"]) == (total, procedures, modifiers)
    assert len({r.code for r in records}) == total
    assert dict(meta_counts) == counts


@pytest.mark.parametrize("relative", ALL_FILES)
def test_code_shapes(shared_data: Path, relative: str) -> None:
    for record in _records(shared_data, relative).values():
        if record.kind == "modifier":
            assert len(record.code) == 2 and record.code.isalnum(), record
            assert record.billing_unit is None
        else:
            assert len(record.code) == 5 and record.code[0].isalpha() and record.code[1:].isdigit(), record
        assert record.long_description == " ".join(record.long_description.split())
        if record.term_date is None:
            assert record.eff_end is None
        else:
            assert record.eff_end == record.term_date + timedelta(days=1)


@pytest.mark.parametrize("relative", WITH_DRUGS)
def test_oncology_drug_units(shared_data: Path, relative: str) -> None:
    records = _records(shared_data, relative)
    assert records["J9035"].billing_unit == BillingUnit("10", "mg")  # bevacizumab
    assert records["J9271"].billing_unit == BillingUnit("1", "mg")  # pembrolizumab
    assert records["J9299"].billing_unit == BillingUnit("1", "mg")  # nivolumab
    assert records["J9355"].billing_unit == BillingUnit("10", "mg")  # trastuzumab
    j9035 = records["J9035"]
    assert (j9035.eff_start, j9035.eff_end, j9035.pricing_indicator, j9035.coverage_code) == (
        date(2005, 1, 1),
        None,
        "51",
        "C",
    )


def test_excerpt_2026_is_modifiers_only(shared_data: Path) -> None:
    records = _records(shared_data, OCT_2026)
    assert {r.kind for r in records.values()} == {"modifier"}
    terminated = {code: r.term_date for code, r in records.items() if r.term_date}
    assert terminated == {
        "CP": date(2017, 12, 31),
        "GD": date(2019, 12, 31),
        "JF": date(2015, 6, 30),
        "JG": date(2024, 12, 31),
        "L1": date(2016, 12, 31),
    }
    assert records["A1"].locator == "HCPC2026_OCT_ANWEB.excerpt.csv row 2"


def test_code_terminated_in_2020(shared_data: Path) -> None:
    # J9199 (gemcitabine, Infugem, 200 mg) was discontinued at the end of June 2020.
    before = _records(shared_data, Q2_2020)["J9199"]
    assert (before.term_date, before.eff_end, before.action_code) == (None, None, "N")
    july = _records(shared_data, Q3_2020)["J9199"]
    assert (july.term_date, july.eff_end, july.action_eff_date, july.action_code) == (
        date(2020, 6, 30),
        date(2020, 7, 1),
        date(2020, 7, 1),
        "D",
    )
    assert july.eff_start == date(2020, 1, 1)
    assert july.billing_unit == BillingUnit("200", "mg")
    assert july.locator == "HCPC2020_07_anweb.xlsx row 4649"
    # Later files keep it, with the dates, under action N.
    for relative in (Q4_2020, OCT_2025):
        later = _records(shared_data, relative)["J9199"]
        assert (later.term_date, later.eff_end, later.action_code) == (
            date(2020, 6, 30),
            date(2020, 7, 1),
            "N",
        )
    october = _records(shared_data, Q4_2020)["C9055"]
    assert (october.term_date, october.eff_end, october.action_code) == (
        date(2020, 9, 30),
        date(2020, 10, 1),
        "D",
    )


@pytest.mark.parametrize("relative", [Q2_2020, Q3_2020, Q4_2020, OCT_2025, OCT_2026])
def test_gd_modifier_terminated_end_of_2019(shared_data: Path, relative: str) -> None:
    gd = _records(shared_data, relative)["GD"]
    assert (gd.kind, gd.term_date, gd.eff_end, gd.action_eff_date) == (
        "modifier",
        date(2019, 12, 31),
        date(2020, 1, 1),
        date(2020, 1, 1),
    )
    assert gd.eff_start == gd.add_date == date(2008, 1, 1)


@pytest.mark.parametrize("relative", [ZIP_2017, ZIP_2018, ZIP_2019])
def test_gd_modifier_open_before_2020(shared_data: Path, relative: str) -> None:
    gd = _records(shared_data, relative)["GD"]
    assert (gd.term_date, gd.eff_end) == (None, None)


def test_reactivated_code_starts_at_reactivation(shared_data: Path) -> None:
    # Action R keeps the original ADD DT; the code is valid again only from ACT EFF DT.
    s3854 = _records(shared_data, ZIP_2017)["S3854"]
    assert (s3854.action_code, s3854.add_date, s3854.action_eff_date, s3854.eff_start) == (
        "R",
        date(2006, 1, 1),
        date(2016, 7, 1),
        date(2016, 7, 1),
    )
    j0570 = _records(shared_data, OCT_2025)["J0570"]
    assert (j0570.action_code, j0570.add_date, j0570.eff_start) == ("R", date(2017, 1, 1), date(2025, 10, 1))
    # The next release shows S3854 under action N: only ADD DT is left, so the gap it had is visible
    # only in the release that carries the R (DOMAIN.md §3.4: derive events by diffing snapshots).
    assert _records(shared_data, ZIP_2018)["S3854"].eff_start == date(2006, 1, 1)


def test_numeric_cells_in_xlsx(shared_data: Path) -> None:
    # Oct 2020: modifier J5 is not left-padded and its RECID and dates are numbers (7.0, 20201001.0).
    j5 = _records(shared_data, Q4_2020)["J5"]
    assert (j5.kind, j5.add_date, j5.eff_start, j5.action_code) == (
        "modifier",
        date(2020, 10, 1),
        date(2020, 10, 1),
        "A",
    )
    # Oct 2025: TERM DT 20250930.0 for C9088, TOS1 2.0 for C1742.
    oct_2025 = _records(shared_data, OCT_2025)
    assert (oct_2025["C9088"].term_date, oct_2025["C9088"].eff_end) == (date(2025, 9, 30), date(2025, 10, 1))
    assert oct_2025["C1742"].tos == "2"


def test_header_row_is_detected(shared_data: Path) -> None:
    assert _records(shared_data, Q2_2020)["A1"].locator == "HCPC2020_04_anweb.xlsx row 12"  # header on 11
    assert _records(shared_data, Q3_2020)["A1"].locator == "HCPC2020_07_anweb.xlsx row 2"  # header on 1
    assert _parse_member(shared_data, ZIP_2019, ".xlsx")["A1"].locator == "HCPC2019_CONTR_ANWEB.xlsx row 9"
    assert (
        _parse_member(shared_data, ZIP_2018, ".xlsx")["A1"].locator == "HCPC2018_CONTR_ANWEB_disc.xlsx row 12"
    )


def test_zip_reads_the_txt(shared_data: Path) -> None:
    assert _records(shared_data, ZIP_2019)["A1"].locator == "HCPC2019_CONTR_ANWEB.txt line 9"
    assert _records(shared_data, ZIP_2018)["A1"].locator == "HCPC2018_CONTR_ANWEB_disc.txt line 12"
    assert _records(shared_data, ZIP_2017)["A1"].locator == "HCPC17_CONTR_ANWEB.txt line 1"


# Real differences between the txt and the xlsx of one annual zip (checked in the bytes and cells):
# * 2019: the xlsx has an empty ACT EFF DT for 115 codes (all action N, added 1982-2002) that the txt
#   dates, e.g. A0130: txt 19820101, xlsx empty.
# * 2017: ACT EFF DT differs for L5638 and L5640 (txt 19960101, xlsx 19860101) and L5643 (txt 19860101,
#   xlsx 19880101); these are the cells the 2017 xlsx stores as numbers.
# * Descriptions differ only in spacing at the txt's line wraps; the parser collapses whitespace.
TXT_XLSX_DIFFERENCES = {
    ZIP_2017: {
        "L5638": (date(1996, 1, 1), date(1986, 1, 1)),
        "L5640": (date(1996, 1, 1), date(1986, 1, 1)),
        "L5643": (date(1986, 1, 1), date(1988, 1, 1)),
    },
    ZIP_2018: {},
}


@pytest.mark.parametrize("relative", [ZIP_2017, ZIP_2018, ZIP_2019])
def test_txt_and_xlsx_of_one_zip_agree(shared_data: Path, relative: str) -> None:
    txt = _parse_member(shared_data, relative, ".txt")
    xlsx = _parse_member(shared_data, relative, ".xlsx")
    assert txt.keys() == xlsx.keys()
    assert txt == _records(shared_data, relative)  # the zip itself is read through its txt
    differences: dict[str, tuple[date | None, date | None]] = {}
    for code, from_txt in txt.items():
        from_xlsx = xlsx[code]
        if from_txt.action_eff_date != from_xlsx.action_eff_date:
            differences[code] = (from_txt.action_eff_date, from_xlsx.action_eff_date)
        same = dataclasses.replace(
            from_xlsx, locator=from_txt.locator, action_eff_date=from_txt.action_eff_date
        )
        assert from_txt == same, code
    if relative == ZIP_2019:
        assert len(differences) == 115
        assert all(x is None and t is not None and t <= date(2002, 1, 1) for t, x in differences.values())
        assert {txt[code].action_code for code in differences} == {"N"}
        assert differences["A0130"] == (date(1982, 1, 1), None)
    else:
        assert differences == TXT_XLSX_DIFFERENCES[relative]


def test_wrapped_description_is_joined(shared_data: Path) -> None:
    # G0503 wraps over 17 fixed-width records (lines 3663-3679 of the 2019 txt) and, in the xlsx, over
    # two rows (its text is longer than the cell CMS exports). Expected text is rebuilt from the bytes.
    name, data = _zip_member(str(shared_data / "hcpcs" / ZIP_2019), ".txt")
    lines = data.split(b"\r\n")[3662:3679]
    assert all(line[:5] == b"G0503" for line in lines) and lines[1][10:11] == b"4"
    expected = " ".join(" ".join(line[11:91].decode("latin-1") for line in lines).split())
    from_txt = _records(shared_data, ZIP_2019)["G0503"]
    assert from_txt.long_description == expected
    assert from_txt.locator == f"{name} line 3663"
    from_xlsx = _parse_member(shared_data, ZIP_2019, ".xlsx")["G0503"]
    assert from_xlsx.long_description == expected
    # The 2020 Q2 xlsx: the same two-row split, rows 2300-2301.
    sheet = python_calamine.CalamineWorkbook.from_path(shared_data / "hcpcs" / Q2_2020).get_sheet_by_index(0)
    rows = sheet.to_python(skip_empty_area=False)
    assert [rows[2299][0], rows[2300][0], rows[2300][2]] == ["G0503", "G0503", "4"]
    q2 = _records(shared_data, Q2_2020)["G0503"]
    assert q2.long_description == " ".join(f"{rows[2299][3]} {rows[2300][3]}".split()) == expected
    assert q2.locator == "HCPC2020_04_anweb.xlsx row 2300"


def test_wrapped_drug_description_keeps_its_unit(shared_data: Path) -> None:
    # J0129 (abatacept, 10 mg) wraps in the txt: its unit sits before a parenthetical note that runs
    # onto the continuation lines.
    name, data = _zip_member(str(shared_data / "hcpcs" / ZIP_2019), ".txt")
    lines = [line for line in data.split(b"\r\n") if line[:5] == b"J0129"]
    assert len(lines) > 1
    j0129 = _records(shared_data, ZIP_2019)["J0129"]
    assert j0129.long_description == " ".join(
        b" ".join(line[11:91] for line in lines).decode("latin-1").split()
    )
    assert j0129.billing_unit == BillingUnit("10", "mg")
    assert j0129.long_description == _parse_member(shared_data, ZIP_2019, ".xlsx")["J0129"].long_description


def test_fields_of_a_txt_record(shared_data: Path) -> None:
    name, data = _zip_member(str(shared_data / "hcpcs" / ZIP_2019), ".txt")
    (line,) = [line for line in data.split(b"\r\n") if line[:11] == b"J9035001003"]
    text = line.decode("latin-1")
    j9035 = _records(shared_data, ZIP_2019)["J9035"]
    assert j9035.short_description == text[91:119].strip()
    assert (j9035.pricing_indicator, j9035.coverage_code, j9035.betos, j9035.tos) == (
        text[119:121],
        text[229],
        text[256:259],
        text[260],
    )
    assert j9035.add_date == date(int(text[268:272]), int(text[272:274]), int(text[274:276]))
    assert j9035.action_code == text[292]


@pytest.mark.parametrize(("relative", "limit"), [(OCT_2025, 1.0), (ZIP_2019, 1.0)])
def test_parse_is_fast(shared_data: Path, relative: str, limit: float) -> None:
    body = (shared_data / "hcpcs" / relative).read_bytes()
    started = time.perf_counter()
    count = sum(1 for _ in parse(body, _meta(Path(relative).name)))
    elapsed = time.perf_counter() - started
    assert count > 6000
    assert elapsed < limit, f"{relative} took {elapsed:.2f} s"


def test_errors_carry_source_and_url() -> None:
    # Constructed: bytes that are no zip at all, under a zip name.
    with pytest.raises(ParseError) as caught:
        list(parse(b"not a zip", _meta("x.zip")))
    assert (caught.value.source, caught.value.url, caught.value.locator) == (
        "cms_hcpcs",
        "https://example.test/x.zip",
        "x.zip",
    )


# --- constructed inputs ---------------------------------------------------------------------------
# Everything below is built in the test from the documented layout (320-byte records, the 48 xlsx
# columns); none of it is copied from a CMS file.


def _txt_record(
    code: str,
    recid: str = "3",
    seq: str = "00100",
    long_description: str = "Injection, examplumab, 10 mg",
    add: str = "20200101",
    act: str = "20200101",
    term: str = "",
    action: str = "N",
) -> bytes:
    record = bytearray(b" " * 320)

    def put(start: int, value: str) -> None:  # start is the 1-based column of the record layout
        record[start - 1 : start - 1 + len(value)] = value.encode("latin-1")

    put(1, code.rjust(5))
    put(6, seq)
    put(11, recid)
    put(12, long_description[:80])
    if recid in "37":
        put(92, "Examplumab inj")
        put(120, "51")
        put(230, "C")
        put(257, "O1E")
        put(261, "1")
        put(269, add)
        put(277, act)
        put(285, term)
        put(293, action)
    return bytes(record)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _txt(*lines: bytes) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


HEADER_48 = (
    ["HCPC", "SEQNUM", "RECID", "LONG DESCRIPTION", "SHORT DESCRIPTION"]
    + [f"PRICE{i}" for i in range(1, 5)]
    + ["MULT_PI", "CIM1", "CIM2", "CIM3", "MCM1", "MCM2", "MCM3", "STATUTE"]
    + [f"LABCERT{i}" for i in range(1, 9)]
    + [f"XREF{i}" for i in range(1, 6)]
    + ["COV", "ASC_GRP", "ASC_DT", "OPPS", "OPPS_PI", "OPPS_DT", "PROCNOTE", "BETOS"]
    + [f"TOS{i}" for i in range(1, 6)]
    + ["ANEST_BU", "ADD DT", "ACT EFF DT", "TERM DT", "ACTION CD"]
)


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER_48)
    for row in rows:
        writer.writerow([row.get(column, "") for column in HEADER_48])
    return out.getvalue().encode("utf-8")


def _row(code: str, **fields: str) -> dict[str, str]:
    row = {
        "HCPC": code,
        "SEQNUM": "0010",
        "RECID": "7" if len(code.strip()) == 2 else "3",
        "LONG DESCRIPTION": "Injection, examplumab, 10 mg",
        "SHORT DESCRIPTION": "Examplumab inj",
        "ADD DT": "20200101",
        "ACT EFF DT": "20200101",
        "ACTION CD": "N",
    }
    row.update({key.replace("_", " "): value for key, value in fields.items()})
    return row


def test_constructed_txt_joins_continuations_and_skips_preamble() -> None:
    body = _txt(
        b"***Disclaimers",
        b"",
        _txt_record("J9999", long_description="Injection, examplumab, a long description that goes on"),
        _txt_record("J9999", recid="4", seq="00200", long_description="and on, 10 mg")[:91],
        _txt_record("AB", recid="7", long_description="Example modifier"),
    )
    meta = _meta("HCPC2030_CONTR_ANWEB.txt")
    records = list(parse(_zip({"HCPC2030_README.txt": b"readme", "HCPC2030_CONTR_ANWEB.txt": body}), meta))
    assert [(r.code, r.kind, r.locator) for r in records] == [
        ("J9999", "procedure", "HCPC2030_CONTR_ANWEB.txt line 3"),
        ("AB", "modifier", "HCPC2030_CONTR_ANWEB.txt line 5"),
    ]
    assert (
        records[0].long_description == "Injection, examplumab, a long description that goes on and on, 10 mg"
    )
    assert records[0].billing_unit == BillingUnit("10", "mg")
    assert dict(meta.counts) == {"txt_preamble_line": 1, "txt_blank_line": 1, "txt_short_continuation": 1}


def test_constructed_txt_record_of_wrong_length() -> None:
    body = _txt(b"***Disclaimers", _txt_record("J9999")[:319])
    with pytest.raises(ParseError) as caught:
        list(parse(body, _meta("HCPC2019_CONTR_ANWEB.txt")))
    assert str(caught.value) == "HCPC2019_CONTR_ANWEB.txt line 2: record is 319 bytes, expected 320"


def test_constructed_continuation_of_wrong_length() -> None:
    body = _txt(_txt_record("J9999"), _txt_record("J9999", recid="4", seq="00200")[:60])
    with pytest.raises(ParseError) as caught:
        list(parse(body, _meta("HCPC2019_CONTR_ANWEB.txt")))
    assert str(caught.value) == "HCPC2019_CONTR_ANWEB.txt line 2: record is 60 bytes, expected 320"


def test_constructed_continuation_without_its_first_record() -> None:
    body = _txt(_txt_record("J9998"), _txt_record("J9999", recid="4", seq="00200"))
    with pytest.raises(ParseError) as caught:
        list(parse(body, _meta("HCPC2019_CONTR_ANWEB.txt")))
    assert str(caught.value) == (
        "HCPC2019_CONTR_ANWEB.txt line 2: continuation record for J9999 "
        "does not follow a first record of J9999"
    )


def test_constructed_truncated_zip() -> None:
    body = _zip({"HCPC2019_CONTR_ANWEB.txt": _txt(_txt_record("J9999")) * 50})
    with pytest.raises(ParseError) as caught:
        list(parse(body[: len(body) // 2], _meta("2019-Alpha-Numeric-HCPCS-File.zip")))
    assert str(caught.value) == (
        "2019-Alpha-Numeric-HCPCS-File.zip: not a readable zip archive, truncated or corrupt "
        "(File is not a zip file)"
    )


def test_constructed_zip_without_hcpcs_file() -> None:
    body = _zip(
        {"HCPC2019_README.txt": b"readme", "proc_notes_2019.txt": b"notes", "HCPC2019_Trans_Alpha.xlsx": b"x"}
    )
    with pytest.raises(ParseError) as caught:
        list(parse(body, _meta("2019-Alpha-Numeric-HCPCS-File.zip")))
    assert str(caught.value) == (
        "2019-Alpha-Numeric-HCPCS-File.zip: no HCPCS data file (*ANWEB*.txt or *ANWEB*.xlsx) in the zip "
        "(members: HCPC2019_README.txt, proc_notes_2019.txt, HCPC2019_Trans_Alpha.xlsx)"
    )


def test_constructed_html_page_instead_of_zip() -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Page Not Found | CMS</title></head><body></body></html>"
    with pytest.raises(ParseError) as caught:
        list(parse(page, _meta("2020-alpha-numeric-hcpcs-file.zip")))
    assert str(caught.value) == "2020-alpha-numeric-hcpcs-file.zip: expected a zip archive, got an HTML page"


def test_constructed_xlsx_missing_a_column(tmp_path: Path) -> None:
    header = [name for name in HEADER_48 if name != "ACT EFF DT"]
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Note regarding coverage and payment indicators (constructed disclaimer)"])
    for _ in range(9):
        sheet.append([])
    sheet.append(header)  # row 11, as in the 2020 Q2/Q4 files
    sheet.append(["J9999", "0010", "3", "Injection, examplumab, 10 mg"])
    path = tmp_path / "HCPC2020_JUL_ANWEB.xlsx"
    workbook.save(path)
    with pytest.raises(LayoutChanged) as caught:
        list(parse(path.read_bytes(), _meta(path.name)))
    assert str(caught.value) == (
        f"HCPC2020_JUL_ANWEB.xlsx: no column 'ACT EFF DT' in header row 11 (found: {', '.join(header)})"
    )


def test_constructed_xlsx_in_a_zip_is_read(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER_48)
    values = _row("J9999", TERM_DT="20201231", ACTION_CD="D")
    sheet.append([values.get(column, "") for column in HEADER_48])
    # Dates typed as numbers, as some CMS cells are.
    modifier = zip(HEADER_48, _xlsx_row("AB"), strict=True)
    sheet.append([float(v) if c in ("ADD DT", "ACT EFF DT") else v for c, v in modifier])
    path = tmp_path / "HCPC2030_JAN_ANWEB_v4.xlsx"
    workbook.save(path)
    body = _zip({"HCPC2030_TRANS_ALPHA.xlsx": b"not read", path.name: path.read_bytes()})
    records = list(parse(body, _meta("january-2030-alpha-numeric-hcpcs-file.zip")))
    assert [(r.code, r.eff_start, r.eff_end, r.locator) for r in records] == [
        ("J9999", date(2020, 1, 1), date(2021, 1, 1), "HCPC2030_JAN_ANWEB_v4.xlsx row 2"),
        ("AB", date(2020, 1, 1), None, "HCPC2030_JAN_ANWEB_v4.xlsx row 3"),
    ]


def _xlsx_row(code: str) -> list[str]:
    values = _row(code, LONG_DESCRIPTION="Example modifier")
    return [values.get(column, "") for column in HEADER_48]


def test_constructed_zip_member_with_dotdot() -> None:
    body = _zip({"../HCPC2019_CONTR_ANWEB.txt": _txt(_txt_record("J9999"))})
    with pytest.raises(UnsafeArchive) as caught:
        list(parse(body, _meta("evil.zip")))
    assert str(caught.value) == "evil.zip: member '../HCPC2019_CONTR_ANWEB.txt' escapes the archive with '..'"


def test_constructed_zip_member_with_absolute_path() -> None:
    body = _zip({"/tmp/HCPC2019_CONTR_ANWEB.txt": _txt(_txt_record("J9999"))})
    with pytest.raises(UnsafeArchive) as caught:
        list(parse(body, _meta("evil.zip")))
    assert str(caught.value) == "evil.zip: member '/tmp/HCPC2019_CONTR_ANWEB.txt' has an absolute path"


def test_constructed_member_past_the_size_limit() -> None:
    body = _zip({"HCPC2019_CONTR_ANWEB.txt": b" " * 5000})
    zf = open_zip(body, "big.zip")
    expected = "big.zip: member 'HCPC2019_CONTR_ANWEB.txt' expands to 5000 bytes, over the 1000-byte limit"
    with pytest.raises(UnsafeArchive) as caught:
        read_member(zf, "HCPC2019_CONTR_ANWEB.txt", "big.zip", max_bytes=1000)
    assert str(caught.value) == expected
    with pytest.raises(UnsafeArchive) as caught:
        safe_members(zf, "big.zip", max_bytes=1000)
    assert str(caught.value) == expected
    assert read_member(zf, "HCPC2019_CONTR_ANWEB.txt", "big.zip", max_bytes=5000) == b" " * 5000


def test_constructed_member_that_expands_past_what_it_declares() -> None:
    class LyingZip(zipfile.ZipFile):
        """Hands out more bytes than the member declares, as a broken or hostile zip reader could."""

        def open(self, *args: object, **kwargs: object) -> io.BytesIO:  # type: ignore[override]
            return io.BytesIO(b" " * 5000)

    zf = LyingZip(io.BytesIO(_zip({"HCPC2019_CONTR_ANWEB.txt": b" " * 10})))
    with pytest.raises(UnsafeArchive) as caught:
        read_member(zf, "HCPC2019_CONTR_ANWEB.txt", "big.zip", max_bytes=1000)
    assert str(caught.value) == "big.zip: member 'HCPC2019_CONTR_ANWEB.txt' expands past the 1000-byte limit"


def test_constructed_member_with_a_forged_size_is_corrupt() -> None:
    body = bytearray(_zip({"HCPC2019_CONTR_ANWEB.txt": b" " * 5000}))
    # Declare 10 bytes in both the local header (offset 22) and the central directory (offset 24).
    local = body.index(b"PK\x03\x04")
    central = body.index(b"PK\x01\x02")
    body[local + 22 : local + 26] = (10).to_bytes(4, "little")
    body[central + 24 : central + 28] = (10).to_bytes(4, "little")
    zf = open_zip(bytes(body), "forged.zip")
    with pytest.raises(ParseError) as caught:
        read_member(zf, "HCPC2019_CONTR_ANWEB.txt", "forged.zip", max_bytes=1000)
    assert str(caught.value) == (
        "forged.zip: member 'HCPC2019_CONTR_ANWEB.txt' cannot be read, corrupt or unsupported "
        "(Bad CRC-32 for file 'HCPC2019_CONTR_ANWEB.txt')"
    )


def test_constructed_csv_dates_and_duplicates() -> None:
    meta = _meta("HCPC2030_JAN_ANWEB.csv")
    body = _csv(
        [
            _row("J9991"),
            _row("J9991"),  # an identical repeat: dropped and counted
            _row("J9992", ADD_DT=""),  # no ADD DT: starts at ACT EFF DT
            _row("J9993", ADD_DT="", ACT_EFF_DT=""),  # no date at all: skipped and counted
            _row("J9994", ADD_DT="20100101", ACT_EFF_DT="20300401", ACTION_CD="R"),
            _row("   AB", LONG_DESCRIPTION="Example modifier"),
        ]
    )
    records = {r.code: r for r in parse(body, meta)}
    assert list(records) == ["J9991", "J9992", "J9994", "AB"]
    assert records["J9992"].eff_start == date(2020, 1, 1)
    assert records["J9994"].eff_start == date(2030, 4, 1)
    assert records["J9991"].locator == "HCPC2030_JAN_ANWEB.csv row 2"
    assert dict(meta.counts) == {"duplicate_code": 1, "start_from_action_date": 1, "no_start_date": 1}


def test_constructed_csv_conflicting_duplicate() -> None:
    body = _csv([_row("J9991"), _row("J9991", LONG_DESCRIPTION="Injection, examplumab, 20 mg")])
    with pytest.raises(ParseError) as caught:
        list(parse(body, _meta("HCPC2030_JAN_ANWEB.csv")))
    assert str(caught.value) == (
        "HCPC2030_JAN_ANWEB.csv row 3: J9991 appears again with different data "
        "(first at HCPC2030_JAN_ANWEB.csv row 2)"
    )


def test_constructed_csv_bad_date() -> None:
    body = _csv([_row("J9991", TERM_DT="2020-12-31")])
    with pytest.raises(ParseError) as caught:
        list(parse(body, _meta("HCPC2030_JAN_ANWEB.csv")))
    assert str(caught.value) == "HCPC2030_JAN_ANWEB.csv row 2: TERM DT '2020-12-31' is not a YYYYMMDD date"


def test_constructed_csv_without_header() -> None:
    with pytest.raises(LayoutChanged) as caught:
        list(parse(b"a,b,c\n1,2,3\n", _meta("HCPC2030_JAN_ANWEB.csv")))
    assert str(caught.value) == (
        "HCPC2030_JAN_ANWEB.csv: no header row with 'HCPC' and the HCPCS column names in the first 50 rows"
    )


def _review(paths: list[str]) -> None:
    """Print what the parser reads from each recorded file, for a human to compare with the file."""
    for relative in paths or ALL_FILES:
        records, counts = _parsed(str(shared_data_dir() / "hcpcs" / relative))
        kinds = Counter(r.kind for r in records)
        drugs = [r for r in records if r.kind == "procedure" and r.code.startswith("J")]
        with_unit = sum(1 for r in drugs if r.billing_unit)
        print(
            f"{relative}: {len(records)} records {dict(kinds)}; J-codes {len(drugs)}, {with_unit} with a unit"
        )
        print(f"  counts {dict(counts)}; first {records[0].locator}; last {records[-1].locator}")


if __name__ == "__main__":
    _review(sys.argv[1:])
