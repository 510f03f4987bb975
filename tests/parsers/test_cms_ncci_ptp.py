"""parsers.cms_ncci_ptp on the recorded practitioner slice, on zips built here around it, and on bad
inputs constructed here (each asserting the exact one-line error).

Expected values were read from the slice itself (its tab-separated lines). The deletion-date rule
under test (last day in force, ``eff_end = deletion + 1 day``; equal dates = never in force) is
argued in the parser's docstring; ``test_slice_dates_are_quarter_bounds`` checks the evidence.
"""

from __future__ import annotations

import dataclasses
import io
import time
import tracemalloc
import zipfile
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from parsers.cms_ncci_ptp import HEADER, file_name, parse
from parsers.errors import LayoutChanged, ParseError
from parsers.records import PtpRecord, SourceMeta

SLICE = "ccipra-v322r0-f1.excerpt.txt"
MEMBER = "ccipra-v322r0-f1.TXT"  # as CMS names the member (upper-case extension)
ZIP = "medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
CPT_MANUAL = "CPT Manual or CMS manual coding instruction"
MISUSE = "Misuse of Column Two code with Column One code"


def _meta(filename: str, release: str | None = None) -> SourceMeta:
    return SourceMeta(
        source="cms_ncci_ptp", url=f"https://example.test/{filename}", sha256="", filename=filename, release=release
    )


def _parse(body: bytes, filename: str, release: str | None = None) -> tuple[list[PtpRecord], Counter[str]]:
    meta = _meta(filename, release)
    return list(parse(body, meta)), meta.counts


def _error(body: bytes, filename: str, release: str | None = None) -> ParseError:
    with pytest.raises(ParseError) as caught:
        list(parse(body, _meta(filename, release)))
    return caught.value


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _slice(shared_data: Path) -> bytes:
    return (shared_data / "ncci_ptp" / SLICE).read_bytes()


# --- the recorded slice ---------------------------------------------------------------------------


def test_slice_format_facts(shared_data: Path) -> None:
    # DOMAIN.md §3.5 and PROVENANCE.md "Format notes: PTP txt", checked on the bytes.
    data = _slice(shared_data)
    data.decode("latin-1")
    lines = data.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) - 1 == 160  # CRLF, 6 header lines + 154 rows
    assert all(b"\n" not in line and line.count(b"\t") == 6 for line in lines[:-1])  # 7 tab-separated fields
    assert lines[0].startswith(b"CPT only copyright") and lines[1].startswith(b"Column1/Column2 Edits")
    assert lines[2].split(b"\t")[:2] == [b"Column 1", b"Column 2"]
    rows = [line.split(b"\t") for line in lines[6:-1]]
    assert {r[2] for r in rows} <= {b"", b"*"} and {r[5] for r in rows} <= {b"0", b"1", b"9"}
    assert all(r[4] == b"*" or len(r[4]) == 8 for r in rows)


def test_slice_records(shared_data: Path) -> None:
    records, counts = _parse(_slice(shared_data), SLICE)
    assert len(records) == 154  # PROVENANCE.md §2
    assert dict(counts) == {"preamble_line": 2, "header_line": 4, "never_in_force": 6}
    assert records[0] == PtpRecord(
        column1="0001A",
        column2="0591T",
        setting="practitioner",
        prior_1996=False,
        eff_start=date(2022, 1, 1),
        eff_end=date(2024, 1, 1),  # deletion 20231231 is the last day in force
        deletion_date=date(2023, 12, 31),
        modifier_indicator=1,
        rationale=CPT_MANUAL,
        locator=f"{SLICE} line 7",
    )
    assert records[-1].locator == f"{SLICE} line 160"
    assert (records[-1].column1, records[-1].column2, records[-1].rationale) == ("0001U", "81166", MISUSE)
    assert {r.setting for r in records} == {"practitioner"}
    assert not any(r.prior_1996 for r in records)
    pairs = [(r.column1, r.column2) for r in records]
    assert pairs == sorted(pairs) and len(set(pairs)) == 154  # sorted as bytes, no pair twice
    assert Counter(r.modifier_indicator for r in records) == {1: 139, 0: 9, 9: 6}
    assert Counter(r.rationale for r in records) == {
        MISUSE: 78,
        CPT_MANUAL: 66,
        "Mutually exclusive procedures": 7,
        "Standards of medical/surgical practice": 3,
    }


