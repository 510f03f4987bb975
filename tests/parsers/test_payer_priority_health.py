"""The payer parser on Priority Health's 205-page Medical Drug List (../shared/data/payer/priority_health):
every row of the ruled table (code, drug, descriptor, coverage level, notes & restrictions).

Expected values were read off the document (pdfplumber's table of the page named in each comment).
The whole list is parsed once for the module (about a second with the PDFium engine).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from parsers.payer import parse
from parsers.payer_records import PayerCoverageRecord, PayerDocumentRecord, PayerPriorAuthRecord
from parsers.records import SourceMeta

FILE = "payer/priority_health/priority_health_medical_drug_list_2026.pdf"


@pytest.fixture(scope="module")
def result(shared_data: Path) -> tuple[SourceMeta, list[object]]:
    meta = SourceMeta(
        source="priority_health_drug_list",
        url="https://example.invalid/mdl.pdf",
        sha256="0" * 64,
        filename="medical-drug-list-2026.pdf",
        release="2026-04-05",
    )
    return meta, list(parse((shared_data / FILE).read_bytes(), meta))


def _rows(result: tuple[SourceMeta, list[object]]) -> list[PayerCoverageRecord]:
    return [r for r in result[1] if isinstance(r, PayerCoverageRecord)]


def _row(result: tuple[SourceMeta, list[object]], code: str, drug: str) -> PayerCoverageRecord:
    hits = [r for r in _rows(result) if r.code == code and r.drug == drug]
    assert len(hits) == 1, (code, drug, len(hits))
    return hits[0]


def test_document(result: tuple[SourceMeta, list[object]]) -> None:
    doc = next(r for r in result[1] if isinstance(r, PayerDocumentRecord))
    # Page 1: "Priority Health Commercial and MyPriority Plans" / "Medical Drug List"; every page's
    # footer: "Last Updated April 2, 2026".
    assert doc.title == "Priority Health Commercial and MyPriority Plans Medical Drug List"
    assert (doc.revised_date, doc.eff_start, doc.pages) == (date(2026, 4, 2), date(2026, 4, 2), 205)
    assert doc.status == "parsed" and doc.payer == "priority_health"


def test_every_row(result: tuple[SourceMeta, list[object]]) -> None:
    rows = _rows(result)
    # The table runs from page 3 to page 195 (the drug index follows): 1,615 HCPCS rows for 739
    # distinct codes (649 J, 77 Q, 6 A, 5 C, 2 S) and 17 CPT rows (11 codes: 90284, 90378, ... 91323).
    hcpcs = [r for r in rows if not r.code[0].isdigit()]
    cpt = [r for r in rows if r.code[0].isdigit()]
    assert (len(hcpcs), len({r.code for r in hcpcs})) == (1615, 739)
    assert Counter(c[0] for c in {r.code for r in hcpcs}) == {"J": 649, "Q": 77, "A": 6, "C": 5, "S": 2}
    assert (len(cpt), len({r.code for r in cpt})) == (17, 11)
    # CPT descriptors are AMA-licensed: the code is kept, its descriptor never.
    assert all(r.description is None for r in cpt)
    assert result[0].counts["CPT code row (descriptor not kept: AMA licence)"] == 17
    assert result[0].counts["drug list row with an unexpected number of cells (skipped)"] == 0
    pages = {int(r.locator.split(":")[0][1:]) for r in rows}
    assert (min(pages), max(pages)) == (3, 195)
    levels = Counter(r.coverage_level for r in rows)
    assert set(levels) == {
        "Non-Specialty",
        "Preferred Specialty",
        "Pharmacy Only",
        "Not Covered",
        "Non-Preferred",
        "Cellular/Gene Therapy",
        "Preventive",
        "Refer to Contraceptive Coverage",
        "Covered",
        "Not Separately Payable",
    }


def test_rows_field_by_field(result: tuple[SourceMeta, list[object]]) -> None:
    # Page 4: J0716 | ANASCORP | Injection, centruroides immune f(ab)2, up to 120 milligrams (Code Price is
    # per 1 vial) (For billing prior to 1/1/13 use C9288 or J3590) | Preferred Specialty | (none)
    r = _row(result, "J0716", "ANASCORP")
    assert r.description == (
        "Injection, centruroides immune f(ab)2, up to 120 milligrams (Code Price is per 1 vial) "
        "(For billing prior to 1/1/13 use C9288 or J3590)"
    )
    assert (r.coverage_level, r.covered, r.restrictions, r.locator) == ("Preferred Specialty", True, None, "p4:r4")
    # Page 4: J0895 | deferoxamine | ... | Non- Preferred | PA; No PA required for ICD-10 codes D56.0-D56.9 ...
    r = _row(result, "J0895", "deferoxamine")
    assert r.coverage_level == "Non-Preferred" and r.covered
    assert r.restrictions is not None and r.restrictions.startswith("PA; No PA required for ICD-10 codes D56.0-D56.9")
    # Page 3: J9003 | N/A | Leuprolide injectable (camcevi etm), 1 mg | Not Covered
    r = _row(result, "J9003", "N/A")
    assert (r.description, r.coverage_level, r.covered) == (
        "Leuprolide injectable (camcevi etm), 1 mg",
        "Not Covered",
        False,
    )
    # Page 31: AVASTIN is not covered, with covered alternatives Mvasi (Q5107) and Zirabev (Q5118).
    r = _row(result, "J9035", "AVASTIN 100 MG/4 ML VIAL P/F,SUV")
    assert (r.description, r.covered) == ("Injection, bevacizumab, 10 mg", False)
    assert r.restrictions is not None and "Q5107 - Mvasi (bevacizumab-awwb)" in r.restrictions
    # Page 55: Q5107 | MVASI | Injection, bevacizumab-awwb, biosimilar, (mvasi), 10 mg | Preferred Specialty
    r = _row(result, "Q5107", "MVASI")
    assert (r.coverage_level, r.covered) == ("Preferred Specialty", True)
    # RITUXAN is listed twice (pages 48 and 157, two therapeutic classes): two rules, both kept.
    assert {_row(result, "J9312", "RITUXAN").locator[:4], _row(result, "J9312", "RITUXAN (2)").locator[:4]} == {
        "p48:",
        "p157",
    }
    # Page 20: 90378 (CPT) | SYNAGIS 100 MG/ML VIAL | (descriptor not kept) | Not Covered
    r = _row(result, "90378", "SYNAGIS 100 MG/ML VIAL")
    assert (r.description, r.covered) == (None, False)


def test_prior_auth_from_notes(result: tuple[SourceMeta, list[object]]) -> None:
    pa = {r.code: r for r in result[1] if isinstance(r, PayerPriorAuthRecord)}
    # "PA-Prior Authorization" (legend on every page): J0895's notes start with "PA;", ANASCORP's are empty.
    assert pa["J0895"].required is True
    assert pa["J0716"].required is False
    assert len(pa) == 739 + 11


def test_pdfium_engine_reads_the_same_rows_as_pdfplumber(shared_data: Path) -> None:
    """The fast engine (PDFium) against pdfplumber's table finder, the reference, on pages 3-24 of the
    list: every row that starts with a code has the same cells, whitespace aside."""
    import re

    from parsers.payer_pdf import _pdfium_table_rows, _tables_of_pages

    body = (shared_data / FILE).read_bytes()

    def code_rows(rows: list[tuple[int, list[str | None]]]) -> list[tuple[int, tuple[str, ...]]]:
        out = []
        for page, raw in rows:
            cells = [c for c in raw if c is not None] if len(raw) != 5 else raw
            if re.fullmatch(r"[A-V]\d{4}|\d{4}[0-9A-Z]", (raw[0] or "").strip()) and len(cells) == 5:
                out.append((page, tuple(" ".join((c or "").split()) for c in cells)))
        return out

    reference = code_rows([(p, row) for p, table in _tables_of_pages(body, 3, 24) for row in table])
    _, fast_rows = _pdfium_table_rows(body, "mdl.pdf")
    fast = code_rows([(p, r) for p, r in fast_rows if 3 <= p <= 24])
    assert len(reference) == 194  # pdfplumber: 194 code rows on pages 3-24
    assert fast == reference
