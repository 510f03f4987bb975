"""Medicare coverage end to end (issue 4, parts 1, 3, 4, 6, 7, 9): ``sync --source cms_mcd`` through the
real crawl (the downloads page, the licence page, the nested export zips) against the loopback mirror,
the policy documents and coverage rules, the jurisdiction and state packs, the change set between two
article versions, supersession, and bad input.

The exports are the recorded ``mcd/export_2026-01`` tables completed with the constructed tables of
``tests/fixtures/cms_mcd`` (see its README: constructed, for real articles). Expectations are read from
those CSV files with ``csv`` here, never through ``parsers/``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from compiler.packs import compile_packs, read_packs
from policysync.config import Home, init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.mirror_mcd import export_zip, mirror_file_path, publish_export
from policysync.pipeline import SyncReport, sync
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions, render_text
from rulebook.verify import verify_rulebook
from tests.conftest import REPO, approve_pending

FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"
EXPORT = "mcd/export_2026-01"
# The drug codes A52370 v128's recorded group 2 (ophthalmologic) paragraph names, in its order
# (tests/test_mcd_pairing.py checks them against the paragraph): they get group 2's diagnoses too.
A52370_GROUP2_NAMED = ["Q5160", "C9142", "C9257", "Q5107", "Q5118", "Q5126", "Q5129", "J9035"]
Q1 = ("2026-01-01", "2026-04-01")


# --- the tables, read directly ---------------------------------------------------------------------


def table(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("cp1252"), newline="")))


def csv_bytes(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, columns, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode("cp1252")


def retag(rows: list[dict[str, str]], article: str, old: str, new: str) -> list[dict[str, str]]:
    """The rows with ``article``'s version ``old`` relabelled ``new`` (to build another week's export)."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("article_id") == article and r.get("article_version") == old:
            r["article_version"] = new
        out.append(r)
    return out


def expected_diagnoses(article: str, version: str, group: str, covered: bool = True) -> list[str]:
    name = "article_x_icd10_covered.csv" if covered else "article_x_icd10_noncovered.csv"
    col = "icd10_covered_group" if covered else "icd10_noncovered_group"
    rows = [
        r
        for r in table(FIXTURES / name)
        if r["article_id"] == article and r["article_version"] == version and r[col] == group
    ]
    return [r["icd10_code_id"] for r in sorted(rows, key=lambda r: int(r["sort_order"]))]


# --- the flow --------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = resolve_home(tmp_path / "home")
    init_home(h)
    return h


@contextmanager
def rulebook(home: Home) -> Iterator[sqlite_utils.Database]:
    db = open_rulebook(home.db_path)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def mirror(shared_data: Path) -> Iterator[MirrorServer]:
    with MirrorServer(shared_data, sources=["cms_mcd"]) as m:
        yield m


def article_dirs(shared_data: Path) -> list[Path]:
    return [shared_data / EXPORT / "current_article" / "csv", FIXTURES]


def publish_lcd(m: MirrorServer, shared_data: Path) -> None:
    publish_export(
        m, "current_lcd", export_zip("current_lcd", [shared_data / EXPORT / "current_lcd" / "csv", FIXTURES])
    )


def publish_full(m: MirrorServer, shared_data: Path, **replace: bytes) -> None:
    publish_export(m, "current_article", export_zip("current_article", article_dirs(shared_data), replace=replace))
    publish_lcd(m, shared_data)


def run(home: Home, m: MirrorServer) -> SyncReport:
    return sync(home, sources=["cms_mcd"], mirror=m.url)


def mcd(report: SyncReport) -> Any:
    (found,) = [s for s in report.sources if s.source == "cms_mcd"]
    return found


def compile_scope(home: Home, out: Path, scope: str, window: tuple[str, str] = Q1) -> dict[str, Any]:
    with rulebook(home) as db:
        approve_pending(db)
        result = compile_packs(db, start=window[0], end=window[1], scope=scope, out_dir=out)
    (entry,) = result.manifest["packs"]
    return json.loads((out / entry["file"]).read_bytes())  # type: ignore[no-any-return]