def test_deletion_date_is_the_last_day_in_force(shared_data: Path) -> None:
    by_pair = {(r.column1, r.column2): r for r in _parse(_slice(shared_data), SLICE)[0]}
    # 0001A/99241: deleted 20221231, the last day the consultation code existed (CPT deleted it for 2023).
    r = by_pair["0001A", "99241"]
    assert (r.eff_start, r.deletion_date, r.eff_end, r.modifier_indicator) == (
        date(2022, 1, 1),
        date(2022, 12, 31),
        date(2023, 1, 1),
        1,
    )
    # 0001A/90473: effective 20220101, deleted 20220101, indicator 9: deleted retroactively, never in force.
    r = by_pair["0001A", "90473"]
    assert (r.eff_start, r.deletion_date, r.eff_end, r.modifier_indicator) == (
        date(2022, 1, 1),
        date(2022, 1, 1),
        date(2022, 1, 1),
        9,
    )
    assert r.locator == f"{SLICE} line 12"
    # An open edit: deletion "*".
    r = by_pair["0001U", "81163"]
    assert (r.eff_start, r.deletion_date, r.eff_end, r.modifier_indicator, r.rationale) == (
        date(2019, 1, 1),
        None,
        None,
        1,
        MISUSE,
    )


def test_slice_dates_are_quarter_bounds(shared_data: Path) -> None:
    # The evidence for the rule: effective dates are quarter starts; deletion dates that differ from
    # them are quarter ends (the day before a quarter start), never quarter starts.
    records, _ = _parse(_slice(shared_data), SLICE)
    assert {(r.eff_start.month, r.eff_start.day) for r in records} <= {(1, 1), (4, 1), (7, 1), (10, 1)}
    deleted = [r for r in records if r.deletion_date is not None and r.deletion_date != r.eff_start]
    assert len(deleted) == 82
    for r in deleted:
        after = r.deletion_date + timedelta(days=1)
        assert (after.month, after.day) in {(1, 1), (4, 1), (7, 1), (10, 1)}, r
        assert r.eff_end == after and r.eff_end > r.eff_start
    same = [r for r in records if r.deletion_date == r.eff_start]
    assert len(same) == 6 and all(r.modifier_indicator == 9 and r.eff_end == r.eff_start for r in same)
    assert {r.modifier_indicator for r in records if r not in same} <= {0, 1}


def test_slice_in_the_cms_zip(shared_data: Path) -> None:
    # The zip as CMS names it, holding the slice under CMS's member name (built here, in memory).
    direct, _ = _parse(_slice(shared_data), SLICE)
    records, counts = _parse(_zip({MEMBER: _slice(shared_data)}), ZIP, release="2026-07")
    assert records == [dataclasses.replace(r, locator=r.locator.replace(SLICE, MEMBER)) for r in direct]
    assert dict(counts) == {"preamble_line": 2, "header_line": 4, "never_in_force": 6}
    # The same bytes as the outpatient hospital table: setting from the prefix.
    hospital = "medicare-ncci-2026q3-hospital-ptp-edits-ccioph-v322r0-f1.zip"
    records, _ = _parse(_zip({"ccioph-v322r0-f1.TXT": _slice(shared_data)}), hospital, release="2026-Q3")
    assert {r.setting for r in records} == {"outpatient_hospital"}


def test_parse_streams(shared_data: Path) -> None:
    # A bad row far down does not stop the first records from arriving: nothing is read ahead.
    data = _slice(shared_data) + _rows(100_000, start=10_000) + b"99999\t99998\t\t20200101\r\n"
    records = parse(_zip({MEMBER: data}), _meta(ZIP))
    assert [next(records).column2 for _ in range(3)] == ["0591T", "0592T", "0593T"]
    with pytest.raises(ParseError, match="expected 7 tab-separated fields, found 4"):
        list(records)


def test_file_names() -> None:
    names = file_name(ZIP)
    assert names is not None and (names.prefix, names.setting, names.version, names.part) == (
        "ccipra",
        "practitioner",
        "322",
        1,
    )
    assert names.quarter == (2026, 3)
    hospital = file_name("ccioph-v323r0-f4.TXT")
    assert hospital is not None and (hospital.setting, hospital.quarter, hospital.part) == (
        "outpatient_hospital",
        (2026, 4),
        4,
    )
    assert file_name("ccipra-v301r0-f1.xlsx").quarter == (2024, 2)  # northstar: 2024-04-01
    assert file_name("ccidme-v322r0-f1.txt").setting is None
    assert file_name("edits.txt") is None


