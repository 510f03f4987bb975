"""Pairing an article's HCPCS codes with its diagnosis groups (parsers/mcd_pairing.py, issue 4 part 4).

A52453 (LHRH analogs) lists every drug in one HCPCS group and gives each drug its own diagnosis
groups: the recorded ``article_x_icd10_covered_group.csv`` paragraphs of v48 (read through
``shared_data``) head group 6 with "J9217 [...] Primary ICD-10-CM codes" and group 7 with "...
considered secondary codes. When these codes are reported for J9217, the claim must also include a
diagnosis from the primary diagnosis list above". Its code tables are not in the recording: they are
the constructed ``tests/fixtures/cms_mcd_pairing`` (see its README). Expected codes are read from the
paragraphs and the fixture CSVs with ``csv`` and ``re`` here, never through ``parsers/``. The small
tables of the ``plan`` tests below are constructed (wording quoted from real paragraphs where said).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compiler.packs import compile_packs
from parsers.cms_mcd import parse
from parsers.mcd_pairing import PairingAudit, is_secondary, named_codes, plan
from parsers.mcd_records import CoverageRuleRecord
from parsers.mcd_tables import html_text
from parsers.records import SourceMeta
from policysync.config import Home, init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.mirror_mcd import export_zip, publish_export
from policysync.pipeline import sync
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions, render_text
from tests.conftest import REPO, approve_pending

ARTICLE_CSV = "mcd/export_2026-01/current_article/csv"
LCD_CSV = "mcd/export_2026-01/current_lcd/csv"
BASE_FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"
FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd_pairing"
SECONDARY_HEAD = "The ICD-10-CM codes listed below are considered secondary codes"


def table(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("cp1252"), newline="")))


def combined() -> dict[str, bytes]:
    """The constructed tables of A52370/A52369 (tests/fixtures/cms_mcd) with those of A52453 appended."""
    out = {}
    for name in ("article", "article_x_hcpc_code", "article_x_icd10_covered"):
        base = (BASE_FIXTURES / f"{name}.csv").read_bytes().decode("cp1252")
        extra = (FIXTURES / f"{name}.csv").read_bytes().decode("cp1252").split("\r\n", 1)[1]
        out[name] = (base + extra).encode("cp1252")
    return out


def paragraphs(shared_data: Path) -> dict[int, str]:
    """A52453 v48's recorded covered-group paragraphs, HTML removed here with a plain regex."""
    rows = table(shared_data / ARTICLE_CSV / "article_x_icd10_covered_group.csv")
    return {
        int(r["icd10_covered_group"]): re.sub(r"<[^>]+>", " ", r["paragraph"])
        for r in rows
        if (r["article_id"], r["article_version"]) == ("52453", "48")
    }


def fixture_dx(group: int) -> list[str]:
    rows = [r for r in table(FIXTURES / "article_x_icd10_covered.csv") if r["icd10_covered_group"] == str(group)]
    return [r["icd10_code_id"] for r in rows]


@pytest.fixture(scope="module")
def parsed(shared_data: Path) -> tuple[list[CoverageRuleRecord], Counter[str]]:
    meta = SourceMeta("cms_mcd", "https://x/current_article.zip", "0" * 64, "current_article.zip", "2026-01-08")
    body = export_zip("current_article", [shared_data / ARTICLE_CSV, BASE_FIXTURES], replace=combined())
    rules = [r for r in parse(body, meta) if isinstance(r, CoverageRuleRecord)]
    return rules, meta.counts


def test_the_recorded_a52453_layout(shared_data: Path) -> None:
    """What the rule is built for, as the recording shows it: one HCPCS group, 14 diagnosis groups."""
    hcpc_groups = [
        r for r in table(shared_data / ARTICLE_CSV / "article_x_hcpc_code_group.csv") if r["article_id"] == "52453"
    ]
    assert [(r["article_version"], r["hcpc_code_group"]) for r in hcpc_groups] == [("48", "1")]
    paras = paragraphs(shared_data)
    assert sorted(paras) == list(range(1, 15))
    assert paras[6].lstrip().startswith("J9217")
    assert "must also include a diagnosis from the primary diagnosis list above" in paras[7]