def supported(pack: dict[str, Any], code: str, dx: str, state: str, part: str, dos: str) -> list[dict[str, Any]]:
    """What a scrubber does with the pack alone: the covered rules for ``code`` that list ``dx``, apply in
    ``state`` for Medicare ``part`` and are in force on date of service ``dos``."""
    return [
        item
        for item in pack["sections"].get("coverage", [])
        if item["code"] == code
        and item["covered"]
        and dx in item["diagnoses"]
        and state in item["states"]
        and part in item.get("parts", [part])
        and item["eff_start"] <= dos
        and (item["eff_end"] is None or dos < item["eff_end"])
    ]


def test_sync_crawls_through_the_licence_page_and_loads_documents_and_rules(
    home: Home, mirror: MirrorServer, shared_data: Path
) -> None:
    publish_full(mirror, shared_data)
    report = run(home, mirror)
    assert (report.exit_code, report.status) == (0, "committed"), report.to_json()
    rep = mcd(report)
    assert rep.documents_parsed == 2 and not rep.errors
    # the spider went through the licence page for each export
    gate = [r for r in mirror.requests if "license.aspx" in r.path]
    assert len(gate) == 2 and all(r.status == 200 for r in gate)
    zips = [r for r in mirror.requests if r.path.startswith(mirror_file_path("current_article"))]
    assert zips and all("agree=yes" in r.path for r in zips)
    # older versions in join tables are counted, not loaded (A52370 v125 J9035 in the constructed table,
    # versions 109-125 in the recorded article_related_documents)
    assert rep.counted["article_x_hcpc_code: older version in join table (ignored)"] == 1
    assert rep.counted["article_related_documents: older version in join table (ignored)"] >= 7
    # next week, nothing changed: both exports answer 304 and nothing is parsed
    again = mcd(run(home, mirror))
    assert (again.documents_parsed, again.not_modified) == (0, 2)

    with rulebook(home) as db:
        problems, _ = verify_rulebook(db, home.artifacts)
        assert problems == []
        docs = {r["policy"]: r for r in db.query("SELECT * FROM policy_documents WHERE v_to IS NULL")}
        assert set(docs) == {"A52369", "A52370", "L33394"}
        a = docs["A52370"]
        assert (a["version"], a["title"], a["eff_start"], a["eff_end"]) == (
            128,
            "Billing and Coding: Bevacizumab and biosimilars",
            "2026-01-01",
            None,
        )
        assert json.loads(a["related"]) == ["L33394"]  # article_related_documents v128: r_lcd_id 33394
        assert json.loads(a["jurisdictions"]) == ["J6", "JK"]
        contractors = {c["number"]: c for c in json.loads(a["contractors"])}
        # contractor.csv: 13202/13282/13292 are NGS MAC B contracts for New York's sub-state regions
        assert contractors["13202"]["part"] == "B" and contractors["13202"]["jurisdiction"] == "JK"
        assert set(contractors["13202"]["states"]) == {"NY", "DN"}
        assert set(contractors["13282"]["states"]) == {"NY", "UN"}
        assert set(contractors["13292"]["states"]) == {"NY", "QN"}
        lcd = docs["L33394"]
        assert (lcd["doc_type"], lcd["version"], lcd["eff_start"]) == ("lcd", 54, "2025-07-13")

        rules = {
            (r["code"], r["dx_group"], r["covered"]): r
            for r in db.query("SELECT * FROM coverage_rules WHERE v_to IS NULL AND policy = 'A52370'")
        }
        hcpcs = table(FIXTURES / "article_x_hcpc_code.csv")
        want_codes = {(r["hcpc_code_id"], int(r["hcpc_code_group"]), 1) for r in hcpcs if r["article_version"] == "128"}
        # and the drug codes A52370's group 2 paragraph names (ophthalmologic use, billed with 67028)
        named = {(c, 2, 1) for c in A52370_GROUP2_NAMED}
        assert set(rules) == want_codes | named
        assert {k for k, r in rules.items() if r["pairing"] == "same_group+named"} == named
        assert rules[("J9035", 2, 1)]["diagnoses"] == rules[("67028", 2, 1)]["diagnoses"]
        j9035 = rules[("J9035", 1, 1)]
        assert json.loads(j9035["diagnoses"]) == expected_diagnoses("52370", "128", "1")
        assert "C34.90" in json.loads(j9035["diagnoses"])
        assert json.loads(j9035["asterisk"]) == ["G96.89"]
        notes = json.loads(j9035["notes"])
        # the asterisk explanation (a dual-diagnosis requirement) is kept as text
        assert any("G96.89 must be billed with ICD-10-CM code T66.XXXA" in n for n in notes)
        assert any("Q5160" in n for n in notes)
        assert j9035["policy_version"] == 128 and j9035["eff_start"] == "2026-01-01"
        assert j9035["locator"].endswith("article_x_hcpc_code.csv record 4")
        # noncovered rules of A52369
        (knee,) = db.query("SELECT * FROM coverage_rules WHERE v_to IS NULL AND policy='A52369' AND code='G0289'")
        assert knee["covered"] == 0
        assert json.loads(knee["diagnoses"]) == expected_diagnoses("52369", "16", "1", covered=False)