# --- constructed rows and files --------------------------------------------------------------------

PREAMBLE = (
    "CPT only copyright 2025 American Medical Association.  All rights reserved.\t\t\t\t\t\t\r\n"
    "Column1/Column2 Edits\t\t\t\t\t\t\r\n"
)
COLUMN_HEADER = (
    "Column 1\tColumn 2\t*=in existence\tEffective\tDeletion\tModifier\tPTP Edit Rationale\r\n"
    "\t\tprior to 1996\tDate\tDate\t0=not allowed\t\r\n"
    "\t\t\t\t*=no data\t1=allowed\t\r\n"
    "\t\t\t\t\t9=not applicable\t\r\n"
)
TXT = "ccipra-v322r0-f1.txt"


def _txt(*rows: str, header: str = PREAMBLE + COLUMN_HEADER) -> bytes:
    return (header + "".join(row + "\r\n" for row in rows)).encode("latin-1")


def _rows(n: int, start: int = 10_000) -> bytes:
    """``n`` well-formed rows in CMS order (constructed: numeric codes, quarter dates)."""
    out = []
    for i in range(n):
        c1, c2 = start + i // 100, 50_000 + i % 100
        deletion = "*" if i % 7 else "20231231"
        out.append(f"{c1:05d}\t{c2:05d}\t{'*' if i % 11 == 0 else ''}\t20200101\t{deletion}\t{i % 2}\t{MISUSE}\r\n")
    return "".join(out).encode("latin-1")


def test_constructed_rows() -> None:
    rows = (
        "J9035\t96413\t*\t19960101\t*\t1\tStandards of medical/surgical practice",
        "J9035\t96415\t\t20040101\t20100331\t0\tMutually exclusive procedures",
        "J9035\t96415\t\t20120101\t*\t1\tMutually exclusive procedures",  # deleted and added again
        "J9271\t96413\t\t20200101\t20191231\t1\tx",  # deletion before effective
        "J9271\t96415\t\t20200101\t20200101\t1\tx",  # equal dates without indicator 9
        "J9271\t96417\t\t20200101\t20201231\t9\tx",  # indicator 9 on an edit in force for a year
        "",
        "J9299\t96413\t\t20200101\t*\t9\tx",  # indicator 9, open
        "J9299\t36591\t\t20200101\t*\t1\tx",  # out of order
    )
    records, counts = _parse(_txt(*rows), TXT)
    got = [(r.column1, r.column2, r.prior_1996, r.eff_start, r.eff_end, r.deletion_date, r.locator) for r in records]
    assert got == [
        ("J9035", "96413", True, date(1996, 1, 1), None, None, f"{TXT} line 7"),
        ("J9035", "96415", False, date(2004, 1, 1), date(2010, 4, 1), date(2010, 3, 31), f"{TXT} line 8"),
        ("J9035", "96415", False, date(2012, 1, 1), None, None, f"{TXT} line 9"),
        ("J9271", "96413", False, date(2020, 1, 1), date(2020, 1, 1), date(2019, 12, 31), f"{TXT} line 10"),
        ("J9271", "96415", False, date(2020, 1, 1), date(2020, 1, 1), date(2020, 1, 1), f"{TXT} line 11"),
        ("J9271", "96417", False, date(2020, 1, 1), date(2021, 1, 1), date(2020, 12, 31), f"{TXT} line 12"),
        ("J9299", "96413", False, date(2020, 1, 1), None, None, f"{TXT} line 14"),
        ("J9299", "36591", False, date(2020, 1, 1), None, None, f"{TXT} line 15"),
    ]
    assert dict(counts) == {
        "preamble_line": 2,
        "header_line": 4,
        "deletion_before_effective": 1,
        "never_in_force": 1,
        "retroactive_without_mi_9": 1,
        "mi_9_with_interval": 2,
        "blank_line": 1,
        "out_of_order": 1,
    }


# --- bad inputs (each asserting the exact line) -----------------------------------------------------


def test_row_with_five_fields() -> None:
    err = _error(_txt("J9035\t96413\t\t20200101\t*\t1\tx", "J9035\t96415\t\t20200101\t*"), TXT)
    assert str(err) == f"{TXT} line 8: expected 7 tab-separated fields, found 5"
    assert (err.source, err.url, err.locator) == ("cms_ncci_ptp", f"https://example.test/{TXT}", f"{TXT} line 8")


