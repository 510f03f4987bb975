"""Payer sources end to end over the loopback mirror: the one payer spider driven by config entries,
sync into the rulebook, no re-parsing of unchanged documents, a substantive new version, a document
that needs review (its previous rules stay in force), and a ``payer:<id>`` pack.

The index pages are the mirror's CONSTRUCTED ones (policysync/mirror_payer.py); the later versions of
the Florida Blue guideline are CONSTRUCTED from the recorded one (tests/payer_versions.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF

from compiler.packs import compile_packs
from compiler.schema import errors
from parsers.payer import parse
from parsers.payer_records import PayerDocumentRecord
from parsers.records import SourceMeta
from policysync.config import Home, configured_payers, init_home
from policysync.mirror import MirrorServer, mirror_path
from policysync.mirror_payer import PAYER_DOCS, index_path
from policysync.pipeline import sync
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions
from rulebook.facts import as_of
from rulebook.kinds import KINDS
from tests.conftest import approve_pending
from tests.payer_versions import edited, render_sections

SOURCES = ["cigna_drug_policies", "florida_blue_mcg", "emblemhealth_prime_drug_policies"]
FB = next(d for d in PAYER_DOCS if d.source == "florida_blue_mcg")


def _current(db: Any, table: str, where: str = "1", params: list[Any] | None = None) -> list[dict[str, Any]]:
    return list(db.query(f"SELECT * FROM [{table}] WHERE v_to IS NULL AND ({where})", params or []))


def _at(db: Any, version: int, table: str, where: str = "1") -> list[dict[str, Any]]:
    """Rows as the rulebook knew them in ``version`` (the fixture has run every sync already)."""
    return list(as_of(db, KINDS[table], version, where=where))


def _encrypted_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_encryption(owner_password="o", user_password="u")
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 6, "09-J0000-66")
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One mirror, one home, four syncs; each test checks one of them."""
    home = Home(tmp_path_factory.mktemp("payer-home"))
    init_home(home)
    real = next(
        r
        for r in parse(
            (shared_data / FB.data_path).read_bytes(),
            SourceMeta("florida_blue_mcg", FB.url, "0" * 64, "fb.pdf", "2026-06-01"),
        )
        if isinstance(r, PayerDocumentRecord)
    )
    drop_q5160 = {
        "BILLING/CODING INFORMATION": lambda t: "\n".join(x for x in t.splitlines() if not x.startswith("Q5160 "))
    }
    redate = {"Header": lambda t: t.replace("Revised: 01/01/26", "Revised: 04/01/26")}
    v2 = render_sections(edited(real, **drop_q5160))
    v2_redated = render_sections(edited(real, **drop_q5160, **redate))
    out: dict[str, Any] = {"home": home}
    with MirrorServer(shared_data, sources=["payer"]) as mirror:
        out["first"] = sync(home, sources=SOURCES, mirror=mirror.url)
        out["again"] = sync(home, sources=SOURCES, mirror=mirror.url)
        mirror.put(mirror_path(FB.url), v2, content_type="application/pdf")
        out["v2"] = sync(home, sources=["florida_blue_mcg"], mirror=mirror.url)
        mirror.put(mirror_path(FB.url), v2_redated, content_type="application/pdf")
        out["redated"] = sync(home, sources=["florida_blue_mcg"], mirror=mirror.url)
        mirror.put(mirror_path(FB.url), _encrypted_pdf(), content_type="application/pdf")
        out["locked"] = sync(home, sources=["florida_blue_mcg"], mirror=mirror.url)
        out["index"] = [r for r in mirror.requests if r.path == index_path(FB.index_url)]
    return out


def _src(report: Any, source: str) -> Any:
    return next(s for s in report.sources if s.source == source)


