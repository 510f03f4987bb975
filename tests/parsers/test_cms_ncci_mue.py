"""parsers.cms_ncci_mue on the recorded practitioner slice, on the constructed outpatient hospital and
DME tables in tests/fixtures/cms_ncci_mue/, and on bad inputs constructed here.

Expected values were read from the slice itself (its bytes and CSV records). Run
``python -m tests.parsers.test_cms_ncci_mue`` to print the parser's current output for the
constructed fixtures (the ``*.expected.json`` files beside them) for review.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
import zipfile
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from parsers.cms_ncci_mue import parse, table_name
from parsers.errors import LayoutChanged, ParseError
from parsers.records import SETTINGS, SourceMeta, UnitLimitRecord
from tests.conftest import REPO

SLICE = "MCR_MUE_PractitionerServices_Eff_07-01-2026.excerpt.csv"
MEMBER = "MCR_MUE_PractitionerServices_Eff_07-01-2026.csv"
PRACTITIONER_ZIP = "medicare-ncci-2026-q3-practitioner-services-mue-table.zip"
FIXTURES = REPO / "tests" / "fixtures" / "cms_ncci_mue"
OPH = "MCR_MUE_OutpatientHospitalServices_Eff_07-01-2026.constructed.csv"
DME = "MCR_MUE_DMESupplierServices_Eff_07-01-2026.constructed.csv"


def _meta(filename: str, release: str | None = None) -> SourceMeta:
    return SourceMeta(
        source="cms_ncci_mue", url=f"https://example.test/{filename}", sha256="", filename=filename, release=release
    )


def _parse(body: bytes, filename: str, release: str | None = None) -> tuple[list[UnitLimitRecord], Counter[str]]:
    meta = _meta(filename, release)
    return list(parse(body, meta)), meta.counts


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _slice(shared_data: Path) -> bytes:
    return (shared_data / "mue" / SLICE).read_bytes()


def _error(body: bytes, filename: str, release: str | None = None) -> ParseError:
    with pytest.raises(ParseError) as caught:
        list(parse(body, _meta(filename, release)))
    return caught.value


# --- the recorded practitioner slice --------------------------------------------------------------


def test_slice_format_facts(shared_data: Path) -> None:
    # DOMAIN.md §3.5 / PROVENANCE.md format notes, checked on the bytes before trusting the parser.
    data = _slice(shared_data)
    assert b"\xae" in data  # cp1252/Latin-1 "®" in the notice
    assert data.count(b"\r\n") == 46  # CRLF ends the 46 records; LFs alone sit inside quoted cells
    records = list(csv.reader(io.StringIO(data.decode("cp1252"), newline="")))
    assert len(records) == 46
    assert "\n" in records[0][0] and records[0][1:] == ["", "", ""]  # the quoted AMA notice, then ,,,
    assert records[1] == [
        "HCPCS/\nCPT Code",
        "Practitioner Services MUE Values",
        "MUE Adjudication Indicator",
        "MUE Rationale",
    ]


def test_slice_records(shared_data: Path) -> None:
    records, counts = _parse(_slice(shared_data), SLICE)
    assert len(records) == 44  # PROVENANCE.md §2: notice + header + 44 data rows
    assert dict(counts) == {"notice_record": 1}
    assert records[0] == UnitLimitRecord(
        code="0001U",
        setting="practitioner",
        max_units=1,
        published=True,
        mai=2,
        mai_label="Date of Service Edit: Policy",
        rationale="Code Descriptor / CPT Instruction",
        eff_start=date(2026, 7, 1),
        eff_end=None,
        locator=f"{SLICE} row 3",
    )
    by_code = {r.code: r for r in records}
    assert (by_code["0002M"].max_units, by_code["0002M"].mai, by_code["0002M"].rationale) == (
        1,
        3,
        "Nature of Analyte",
    )
    assert by_code["0041U"].locator == f"{SLICE} row 46"
    assert [r.code for r in records] == sorted(by_code)  # unique, in CMS's (byte) order
    assert {(r.setting, r.eff_start, r.eff_end, r.published) for r in records} == {
        ("practitioner", date(2026, 7, 1), None, True)
    }
    # Every (value, MAI, rationale) in the slice, counted from its rows.
    assert Counter((r.max_units, r.mai, r.rationale) for r in records) == {
        (1, 2, "Code Descriptor / CPT Instruction"): 30,
        (1, 3, "Nature of Analyte"): 8,
        (2, 3, "Nature of Service/Procedure"): 4,
        (2, 3, "Nature of Analyte"): 1,
        (2, 3, "Clinical: CMS Workgroup"): 1,
    }
    assert {r.mai: r.mai_label for r in records} == {
        2: "Date of Service Edit: Policy",
        3: "Date of Service Edit: Clinical",
    }


def test_slice_in_the_cms_zip(shared_data: Path) -> None:
    # The zip as CMS names it, holding the slice under the member name (built here, in memory).
    from_file, _ = _parse(_slice(shared_data), SLICE)
    body = _zip({"readme.txt": b"constructed", MEMBER: _slice(shared_data)})
    records, counts = _parse(body, PRACTITIONER_ZIP, release="2026-07")
    assert records == [dataclasses.replace(r, locator=r.locator.replace(SLICE, MEMBER)) for r in from_file]
    assert records[0].locator == f"{MEMBER} row 3"
    assert dict(counts) == {"notice_record": 1}


def _xlsx(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_zip_reads_the_csv_and_else_the_xlsx(shared_data: Path) -> None:
    data = _slice(shared_data)
    from_csv, _ = _parse(data, SLICE)
    # The same table as xlsx (notice in A1, header on row 2), built from the slice's own records.
    rows: list[list[Any]] = list(csv.reader(io.StringIO(data.decode("cp1252"), newline="")))
    workbook = _xlsx([rows[0][:1], rows[1]] + [[r[0], int(r[1]), r[2], r[3]] for r in rows[2:]])
    xlsx_member = MEMBER.replace(".csv", ".xlsx")
    both, counts = _parse(_zip({MEMBER: data, xlsx_member: workbook}), PRACTITIONER_ZIP)
    assert both[0].locator == f"{MEMBER} row 3"
    assert dict(counts) == {"notice_record": 1, "xlsx_copy_not_read": 1}
    only_xlsx, counts = _parse(_zip({xlsx_member: workbook}), PRACTITIONER_ZIP)
    assert only_xlsx == [dataclasses.replace(r, locator=r.locator.replace(SLICE, xlsx_member)) for r in from_csv]
    assert dict(counts) == {"notice_record": 1}


def test_xlsx_numeric_cells() -> None:
    # Constructed: Excel stores an all-digit code as a number and drops its leading zeros.
    body = _xlsx(
        [
            ["notice"],
            ["HCPCS/\nCPT Code", "Practitioner Services MUE Values", "MUE Adjudication Indicator", "MUE Rationale"],
            [100, 1.0, 3, "Nature of Service/Procedure"],
            ["J9035", 300, "3 Date of Service Edit: Clinical", "Prescribing Information"],
        ]
    )
    records, counts = _parse(body, MEMBER.replace(".csv", ".xlsx"))
    assert [(r.code, r.max_units, r.mai, r.mai_label) for r in records] == [
        ("00100", 1, 3, "Date of Service Edit: Clinical"),
        ("J9035", 300, 3, "Date of Service Edit: Clinical"),
    ]
    assert dict(counts) == {"notice_record": 1, "numeric_code_cell": 1, "mai_without_label": 1}


def test_table_names() -> None:
    assert table_name(SLICE) == table_name(MEMBER)
    assert table_name("MCR_MUE_OutpatientHospitalServices_Eff_10-01-2026.xlsx") is not None
    names = {
        "MCR_MUE_PractitionerServices_Eff_04-01-2024": ("practitioner", date(2024, 4, 1)),
        "MCR_MUE_OutpatientHospitalServices_Eff_04-01-2024": ("outpatient_hospital", date(2024, 4, 1)),
        "MCR_MUE_DMESupplierServices_Eff_04-01-2024": ("dme", date(2024, 4, 1)),
    }
    for name, (setting, effective) in names.items():
        found = table_name(name)
        assert found is not None and (found.setting, found.effective) == (setting, effective)
        assert setting in SETTINGS
    assert table_name("MCR_MUE_AmbulanceServices_Eff_04-01-2024.csv") is None
    assert table_name("mue.csv") is None


# --- the constructed outpatient hospital and DME tables -------------------------------------------


def _as_json(records: list[UnitLimitRecord]) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in dataclasses.asdict(r).items()} for r in records
    ]


@pytest.mark.parametrize(
    ("fixture", "counts"),
    [
        (OPH, {"notice_record": 1, "unpublished_value": 2}),
        (DME, {"notice_record": 1, "unpublished_value": 2}),
    ],
)
def test_constructed_tables(fixture: str, counts: dict[str, int]) -> None:
    records, got = _parse((FIXTURES / fixture).read_bytes(), fixture)
    expected = json.loads((FIXTURES / fixture.replace(".csv", ".expected.json")).read_text())
    assert _as_json(records) == expected
    assert dict(got) == counts


def test_unpublished_is_never_zero() -> None:
    oph, _ = _parse((FIXTURES / OPH).read_bytes(), OPH)
    by_code = {r.code: r for r in oph}
    assert {r.setting for r in oph} == {"outpatient_hospital"}
    for code in ("J9299", "J9999"):  # blank, "Confidential"
        assert (by_code[code].max_units, by_code[code].published) == (None, False)
    assert (by_code["V5364"].max_units, by_code["V5364"].published) == (0, True)  # 0: not payable
    assert (by_code["A4300"].mai, by_code["A4300"].mai_label) == (1, "Line Edit")
    dme, _ = _parse((FIXTURES / DME).read_bytes(), DME)
    assert {r.setting for r in dme} == {"dme"}
    assert [r.code for r in dme if not r.published] == ["A4253", "E1390"]  # blank, "not published"


def test_constructed_tables_in_their_zips() -> None:
    for fixture, zip_name in (
        (OPH, "medicare-ncci-2026-q3-facility-outpatient-hospital-services-mue-table.zip"),
        (DME, "medicare-ncci-2026-q3-dme-supplier-services-mue-table.zip"),
    ):
        member = fixture.replace(".constructed", "")
        records, _ = _parse(_zip({member: (FIXTURES / fixture).read_bytes()}), zip_name, release="2026-Q3")
        direct, _ = _parse((FIXTURES / fixture).read_bytes(), fixture)
        assert records == [dataclasses.replace(r, locator=r.locator.replace(fixture, member)) for r in direct]


# --- bad inputs (constructed) ---------------------------------------------------------------------

HEADER = '"HCPCS/\nCPT Code",Practitioner Services MUE Values,MUE Adjudication Indicator,MUE Rationale'
NOTICE = '"Current Procedural Terminology (CPT) codes ... copyright 2025 American Medical Association.\n\nCPT\u00ae",,,'


def _table(*rows: str, header: str = HEADER) -> bytes:
    return ("\r\n".join([NOTICE, header, *rows]) + "\r\n").encode("cp1252")


ROW = "0001U,1,2 Date of Service Edit: Policy,Code Descriptor / CPT Instruction"


def test_renamed_column() -> None:
    header = HEADER.replace("MUE Rationale", "Rationale")
    err = _error(_table(ROW, header=header), MEMBER)
    assert isinstance(err, LayoutChanged)
    assert str(err) == (
        f"{MEMBER}: no column 'MUE Rationale' in header row 2 (found: HCPCS/ CPT Code, "
        "Practitioner Services MUE Values, MUE Adjudication Indicator, Rationale)"
    )


def test_missing_column() -> None:
    header = HEADER.replace(",MUE Adjudication Indicator", "")
    err = _error(_table("0001U,1,Code Descriptor / CPT Instruction", header=header), MEMBER)
    assert isinstance(err, LayoutChanged)
    assert str(err) == (
        f"{MEMBER}: no column 'MUE Adjudication Indicator' in header row 2 (found: HCPCS/ CPT Code, "
        "Practitioner Services MUE Values, MUE Rationale)"
    )


def test_no_header_row() -> None:
    err = _error(_table(ROW, header="Code,Units,MAI,Why"), MEMBER)
    assert isinstance(err, LayoutChanged)
    assert str(err) == (
        f"{MEMBER}: no header row with 'HCPCS/CPT Code' and the MUE column names in the first 20 records"
    )


def test_another_settings_value_column() -> None:
    header = HEADER.replace("Practitioner Services", "DME Supplier Services")
    err = _error(_table(ROW, header=header), MEMBER)
    assert not isinstance(err, LayoutChanged)
    assert str(err) == (
        f"{MEMBER}: header row 2 has 'DME Supplier Services MUE Values', the DME supplier services column, "
        "but the file name says practitioner services"
    )


def test_non_numeric_value() -> None:
    err = _error(_table("0001U,abc,2 Date of Service Edit: Policy,Code Descriptor / CPT Instruction"), MEMBER)
    assert str(err) == f"{MEMBER} row 3: MUE value 'abc' for 0001U is not a number"
    assert err.locator == f"{MEMBER} row 3"
    err = _error(_table("0001U,1.5,2 Date of Service Edit: Policy,x"), MEMBER)
    assert str(err) == f"{MEMBER} row 3: MUE value '1.5' for 0001U is not a whole number"


def test_duplicate_code_in_one_table() -> None:
    rows = (ROW, "0002M,1,3 Date of Service Edit: Clinical,Nature of Analyte", ROW.replace(",1,", ",2,"))
    err = _error(_table(*rows), MEMBER)
    assert str(err) == f"{MEMBER} row 5: 0001U appears twice in the practitioner services table (rows 3 and 5)"


def test_wrong_settings_file_in_the_zip() -> None:
    dme_member = "MCR_MUE_DMESupplierServices_Eff_07-01-2026.csv"
    body = _zip({dme_member: (FIXTURES / DME).read_bytes()})
    err = _error(body, PRACTITIONER_ZIP)
    assert str(err) == (
        f"{PRACTITIONER_ZIP}: the zip is named for the practitioner services MUE table but holds "
        f"{dme_member} (DME supplier services)"
    )
    assert (err.source, err.url, err.locator) == (
        "cms_ncci_mue",
        f"https://example.test/{PRACTITIONER_ZIP}",
        PRACTITIONER_ZIP,
    )


def test_wrong_quarter_in_the_zip() -> None:
    member = "MCR_MUE_PractitionerServices_Eff_10-01-2026.csv"
    err = _error(_zip({member: _table(ROW)}), PRACTITIONER_ZIP)
    assert str(err) == f"{PRACTITIONER_ZIP}: the zip is named for 2026 Q3 but holds {member} (effective 2026-10-01)"


def test_release_must_agree() -> None:
    err = _error(_table(ROW), MEMBER, release="2026-10")
    assert str(err) == f"{MEMBER}: effective 2026-07-01 (from the file name) does not agree with release '2026-10'"
    err = _error(_table(ROW), MEMBER, release="July")
    assert str(err) == f"{MEMBER}: release 'July' names no quarter (expected 2026-07, 2026-07-01 or 2026-Q3)"
    for release in ("2026-07", "2026-07-01", "2026-Q3", "2026q3"):
        assert len(_parse(_table(ROW), MEMBER, release=release)[0]) == 1


def test_two_settings_in_one_zip() -> None:
    dme_member = "MCR_MUE_DMESupplierServices_Eff_07-01-2026.csv"
    err = _error(_zip({MEMBER: _table(ROW), dme_member: (FIXTURES / DME).read_bytes()}), "mue.zip")
    assert str(err) == f"mue.zip: holds MUE tables for more than one setting ({MEMBER}, {dme_member})"


def test_no_date_in_the_file_name() -> None:
    err = _error(_table(ROW), "mue.csv")
    assert str(err) == (
        "mue.csv: no setting and effective date in the file name "
        "(expected MCR_MUE_<Practitioner|OutpatientHospital|DMESupplier>Services_Eff_MM-DD-YYYY)"
    )
    err = _error(_zip({"readme.txt": b"x"}), PRACTITIONER_ZIP)
    assert str(err) == (
        f"{PRACTITIONER_ZIP}: no MUE table (MCR_MUE_*Services_Eff_MM-DD-YYYY.csv or .xlsx) in the zip "
        "(members: readme.txt)"
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "0001U,1,4 Date of Service Edit: Other,x",
            "MUE Adjudication Indicator '4 Date of Service Edit: Other' for 0001U is not 1, 2 or 3 with its label",
        ),
        ("0001U,1,Policy,x", "MUE Adjudication Indicator 'Policy' for 0001U is not 1, 2 or 3 with its label"),
        (
            "0001U,1,2 Line Edit,x",
            "MUE Adjudication Indicator '2 Line Edit' for 0001U: MAI 2 is 'Date of Service Edit: Policy'",
        ),
        ("001U,1,2 Date of Service Edit: Policy,x", "'001U' is not a HCPCS/CPT code"),
    ],
)
def test_bad_cells(row: str, message: str) -> None:
    assert str(_error(_table(row), MEMBER)) == f"{MEMBER} row 3: {message}"


def test_blank_rows_mai_and_header_only() -> None:
    records, counts = _parse(_table(ROW, ",,,", "0002M,1,,"), MEMBER)
    assert [(r.code, r.mai, r.mai_label, r.rationale) for r in records] == [
        ("0001U", 2, "Date of Service Edit: Policy", "Code Descriptor / CPT Instruction"),
        ("0002M", None, None, None),
    ]
    assert dict(counts) == {"notice_record": 1, "blank_row": 1, "no_mai": 1}
    assert str(_error(_table(), MEMBER)) == f"{MEMBER}: the MUE table has a header but no rows"


def test_html_instead_of_a_table() -> None:
    err = _error(b"<!DOCTYPE html><html><body>Sign in</body></html>", PRACTITIONER_ZIP)
    assert str(err) == f"{PRACTITIONER_ZIP}: expected a zip archive, got an HTML page"


def _print_current_output() -> None:
    """Print what the parser makes of each constructed fixture, for review against *.expected.json."""
    for fixture in (OPH, DME):
        records, counts = _parse((FIXTURES / fixture).read_bytes(), fixture)
        print(f"# {fixture} counts={dict(counts)}")
        json.dump(_as_json(records), sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    _print_current_output()