def test_renamed_column() -> None:
    header = PREAMBLE + COLUMN_HEADER.replace("\tDeletion\t", "\tTermination\t")
    err = _error(_txt("J9035\t96413\t\t20200101\t*\t1\tx", header=header), TXT)
    assert isinstance(err, LayoutChanged)
    assert str(err) == (
        f"{TXT}: header column 5 (lines 3-6) reads 'Termination Date *=no data', expected 'Deletion Date *=no data'"
    )


def test_missing_column() -> None:
    # The prior-1996 column gone: every later header column moves left.
    header = PREAMBLE + "".join(
        "\t".join(cells[:2] + cells[3:]) for cells in (line.split("\t") for line in COLUMN_HEADER.splitlines(True))
    )
    err = _error(_txt("J9035\t96413\t20200101\t*\t1\tx", header=header), TXT)
    assert isinstance(err, LayoutChanged)
    assert str(err) == (
        f"{TXT}: header column 3 (lines 3-6) reads 'Effective Date', expected '*=in existence prior to 1996'"
    )


def test_header_missing() -> None:
    err = _error(_txt("J9035\t96413\t\t20200101\t*\t1\tx", header=PREAMBLE), TXT)
    assert isinstance(err, LayoutChanged)
    assert str(err) == f"{TXT}: no column header line (first cell 'Column 1') in lines 1-2"
    err = _error(("x\r\n" * 30).encode(), TXT)
    assert isinstance(err, LayoutChanged)
    assert str(err) == (f"{TXT}: no edit row (a line starting with a five-character code) in the first 20 lines")
    assert str(_error(_txt(), TXT)) == f"{TXT}: the PTP file has a header but no edit rows"


def test_extra_column() -> None:
    header = PREAMBLE + COLUMN_HEADER.replace("Rationale\r\n", "Rationale\tNotes\r\n", 1)
    err = _error(_txt("J9035\t96413\t\t20200101\t*\t1\tx", header=header), TXT)
    assert str(err) == f"{TXT}: the header (lines 3-6) has columns past the 7 expected: Notes"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("J9035\t96413\t\t2020-01-01\t*\t1\tx", "effective date '2020-01-01' is not a YYYYMMDD date"),
        ("J9035\t96413\t\t20200101\t20201301\t1\tx", "deletion date '20201301' is not a YYYYMMDD date"),
        ("J9035\t96413\t\t20200101\t*\t2\tx", "modifier indicator '2' for J9035/96413 is not 0, 1 or 9"),
        ("J9035\t96413\tY\t20200101\t*\t1\tx", "prior-1996 flag 'Y' for J9035/96413 is not '*' or blank"),
        ("J903\t96413\t\t20200101\t*\t1\tx", "column 1 'J903' is not a HCPCS/CPT code"),
        ("J9035\t9641\t\t20200101\t*\t1\tx", "column 2 '9641' is not a HCPCS/CPT code"),
        ("j9035\t96413\t\t20200101\t*\t1\tx", "column 1 'j9035' is not a HCPCS/CPT code"),
    ],
)
def test_bad_fields(row: str, message: str) -> None:
    good = "J9035\t90000\t\t20200101\t*\t1\tx"
    assert str(_error(_txt(good, row), TXT)) == f"{TXT} line 8: {message}"


def test_duplicate_edit() -> None:
    row = "J9035\t96413\t\t20200101\t*\t1\tx"
    err = _error(_txt(row, row.replace("\t1\tx", "\t0\tx")), TXT)
    assert str(err) == f"{TXT} line 8: edit J9035/96413 effective 20200101 appears twice (lines 7 and 8)"


def test_wrong_settings_file_in_the_zip(shared_data: Path) -> None:
    hospital = "medicare-ncci-2026q3-hospital-ptp-edits-ccioph-v322r0-f1.zip"
    err = _error(_zip({MEMBER: _slice(shared_data)}), hospital)
    assert str(err) == f"{hospital}: the zip is named for ccioph-v322r0-f1 but holds {MEMBER}"
    # Same file part, wrong word for the prefix.
    odd = "medicare-ncci-2026q3-hospital-ptp-edits-ccipra-v322r0-f1.zip"
    err = _error(_zip({MEMBER: _slice(shared_data)}), odd)
    assert str(err) == f"{odd}: the zip is named for hospital edits but holds {MEMBER} (practitioner edits)"
    # Another part.
    err = _error(_zip({"ccipra-v322r0-f2.TXT": _slice(shared_data)}), ZIP)
    assert str(err) == f"{ZIP}: the zip is named for ccipra-v322r0-f1 but holds ccipra-v322r0-f2.TXT"