def test_each_drug_gets_the_diagnoses_of_the_group_that_names_it(
    shared_data: Path, parsed: tuple[list[CoverageRuleRecord], Counter[str]]
) -> None:
    rules, _ = parsed
    listed = {r["hcpc_code_id"] for r in table(FIXTURES / "article_x_hcpc_code.csv")}
    base_rows = len(table(BASE_FIXTURES / "article_x_hcpc_code.csv"))
    paras = paragraphs(shared_data)
    primary = {g: p for g, p in paras.items() if SECONDARY_HEAD not in p}
    want = {(code, g) for g, p in primary.items() for code in re.findall(r"\b[A-Z]\d{4}\b", p) if code in listed}
    got = {r.code: r for r in rules if r.policy == "A52453"}
    assert {(r.code, r.group) for r in got.values()} == want
    assert {code for code, _ in want} == listed  # every listed drug is named by exactly one group
    for code, g in want:
        rule = got[code]
        assert rule.pairing == "named_in_paragraph" and rule.covered
        assert set(rule.diagnoses) == set(fixture_dx(g))
        # the code's own row of the combined table (the A52453 rows follow the 12 of tests/fixtures/cms_mcd)
        assert rule.locator.endswith(f"record {base_rows + sorted(listed).index(code) + 2}")
    # the strict same-number pairing gave every drug group 1's diagnoses (J1950's): not any more
    assert got["J9217"].diagnoses == ("C61",)
    assert not set(fixture_dx(1)) & set(got["J9217"].diagnoses)


def test_secondary_groups_are_requirements_of_their_primary_group(
    shared_data: Path, parsed: tuple[list[CoverageRuleRecord], Counter[str]]
) -> None:
    rules, counts = parsed
    got = {r.code: r for r in rules if r.policy == "A52453"}
    paras = paragraphs(shared_data)
    secondary = sorted(g for g, p in paras.items() if SECONDARY_HEAD in p)
    assert secondary == [3, 5, 7, 9, 11]
    assert not [r for r in got.values() if r.group in secondary]  # never a coverage list of their own
    for g in secondary:
        (code,) = re.findall(r"\bJ\d{4}\b", paras[g])  # "When these codes are reported for J9217, ..."
        rule = got[code]
        assert rule.group == g - 1  # the primary list above it
        assert set(rule.secondary_diagnoses) == set(fixture_dx(g)) - set(fixture_dx(g - 1))
        assert not set(rule.secondary_diagnoses) & set(rule.diagnoses)
        assert any("must also include a diagnosis from the primary diagnosis list" in n for n in rule.notes)
    assert not got["J3316"].secondary_diagnoses
    key = "secondary (dual-diagnosis) group attached to its primary group"
    assert counts[f"{key} (first: A52453 group 3 -> group 2)"] == 5


def test_a_named_code_the_article_does_not_list_is_counted(
    shared_data: Path, parsed: tuple[list[CoverageRuleRecord], Counter[str]]
) -> None:
    rules, counts = parsed
    listed = {r["hcpc_code_id"] for r in table(FIXTURES / "article_x_hcpc_code.csv")}
    para13 = paragraphs(shared_data)[13]
    named = re.findall(r"\b[A-Z]\d{4}\b", para13)
    missing = [c for c in named if c not in listed]
    assert missing == ["J3590"]  # "Effective for dates of service 5/26/2021 through 12/31/2021 ... J3590"
    key = "diagnosis group paragraph names HCPCS codes not in the article (not paired with them)"
    assert counts[f"{key} (first: A52453 group 13 {missing[0]})"] == 1
    assert [r.code for r in rules if r.policy == "A52453" and r.group == 13] == [c for c in named if c in listed]


# What A52370 v128's recorded group 2 paragraph names (read from it, in its order): "Effective 01/01/2026,
# HCPCS code Q5160 should be used ...", "HCPCS code C9142*, C9257, Q5107, Q5118, Q5126 or Q5129 and the
# ICD-10-CM codes listed below should be reported for treatment of approved ophthalmologic indications
# billed to the Part A MAC", "HCPCS code C9142*, J9035, Q5107, Q5118, Q5126 or Q5129 (bill one unit per
# eye) ... billed to the Part B MAC". All are drug codes of its HCPCS group 1; HCPCS group 2 is 67028.
A52370_GROUP2_NAMED = ["Q5160", "C9142", "C9257", "Q5107", "Q5118", "Q5126", "Q5129", "J9035"]