def test_first_sync_loads_every_configured_payer(run: dict[str, Any]) -> None:
    rep = run["first"]
    assert rep.status == "committed" and rep.exit_code == 0
    for source in SOURCES:
        s = _src(rep, source)
        assert (s.outcome, s.new_documents, s.documents_parsed, s.errors) == ("changed", 1, 1, [])
    db = open_rulebook(run["home"].db_path)
    v = rep.version
    docs = {d["payer"]: d for d in _at(db, v, "payer_documents")}
    assert {p: d["policy"] for p, d in docs.items()} == {
        "cigna": "IP0319",
        "florida_blue": "09-J0000-66",
        "emblemhealth_prime": "IC-0098",
    }
    # Provenance: the real URL (PROVENANCE.md records Cigna's) and the PDF page and line.
    assert docs["cigna"]["url"] == next(d.url for d in PAYER_DOCS if d.payer == "cigna")
    j9312 = _at(db, v, "payer_coverage", "payer = 'cigna' AND code = 'J9312'")[0]
    assert j9312["locator"] == "p18:l17" and j9312["eff_start"] == "2026-02-01"
    art = db.execute("SELECT source, url FROM artifacts WHERE sha256 = ?", [j9312["artifact_sha256"]]).fetchone()
    assert art == ("cigna_drug_policies", docs["cigna"]["url"])
    assert len(_at(db, v, "payer_unit_limits", "payer = 'emblemhealth_prime'")) == 32
    assert {r["required"] for r in _at(db, v, "payer_prior_auth", "payer = 'cigna'")} == {1}
    # The diff names the configured source of each change.
    changes = diff_versions(db, 0, rep.version).changes
    assert {c.source for c in changes} == set(SOURCES)
    assert {c.category for c in changes if c.fact_kind == "payer_documents"} == {"policy_added"}


def test_resync_of_unchanged_documents_parses_nothing(run: dict[str, Any]) -> None:
    rep = run["again"]
    for source in SOURCES:
        s = _src(rep, source)
        assert (s.outcome, s.not_modified, s.documents_parsed, s.new_documents) == ("unchanged", 1, 0, 0)


def test_substantive_new_version(run: dict[str, Any]) -> None:
    rep = run["v2"]
    assert _src(rep, "florida_blue_mcg").documents_parsed == 1
    db = open_rulebook(run["home"].db_path)
    cs = diff_versions(db, run["again"].version, rep.version)
    cats = {
        (c.fact_kind, c.key.split("|")[2] if c.fact_kind == "payer_coverage" else "", c.category) for c in cs.changes
    }
    assert ("payer_documents", "", "policy_substantive_change") in cats
    assert ("payer_coverage", "Q5160", "payer_rule_removed") in cats
    doc_change = next(c for c in cs.changes if c.fact_kind == "payer_documents")
    assert doc_change.substantive and doc_change.source == "florida_blue_mcg"
    assert set(doc_change.fields) >= {"codes_sha256", "text_sha256"}
    assert rep.review_state == "pending_review"
    codes = {r["code"] for r in _at(db, rep.version, "payer_coverage", "payer = 'florida_blue'")}
    assert codes == {"J9035", "Q5107", "Q5118", "Q5126", "Q5129"}


def test_redated_version_is_cosmetic(run: dict[str, Any]) -> None:
    """The same guideline re-dated (Revised: 01/01/26 -> 04/01/26), nothing else changed."""
    rep = run["redated"]
    db = open_rulebook(run["home"].db_path)
    cs = diff_versions(db, run["v2"].version, rep.version)
    doc = [c for c in cs.changes if c.fact_kind == "payer_documents"]
    assert [c.category for c in doc] == ["policy_cosmetic_change"]
    assert set(doc[0].fields) == {"revised_date", "text_sha256", "meta_sha256", "eff_start"}
    rules = [c for c in cs.changes if c.fact_kind != "payer_documents"]
    assert len(rules) == 5 and {c.category for c in rules} == {"payer_rule_redated"}
    assert all(c.fields["eff_start"] == {"before": "2026-01-01", "after": "2026-04-01"} for c in rules)
    assert not any(c.substantive for c in cs.changes)
    assert (rep.substantive_changes, rep.review_state) == (0, "none")


def test_unreadable_version_needs_review_and_keeps_previous_rules(run: dict[str, Any]) -> None:
    rep = run["locked"]
    s = _src(rep, "florida_blue_mcg")
    reason = "09-J0000-66.pdf: encrypted PDF (a password is required to read it)"
    # In the sync report: counted with its reason, and the document is not a failure.
    assert s.counted == {f"needs_review: {reason}": 1}
    assert s.errors == [] and rep.status == "committed"
    db = open_rulebook(run["home"].db_path)
    doc = _current(db, "payer_documents", "payer = 'florida_blue'")[0]
    assert (doc["status"], doc["reason"]) == ("needs_review", reason)
    # ... and in the diff, with the reason.
    cs = diff_versions(db, run["redated"].version, rep.version)
    change = next(c for c in cs.changes if c.fact_kind == "payer_documents")
    assert change.category == "needs_review" and change.severity == "high"
    assert change.fields["reason"] == {"before": None, "after": reason}
    # The rules of the last readable version stay in force: nothing closed, nothing added.
    assert {c.fact_kind for c in cs.changes} == {"payer_documents"}
    assert len(_current(db, "payer_coverage", "payer = 'florida_blue'")) == 5