def test_new_york_part_b_pack_answers_the_scrubber_question(
    home: Home, mirror: MirrorServer, shared_data: Path, tmp_path: Path
) -> None:
    publish_full(mirror, shared_data)
    assert run(home, mirror).exit_code == 0
    ny = compile_scope(home, tmp_path / "ny", "medicare:NY")
    (hit,) = supported(ny, "J9035", "C34.90", "NY", "B", "2026-02-10")
    assert (hit["policy"], hit["policy_version"], hit["jurisdiction"]) == ("A52370", 128, "JK")
    assert set(hit["states"]) == {"NY", "DN", "QN", "UN"}
    assert {"13202", "13282", "13292"} <= set(hit["contractors"])
    assert hit["provenance"]["source"] == "cms_mcd" and hit["payer"] is None
    # not a listed diagnosis, before the version's effective date, another drug code: no support
    assert supported(ny, "J9035", "C61", "NY", "B", "2026-02-10") == []
    assert supported(ny, "J9035", "C34.90", "NY", "B", "2025-12-31") == []
    # the pack reads back (manifest sha256, schema, pack id)
    (read,) = read_packs(tmp_path / "ny")
    assert read["pack_id"] == ny["pack_id"]

    jk = compile_scope(home, tmp_path / "jk", "medicare:JK")
    items = [i for i in jk["sections"]["coverage"] if i["policy"] == "A52370"]
    assert items and all(i["jurisdiction"] == "JK" for i in items)
    assert {"CT", "NY", "DN", "MA", "ME", "NH", "RI", "VT"} <= set(items[0]["states"])
    il = compile_scope(home, tmp_path / "il", "medicare:IL")  # J6 (contractor 06101/06102: state_id 19)
    assert supported(il, "J9035", "C34.90", "IL", "B", "2026-02-10")
    ca = compile_scope(home, tmp_path / "ca", "medicare:CA")  # JE: NGS articles do not apply
    assert "coverage" not in ca["sections"]


def _v122_export(shared_data: Path) -> bytes:
    """The article export as of the recorded 2025-08 API listing (A52370 at version 122, effective
    2025-07-13): constructed from the v128 tables, without the C71 (glioblastoma) rows and with C49.9,
    so the next export adds and removes diagnoses."""
    base = shared_data / EXPORT / "current_article" / "csv"
    replace = {}
    art = retag(table(FIXTURES / "article.csv"), "52370", "128", "122")
    for r in art:
        if r["article_id"] == "52370":
            r["article_eff_date"] = "2025-07-13 00:00:00"
    replace["article"] = csv_bytes(art, list(art[0]))
    cov = [r for r in table(FIXTURES / "article_x_icd10_covered.csv") if not r["icd10_code_id"].startswith("C71")]
    extra = dict(cov[0]) | {"icd10_code_id": "C49.9", "sort_order": "500", "range": "N"}
    cov = retag([*cov, extra], "52370", "128", "122")
    replace["article_x_icd10_covered"] = csv_bytes(cov, list(cov[0]))
    for name in ("article_x_hcpc_code", "article_x_contractor", "article_x_hcpc_code_group",
                 "article_x_icd10_covered_group", "article_related_documents"):  # fmt: skip
        path = FIXTURES / f"{name}.csv" if (FIXTURES / f"{name}.csv").is_file() else base / f"{name}.csv"
        rows = table(path)
        rows = [r for r in rows if not (r["article_id"] == "52370" and r["article_version"] == "122")]
        rows = retag(rows, "52370", "128", "122")
        replace[name] = csv_bytes(rows, list(rows[0]))
    return export_zip("current_article", article_dirs(shared_data), replace=replace)