def a52370_paragraphs(shared_data: Path) -> dict[int, str]:
    rows = table(shared_data / ARTICLE_CSV / "article_x_icd10_covered_group.csv")
    return {
        int(r["icd10_covered_group"]): html_text(r["paragraph"]) or ""
        for r in rows
        if (r["article_id"], r["article_version"]) == ("52370", "128")
    }


def test_the_recorded_a52370_group_2_paragraph_names_the_drugs(shared_data: Path) -> None:
    paras = a52370_paragraphs(shared_data)
    assert sorted(paras) == [1, 2]
    assert "HCPCS code C9142*, C9257, Q5107, Q5118, Q5126 or Q5129 and the ICD-10-CM codes" in paras[2]
    assert "HCPCS code C9142*, J9035, Q5107, Q5118, Q5126 or Q5129 (bill one unit per eye)" in paras[2]
    assert "HCPCS code Q5160 should be used" in paras[2]
    listed = {h["hcpc_code_id"] for h in table(BASE_FIXTURES / "article_x_hcpc_code.csv") if h["article_id"] == "52370"}
    assert named_codes(paras[2], listed) == (A52370_GROUP2_NAMED, [])
    # group 1 names drugs of its own HCPCS group, and J3590 (billed 09/27/2022-03/31/2023; not listed)
    assert named_codes(paras[1], listed)[1] == ["J3590"]


def test_a52370_group_2_diagnoses_also_reach_the_drugs_its_paragraph_names(
    parsed: tuple[list[CoverageRuleRecord], Counter[str]],
) -> None:
    """A52370 stays paired group for group (drug codes with group 1, 67028 with group 2), and the drug
    codes its group 2 paragraph names also get group 2's ophthalmologic diagnoses (same_group+named): a
    J9035 + H35.3211 (wet AMD) Part B claim is supported. Group 1's paragraph names the same drugs: no
    second rule for them."""
    rules, counts = parsed
    mine = [r for r in rules if r.policy == "A52370"]
    keys = [(r.code, r.group, r.covered) for r in mine]
    assert len(keys) == len(set(keys))
    hcpcs = [h for h in table(BASE_FIXTURES / "article_x_hcpc_code.csv") if h["article_version"] == "128"]
    by_group = {(h["hcpc_code_id"], int(h["hcpc_code_group"])) for h in hcpcs}
    same = {(r.code, r.group) for r in mine if r.pairing == "same_group"}
    assert same == by_group
    named = {(r.code, r.group) for r in mine if r.pairing == "same_group+named"}
    assert named == {(c, 2) for c in A52370_GROUP2_NAMED}
    assert len(mine) == len(by_group) + len(A52370_GROUP2_NAMED) and all(r.covered for r in mine)
    group2_dx = [
        r["icd10_code_id"]
        for r in table(BASE_FIXTURES / "article_x_icd10_covered.csv")
        if (r["article_id"], r["article_version"], r["icd10_covered_group"]) == ("52370", "128", "2")
    ]
    (proc,) = [r for r in mine if r.code == "67028"]
    (j9035,) = [r for r in mine if (r.code, r.group) == ("J9035", 2)]
    assert "H35.3211" in group2_dx and "H35.3211" in j9035.diagnoses
    assert j9035.diagnoses == proc.diagnoses and set(j9035.diagnoses) >= set(group2_dx)
    (j9035_1,) = [r for r in mine if (r.code, r.group) == ("J9035", 1)]
    assert "H35.3211" not in j9035_1.diagnoses  # group 1 is the non-ophthalmologic list
    # notes: the drug's own HCPCS group paragraph, then the diagnosis group's paragraph
    assert any("bill one unit per eye" in n for n in j9035.notes)
    assert j9035.locator == j9035_1.locator  # the J9035 row of article_x_hcpc_code
    assert not any(r.secondary_diagnoses for r in mine)
    key = next(k for k in counts if k.startswith("diagnosis group also paired with drug codes of another HCPCS"))
    assert key.endswith(f"(first: A52370 group 2 {', '.join(A52370_GROUP2_NAMED)})")
    assert counts[key] == len(A52370_GROUP2_NAMED)