def test_payer_pack(run: dict[str, Any], tmp_path: Path) -> None:
    db = open_rulebook(run["home"].db_path)
    approve_pending(db)
    payers = configured_payers(run["home"])
    assert payers == {"uhc", "cigna", "florida_blue", "bcbs_nc", "emblemhealth_prime", "priority_health"}
    res = compile_packs(
        db, start="2026-01-01", end="2026-07-01", scope="payer:emblemhealth_prime", out_dir=tmp_path, payers=payers
    )
    pack = json.loads((tmp_path / res.manifest["packs"][0]["file"]).read_text())
    assert errors("pack", pack) == []
    cov = pack["sections"]["coverage"]
    item = next(c for c in cov if c["code"] == "J0897")
    assert {k: item[k] for k in ("code", "policy", "policy_version", "covered", "payer", "jurisdiction", "drug")} == {
        "code": "J0897",
        "policy": "IC-0098",
        "policy_version": "2025-11-04",
        "covered": True,
        "payer": "emblemhealth_prime",
        "jurisdiction": None,
        "drug": "Prolia & Xgeva",
    }
    assert "C50.011" in item["diagnoses"] and item["provenance"]["locator"] == "p7:l4"
    assert item["states"] == ["NY"]  # from the config entry (states = ["NY"])
    assert item["provenance"]["source"] == "emblemhealth_prime_drug_policies"
    pa = next(p for p in pack["sections"]["prior_auth"] if p["code"] == "J0897")
    assert (pa["payer"], pa["policy"], pa["required"]) == ("emblemhealth_prime", "IC-0098", True)
    limits = [u for u in pack["sections"]["payer_unit_limits"] if u["code"] == "J0897"]
    assert {(u["max_units"], u["per"]) for u in limits} == {
        (60, "every 6 months"),
        (120, "on days 1, 8, 15, and 29"),
        (120, "every 4 weeks"),
    }
    # Florida Blue's pack still carries the rules of its last readable version.
    res = compile_packs(
        db, start="2026-01-01", end="2026-07-01", scope="payer:florida_blue", out_dir=tmp_path / "fb", payers=payers
    )
    fb = json.loads((tmp_path / "fb" / res.manifest["packs"][0]["file"]).read_text())
    assert sorted(c["code"] for c in fb["sections"]["coverage"]) == ["J9035", "Q5107", "Q5118", "Q5126", "Q5129"]
    assert "prior_auth" not in fb["sections"]  # the guideline states none


def test_the_spider_read_the_constructed_index(run: dict[str, Any]) -> None:
    assert run["index"] and all(r.status == 200 for r in run["index"])


def test_compile_cli_accepts_configured_payer_scopes(run: dict[str, Any], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from policysync.cli import cli

    db = open_rulebook(run["home"].db_path)
    approve_pending(db)
    home = str(run["home"].root)
    res = CliRunner().invoke(
        cli,
        [
            "--home",
            home,
            "compile",
            "--from",
            "2026-01-01",
            "--to",
            "2026-07-01",
            "--scope",
            "payer:cigna",
            "-o",
            str(tmp_path / "cigna"),
        ],
    )
    assert res.exit_code == 0, res.output
    pack = json.loads((tmp_path / "cigna" / "payer-cigna_2026-01-01_2026-07-01.json").read_text())
    assert sorted(p["code"] for p in pack["sections"]["prior_auth"]) == ["J9312", "Q5115", "Q5119", "Q5123"]
    # A payer without a configured source is refused with one line.
    res = CliRunner().invoke(
        cli,
        [
            "--home",
            home,
            "compile",
            "--from",
            "2026-01-01",
            "--to",
            "2026-07-01",
            "--scope",
            "payer:acme",
            "-o",
            str(tmp_path / "acme"),
        ],
    )
    assert res.exit_code == 2
    assert "unknown scope 'payer:acme'" in res.output
