"""Change detection for payer policies: four hashes, cosmetic vs substantive, and the section redline.

The recorded Florida Blue guideline exists in one version only, so its later versions are CONSTRUCTED
(tests/payer_versions.py): its extracted sections re-rendered to a new PDF with fpdf2 - as is, re-dated,
and with a code removed from the code list and a dosing criterion changed.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from parsers.payer import parse
from parsers.payer_records import PayerCoverageRecord, PayerDocumentRecord, change_class
from parsers.payer_redline import redline, render_html, render_text
from parsers.records import SourceMeta
from tests.payer_versions import edited, render_sections

FILE = "payer/florida_blue/floridablue_09-J0000-66_bevacizumab_rev_2026-01-01.pdf"


def _parse(body: bytes, name: str) -> tuple[PayerDocumentRecord, list[PayerCoverageRecord]]:
    meta = SourceMeta(
        source="florida_blue_mcg",
        url="https://mcgs.bcbsfl.com/MCG/09-J0000-66.pdf",
        sha256="0" * 64,
        filename=name,
        release="2026-06-01",
    )
    recs = list(parse(body, meta))
    doc = next(r for r in recs if isinstance(r, PayerDocumentRecord))
    return doc, [r for r in recs if isinstance(r, PayerCoverageRecord)]


@pytest.fixture(scope="module")
def versions(shared_data: Path) -> dict[str, tuple[PayerDocumentRecord, list[PayerCoverageRecord]]]:
    real, _ = _parse((shared_data / FILE).read_bytes(), "real.pdf")
    assert real.status == "parsed"
    redated = {"Header": lambda t: t.replace("Revised: 01/01/26", "Revised: 04/01/26")}
    changed = {
        "BILLING/CODING INFORMATION": lambda t: "\n".join(ln for ln in t.splitlines() if not ln.startswith("Q5160 ")),
        "POSITION STATEMENT": lambda t: t.replace("a. 10 mg/kg every 2 weeks", "a. 7.5 mg/kg every 2 weeks"),
    }
    return {
        "v1": _parse(render_sections(real.sections), "v1.pdf"),
        "v1_redated": _parse(render_sections(edited(real, **redated)), "v1b.pdf"),
        "v2": _parse(render_sections(edited(real, **redated, **changed)), "v2.pdf"),
    }


def _hashes(d: PayerDocumentRecord) -> dict[str, object]:
    return {k: getattr(d, k) for k in ("status", "text_sha256", "meta_sha256", "criteria_sha256", "codes_sha256")}


def test_constructed_version_reads_like_the_original(
    versions: dict[str, tuple[PayerDocumentRecord, list[PayerCoverageRecord]]],
) -> None:
    doc, cov = versions["v1"]
    assert (doc.policy, doc.revised_date, doc.reviewed_date) == ("09-J0000-66", date(2026, 1, 1), date(2025, 10, 8))
    assert [c.code for c in cov] == ["J9035", "Q5107", "Q5118", "Q5126", "Q5129", "Q5160"]
    assert len(cov[0].diagnosis_specs) == 61


def test_redated_policy_is_cosmetic(versions: dict[str, tuple[PayerDocumentRecord, list[PayerCoverageRecord]]]) -> None:
    old, new = versions["v1"][0], versions["v1_redated"][0]
    assert new.revised_date == date(2026, 4, 1)
    assert old.criteria_sha256 == new.criteria_sha256 and old.codes_sha256 == new.codes_sha256
    assert change_class(_hashes(old), _hashes(new)) == ("cosmetic", ["text", "meta"])
    rl = redline(old, new)
    assert rl.classification == "cosmetic"
    assert [(s.section, s.changed) for s in rl.changed_sections] == [
        ("Header", [("Revised: 01/01/26", "Revised: 04/01/26")])
    ]
    assert "revised_date: 2026-01-01 -> 2026-04-01" in render_text(rl)


def test_changed_code_list_and_criterion_are_substantive(
    versions: dict[str, tuple[PayerDocumentRecord, list[PayerCoverageRecord]]],
) -> None:
    (old, _), (new, cov) = versions["v1_redated"], versions["v2"]
    assert "Q5160" not in {c.code for c in cov}
    assert change_class(_hashes(old), _hashes(new)) == ("substantive", ["text", "criteria", "codes"])
    rl = redline(old, new)
    assert rl.classification == "substantive" and rl.changed_hashes == ["text", "criteria", "codes"]
    by_section = {s.section: s for s in rl.changed_sections}
    assert set(by_section) == {"POSITION STATEMENT", "BILLING/CODING INFORMATION"}
    assert by_section["POSITION STATEMENT"].changed == [("a. 10 mg/kg every 2 weeks", "a. 7.5 mg/kg every 2 weeks")]
    assert by_section["BILLING/CODING INFORMATION"].removed == [
        "Q5160 Injection, bevacizumab-nwgd (Jobevne), biosimilar, 10 mg"
    ]
    assert by_section["BILLING/CODING INFORMATION"].added == []
    text = render_text(rl)
    assert text.splitlines()[0] == "classification: substantive (text, criteria, codes)"
    assert "- Q5160 Injection, bevacizumab-nwgd (Jobevne), biosimilar, 10 mg" in text
    assert "~ a. 10 mg/kg every 2 weeks\n  -> a. 7.5 mg/kg every 2 weeks" in text
    page = render_html(rl)
    assert page.startswith('<section class="redline"><style>') and page.endswith("</section>")
    assert "<del>Q5160 Injection, bevacizumab-nwgd (Jobevne), biosimilar, 10 mg</del>" in page
    assert "<ins>a. 7.5 mg/kg every 2 weeks</ins>" in page
    assert "<script" not in page


def test_redline_of_rows_and_added_sections() -> None:
    """Rulebook rows carry sections as JSON; a section only one version has is added or removed."""
    old = {
        "sections": '{"Header": "Policy X", "Criteria": "a\\nb"}',
        "status": "parsed",
        "text_sha256": "1",
        "meta_sha256": "m",
        "criteria_sha256": "c",
        "codes_sha256": "k",
    }
    new = {
        "sections": {"Header": "Policy X", "Coding": "J9035"},
        "status": "parsed",
        "text_sha256": "2",
        "meta_sha256": "m",
        "criteria_sha256": "c2",
        "codes_sha256": "k",
    }
    rl = redline(old, new)
    assert [(s.section, s.status) for s in rl.sections] == [
        ("Header", "unchanged"),
        ("Coding", "added"),
        ("Criteria", "removed"),
    ]
    assert rl.to_json()["sections"][2]["removed"] == ["a", "b"]
    assert change_class(old, None) == ("removed", [])
    assert change_class(None, new) == ("added", [])
    assert change_class(old, {**new, "status": "needs_review", "reason": "x.pdf: encrypted PDF"}) == (
        "needs_review",
        ["x.pdf: encrypted PDF"],
    )


def test_rule_classification_in_the_diff() -> None:
    """rulebook.diff's payer classifiers on constructed rule rows: what narrows is high, a rule that is
    only re-dated (a re-dated policy restates it unchanged) is cosmetic."""
    from rulebook.diff import classify_payer_document, classify_payer_rule

    rule = {
        "payer": "acme",
        "policy": "P1",
        "code": "J9035",
        "drug": "",
        "covered": 1,
        "diagnoses": '["C18.0"]',
        "eff_start": "2026-01-01",
        "eff_end": None,
        "locator": "p9:l31",
        "release": "2026-01-05",
        "artifact_sha256": "a" * 64,
        "artifact_url": "u1",
    }
    redated = rule | {"eff_start": "2026-04-01", "locator": "p9:l33", "release": "2026-04-02", "artifact_url": "u2"}
    assert classify_payer_rule(rule, redated) == ([("payer_rule_redated", "low", False)], False)
    assert classify_payer_rule(rule, rule | {"covered": 0}) == ([("coverage_withdrawn", "high", True)], False)
    assert classify_payer_rule(rule, rule | {"diagnoses": '["C18.1"]'}) == (
        [("payer_rule_modified", "medium", True)],
        False,
    )
    assert classify_payer_rule(None, rule)[0][0][0] == "payer_rule_added"
    assert classify_payer_rule(rule, None) == ([("payer_rule_removed", "high", True)], False)
    pa = {"required": 0, "note": None, "eff_start": "2026-01-01"}
    assert classify_payer_rule(pa, pa | {"required": 1}) == ([("prior_auth_added", "high", True)], False)
    lim = {"max_units": 120, "eff_start": "2026-01-01"}
    assert classify_payer_rule(lim, lim | {"max_units": 60}) == ([("limit_lowered", "high", True)], False)
    doc = {"status": "parsed", "text_sha256": "t", "meta_sha256": "m", "criteria_sha256": "c", "codes_sha256": "k"}
    assert classify_payer_document(doc, doc | {"text_sha256": "t2", "meta_sha256": "m2"}) == (
        [("policy_cosmetic_change", "low", False)],
        False,
    )
    assert classify_payer_document(doc, doc | {"codes_sha256": "k2"}) == (
        [("policy_substantive_change", "high", True)],
        False,
    )