def test_secondary_wording_of_the_recorded_paragraphs(shared_data: Path) -> None:
    rows = table(shared_data / ARTICLE_CSV / "article_x_icd10_covered_group.csv")
    text = {(r["article_id"], r["icd10_covered_group"]): html_text(r["paragraph"]) or "" for r in rows}
    for g in range(1, 15):
        assert is_secondary(text[("52453", str(g))]) == text[("52453", str(g))].startswith(SECONDARY_HEAD), g
    # "(these diagnoses can be billed as a single diagnosis or in conjunction with the secondary ... below)"
    assert "in conjunction with the secondary" in text[("52453", "6")] and not is_secondary(text[("52453", "6")])
    assert text[("56962", "2")] == "Secondary Diagnoses:" and is_secondary(text[("56962", "2")])
    assert text[("57753", "3")] == "Covered for secondary ICD-10-CM codes:" and is_secondary(text[("57753", "3")])
    assert "secondary codes to be reported with those in Group 2" in text[("56642", "3")]
    assert is_secondary(text[("56642", "3")])
    # a coverage list that says some of its codes need a secondary diagnosis is not a secondary list
    assert "requires a secondary diagnosis as appropriate" in text[("56748", "4")]
    assert not is_secondary(text[("56748", "4")])


# --- plan() on constructed tables ------------------------------------------------------------------


def test_named_codes_are_codes_not_document_ids_or_diagnoses() -> None:
    listed = {"J7605", "J7606", "J7611", "J7614", "J7620", "64642"}
    found, missing = named_codes("For HCPCS codes J7605-J7614 J7620 (L33394, A52370, M62.411, C7951.5):", listed)
    assert found == ["J7605", "J7606", "J7611", "J7614", "J7620"] and missing == []
    found, missing = named_codes("For CPT code 64642 and 12345678, see J3590", listed)
    assert found == ["64642"] and missing == ["J3590"]


def test_group_for_group_layout_adds_only_named_drug_codes() -> None:
    """Constructed: a group-for-group article whose paragraphs name codes of other groups. A drug code
    (HCPCS Level II) of another HCPCS group gains the group (same_group+named); a CPT code named there, a
    code the article does not list and a code already in the group's own HCPCS group do not."""
    audit = PairingAudit()
    hcpcs = {1: [(2, "J9035"), (3, "C9257")], 2: [(4, "67028")]}
    covered = {1: "HCPCS code J9035, C9257 (with 67028 for the eye)", 2: "HCPCS code C9257, J9035 or J3590 ..."}
    noncovered = {2: "Not covered with J9035"}
    pairs, by_number = plan("A1", hcpcs, covered, noncovered, audit)
    assert by_number
    assert [(p.code, p.group, p.covered, p.pairing, p.record, p.hcpcs_group) for p in pairs] == [
        ("J9035", 1, True, "same_group", 2, 1),
        ("C9257", 1, True, "same_group", 3, 1),
        ("67028", 2, True, "same_group", 4, 2),
        ("C9257", 2, True, "same_group+named", 3, 1),
        ("J9035", 2, True, "same_group+named", 2, 1),
        ("67028", 2, False, "same_group", 4, 2),
        ("J9035", 2, False, "same_group+named", 2, 1),
    ]
    counts: Counter[str] = Counter()
    audit.into(counts)
    key = (
        "diagnosis group also paired with drug codes of another HCPCS group that its paragraph names "
        "(same_group+named)"
    )
    assert counts == Counter({f"{key} (first: A1 group 2 C9257, J9035)": 3})


