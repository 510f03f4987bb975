"""parsers/cms_asp.py on the nine recorded quarters of the CMS payment limit file and NDC-HCPCS
crosswalk (2024 Q1 - 2026 Q1). Expected values are read from the documents themselves; the few
constructed inputs (broken files) say so."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from parsers.cms_asp import parse
from parsers.errors import LayoutChanged, ParseError
from parsers.records import NdcRecord, PriceRecord, SourceMeta
from policysync.mirror import build_zip

MONTHS = {
    m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
}


def _files(shared: Path, folder: str) -> list[Path]:
    return sorted((shared / "asp" / folder).glob("*.csv"))


def _quarter_of(name: str) -> date:
    """The quarter a recorded file is for, from its file name ("... of JUL 2025 ASP ...")."""
    m = re.search(r"of (\w+) (20\d\d) ", name)
    assert m, name
    return date(int(m.group(2)), MONTHS[m.group(1)[:3].lower()], 1)


def _meta(path: Path, release: str | None = None) -> SourceMeta:
    return SourceMeta("cms_asp", f"https://www.cms.gov/files/zip/{path.stem}.zip", "0" * 64, path.name, release)


def _raw_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("cp1252"), newline="")))


def test_nine_quarters_of_each_are_recorded(shared_data: Path) -> None:
    assert len(_files(shared_data, "pricing")) == 9
    assert len(_files(shared_data, "ndc_hcpcs_crosswalk")) == 9
    quarters = sorted(_quarter_of(p.name) for p in _files(shared_data, "pricing"))
    assert quarters[0] == date(2024, 1, 1) and quarters[-1] == date(2026, 1, 1)


@pytest.mark.parametrize("index", range(9))
def test_every_payment_limit_file_parses_with_its_effective_quarter(shared_data: Path, index: int) -> None:
    path = _files(shared_data, "pricing")[index]
    q = _quarter_of(path.name)
    meta = _meta(path, f"{q.year:04d}-{q.month:02d}")
    recs = list(parse(path.read_bytes(), meta))
    assert recs and all(isinstance(r, PriceRecord) for r in recs)
    # One record per data row after the header (counted independently with the csv module).
    raw = _raw_rows(path)
    header = next(i for i, r in enumerate(raw) if r and r[0] == "HCPCS Code")
    assert header == 8  # 8 preamble rows
    data = [r for r in raw[header + 1 :] if any(c.strip() for c in r)]
    assert len(recs) == len(data)
    assert {r.eff_start for r in recs} == {q}
    end = {r.eff_end for r in recs}
    assert len(end) == 1 and end.pop() == date(q.year + (q.month == 10), (q.month + 2) % 12 + 1, 1)
    # Every limit is an exact decimal, or None exactly where the file says N/A.
    by_code = {r.code: r for r in recs}
    for row in data:
        rec = by_code[row[0]]
        if row[3] == "N/A":
            assert rec.payment_limit is None
        else:
            assert Decimal(rec.payment_limit or "x") == Decimal(row[3])
        assert rec.dosage == " ".join(row[2].split())
        assert rec.coinsurance_pct == (row[4] or None)
    assert meta.counts["payment limit N/A (priced by the MAC)"] == sum(1 for r in data if r[3] == "N/A")


def test_oct_2025_limits_of_the_worked_example_drugs(shared_data: Path) -> None:
    path = next(p for p in _files(shared_data, "pricing") if "Oct 2025" in p.name)
    recs = {r.code: r for r in parse(path.read_bytes(), _meta(path)) if isinstance(r, PriceRecord)}
    # Values as printed in the file ("J9035,Bevacizumab injection,10 MG,73.201,20.000,...").
    assert (recs["J9035"].dosage, recs["J9035"].payment_limit, recs["J9035"].coinsurance_pct) == (
        "10 MG",
        "73.201",
        "20.000",
    )
    assert (recs["J1745"].dosage, recs["J1745"].payment_limit) == ("10 MG", "31.090")
    assert (recs["J9355"].dosage, recs["J9355"].payment_limit) == ("10 MG", "75.025")
    a9606 = recs["A9606"]
    assert a9606.payment_limit is None and a9606.notes and "AWP" in a9606.notes  # note spans two lines
    assert recs["Q9999"].notes == "Added October 2025 - 8% of reference add-on applied"
    assert recs["J9035"].locator.startswith("section 508 version of Oct 2025 ASP Pricing File 091725.csv row ")


def test_2026_payment_limit_file_rename_and_trailing_column(shared_data: Path) -> None:
    path = next(p for p in _files(shared_data, "pricing") if "Payment Limit File" in p.name)
    raw = _raw_rows(path)
    assert raw[8][-1] == ""  # the extra trailing empty column of the 2026 file
    recs = [r for r in parse(path.read_bytes(), _meta(path, "2026-01")) if isinstance(r, PriceRecord)]
    assert recs[0].eff_start == date(2026, 1, 1) and recs[0].eff_end == date(2026, 4, 1)


@pytest.mark.parametrize("index", range(9))
def test_every_crosswalk_parses(shared_data: Path, index: int) -> None:
    path = _files(shared_data, "ndc_hcpcs_crosswalk")[index]
    q = _quarter_of(path.name)
    meta = _meta(path, f"{q.year:04d}-{q.month:02d}")
    recs = list(parse(path.read_bytes(), meta))
    assert recs and all(isinstance(r, NdcRecord) for r in recs)
    raw = _raw_rows(path)
    header = next(i for i, r in enumerate(raw) if r and r[0].endswith("_CODE"))
    assert header == 8
    data = [r for r in raw[header + 1 :] if any(c.strip() for c in r)]
    assert len(recs) == len(data)
    assert {r.eff_start for r in recs} == {q}
    for rec, row in zip(recs, data, strict=True):
        # strip(): one 2024 row has "Q4295\xa0" (a non-breaking space after the code)
        assert (rec.code, rec.ndc, rec.bill_units_pkg) == (row[0].strip(), row[3].strip(), row[9].strip())


def test_crosswalk_first_column_is_named_by_year_and_padding_grows(shared_data: Path) -> None:
    names = {}
    widths = {}
    for path in _files(shared_data, "ndc_hcpcs_crosswalk"):
        raw = _raw_rows(path)
        names[_quarter_of(path.name)] = raw[8][0]
        widths[_quarter_of(path.name)] = len(raw[8])
    assert names[date(2024, 1, 1)] == "_2023_CODE"
    assert names[date(2026, 1, 1)] == "_2026_CODE"
    assert widths[date(2026, 1, 1)] > 200 and widths[date(2024, 4, 1)] < 20


def test_crosswalk_bevacizumab_packages(shared_data: Path) -> None:
    path = next(p for p in _files(shared_data, "ndc_hcpcs_crosswalk") if "October 2025" in p.name)
    recs = [r for r in parse(path.read_bytes(), _meta(path)) if isinstance(r, NdcRecord)]
    avastin = {r.ndc: r for r in recs if r.code == "J9035" and r.drug_name == "Avastin"}
    # "J9035,Bevacizumab injection,Genentech, Inc.,50242-0060-01,Avastin,10 MG,4,1,10,10"
    assert avastin["50242-0060-01"].bill_units_pkg == "10"
    assert avastin["50242-0061-01"].bill_units_pkg == "40"
    assert avastin["50242-0060-01"].pkg_size == "4" and avastin["50242-0060-01"].dosage == "10 MG"


def test_a_zip_with_both_files_gives_both_kinds(shared_data: Path) -> None:
    price = next(p for p in _files(shared_data, "pricing") if "Oct 2025" in p.name)
    xwalk = next(p for p in _files(shared_data, "ndc_hcpcs_crosswalk") if "October 2025" in p.name)
    body = build_zip(
        [(price.name, price.read_bytes()), (xwalk.name, xwalk.read_bytes()), ("readme.txt", b"x")],
        __import__("datetime").datetime(2025, 9, 1),
    )
    meta = SourceMeta(
        "cms_asp",
        "https://www.cms.gov/files/zip/october-2025-asp-pricing-file.zip",
        "0" * 64,
        "october-2025-asp-pricing-file.zip",
        "2025-10",
    )
    recs = list(parse(body, meta))
    assert {type(r) for r in recs} == {PriceRecord, NdcRecord}
    assert meta.counts["zip member not a CSV (not read)"] == 1


# --- refused inputs (constructed) ---------------------------------------------------------------

_CONSTRUCTED = (
    "Payment Allowance Limits for Medicare Part B Drugs,,,\r\n,,,\r\n"
    '"Effective October 1, 2025 through December 31, 2025",,,\r\n,,,\r\n'
    "HCPCS Code,Short Description,HCPCS Code Dosage,Payment Limit\r\n"
    "J9035,Bevacizumab injection,10 MG,73.201\r\n"
)


def _m(release: str | None = None) -> SourceMeta:
    return SourceMeta("cms_asp", "https://www.cms.gov/x.csv", "0" * 64, "constructed.csv", release)


def test_constructed_file_without_coinsurance_column_is_read_and_counted() -> None:
    meta = _m("2025-10")
    (rec,) = parse(_CONSTRUCTED.encode("cp1252"), meta)
    assert isinstance(rec, PriceRecord) and rec.coinsurance_pct is None and rec.payment_limit == "73.201"
    assert meta.counts["payment limit file without a co-insurance column"] == 1


def test_release_that_disagrees_with_the_effective_line_is_refused() -> None:
    with pytest.raises(
        ParseError, match=r"constructed.csv: the file is effective 2025-10-01 but was published as release 2025-07"
    ):
        list(parse(_CONSTRUCTED.encode(), _m("2025-07")))


def test_missing_effective_line_is_a_layout_change() -> None:
    body = _CONSTRUCTED.replace("Effective", "Valid").encode()
    with pytest.raises(LayoutChanged, match="constructed.csv: no 'Effective <date> through <date>' line"):
        list(parse(body, _m()))


def test_missing_payment_limit_column_is_named() -> None:
    body = _CONSTRUCTED.replace("Payment Limit", "Limit").encode()
    with pytest.raises(
        LayoutChanged, match=r"constructed.csv: no column 'Payment Limit' in header row 5 \(found: HCPCS Code"
    ):
        list(parse(body, _m()))


def test_html_instead_of_a_file_is_refused() -> None:
    with pytest.raises(ParseError, match="constructed.csv: expected an ASP zip or CSV file, got an HTML page"):
        list(parse(b"<!DOCTYPE html><html>blocked</html>", _m()))


def test_zip_without_asp_files_is_refused() -> None:
    body = build_zip([("readme.csv", b"hello,world\r\n")], __import__("datetime").datetime(2025, 9, 1))
    meta = SourceMeta("cms_asp", "https://www.cms.gov/x.zip", "0" * 64, "x.zip")
    with pytest.raises(
        ParseError,
        match=r"x.zip: no ASP payment limit file or NDC-HCPCS crosswalk CSV in the zip \(members: readme.csv\)",
    ):
        list(parse(body, meta))
