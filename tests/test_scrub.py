"""`policysync scrub` and compiler/scrub.py.

The worked examples (DOMAIN.md §3.6-3.7) run against packs compiled through the real pipeline: the
October 2025 HCPCS file, the October 2025 ASP payment limit file and crosswalk, and the recorded
PTP and MUE excerpts, served by the loopback mirror, synced, approved and compiled. The only
constructed packs are the coverage pack (a small hand-made rule set in the coverage schema, because
no recorded coverage source is loaded here) and the tampered copies used to check refusals; the
prior-authorization check runs on a constructed index (the pack schema has no prior_auth section yet).
Each says so where it is built.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from compiler.packs import canonical, compile_packs, pack_id_of
from compiler.schema import SCHEMA_VERSION
from compiler.scrub import Finding, LoadedPacks, _Scrubber, billing_units, load_packs, read_claims, scrub
from parsers.errors import PackError
from policysync.cli import cli
from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.pipeline import sync
from rulebook.db import open_rulebook
from tests.conftest import approve_pending

Q4 = ("2025-10-01", "2026-01-01")
Q3_2026 = ("2026-07-01", "2026-10-01")


@pytest.fixture(scope="module")
def packs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real national Medicare packs: Q4 2025 (codes, ASP prices, NDC map, PTP, modifiers) and
    Q3 2026 (codes, the MUE excerpt effective 2026-07-01, PTP)."""
    root = tmp_path_factory.mktemp("scrub")
    home = resolve_home(root / "home")
    init_home(home)
    sources = ["cms_hcpcs", "cms_asp", "cms_ncci_mue", "cms_ncci_ptp"]
    with MirrorServer(shared_data, sources=sources, releases=["2025-10"]) as mirror:
        report = sync(home, sources=sources, mirror=mirror.url)
    assert report.exit_code == 0, report.to_json()
    db = open_rulebook(home.db_path)
    approve_pending(db)
    out = {}
    for name, (start, end) in {"q4": Q4, "q3_2026": Q3_2026}.items():
        compile_packs(db, start=start, end=end, scope="medicare", out_dir=root / name)
        out[name] = root / name
    db.close()
    return out


@pytest.fixture(scope="module")
def loaded(packs: dict[str, Path]) -> dict[str, LoadedPacks]:
    """Each real pack read (and checked) once: loading validates ~17,000 rules against the schema."""
    return {name: load_packs([d]) for name, d in packs.items()}


def _run(tmp_path: Path, packs: LoadedPacks, *claims: dict[str, Any]) -> list[Finding]:
    return scrub(_claims(tmp_path, *claims), [], packs=packs).findings