def test_secondary_referring_to_a_group_and_unpairable_cases_are_counted() -> None:
    audit = PairingAudit()
    hcpcs = {1: [(2, "J0881"), (3, "J0885"), (4, "Q5106")]}
    covered = {
        1: "The following are stand-alone diagnosis codes",  # no code named: HCPCS group 1
        2: "DUAL DIAGNOSIS NECESSARY FOR J0881, J0885",
        3: "Requires:",  # neither named nor numbered like an HCPCS group
        4: "Group 4 (Immunosuppression diagnosis codes \u2013 secondary codes to be reported with those in Group 2)",
        5: "Secondary Diagnoses:",  # the nearest primary group above: 3 has no rules, so 2
    }
    pairs, by_number = plan("A9", hcpcs, covered, {}, audit)
    assert not by_number
    got = {(p.code, p.group): (p.pairing, p.secondary) for p in pairs}
    assert got == {
        ("J0881", 1): ("same_group", ()),
        ("J0885", 1): ("same_group", ()),
        ("Q5106", 1): ("same_group", ()),
        ("J0881", 2): ("named_in_paragraph", (4, 5)),
        ("J0885", 2): ("named_in_paragraph", (4, 5)),
    }
    counts: Counter[str] = Counter()
    audit.into(counts)
    key = "diagnosis group with no HCPCS code named and no HCPCS group of its number (no rules)"
    assert counts[f"{key} (first: A9 group 3)"] == 1
    fallback = (
        "diagnosis group naming no listed code paired with the HCPCS group of its number, in an article with "
        "more diagnosis groups than HCPCS groups (check)"
    )
    assert counts[f"{fallback} (first: A9 group 1)"] == 1


def test_a_secondary_group_with_nothing_above_is_counted_and_kept_as_a_list() -> None:
    audit = PairingAudit()
    pairs, _ = plan(
        "A8", {1: [(2, "43644")]}, {1: "Secondary Diagnoses\nThe following codes provide coverage"}, {}, audit
    )
    assert [(p.code, p.group, p.secondary) for p in pairs] == [("43644", 1, ())]
    counts: Counter[str] = Counter()
    audit.into(counts)
    key = "secondary diagnosis group with no primary group to attach to (paired as its own list)"
    assert counts[f"{key} (first: A8 group 1)"] == 1


# --- rulebook and pack -----------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = resolve_home(tmp_path / "home")
    init_home(h)
    return h


@pytest.fixture
def mirror(shared_data: Path) -> Iterator[MirrorServer]:
    with MirrorServer(shared_data, sources=["cms_mcd"]) as m:
        yield m


def supported(pack: dict[str, Any], code: str, dx: str, state: str, part: str, dos: str) -> list[dict[str, Any]]:
    """A scrubber's question, from the pack alone (as in tests/test_coverage.py)."""
    return [
        i
        for i in pack["sections"].get("coverage", [])
        if i["code"] == code
        and i["covered"]
        and dx in i["diagnoses"]
        and state in i["states"]
        and part in i.get("parts", [part])
        and i["eff_start"] <= dos
        and (i["eff_end"] is None or dos < i["eff_end"])
    ]


def test_pack_items_say_how_they_were_paired(
    home: Home, mirror: MirrorServer, shared_data: Path, tmp_path: Path
) -> None:
    body = export_zip("current_article", [shared_data / ARTICLE_CSV, BASE_FIXTURES], replace=combined())
    publish_export(mirror, "current_article", body)
    publish_export(mirror, "current_lcd", export_zip("current_lcd", [shared_data / LCD_CSV, BASE_FIXTURES]))
    report = sync(home, sources=["cms_mcd"], mirror=mirror.url)
    assert report.exit_code == 0, report.to_json()
    db = open_rulebook(home.db_path)
    try:
        (row,) = db.query("SELECT * FROM coverage_rules WHERE v_to IS NULL AND policy='A52453' AND code='J9217'")
        assert (row["dx_group"], row["pairing"]) == (6, "named_in_paragraph")
        assert set(json.loads(row["secondary_diagnoses"])) == set(fixture_dx(7)) - set(fixture_dx(6))
        approve_pending(db)
        result = compile_packs(db, start="2026-01-01", end="2026-04-01", scope="medicare:NY", out_dir=tmp_path / "ny")
    finally:
        db.close()
    (entry,) = result.manifest["packs"]
    ny = json.loads((tmp_path / "ny" / entry["file"]).read_bytes())
    (hit,) = supported(ny, "J9217", "C61", "NY", "B", "2026-02-10")
    assert (hit["policy"], hit["policy_version"], hit["group"], hit["pairing"]) == (
        "A52453",
        48,
        6,
        "named_in_paragraph",
    )
    assert "C79.51" in hit["secondary_diagnoses"]
    # a secondary code alone, or a diagnosis of another drug's group (J1950's), does not support J9217
    assert supported(ny, "J9217", "C79.51", "NY", "B", "2026-02-10") == []
    assert supported(ny, "J9217", "D25.0", "NY", "B", "2026-02-10") == []
    j9035 = [i for i in ny["sections"]["coverage"] if i["code"] == "J9035" and i["policy"] == "A52370"]
    assert j9035 and all(i["secondary_diagnoses"] == [] for i in j9035)
    assert {(i["group"], i["pairing"]) for i in j9035} == {(1, "same_group"), (2, "same_group+named")}
    # J9035 for wet AMD (intravitreal, billed with 67028): supported by group 2, named in its paragraph
    (wet_amd,) = supported(ny, "J9035", "H35.3211", "NY", "B", "2026-02-10")
    assert (wet_amd["policy"], wet_amd["policy_version"], wet_amd["group"]) == ("A52370", 128, 2)
    (lung,) = supported(ny, "J9035", "C34.90", "NY", "B", "2026-02-10")
    assert (lung["group"], lung["pairing"]) == (1, "same_group")


