"""The payer parser on the five recorded payer policies in ../shared/data/payer (PROVENANCE.md section 6).

Every expected value below was read off the document itself (pdfplumber's text of the page named in
the comment), not from the parser's output. Priority Health's 205-page drug list has its own module
(test_payer_priority_health.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pdfplumber
import pytest

from parsers import icd10cm
from parsers.payer import diagnosis_specs, parse, parse_date, payer_of
from parsers.payer_pdf import Line
from parsers.payer_records import (
    PayerCoverageRecord,
    PayerDocumentRecord,
    PayerPriorAuthRecord,
    PayerUnitLimitRecord,
)
from parsers.records import SourceMeta

FILES = {
    "cigna": "payer/cigna/cigna_IP0319_rituximab_iv_non_oncology_eff_2026-02-01.pdf",
    "uhc": "payer/uhc/uhc_2026D0017AN_botulinum_toxins_eff_2026-01-01.pdf",
    "florida_blue": "payer/florida_blue/floridablue_09-J0000-66_bevacizumab_rev_2026-01-01.pdf",
    "emblemhealth_prime": "payer/emblemhealth_prime/emblemhealth_prime_IC-0098_denosumab_rev_2025-11-04.pdf",
    "bcbs_nc": "payer/bcbs_nc/bcbsnc_preferred_injectable_oncology_program_2026-01.pdf",
}


class Parsed:
    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.meta = SourceMeta(
            source=source,
            url=f"https://example.invalid/{path.name}",
            sha256="0" * 64,
            filename=path.name,
            release="2026-04-05",
        )
        self.records = list(parse(path.read_bytes(), self.meta))
        docs = [r for r in self.records if isinstance(r, PayerDocumentRecord)]
        assert len(docs) == 1
        self.doc = docs[0]
        self.coverage = [r for r in self.records if isinstance(r, PayerCoverageRecord)]
        self.prior_auth = {r.code: r for r in self.records if isinstance(r, PayerPriorAuthRecord)}
        self.limits = [r for r in self.records if isinstance(r, PayerUnitLimitRecord)]

    def code(self, code: str, drug: str | None = None) -> PayerCoverageRecord:
        hits = [c for c in self.coverage if c.code == code and (drug is None or c.drug == drug)]
        assert len(hits) == 1, f"{code} {drug}: {len(hits)} rows"
        return hits[0]

    def line_at(self, locator: str) -> str:
        """The text of the PDF line a locator names, read with pdfplumber directly."""
        page, line = (int(x[1:]) for x in locator.split(":"))
        with pdfplumber.open(self.path) as pdf:
            return (pdf.pages[page - 1].extract_text() or "").split("\n")[line - 1]


_CACHE: dict[str, Parsed] = {}


@pytest.fixture(scope="module")
def parsed(shared_data: Path) -> Callable[[str], Parsed]:
    def get(payer: str) -> Parsed:
        if payer not in _CACHE:
            _CACHE[payer] = Parsed(shared_data / FILES[payer], f"{payer}_drug_policies")
        return _CACHE[payer]

    return get


def _descriptors(p: Parsed) -> dict[str, Any]:
    return {c.code: c.description for c in p.coverage}


# --- Cigna IP0319 ---------------------------------------------------------------------------------


def test_cigna_header_and_codes(parsed: Callable[[str], Parsed]) -> None:
    p = parsed("cigna")
    d = p.doc
    # Page 1: "Effective Date .......... 02/01/2026", "Coverage Policy Number .......... IP0319",
    # "Policy Title….... Rituximab Intravenous" / "Products for Non-Oncology Indications".
    assert (d.status, d.payer, d.policy) == ("parsed", "cigna", "IP0319")
    assert d.title == "Rituximab Intravenous Products for Non-Oncology Indications"
    assert (d.effective_date, d.revised_date, d.reviewed_date) == (date(2026, 2, 1), None, None)
    assert d.pages == 32
    # Page 18, "Coding Information": four HCPCS codes with their descriptors.
    assert _descriptors(p) == {
        "J9312": "Injection, rituximab, 10 mg",
        "Q5115": "Injection, rituximab-abbs, biosimilar, (truxima), 10 mg",
        "Q5119": "Injection, rituximab-pvvr, biosimilar, (ruxience), 10 mg",
        "Q5123": "Injection, rituximab-arrx, biosimilar, (Riabni), 10 mg",
    }
    for c in p.coverage:
        assert c.covered and c.diagnoses == () and c.eff_start == date(2026, 2, 1)
        assert p.line_at(c.locator).startswith(c.code)
    assert p.code("J9312").locator == "p18:l17"
    # Page 6, POLICY STATEMENT: "Prior Authorization is required for benefit coverage of rituximab IV products."
    assert set(p.prior_auth) == {"J9312", "Q5115", "Q5119", "Q5123"}
    assert all(r.required for r in p.prior_auth.values())
    assert (
        p.prior_auth["J9312"].note == "Prior Authorization is required for benefit coverage of rituximab IV products."
    )
    assert p.limits == []


def test_cigna_sections(parsed: Callable[[str], Parsed]) -> None:
    s = parsed("cigna").doc.sections
    assert list(s) == [
        "Header",
        "OVERVIEW",
        "Guidelines",
        "Coverage Policy",
        "POLICY STATEMENT",
        "Conditions Not Covered",
        "Coding Information",
        "References",
        "Revision Details",
    ]
    assert s["Conditions Not Covered"].startswith(
        "Rituximab products (Rituxan, Riabni, Ruxience, Truxima) for any other"
    )
    assert s["References"].startswith("1. Rituxan intravenous infusion [prescribing information].")
    # The running footer ("Page 6 of 32" / "Coverage Policy Number: IP0319") is not section text.
    assert "Coverage Policy Number: IP0319" not in s["POLICY STATEMENT"]
    assert "Page 6 of 32" not in s["POLICY STATEMENT"]


# --- UnitedHealthcare 2026D0017AN ---------------------------------------------------------------------


def test_uhc_header_and_codes(parsed: Callable[[str], Parsed]) -> None:
    p = parsed("uhc")
    d = p.doc
    # Page 1: "Botulinum Toxins A and B", "Policy Number: 2026D0017AN", "Effective Date: January 1, 2026".
    assert (d.policy, d.title, d.effective_date) == ("2026D0017AN", "Botulinum Toxins A and B", date(2026, 1, 1))
    # Page 4, "Applicable Codes": code, descriptor, brand.
    assert {c.code: (c.description, c.drug) for c in p.coverage} == {
        "J0585": ("Injection, onabotulinumtoxinA, 1 unit", "Botox"),
        "J0586": ("Injection, abobotulinumtoxinA, 5 units", "Dysport"),
        "J0587": ("Injection, rimabotulinumtoxinB, 100 units", "Myobloc"),
        "J0588": ("Injection, incobotulinumtoxinA, 1 unit", "Xeomin"),
        "J0589": ("Injection, daxibotulinumtoxina-lanm, 1 unit", "Daxxify"),
    }
    # The policy states no prior-authorization rule: none is invented.
    assert p.prior_auth == {}


def test_uhc_diagnosis_matrix_by_column(parsed: Callable[[str], Parsed]) -> None:
    """The "Applies to HCPCS Code" matrix marks each diagnosis row with an X under the codes it applies
    to; the columns are told apart by position (pages 4-11)."""
    p = parsed("uhc")

    def codes_for(icd: str) -> set[str]:
        return {c.code for c in p.coverage if icd in c.diagnosis_specs}

    # Page 4: "C71.0 Malignant neoplasm of cerebrum ... X X X X" under J0585-J0588 (x 383, 426, 468, 510).
    assert codes_for("C71.0") == {"J0585", "J0586", "J0587", "J0588"}
    # Page 5: "G24.3 Spasmodic torticollis X X X X X": all five, the only row Daxxify is marked on.
    assert codes_for("G24.3") == {"J0585", "J0586", "J0587", "J0588", "J0589"}
    assert p.code("J0589").diagnosis_specs == ("G24.3",)
    # Page 5: "G24.09 Other drug induced dystonia X X" (x 383, 426) and "G24.5 Blepharospasm X X X".
    assert codes_for("G24.09") == {"J0585", "J0586"}
    assert codes_for("G24.5") == {"J0585", "J0586", "J0588"}
    # 223 distinct diagnosis codes are listed in the matrix (every row starting with a code).
    assert len({s for c in p.coverage for s in c.diagnosis_specs}) == 223
    assert p.code("J0585").diagnoses[0] == "C71.0"
    assert all(icd10cm.is_billable(x) for x in p.code("J0585").diagnoses)


# --- Florida Blue 09-J0000-66 --------------------------------------------------------------------------


def test_florida_blue_header_and_codes(parsed: Callable[[str], Parsed]) -> None:
    p = parsed("florida_blue")
    d = p.doc
    # Page 1: "09-J0000-66", "Original Effective Date: 11/15/06", "Reviewed:10/08/25", "Revised: 01/01/26".
    assert d.policy == "09-J0000-66"
    assert (d.revised_date, d.reviewed_date) == (date(2026, 1, 1), date(2025, 10, 8))
    assert d.title is not None
    assert d.title.startswith("Bevacizumab (Avastin), bevacizumab-awwb (Mvasi), bevacizumab-bvzr (Zirabev)")
    assert d.title.endswith("bevacizumab-adcd (Vegzelma) Injection")
    assert d.eff_start == date(2026, 1, 1)  # the revised date: the version in force
    # Page 9, "HCPCS Coding:".
    assert _descriptors(p) == {
        "J9035": "Injection, bevacizumab, 10 mg",
        "Q5107": "Injection, bevacizumab-awwb, biosimilar, (Mvasi), 10 mg",
        "Q5118": "Injection, bevacizumab-bvzr, biosimilar (Zirabev), 10 mg",
        "Q5126": "Injection, bevacizumab-maly, biosimilar, (Alymsys), 10 mg",
        "Q5129": "Injection, bevacizumab-adcd (Vegzelma), biosimilar, 10 mg",
        "Q5160": "Injection, bevacizumab-nwgd (Jobevne), biosimilar, 10 mg",
    }


def test_florida_blue_diagnoses_and_ranges(parsed: Callable[[str], Parsed]) -> None:
    p = parsed("florida_blue")
    j9035 = p.code("J9035")
    # Pages 10-11, "ICD-10 Diagnosis Codes That Support Medical Necessity": 61 rows,
    # 22 of them ranges ("C18.0 – C18.9").
    assert len(j9035.diagnosis_specs) == 61
    assert sum("-" in s for s in j9035.diagnosis_specs) == 22
    assert j9035.diagnosis_specs[:6] == ("C17.0", "C17.1", "C17.2", "C17.8", "C17.9", "C18.0-C18.9")
    assert j9035.diagnosis_specs[-3:] == ("T66.XXXA", "T66.XXXD", "T66.XXXS")
    dx = set(j9035.diagnoses)
    # "C18.0 – C18.9" and "C33 – C34.92" expanded through the FY2026 code set.
    assert set(icd10cm.expand_range("C18.0", "C18.9")) <= dx
    assert {"C33", "C34.00", "C34.12", "C34.92"} <= dx
    # "C52.0" is printed but is not an ICD-10-CM code (C52 has no subcodes): counted, not guessed.
    assert "C52.0" in j9035.diagnosis_specs and "C52.0" not in dx and "C52" not in dx
    assert p.meta.counts["icd10 code or range not in the FY2026 code set (kept as printed)"] == 1
    # The list applies to every code of the policy.
    assert all(c.diagnoses == j9035.diagnoses for c in p.coverage)
    assert p.prior_auth == {}  # not stated in this guideline


# --- EmblemHealth / Prime IC-0098 ---------------------------------------------------------------------


def test_emblemhealth_header_codes_and_prior_auth(parsed: Callable[[str], Parsed]) -> None:
    p = parsed("emblemhealth_prime")
    d = p.doc
    # Page 1: "Document Number: IC-0098", "Last Review Date: 11/04/2025".
    assert (d.policy, d.reviewed_date, d.effective_date) == ("IC-0098", date(2025, 11, 4), None)
    assert d.title is not None and d.title.startswith("Denosumab: Aukelso™; Bildyos®;")
    # Page 7, "VI. Billing Code/Availability Information": codes under the products billed with them.
    assert [(c.code, c.drug) for c in p.coverage] == [
        ("J0897", "Prolia & Xgeva"),
        ("Q5136", "Jubbonti & Wyost"),
        ("Q5157", "Osenvelt, Stoboclo, & Denosumab-bmwo"),
        ("Q5158", "Bomyntra, Conexxence, & Denosumab-bnht"),
        ("Q5159", "Denosumab-dssb, Ospomyv, & Xbryk"),
        ("J3590", "Aukelso & Bosaya"),
        ("Q5161", "Aukelso & Bosaya"),
        ("J3590", "Bildyos & Bilprevda"),
        ("Q5162", "Bildyos & Bilprevda"),
        ("J3590", "Enoby & Xtrenbo"),
    ]
    assert p.code("J0897").description == "Injection, denosumab, 1 mg; 1 billable unit = 1 mg"
    # The descriptor that runs on to the next line ("... = 1" / "mg") is joined.
    assert p.code("Q5157").description == (
        "Injection, denosumab-bmwo (stoboclo/osenvelt), biosimilar, 1 mg; 1 billable unit = 1 mg"
    )
    assert p.code("J3590", "Enoby & Xtrenbo").description == "Unclassified biologics"
    # "Prior authorization validity will be provided initially for 12 months" (page 1).
    assert p.prior_auth["J0897"].required and len(p.prior_auth) == 8


def test_emblemhealth_unit_limits(parsed: Callable[[str], Parsed]) -> None:
    """Page 1, "II. Dosing Limits": 60 billable units every 6 months for osteoporosis; 120 units on days
    1, 8, 15 and 29 then every 4 weeks for giant cell tumor / hypercalcemia; 120 every 4 weeks for bone
    metastases. Each code bills one osteoporosis and one oncology product, so each gets all four."""
    p = parsed("emblemhealth_prime")
    by_code: dict[str, set[tuple[str, int, str | None]]] = {}
    for lim in p.limits:
        by_code.setdefault(lim.code, set()).add((lim.indication, lim.max_units, lim.per))
    expected = {
        ("Osteoporosis", 60, "every 6 months"),
        ("Giant Cell Tumor of Bone & Hypercalcemia of Malignancy (loading dose)", 120, "on days 1, 8, 15, and 29"),
        ("Giant Cell Tumor of Bone & Hypercalcemia of Malignancy (maintenance)", 120, "every 4 weeks"),
        ("Bone metastases from solid tumors, Multiple Myeloma, & Systemic Mastocytosis", 120, "every 4 weeks"),
    }
    assert set(by_code) == {"J0897", "Q5136", "Q5157", "Q5158", "Q5159", "J3590", "Q5161", "Q5162"}
    assert all(v == expected for v in by_code.values())


def test_emblemhealth_diagnoses_split_ranges(parsed: Callable[[str], Parsed]) -> None:
    p = parsed("emblemhealth_prime")
    specs = p.code("J0897").diagnosis_specs
    # Pages 12-15, "Appendix 1 – Covered Diagnosis Codes": two tables (osteoporosis products, oncology
    # products), 80 rows; ranges printed over three lines ("C50.011-" / description / "C50.929").
    assert len(specs) == 80
    assert specs[0] == "C50.011-C50.929"
    assert "M80.00XA-M80.08XS" in specs and "C00-C14" in specs and "D37-D44" in specs
    assert specs[-4:] == ("Z85", "Z85.118", "Z85.3", "Z85.528")
    dx = set(p.code("J0897").diagnoses)
    assert {"C50.011", "C50.929", "M81.0", "C90.00", "E83.52"} <= dx
    assert "C50.9" not in dx  # a category, not billable: only leaves are listed


# --- Blue Cross NC Preferred Injectable Oncology Program --------------------------------------------


def test_bcbs_nc(parsed: Callable[[str], Parsed]) -> None:
    p = parsed("bcbs_nc")
    d = p.doc
    # Page 1: "Corporate Medical Policy: Preferred Injectable Oncology Program"; page 25: "Policy
    # notification given 10/1/2025 for effective date 1/1/2026." The policy prints no number.
    assert d.title == "Preferred Injectable Oncology Program"
    assert d.policy == "preferred-injectable-oncology-program"
    assert d.effective_date == date(2026, 1, 1)
    # Pages 10-24, "FDA Label Reference": restricted products, their HCPCS codes and maximum units.
    assert [(c.drug, c.code) for c in p.coverage] == [
        ("Alymsys", "Q5126"),
        ("Avastin", "J9035"),
        ("Avzivi", "C9399"),
        ("Avzivi", "J3490"),
        ("Avzivi", "J3590"),
        ("Avzivi", "J9999"),
        ("Herceptin", "J9355"),
        ("Herceptin Hylecta", "J9356"),
        ("Hercessi", "Q5146"),
        ("Herzuma", "Q5113"),
        ("Jobevne", "Q5160"),
        ("Kanjinti", "Q5117"),
        ("Rituxan", "J9312"),
        ("Rituxan Hycela", "J9311"),
        ("Vegzelma", "Q5129"),
    ]
    # "**Non-specific assigned HCPCS codes, must submit requested product NDC".
    assert p.code("J9999").restrictions == "non-specific (NOC) code: submit the product NDC"
    # Every product in the table is a restricted product (page 1): prior review applies.
    assert all(r.required for r in p.prior_auth.values()) and len(p.prior_auth) == 15
    # "Alymsys® ... Q5126 9999" (page 10): the Maximum Units column.
    assert (p.limits[0].code, p.limits[0].indication, p.limits[0].max_units) == ("Q5126", "Alymsys", 9999)
    assert {lim.code for lim in p.limits} == {c.code for c in p.coverage} - {"J3490", "J3590", "J9999"}


# --- four hashes, helpers -------------------------------------------------------------------------------


def test_each_document_has_four_distinct_hashes(parsed: Callable[[str], Parsed]) -> None:
    for payer in FILES:
        d = parsed(payer).doc
        hashes = [d.text_sha256, d.meta_sha256, d.criteria_sha256, d.codes_sha256]
        assert all(h and len(h) == 64 for h in hashes), payer
        assert len(set(hashes)) == 4, payer


def test_parsing_is_deterministic(parsed: Callable[[str], Parsed], shared_data: Path) -> None:
    again = Parsed(shared_data / FILES["emblemhealth_prime"], "emblemhealth_prime_drug_policies")
    assert again.records == parsed("emblemhealth_prime").records


def test_helpers() -> None:
    assert payer_of("emblemhealth_prime_drug_policies") == "emblemhealth_prime"
    assert payer_of("uhc_drug_policies") == "uhc"
    assert payer_of("aetna_cpb") == "aetna"  # no profile: the generic one, payer from the id
    assert parse_date("01/01/26") == date(2026, 1, 1)
    assert parse_date("January 1, 2026") == date(2026, 1, 1)
    assert parse_date("13/45/2026") is None
    # Constructed lines: a range split over three lines, a single code, a description continuation.
    lines = [
        Line(1, i, t)
        for i, t in enumerate(
            [
                "C50.011-",
                "Malignant neoplasms of breast",
                "C50.929",
                "C61 Prostate",
                "ventricles",
                "C18.0 – C18.9 Colon",
            ],
            start=1,
        )
    ]
    assert diagnosis_specs(lines) == [("C50.011-C50.929", "p1:l1"), ("C61", "p1:l4"), ("C18.0-C18.9", "p1:l6")]
