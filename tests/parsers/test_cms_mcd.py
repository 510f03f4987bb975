"""parsers.cms_mcd, parsers.mcd_tables and parsers.mcd_build on the recorded MCD export
(``../shared/data/mcd/export_2026-01``), plus bad inputs constructed here.

Expected values are read from the files themselves (raw bytes, physical lines) or are public facts
stated where used (MAC contract numbers by jurisdiction). The four big article tables the recording
lacks come from the constructed ``tests/fixtures/cms_mcd`` (see its README).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from parsers.cms_mcd import export_tables, parse
from parsers.errors import LayoutChanged, ParseError, UnsafeArchive
from parsers.mcd_build import _Where
from parsers.mcd_records import CoverageRuleRecord, PolicyDocumentRecord
from parsers.mcd_tables import html_text, parse_date, read_table
from parsers.records import SourceMeta
from policysync.mirror_mcd import export_zip
from tests.conftest import REPO

ARTICLE_CSV = "mcd/export_2026-01/current_article/csv"
LCD_CSV = "mcd/export_2026-01/current_lcd/csv"
FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"


def meta(name: str = "current_article.zip") -> SourceMeta:
    return SourceMeta("cms_mcd", f"https://downloads.cms.gov/x/{name}", "0" * 64, name, "2026-01-08")


def test_multi_line_html_cells_are_one_record(shared_data: Path) -> None:
    path = shared_data / ARTICLE_CSV / "article_x_hcpc_code_group.csv"
    data = path.read_bytes()
    rows, has_header = read_table(data, path.name, "article_x_hcpc_code_group")
    assert has_header
    physical = data.count(b"\n")
    assert physical > len(rows) + 1  # paragraphs span several physical lines
    (a52370_g1,) = [r for r in rows if (r["article_id"], r["hcpc_code_group"]) == ("52370", "1")]
    assert a52370_g1["article_version"] == "128"
    assert a52370_g1["paragraph"].startswith("<p>Effective 01/01/2026, HCPCS code Q5160")
    assert "\n" in a52370_g1["paragraph"]
    text = html_text(a52370_g1["paragraph"])
    assert "(Vegzelma\u00ae)" in text  # &#174; decoded
    assert "<" not in text and "&#" not in text
    assert text.splitlines()[0] == (
        "Effective 01/01/2026, HCPCS code Q5160 should be used to report bevacizumab-nwgd (jobevneTM), 10mg"
    )


def test_cp1252_bytes(shared_data: Path) -> None:
    path = shared_data / ARTICLE_CSV / "article_x_icd10_covered_group.csv"
    data = path.read_bytes()
    # raw bytes 0x93/0x94 (cp1252 curly quotes) in article 55835's paragraph, 0x99 (trade mark) in 57052's
    assert b"\x93C\x94" in data and b"TR\x99" in data
    rows, _ = read_table(data, path.name, "article_x_icd10_covered_group")
    (p55835,) = [r for r in rows if r["article_id"] == "55835" and r["icd10_covered_group"] == "1"]
    assert "The \u201cC\u201d codes" in p55835["paragraph"]
    assert any("DSM-IV-TR\u2122" in r["paragraph"] for r in rows if r["article_id"] == "57052")


def test_headerless_requestor_letters(shared_data: Path) -> None:
    path = shared_data / LCD_CSV / "lcd_x_requestor_letters.csv"
    data = path.read_bytes()
    first_line = data.split(b"\n", 1)[0].decode("cp1252")
    assert first_line.startswith('"39932","4","1","Niranjan Shekar"')  # data, not column names
    rows, has_header = read_table(data, path.name, "lcd_x_requestor_letters")
    assert not has_header
    assert len(rows) == sum(1 for line in data.splitlines() if line.strip())  # one line per record here
    assert rows[0] == {
        "lcd_id": "39932",
        "lcd_version": "4",
        "letter_id": "1",
        "requestor_name": "Niranjan Shekar",
        "letter_path": "/attachments/lcd/39932_1/Coverletterforrequest.pdf",
        "size": "64602",
        "sort_order": "1",
        "last_updated": "2024-08-19 17:38:11.197000000",
    }


def test_headerless_table_without_a_dictionary_layout_is_refused() -> None:
    with pytest.raises(LayoutChanged) as info:
        read_table(b'"1","2"\r\n', "x/contractor.csv", "contractor")
    assert "contractor.csv" in str(info.value) and "no header row" in str(info.value)


def test_every_recorded_table_reads(shared_data: Path) -> None:
    for folder in (ARTICLE_CSV, LCD_CSV):
        for path in sorted((shared_data / folder).glob("*.csv")):
            data = path.read_bytes()
            rows, _ = read_table(data, path.name, path.stem)
            # the stdlib's quote-aware reader, as a reference count
            ref = list(csv.reader(io.StringIO(data.decode("cp1252", errors="replace"), newline="")))
            ref = [r for r in ref if r]
            headerless = path.stem == "lcd_x_requestor_letters"
            assert len(rows) == len(ref) - (0 if headerless else 1), path.name


# MAC contract numbers by jurisdiction (CMS "Who are the MACs"; public): the first two digits of an A/B
# contract name its jurisdiction; the four DME MAC contracts are 16013 (A), 17013 (B), 18003 (C), 19003 (D).
AB_PREFIX = {
    "01": "JE", "02": "JF", "03": "JF", "04": "JH", "05": "J5", "06": "J6", "07": "JH", "08": "J8", "09": "JN",
    "10": "JJ", "11": "JM", "12": "JL", "13": "JK", "14": "JK", "15": "J15",
}  # fmt: skip
DME = {"16013": "JA", "17013": "JB", "18003": "JC", "19003": "JD"}


def test_jurisdiction_labels_from_the_contractor_tables(shared_data: Path) -> None:
    tables = {}
    for name in (
        "contractor",
        "dmerc_region_lookup",
        "contractor_subtype_lookup",
        "state_lookup",
        "contractor_jurisdiction",
    ):
        path = shared_data / ARTICLE_CSV / f"{name}.csv"
        tables[name] = read_table(path.read_bytes(), path.name, name)[0]
    where = _Where(tables)
    assert len(where.contractors) == len(tables["contractor"]) == 120
    for number, _name, part, label in where.contractors.values():
        if part == "DME":
            assert label == DME[number], number
        else:
            assert label == AB_PREFIX[number[:2]], number
    # sub-state ids: state_lookup.csv lists DN/QN/UN as "New York - ..." and NF/SF as "California - ..."
    assert where.parent == {"DN": "NY", "QN": "NY", "UN": "NY", "NF": "CA", "SF": "CA", "EM": "MO", "WM": "MO"}


def test_article_export_records(shared_data: Path) -> None:
    body = export_zip("current_article", [shared_data / ARTICLE_CSV, FIXTURES])
    m = meta()
    records = list(parse(body, m))
    docs = [r for r in records if isinstance(r, PolicyDocumentRecord)]
    rules = [r for r in records if isinstance(r, CoverageRuleRecord)]
    assert [d.policy for d in docs] == ["A52369", "A52370"]
    a = docs[1]
    assert a.article_type == "Billing and Coding"  # article_type_lookup.csv id 6
    assert a.related == ("L33394",)
    assert len(a.contractors) == 22  # article_x_contractor.csv: 22 rows for 52370 v128
    j9035 = [r for r in rules if r.code == "J9035"]
    # group 1 (its HCPCS group), and group 2, whose ophthalmologic paragraph names J9035 for Part B
    assert [(r.group, r.covered, r.pairing) for r in j9035] == [(1, True, "same_group"), (2, True, "same_group+named")]
    assert j9035[0].asterisk == ("G96.89",)
    # the same group's diagnoses, in tabular order, are shared by every code of the group
    group1 = {r.diagnoses for r in rules if r.policy == "A52370" and r.group == 1}
    assert len(group1) == 1
    (ophth,) = [r for r in rules if r.code == "67028"]
    assert ophth.group == 2 and ophth.notes[0] == "Intravitreal injection code"
    assert m.counts["article_x_hcpc_code: older version in join table (ignored)"] == 1


def test_lcd_export_records(shared_data: Path) -> None:
    body = export_zip("current_lcd", [shared_data / LCD_CSV, FIXTURES])
    m = meta("current_lcd.zip")
    (lcd,) = list(parse(body, m))
    assert isinstance(lcd, PolicyDocumentRecord)
    assert (lcd.policy, lcd.version, lcd.doc_type) == ("L33394", 54, "lcd")
    assert lcd.jurisdictions == ("J6", "JK")
    assert "NY" in lcd.states and "DN" in lcd.states
    # lcd_related_documents.csv lists articles for L33394 v54 (A52370 among them)
    assert "A52370" in lcd.related


def test_nested_zip_layout(shared_data: Path) -> None:
    body = export_zip("current_article", [shared_data / ARTICLE_CSV, FIXTURES])
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.namelist() == ["current_article_csv.zip", "readme_first.txt"]
        with zipfile.ZipFile(io.BytesIO(zf.read("current_article_csv.zip"))) as inner:
            assert "current_article_csv/article_x_hcpc_code.csv" in inner.namelist()
    tables, member_of = export_tables(body, "current_article.zip")
    assert member_of["article"] == "current_article.zip/current_article_csv.zip/current_article_csv/article.csv"
    assert "article_x_urls" not in tables  # not read


@pytest.mark.parametrize(
    "drop, missing",
    [
        ("article", "article"),
        ("article_x_icd10_noncovered", "article_x_icd10_noncovered"),
        ("contractor", "contractor"),
    ],
)
def test_missing_table_is_one_line_naming_it(shared_data: Path, drop: str, missing: str) -> None:
    body = export_zip("current_article", [shared_data / ARTICLE_CSV, FIXTURES], drop=[drop])
    with pytest.raises(ParseError) as info:
        list(parse(body, meta()))
    assert str(info.value) == f"current_article.zip: table {missing}.csv missing from the export"


def test_bad_archives() -> None:
    with pytest.raises(ParseError) as info:
        list(parse(b"<html>not a zip</html>", meta()))
    assert "current_article.zip" in str(info.value) and "\n" not in str(info.value)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("../evil.csv", "a,b\n1,2\n")
    with pytest.raises(UnsafeArchive):
        list(parse(out.getvalue(), meta()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(ParseError) as info:
        list(parse(out.getvalue(), meta()))
    assert "no MCD CSV tables found" in str(info.value)


def test_short_record_is_refused_with_its_number() -> None:
    data = b"article_id,article_version,state_id,last_updated\r\n1,2,3,x\r\n4,5\r\n"
    with pytest.raises(ParseError) as info:
        read_table(data, "article_x_primary_jurisdiction.csv", "article_x_primary_jurisdiction")
    assert str(info.value) == "article_x_primary_jurisdiction.csv record 3: 2 fields where the header has 4"


def test_dates() -> None:
    assert str(parse_date("2025-12-22 14:31:54.663000000", "x")) == "2025-12-22"
    assert str(parse_date("07/13/2025", "x")) == "2025-07-13"  # Coverage API form
    assert parse_date("N/A", "x") is None and parse_date("", "x") is None
    with pytest.raises(ParseError):
        parse_date("13/45/2025", "article.csv A1 v1")


def test_html_double_encoded() -> None:
    """The Coverage API sends narrative HTML entity-encoded twice (DOMAIN.md §3.1)."""
    assert html_text("&lt;p&gt;Bevacizumab&amp;#174; &lt;br /&gt;10 mg&lt;/p&gt;") == "Bevacizumab\u00ae\n10 mg"


def test_counts_are_counters(shared_data: Path) -> None:
    m = meta()
    list(parse(export_zip("current_article", [shared_data / ARTICLE_CSV, FIXTURES]), m))
    assert isinstance(m.counts, Counter)
    assert all(isinstance(v, int) and v > 0 for v in m.counts.values())


def test_reversed_range_ends_are_counted_and_codes_kept(shared_data: Path) -> None:
    """Constructed: the C34.00-C34.92 range of A52370 relabelled so its B row (now C34.92) comes first."""
    path = FIXTURES / "article_x_icd10_covered.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode("cp1252"), newline="")))
    lo = next(r for r in rows if r["icd10_code_id"] == "C34.00")
    hi = next(r for r in rows if r["icd10_code_id"] == "C34.92")
    lo["range"], hi["range"] = "E", "B"
    lo["sort_order"], hi["sort_order"] = hi["sort_order"], lo["sort_order"]
    out = io.StringIO()
    w = csv.DictWriter(out, list(rows[0]), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    body = export_zip(
        "current_article",
        [shared_data / ARTICLE_CSV, FIXTURES],
        replace={"article_x_icd10_covered": out.getvalue().encode("cp1252")},
    )
    m = meta()
    rules = [r for r in parse(body, m) if isinstance(r, CoverageRuleRecord) and r.code == "J9035"]
    key = "icd10 range with reversed ends (codes kept as listed; first: A52370 C34.92\u2013C34.00)"
    assert m.counts[key] == 1
    assert {"C34.00", "C34.92"} <= set(rules[0].diagnoses)