def test_diff_names_secondary_codes_removed_and_added(home: Home, mirror: MirrorServer, shared_data: Path) -> None:
    """Constructed: A52453's secondary group 7 (attached to J9217, group 6) loses C79.51 and gains C79.89
    in a later export. Taking a dual-diagnosis code away narrows coverage (high); the change names it."""
    body = export_zip("current_article", [shared_data / ARTICLE_CSV, BASE_FIXTURES], replace=combined())
    publish_export(mirror, "current_article", body)
    publish_export(mirror, "current_lcd", export_zip("current_lcd", [shared_data / LCD_CSV, BASE_FIXTURES]))
    first = sync(home, sources=["cms_mcd"], mirror=mirror.url)
    assert first.exit_code == 0, first.to_json()
    tables = combined()
    text = tables["article_x_icd10_covered"].decode("cp1252")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    (c7951,) = [r for r in rows if (r["article_id"], r["icd10_covered_group"], r["icd10_code_id"]) ==
                ("52453", "7", "C79.51")]  # fmt: skip
    assert "C79.89" not in {r["icd10_code_id"] for r in rows if r["article_id"] == "52453"}
    rows = [r for r in rows if r is not c7951] + [dict(c7951, icd10_code_id="C79.89", sort_order="30")]
    out = io.StringIO()
    w = csv.DictWriter(out, list(rows[0]), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    tables["article_x_icd10_covered"] = out.getvalue().encode("cp1252")
    later = export_zip("current_article", [shared_data / ARTICLE_CSV, BASE_FIXTURES], replace=tables)
    publish_export(mirror, "current_article", later)
    second = sync(home, sources=["cms_mcd"], mirror=mirror.url)
    assert second.exit_code == 0, second.to_json()
    db = open_rulebook(home.db_path)
    try:
        cs = diff_versions(db, first.version, second.version)
    finally:
        db.close()
    (c,) = [c for c in cs.changes if c.fact_kind == "coverage_rules" and c.key.startswith("A52453|")]
    assert c.key == "A52453|J9217|6|1" and c.source == "cms_mcd"
    assert c.severity == "high" and c.substantive
    assert c.categories == ["secondary_diagnoses_removed", "secondary_diagnoses_added"]
    sec = c.fields["secondary_diagnoses"]
    assert (sec["removed"], sec["added"]) == (["C79.51"], ["C79.89"])
    assert "diagnoses" not in c.fields  # the primary list (group 6) did not change
    assert "removed: C79.51" in render_text(cs) and "added: C79.89" in render_text(cs)


def test_secondary_codes_added_alone_are_low() -> None:
    """Constructed rows: only a secondary code added (the primary list unchanged) widens what may
    accompany a supported primary diagnosis: low, still substantive; a removal is high."""
    from rulebook.diff import classify_coverage

    base = {"covered": 1, "diagnoses": '["C61"]', "secondary_diagnoses": '["C79.51"]', "eff_start": "2026-01-01",
            "eff_end": None, "policy_version": 48, "notes": "[]", "asterisk": "[]"}  # fmt: skip
    wider = base | {"secondary_diagnoses": '["C79.51","C79.89"]'}
    assert classify_coverage(base, wider) == ([("secondary_diagnoses_added", "low", True)], False)
    assert classify_coverage(wider, base) == ([("secondary_diagnoses_removed", "high", True)], False)