def test_diff_shows_diagnoses_added_and_removed_with_the_version_change(
    home: Home, mirror: MirrorServer, shared_data: Path
) -> None:
    publish_export(mirror, "current_article", _v122_export(shared_data))
    publish_lcd(mirror, shared_data)
    first = run(home, mirror)
    assert first.exit_code == 0, first.to_json()
    publish_full(mirror, shared_data)
    second = run(home, mirror)
    assert second.exit_code == 0, second.to_json()
    with rulebook(home) as db:
        cs = diff_versions(db, first.version, second.version, sources=["cms_mcd"])
    (j9035,) = [c for c in cs.changes if c.fact_kind == "coverage_rules" and c.key == "A52370|J9035|1|1"]
    assert j9035.severity == "high" and j9035.categories[0] == "diagnoses_removed"
    assert "diagnoses_added" in j9035.categories and "policy_version_change" in j9035.categories
    dx = j9035.fields["diagnoses"]
    assert dx["removed"] == ["C49.9"]
    assert dx["added"] == [f"C71.{i}" for i in range(10)]
    assert dx["policy_version"] == [122, 128] and dx["jurisdictions"] == ["J6", "JK"]
    assert j9035.fields["eff_start"] == {"before": "2025-07-13", "after": "2026-01-01"}
    (doc,) = [c for c in cs.changes if c.fact_kind == "policy_documents" and c.key == "A52370"]
    assert doc.fields["version"] == {"before": 122, "after": 128}
    text = render_text(cs)
    assert "removed: C49.9" in text


def test_mac_renumbering_is_a_supersession(home: Home, mirror: MirrorServer, shared_data: Path) -> None:
    publish_full(mirror, shared_data)
    first = run(home, mirror)
    assert first.exit_code == 0
    # constructed: A52370 retired on 2026-03-01 and reissued as A59999 (same title and contractors)
    base = shared_data / EXPORT / "current_article" / "csv"
    replace = {}
    art = table(FIXTURES / "article.csv")
    new = dict(art[0]) | {"article_id": "59999", "article_version": "1", "article_eff_date": "2026-03-01 00:00:00"}
    art[0] = art[0] | {"status": "R", "date_retired": "2026-03-01 00:00:00"}
    replace["article"] = csv_bytes([*art, new], list(art[0]))
    for name, path in (
        ("article_x_hcpc_code", FIXTURES),
        ("article_x_icd10_covered", FIXTURES),
        ("article_x_contractor", base),
        ("article_x_hcpc_code_group", base),
        ("article_x_icd10_covered_group", base),
    ):
        rows = table(path / f"{name}.csv")
        copies = [
            r | {"article_id": "59999", "article_version": "1"}
            for r in rows
            if r["article_id"] == "52370" and r["article_version"] == "128"
        ]
        replace[name] = csv_bytes(rows + copies, list(rows[0]))
    publish_export(mirror, "current_article", export_zip("current_article", article_dirs(shared_data), replace=replace))
    second = run(home, mirror)
    assert second.exit_code == 0, second.to_json()
    with rulebook(home) as db:
        cs = diff_versions(db, first.version, second.version, sources=["cms_mcd"])
    by_key = {(c.fact_kind, c.key): c for c in cs.changes}
    old = by_key[("coverage_rules", "A52370|J9035|1|1")]
    assert old.categories == ["coverage_superseded"] and old.severity == "low"
    assert old.fields["eff_end"] == {"before": None, "after": "2026-03-01"}
    reissued = by_key[("coverage_rules", "A59999|J9035|1|1")]
    assert reissued.categories == ["coverage_reissued"] and reissued.severity == "low"
    assert by_key[("policy_documents", "A52370")].categories[0] == "policy_superseded"
    assert by_key[("policy_documents", "A59999")].categories == ["policy_reissued"]
    assert not [c for c in cs.changes if c.severity == "high"]