def _claims(tmp_path: Path, *claims: dict[str, Any], name: str = "claims.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"claims": list(claims)}), encoding="utf-8")
    return path


def _line(n: int, code: str, units: float, dos: str = "2025-10-15", **kw: Any) -> dict[str, Any]:
    return {"line": n, "code": code, "units": units, "date_of_service": dos, **kw}


def _claim(cid: str, *lines: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"claim_id": cid, "payer": "medicare", "diagnoses": ["C18.9"], "lines": list(lines), **kw}


def _mg(q: float) -> dict[str, Any]:
    return {"quantity": q, "unit": "mg"}


def _by(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


# --- worked examples ----------------------------------------------------------------------------


def test_pack_carries_prices_ndc_map_and_modifiers(packs: dict[str, Path]) -> None:
    manifest = json.loads((packs["q4"] / "manifest.json").read_text())
    sections = manifest["packs"][0]["sections"]
    assert sections["prices"] == 1012  # the Oct 2025 payment limit file's rows
    assert sections["ndc_map"] == 8245  # the Oct 2025 crosswalk's rows
    assert sections["modifiers"] == 10
    pack = json.loads((packs["q4"] / manifest["packs"][0]["file"]).read_text())
    j9035 = next(p for p in pack["sections"]["prices"] if p["code"] == "J9035")
    assert (j9035["payment_limit"], j9035["dosage"], j9035["eff_start"], j9035["eff_end"]) == (
        73.201,
        "10 MG",
        "2025-10-01",
        "2026-01-01",
    )
    assert j9035["provenance"]["locator"].startswith("section 508 version of Oct 2025 ASP Pricing File 091725.csv row ")
    rules = {r["id"]: r for r in pack["sections"]["modifiers"]}
    assert rules["drug_billing:jw_jz_required"]["eff_start"] == "2023-10-01"
    assert rules["drug_billing:jz_no_discard"]["eff_start"] == "2023-07-01"
    assert rules["drug_billing:jw_discarded"]["eff_start"] == "2017-01-01"
    src = {s["source"]: s for s in pack["sources"]}["drug_billing_rules"]
    assert src["sha256"] == rules["drug_billing:jw_discarded"]["provenance"]["sha256"]


def test_bevacizumab_1600_mg_is_j9035_x_160(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    ok = _claim("BEV", _line(1, "J9035", 160, dose=_mg(1600), discarded=_mg(0), modifiers=["JZ"]))
    res = scrub(_claims(tmp_path, ok), [], packs=loaded["q4"])
    assert res.findings == [] and res.lines == 1
    assert billing_units(Decimal(1600), Decimal(10)) == 160
    over = _claim("BEV2", _line(1, "J9035", 170, dose=_mg(1600), discarded=_mg(0), modifiers=["JZ"]))
    (f,) = _run(tmp_path, loaded["q4"], over)
    assert (f.check, f.severity, f.denial, f.rule_id) == ("units", "error", "CO-151", "drug_billing:units_round_up")
    assert f.message == "J9035 billed x 170 but 1600 mg at 10 mg per unit = 160 units"
    assert f.provenance and f.provenance["locator"].startswith("drug_rules.json rules[0]")


def test_infliximab_350_mg_from_four_100_mg_vials(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    right = _claim(
        "INF",
        _line(1, "J1745", 35, dose=_mg(350), discarded=_mg(50)),
        _line(2, "J1745", 5, modifiers=["JW"]),
    )
    assert _run(tmp_path, loaded["q4"], right) == []
    # All of it billed as used with JZ: the JZ is wrong and 5 discarded units are missing.
    wrong = _claim("INF2", _line(1, "J1745", 35, dose=_mg(350), discarded=_mg(50), modifiers=["JZ"]))
    found = _run(tmp_path, loaded["q4"], wrong)
    assert {(f.check, f.severity, f.denial) for f in found} == {("jw_jz", "warning", None), ("jw_jz", "error", "CO-4")}
    assert any("add a J1745-JW line x 5" in f.message for f in found)


def test_70_mg_from_a_100_mg_vial_is_one_unit_with_jz_and_no_waste_line(
    loaded: dict[str, LoadedPacks], tmp_path: Path
) -> None:
    # J1741 "Injection, ibuprofen, 100 mg" stands in for a drug billed per 100 mg (DOMAIN.md §3.6).
    ok = _claim("R70", _line(1, "J1741", 1, dose=_mg(70), discarded=_mg(30), modifiers=["JZ"]))
    assert _run(tmp_path, loaded["q4"], ok) == []
    waste = _claim(
        "R70W",
        _line(1, "J1741", 1, dose=_mg(70), discarded=_mg(30)),
        _line(2, "J1741", 1, modifiers=["JW"]),
    )
    (f,) = _run(tmp_path, loaded["q4"], waste)
    assert (f.line, f.rule_id, f.severity, f.denial) == (2, "drug_billing:rounding_not_waste", "error", "CO-151")
    assert f.message == "J1741-JW billed x 1 but the rounding remainder is not waste"


def test_trastuzumab_220_mg_is_j9355_x_22(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    ok = _claim("TRA", _line(1, "J9355", 22, dose=_mg(220), discarded=_mg(0), modifiers=["JZ"]))
    assert _run(tmp_path, loaded["q4"], ok) == []
    under = _claim("TRA2", _line(1, "J9355", 2.2, dose=_mg(220), discarded=_mg(0), modifiers=["JZ"]))
    (f,) = _run(tmp_path, loaded["q4"], under)
    assert (f.check, f.severity, f.denial) == ("units", "warning", None)


# --- the other checks on the real packs ----------------------------------------------------------


def test_missing_jw_and_jz_is_returnable_after_october_2023(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    claim = _claim("NOMOD", _line(1, "J9035", 160, dose=_mg(1600)))
    (f,) = _run(tmp_path, loaded["q4"], claim)
    assert (f.rule_id, f.severity, f.denial) == ("drug_billing:jw_jz_required", "error", "CO-4")
    both = _claim("BOTH", _line(1, "J9035", 160, dose=_mg(1600), modifiers=["JW", "JZ"]))
    assert any(f.rule_id == "drug_billing:jw_jz_not_both" for f in _run(tmp_path, loaded["q4"], both))
    # A multi-dose container is exempt (the pack's exclusion rule says so).
    multi = _claim("MULTI", _line(1, "J9035", 160, dose=_mg(1600), container="multi_dose"))
    assert _run(tmp_path, loaded["q4"], multi) == []


def test_terminated_or_unknown_code_is_co_4(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    claim = _claim("BAD", _line(1, "J9999", 1, modifiers=["JZ"]), _line(2, "J0000", 1))
    found = _run(tmp_path, loaded["q4"], claim)
    codes = {f.code: f for f in _by(found, "code")}
    assert (
        codes["J0000"].denial == "CO-4" and codes["J0000"].message == "J0000 is not an HCPCS Level II code in the pack"
    )
    assert "J9999" not in codes  # NOC code, valid


def test_ptp_pair_from_the_companion_file(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    # From the recorded PTP excerpt: 0001U / 0030U, modifier indicator 1, open-ended since 2018-07-01.
    claim = _claim("PTP", _line(1, "0001U", 1), _line(2, "0030U", 1))
    (f,) = _by(_run(tmp_path, loaded["q4"], claim), "ptp")
    assert (f.line, f.denial, f.rule_id) == (2, "CO-97", "cms_ncci_ptp:practitioner:0001U:0030U:2018-07-01")
    assert f.provenance and f.provenance["locator"] == "ccipra-v322r0-f1.excerpt.txt line 90"
    with_59 = _claim("PTP59", _line(1, "0001U", 1), _line(2, "0030U", 1, modifiers=["59"]))
    assert _by(_run(tmp_path, loaded["q4"], with_59), "ptp") == []
    # 0001U/0029U ended 2026-07-01 (eff_end in the file): not in force in Q3 2026.
    ended = _claim("PTPEND", _line(1, "0001U", 1, "2026-07-15"), _line(2, "0029U", 1, "2026-07-15"))
    assert _by(_run(tmp_path, loaded["q3_2026"], ended), "ptp") == []


def test_mue_mai_2_is_summed_across_lines(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    # Recorded MUE excerpt, effective 2026-07-01: "0030U,1,2 Date of Service Edit: Policy".
    one = _claim("MUE1", _line(1, "0030U", 1, "2026-07-15"))
    assert _by(_run(tmp_path, loaded["q3_2026"], one), "mue") == []
    two = _claim("MUE2", _line(1, "0030U", 1, "2026-07-15"), _line(2, "0030U", 1, "2026-07-15", modifiers=["91"]))
    (f,) = _by(_run(tmp_path, loaded["q3_2026"], two), "mue")
    assert (f.denial, f.severity) == ("CO-151", "error")
    assert "x 2 on 2026-07-15 across 2 line(s) exceeds the MUE of 1 (MAI 2" in f.message


def test_underpayment_against_units_times_payment_limit(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    # J9035 Oct 2025: $73.201 per 10 mg; 160 units -> $11,712.16 allowed.
    fine = _claim("PAY", _line(1, "J9035", 160, dose=_mg(1600), modifiers=["JZ"], allowed_amount=11712.16))
    assert _run(tmp_path, loaded["q4"], fine) == []
    low = _claim("PAY2", _line(1, "J9035", 160, dose=_mg(1600), modifiers=["JZ"], allowed_amount=10000))
    (f,) = _run(tmp_path, loaded["q4"], low)
    assert (f.check, f.severity, f.rule_id) == ("price", "warning", "cms_asp:J9035:2025-10-01")
    assert "expected $11,712.16" in f.message and "underpaid by $1,712.16" in f.message
    # Paid amount: against allowed less 20 % co-insurance ($9,369.73), within the 3 % tolerance.
    paid = _claim("PAY3", _line(1, "J9035", 160, dose=_mg(1600), modifiers=["JZ"], paid_amount=9182.33))
    assert _run(tmp_path, loaded["q4"], paid) == []


def test_ndc_must_bill_as_the_line_code(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    # Crosswalk Oct 2025: 50242-0060-01 (Avastin 4 ml) bills as J9035.
    ok = _claim("NDC", _line(1, "J9035", 160, dose=_mg(1600), modifiers=["JZ"], ndc="50242-0060-01"))
    assert _run(tmp_path, loaded["q4"], ok) == []
    bad = _claim("NDC2", _line(1, "J9355", 22, dose=_mg(220), modifiers=["JZ"], ndc="50242-0060-01"))
    (f,) = _by(_run(tmp_path, loaded["q4"], bad), "ndc")
    assert f.message == "NDC 50242-0060-01 bills as J9035, not J9355" and f.denial == "CO-4"


# --- packs checked before use ---------------------------------------------------------------------


def test_date_of_service_outside_every_window_is_reported_not_checked(
    loaded: dict[str, LoadedPacks], tmp_path: Path
) -> None:
    claim = _claim("LATE", _line(1, "J9035", 999, "2026-02-01", dose=_mg(1600)))
    (f,) = _run(tmp_path, loaded["q4"], claim)
    assert (f.check, f.severity) == ("pack_window", "error")
    assert f.message.startswith(
        "no national Medicare pack covers date of service 2026-02-01 (loaded: medicare [2025-10-01, 2026-01-01))"
    )


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _pack_file(d: Path) -> Path:
    return d / json.loads((d / "manifest.json").read_text())["packs"][0]["file"]


def test_tampered_pack_is_refused(packs: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(packs["q4"], tmp_path / "tampered")
    p = _pack_file(d)
    p.write_bytes(p.read_bytes().replace(b'"payment_limit":73.201', b'"payment_limit":93.201'))
    with pytest.raises(PackError, match=r"sha256 does not match manifest.json"):
        load_packs([d])


def test_unsupported_schema_version_is_refused(packs: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(packs["q4"], tmp_path / "v2")
    p = _pack_file(d)
    pack = json.loads(p.read_bytes())
    pack["schema_version"] = "2.0.0"
    pack["pack_id"] = pack_id_of(pack)
    body = canonical(pack)
    p.write_bytes(body)
    m = json.loads((d / "manifest.json").read_text())
    m["packs"][0]["sha256"] = hashlib.sha256(body).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackError, match=r"schema_version '2.0.0' is not supported"):
        load_packs([d])


def test_cli_refuses_a_bad_pack_with_one_line_and_exit_3(packs: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(packs["q4"], tmp_path / "cut")
    p = _pack_file(d)
    p.write_bytes(p.read_bytes()[:-10])
    claims = _claims(tmp_path, _claim("X", _line(1, "J9035", 160)))
    res = CliRunner().invoke(cli, ["scrub", str(claims), "--pack", str(d)])
    assert res.exit_code == 3
    assert res.stderr.strip() == f"error: {p}: sha256 does not match manifest.json (the file was changed or truncated)"


# --- claims format ---------------------------------------------------------------------------------


def _small_pack(packs: dict[str, Path], tmp_path: Path) -> Path:
    """A CONSTRUCTED national pack for the CLI tests: the real Q4 2025 pack's J9035 code, price and
    modifiers rules re-written as a pack of their own, so a CLI run does not spend seconds
    validating 17,000 rules it does not need."""
    real = json.loads(_pack_file(packs["q4"]).read_text())
    sec = real["sections"]
    d = tmp_path / "small"
    _write_constructed_pack(
        d,
        "medicare",
        Q4,
        {
            "codes": [c for c in sec["codes"] if c["code"] == "J9035"],
            "prices": [c for c in sec["prices"] if c["code"] == "J9035"],
            "modifiers": sec["modifiers"],
        },
    )
    return d


def test_malformed_claim_names_claim_and_field_and_the_rest_are_checked(packs: dict[str, Path], tmp_path: Path) -> None:
    good = _claim("OK", _line(1, "J9035", 160, dose=_mg(1600), modifiers=["JZ"]))
    bad = _claim("C7", _line(1, "J9035", "ten"))
    path = _claims(tmp_path, good, bad)
    claims, errors = read_claims(path)
    assert [c["claim_id"] for c in claims] == ["OK"]
    assert errors == ["claims.json: claim C7: $.lines[0].units: 'ten' is not of type 'number'"]
    res = CliRunner().invoke(cli, ["scrub", str(path), "--pack", str(_small_pack(packs, tmp_path))])
    assert res.exit_code == 1
    assert res.stderr.strip() == "error: claims.json: claim C7: $.lines[0].units: 'ten' is not of type 'number'"
    assert "1 claims, 1 lines, 1 malformed; findings: none" in res.stdout


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda c: c.pop("payer"), "$"),
        (lambda c: c.update(payer="Medicare"), "$.payer"),
        (lambda c: c["lines"][0].update(date_of_service="2025-13-01"), "$.lines[0].date_of_service"),
        (lambda c: c["lines"][0].update(code="j9035"), "$.lines[0].code"),
        (lambda c: c["lines"][0].update(dose={"quantity": 0, "unit": "mg"}), "$.lines[0].dose.quantity"),
        (lambda c: c["lines"][0].update(container="vial"), "$.lines[0].container"),
        (lambda c: c["lines"][0].update(extra=1), "$.lines[0]"),
        (lambda c: c.update(lines=[]), "$.lines"),
        (lambda c: c.update(diagnoses=["c18.9"]), "$.diagnoses[0]"),
        (lambda c: c["lines"][0].update(paid_amount=-1), "$.lines[0].paid_amount"),
    ],
)
def test_fast_claim_check_and_schema_agree(tmp_path: Path, mutate: Any, path: str) -> None:
    claim = _claim("M", _line(1, "J9035", 160, dose=_mg(1600)))
    mutate(claim)
    claims, errors = read_claims(_claims(tmp_path, claim))
    assert claims == [] and len(errors) == 1
    assert errors[0].startswith(f"claims.json: claim M: {path}:"), errors[0]


def test_schema_examples_are_valid_claims(tmp_path: Path) -> None:
    schema = json.loads((Path(__file__).parent.parent / "compiler/schemas/claims.schema.json").read_text())
    for example in schema["examples"]:
        path = tmp_path / "ex.json"
        path.write_text(json.dumps(example))
        claims, errors = read_claims(path)
        assert errors == [] and len(claims) == len(example["claims"])


def test_cli_json_output(packs: dict[str, Path], tmp_path: Path) -> None:
    claim = _claim("J", _line(1, "J9035", 170, dose=_mg(1600), modifiers=["JZ"]))
    res = CliRunner().invoke(
        cli, ["scrub", str(_claims(tmp_path, claim)), "--pack", str(_small_pack(packs, tmp_path)), "--format", "json"]
    )
    assert res.exit_code == 1  # an error finding
    out = json.loads(res.stdout)
    assert out["summary"] == {
        "claims": 1,
        "lines": 1,
        "malformed_claims": 0,
        "findings": 1,
        "by_severity": {"error": 1},
    }
    f = out["findings"][0]
    assert (f["claim_id"], f["line"], f["denial"], f["rule_id"]) == ("J", 1, "CO-151", "drug_billing:units_round_up")
    assert out["packs"][0]["scope"] == "medicare"


# --- coverage (constructed pack) and prior authorization (constructed index) ----------------------


def _write_constructed_pack(d: Path, scope: str, window: tuple[str, str], sections: dict[str, Any]) -> None:
    """A CONSTRUCTED pack: hand-made rules in the pack schema, written the way compile writes them."""
    d.mkdir(parents=True)
    sha = "0" * 64
    pack = {
        "schema_version": SCHEMA_VERSION,
        "pack_id": "",
        "scope": scope,
        "window": {"from": window[0], "to": window[1]},
        "rulebook_version": 1,
        "sources": [
            {"source": "constructed", "url": "https://example.invalid/constructed", "sha256": sha, "release": None}
        ],
        "sections": sections,
    }
    pack["pack_id"] = pack_id_of(pack)
    body = canonical(pack)
    fname = f"{scope.replace(':', '-')}.json"
    (d / fname).write_bytes(body)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "rulebook_version": 1,
        "packs": [
            {
                "file": fname,
                "sha256": hashlib.sha256(body).hexdigest(),
                "pack_id": pack["pack_id"],
                "scope": scope,
                "window": pack["window"],
                "sections": {k: len(v) for k, v in sections.items()},
                "companions": [],
            }
        ],
    }
    (d / "manifest.json").write_text(json.dumps(manifest))


def _coverage_rule(covered: bool, diagnoses: list[str], jurisdiction: str | None, payer: str | None) -> dict[str, Any]:
    return {
        "id": f"constructed:A99999:{covered}:{payer}",
        "code": "J9035",
        "policy": "A99999",
        "policy_version": 7,
        "covered": covered,
        "diagnoses": diagnoses,
        "payer": payer,
        "jurisdiction": jurisdiction,
        "states": ["NY"] if jurisdiction else [],
        "notes": [],
        "eff_start": "2025-01-01",
        "eff_end": None,
        "provenance": {"source": "constructed", "sha256": "0" * 64, "locator": "constructed"},
    }


def test_diagnosis_coverage_names_policy_and_version(loaded: dict[str, LoadedPacks], tmp_path: Path) -> None:
    jk = tmp_path / "jk"
    _write_constructed_pack(
        jk,
        "medicare:JK",
        Q4,
        {
            "coverage": [
                _coverage_rule(True, ["C18.9", "C34.90"], "JK", None),
                _coverage_rule(False, ["Z51.11"], "JK", None),
            ]
        },
    )
    both = load_packs([jk], base=loaded["q4"])
    base = _line(1, "J9035", 160, dose=_mg(1600), modifiers=["JZ"])
    covered = _claim("COV", base, jurisdiction="JK", diagnoses=["C189"])  # undotted is read as C18.9
    assert _run(tmp_path, both, covered) == []
    not_listed = _claim("COV2", base, jurisdiction="JK", diagnoses=["C50.911"])
    (f,) = _run(tmp_path, both, not_listed)
    assert (f.check, f.denial, f.policy, f.policy_version) == ("diagnosis", "CO-50", "A99999", 7)
    assert f.message == "J9035: no claim diagnosis (C50.911) is among those covered by A99999 v7"
    listed_not_covered = _claim("COV3", base, state="NY", diagnoses=["Z51.11", "C18.9"])
    (f,) = _run(tmp_path, both, listed_not_covered)
    assert "Z51.11 is listed as not covered by A99999 version 7" in f.message
    outside = load_packs([jk], base=loaded["q3_2026"])  # national pack for 2026 Q3, JK pack for 2025 Q4
    late = _claim("COV5", _line(1, "J9035", 160, "2026-07-15", dose=_mg(1600), modifiers=["JZ"]), jurisdiction="JK")
    (f,) = _run(tmp_path, outside, late)
    assert (f.check, f.severity) == ("pack_window", "warning")
    assert f.message == (
        "the medicare:JK pack(s) loaded cover [2025-10-01, 2026-01-01), not 2026-07-15: its coverage and prior "
        "authorization rules were not checked"
    )
    elsewhere = _claim("COV4", base, jurisdiction="J15", diagnoses=["C50.911"])  # another MAC: rules do not apply
    assert _run(tmp_path, both, elsewhere) == []


def test_prior_auth_required_by_payer_policy() -> None:
    # CONSTRUCTED index: a prior_auth rule with the DESIGN.md fields, checked without a pack file.
    loaded = LoadedPacks()
    loaded.windows["medicare"] = [("2025-10-01", "2026-01-01", "p" * 64)]
    rule = {
        "id": "constructed:pa:J9035",
        "code": "J9035",
        "payer": "uhc",
        "policy": "2026D0017AN",
        "required": True,
        "eff_start": "2025-01-01",
        "eff_end": None,
        "provenance": {"source": "constructed", "sha256": "0" * 64, "locator": "constructed"},
    }
    loaded.prior_auth[("uhc", "J9035")].append((rule["eff_start"], None, rule, "p" * 64))
    s = _Scrubber(loaded, Decimal("0.03"))
    s.claim({"claim_id": "PA", "payer": "uhc", "lines": [_line(1, "J9035", 160)]})
    s.claim({"claim_id": "PA2", "payer": "uhc", "prior_auth": "AUTH-1", "lines": [_line(1, "J9035", 160)]})
    pa = _by(s.out, "prior_auth")
    assert [(f.claim_id, f.denial, f.policy) for f in pa] == [("PA", "CO-15", "2026D0017AN")]


def test_ptp_binary_search_matches_a_full_read(tmp_path: Path) -> None:
    """CONSTRUCTED companion file (sorted as compile writes it): every column-1 block found by the
    binary search equals what reading the whole file gives, including the first and last codes and
    codes that share a prefix."""
    from compiler.scrub import PtpFile

    rng = __import__("random").Random(3)
    codes = sorted({f"{rng.choice('0JQ9')}{rng.randint(0, 9999):04d}" for _ in range(300)})
    rows = sorted(
        {
            (a, b, f"20{rng.randint(10, 26)}-01-01")
            for a in codes[::3]
            for b in rng.sample(codes, rng.randint(1, 12))
            if a != b
        }
    )
    path = tmp_path / "p.ptp-practitioner.tsv"
    header = "column1\tcolumn2\teff_start\teff_end\tmodifier_indicator\tprior_1996\trationale\tsource\tlocator\n"
    path.write_text(header + "".join(f"{a}\t{b}\t{d}\t\t1\t0\t0\t0\tline {i}\n" for i, (a, b, d) in enumerate(rows)))
    f = PtpFile(path, ["r"], [], "p" * 64)
    try:
        for c1 in codes + ["00000", "ZZZZZ"]:
            expected: dict[str, list[str]] = {}
            for a, b, d in rows:
                if a == c1:
                    expected.setdefault(b, []).append(d)
            got = {c2: [r[2] for r in v] for c2, v in f.edits_of(c1).items()}
            assert got == {c2: [r[2] for r in f.lookup(c1, c2)] for c2 in got}
            assert got == expected, c1
    finally:
        f.close()