def test_quarters_must_agree(shared_data: Path) -> None:
    q4 = "medicare-ncci-2026q4-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
    err = _error(_zip({MEMBER: _slice(shared_data)}), q4)
    assert str(err) == f"{q4}: the zip is named for 2026 Q4 but holds {MEMBER} (version v322 = 2026 Q3)"
    err = _error(_zip({MEMBER: _slice(shared_data)}), ZIP, release="2026-10")
    assert str(err) == f"{MEMBER}: version v322 is 2026 Q3, but the release is '2026-10'"
    for release in ("2026-07", "2026-08-01", "2026-Q3", "2026q3"):
        assert len(_parse(_zip({MEMBER: _slice(shared_data)}), ZIP, release=release)[0]) == 154


def test_not_a_medicare_ptp_table() -> None:
    err = _error(_txt("J9035\t96413\t\t20200101\t*\t1\tx"), "ccidme-v322r0-f1.txt")
    assert str(err) == (
        "ccidme-v322r0-f1.txt: 'ccidme' is not a Medicare PTP table "
        "(ccipra = practitioner, ccioph = outpatient hospital)"
    )
    err = _error(_txt("J9035\t96413\t\t20200101\t*\t1\tx"), "edits.txt")
    assert str(err) == "edits.txt: no PTP file name (ccipra-vNNNrN-fN or ccioph-vNNNrN-fN) to take the setting from"
    err = _error(_zip({"readme.txt": b"x"}), ZIP)
    assert str(err) == f"{ZIP}: no PTP edit file (ccipra-/ccioph-vNNNrN-fN.txt) in the zip (members: readme.txt)"


def test_html_and_corrupt_zip(shared_data: Path) -> None:
    err = _error(b"<!DOCTYPE html><html><body>Accept the AMA license</body></html>", ZIP)
    assert str(err) == f"{ZIP}: expected a zip archive, got an HTML page"
    err = _error(b"<!DOCTYPE html>\r\n<html></html>\r\n", TXT)
    assert str(err) == f"{TXT}: expected a PTP edit file, got an HTML page"
    # A stored member with one byte changed far into it: the CRC check at its end fails.
    body = bytearray(_zip({MEMBER: _slice(shared_data)}, zipfile.ZIP_STORED))
    at = body.index(b"0001U\t81166")
    body[at + 1] = ord("9")
    err = _error(bytes(body), ZIP)
    assert str(err).startswith(f"{ZIP}: member '{MEMBER}' cannot be read, corrupt or unsupported (Bad CRC-32")


# --- streaming and speed ----------------------------------------------------------------------------


def test_memory_stays_small() -> None:
    # 200,000 rows (~15 MB of text); iterating them must not hold the text or the records.
    body = _zip({MEMBER: PREAMBLE.encode() + COLUMN_HEADER.encode() + _rows(200_000)})
    tracemalloc.start()
    try:
        count = sum(1 for _ in parse(body, _meta(ZIP)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert peak < 8_000_000, f"peak {peak:,} bytes"


def test_parse_is_fast() -> None:
    # Constructed 300,000 rows. The full-size figure (a 650,000-row generated part) is measured with
    # bench/generate.py; this only guards against a regression by a large factor on a slow CI machine.
    body = _zip({MEMBER: PREAMBLE.encode() + COLUMN_HEADER.encode() + _rows(300_000)})
    started = time.perf_counter()
    count = sum(1 for _ in parse(body, _meta(ZIP)))
    rate = count / (time.perf_counter() - started)
    assert count == 300_000
    assert rate > 100_000, f"{rate:,.0f} rows/s"


def test_header_constant_matches_the_slice(shared_data: Path) -> None:
    lines = _slice(shared_data).decode("latin-1").split("\r\n")[2:6]
    stacked = [" ".join(c for c in col if c) for col in zip(*(line.split("\t") for line in lines), strict=True)]
    assert tuple(stacked) == HEADER