def test_missing_table_fails_the_export_and_keeps_previous_facts(
    home: Home, mirror: MirrorServer, shared_data: Path
) -> None:
    publish_full(mirror, shared_data)
    first = run(home, mirror)
    assert first.exit_code == 0
    publish_export(
        mirror,
        "current_article",
        export_zip("current_article", article_dirs(shared_data), drop=["article_x_icd10_covered", "article_x_urls"]),
    )
    second = run(home, mirror)
    assert second.exit_code in (1, 3)
    (err,) = mcd(second).errors
    assert err == "current_article.zip: table article_x_icd10_covered.csv missing from the export"
    with rulebook(home) as db:
        n = db.execute("SELECT COUNT(*) FROM coverage_rules WHERE v_to IS NULL").fetchone()[0]
        # A52370: 8 drug codes + 67028 by group, the 8 drug codes its group 2 paragraph names; A52369: 2
        assert n == 19  # (nothing ended)


def test_the_recorded_export_alone_is_refused_naming_the_missing_table(
    home: Home, mirror: MirrorServer, shared_data: Path
) -> None:
    """The mirror's default export is the recorded one, which lacks the big tables."""
    report = run(home, mirror)
    errors = mcd(report).errors
    assert any("table article.csv missing from the export" in e for e in errors), errors
    assert any("current_lcd.zip: table lcd.csv missing from the export" in e for e in errors), errors


def test_coverage_row_naming_a_non_existent_article_version_is_counted(
    home: Home, mirror: MirrorServer, shared_data: Path
) -> None:
    rows = table(FIXTURES / "article_x_icd10_covered.csv")
    bad = dict(rows[0]) | {"article_id": "52370", "article_version": "131"}
    ghost = dict(rows[0]) | {"article_id": "99999", "article_version": "1"}
    publish_full(mirror, shared_data, article_x_icd10_covered=csv_bytes([*rows, bad, ghost], list(rows[0])))
    report = run(home, mirror)
    assert report.exit_code == 0, report.to_json()
    counted = mcd(report).counted
    (key,) = [k for k in counted if k.startswith("coverage row naming a non-existent article version")]
    assert counted[key] == 2
    assert "52370 version 131 does not exist" in key
    with rulebook(home) as db:
        (r,) = db.query("SELECT diagnoses FROM coverage_rules WHERE v_to IS NULL AND policy='A52370' AND code='J9035' "
                            "AND dx_group = 1")
        assert json.loads(r["diagnoses"]) == expected_diagnoses("52370", "128", "1")


def test_unknown_and_non_billable_codes_are_counted_not_dropped(
    home: Home, mirror: MirrorServer, shared_data: Path
) -> None:
    rows = table(FIXTURES / "article_x_icd10_covered.csv")
    extra = [
        dict(rows[0]) | {"icd10_code_id": "C22", "sort_order": "900"},  # a category: expanded to its leaves
        dict(rows[0]) | {"icd10_code_id": "C99.99", "sort_order": "901"},  # not in the FY2026 code set: kept
    ]
    publish_full(mirror, shared_data, article_x_icd10_covered=csv_bytes([*rows, *extra], list(rows[0])))
    report = run(home, mirror)
    assert report.exit_code == 0
    counted = mcd(report).counted
    assert counted["icd10 unknown code"] == 1
    assert counted["icd10 non-billable code"] == 1
    with rulebook(home) as db:
        (r,) = db.query("SELECT diagnoses FROM coverage_rules WHERE v_to IS NULL AND policy='A52370' AND code='J9035' "
                            "AND dx_group = 1")
    dx = json.loads(r["diagnoses"])
    assert "C99.99" in dx and "C22" not in dx and "C22.0" in dx and "C22.9" in dx
    assert date.fromisoformat("2026-01-01")  # (the pack keeps unknown codes as listed)
