"""The scrubber on commercial payer packs end to end, the scrubber's fast pack load, and the diff
classifiers of the ASP kinds.

End to end: the real Cigna (IP0319, rituximab) and EmblemHealth (IC-0098, denosumab) PDFs and the
October 2025 HCPCS file are synced through the loopback mirror, ``payer:<id>`` packs compiled, and
claims for those payers scrubbed. Expected values (codes, page/line, listed diagnoses) are read from
the PDFs themselves with pdfplumber.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pdfplumber
import pytest
from click.testing import CliRunner

from compiler.packs import canonical, compile_packs, pack_id_of, read_packs, sampled_schema_errors
from compiler.scrub import Finding, load_packs, scrub
from parsers.errors import PackError
from policysync.cli import cli
from policysync.config import Home, configured_payers, init_home
from policysync.mirror import MirrorServer
from policysync.mirror_payer import PAYER_DOCS
from policysync.pipeline import sync
from rulebook.db import open_rulebook
from rulebook.diff import classify_drug_price, classify_ndc_mapping
from tests.conftest import approve_pending

WINDOW = ("2026-01-01", "2026-07-01")
DOS = "2026-03-10"
CIGNA = next(d for d in PAYER_DOCS if d.payer == "cigna")
EMBLEM = next(d for d in PAYER_DOCS if d.payer == "emblemhealth_prime")


@pytest.fixture(scope="module")
def payer_packs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scrub-payer")
    home = Home(root / "home")
    init_home(home)
    sources = ["cms_hcpcs", CIGNA.source, EMBLEM.source]
    with MirrorServer(shared_data, sources=["payer", "cms_hcpcs"], releases=["2025-10"]) as mirror:
        report = sync(home, sources=sources, mirror=mirror.url)
    assert report.exit_code == 0, report.to_json()
    db = open_rulebook(home.db_path)
    approve_pending(db)
    out = {}
    for payer in ("cigna", "emblemhealth_prime"):
        compile_packs(
            db,
            start=WINDOW[0],
            end=WINDOW[1],
            scope=f"payer:{payer}",
            out_dir=root / payer,
            payers=configured_payers(home),
        )
        out[payer] = root / payer
    db.close()
    return out


def _pdf_line(shared_data: Path, data_path: str, locator: str) -> str:
    """The text line a ``p<page>:l<line>`` locator names, read from the PDF."""
    page, line = (int(part[1:]) for part in locator.split(":"))
    with pdfplumber.open(shared_data / data_path) as pdf:
        return str(pdf.pages[page - 1].extract_text().splitlines()[line - 1])


def _pdf_text(shared_data: Path, data_path: str) -> str:
    with pdfplumber.open(shared_data / data_path) as pdf:
        return "\n".join(p.extract_text() or "" for p in pdf.pages)


def _scrub(tmp_path: Path, pack: Path, *claims: dict[str, Any]) -> list[Finding]:
    path = tmp_path / "claims.json"
    path.write_text(json.dumps({"claims": list(claims)}), encoding="utf-8")
    result = scrub(path, [pack])
    assert result.malformed == []
    return result.findings


def _claim(cid: str, payer: str, code: str, units: int, mg: int, **kw: Any) -> dict[str, Any]:
    line = {"line": 1, "code": code, "units": units, "date_of_service": DOS, "dose": {"quantity": mg, "unit": "mg"}}
    return {"claim_id": cid, "payer": payer, "lines": [line], **kw}


def test_prior_auth_required_by_the_cigna_policy(
    payer_packs: dict[str, Path], shared_data: Path, tmp_path: Path
) -> None:
    text = _pdf_text(shared_data, CIGNA.data_path)
    assert "Prior Authorization is required for benefit coverage of rituximab IV products" in text
    # J9312 is "Injection, rituximab, 10 mg" (the PDF's code table): 1,000 mg = 100 units.
    no_auth = _claim("C1", "cigna", "J9312", 100, 1000, diagnoses=["M05.79"])
    (f,) = _scrub(tmp_path, payer_packs["cigna"], no_auth)
    assert (f.check, f.severity, f.denial, f.policy) == ("prior_auth", "error", "CO-15", "IP0319")
    assert f.rule_id == "cigna:IP0319:J9312:2026-02-01" and f.policy_version is None
    assert f.message == "J9312: prior authorization required by cigna policy IP0319 and none on the claim"
    assert f.provenance is not None
    assert (f.provenance["source"], f.provenance["locator"]) == ("cigna_drug_policies", "p18:l17")
    assert _pdf_line(shared_data, CIGNA.data_path, f.provenance["locator"]) == "J9312 Injection, rituximab, 10 mg"
    # An authorization number on the claim (or on the line) satisfies it. The policy lists no
    # diagnosis codes (its criteria decide), so no diagnosis is flagged either.
    assert _scrub(tmp_path, payer_packs["cigna"], no_auth | {"prior_auth": "PA-2026-0001"}) == []
    line_auth = _claim("C2", "cigna", "J9312", 100, 1000)
    line_auth["lines"][0]["prior_auth"] = "PA-2026-0002"
    assert _scrub(tmp_path, payer_packs["cigna"], line_auth) == []


def test_diagnosis_not_in_the_emblemhealth_coverage(
    payer_packs: dict[str, Path], shared_data: Path, tmp_path: Path
) -> None:
    text = _pdf_text(shared_data, EMBLEM.data_path)
    assert "C50.011" in text and "J45.909" not in text  # breast cancer is listed, asthma is not
    assert _pdf_line(shared_data, EMBLEM.data_path, "p7:l4").startswith("• J0897 – Injection, denosumab, 1 mg")
    auth = {"prior_auth": "EH-77"}
    ok = _claim("E1", "emblemhealth_prime", "J0897", 120, 120, diagnoses=["C50.011"], **auth)
    assert _scrub(tmp_path, payer_packs["emblemhealth_prime"], ok) == []
    bad_dx = _claim("E2", "emblemhealth_prime", "J0897", 120, 120, diagnoses=["J45.909"], **auth)
    (f,) = _scrub(tmp_path, payer_packs["emblemhealth_prime"], bad_dx)
    assert (f.check, f.severity, f.denial, f.policy, f.policy_version) == (
        "diagnosis",
        "error",
        "CO-50",
        "IC-0098",
        "2025-11-04",
    )
    assert f.message == "J0897: no claim diagnosis (J45.909) is among those covered by IC-0098 v2025-11-04"
    assert f.provenance is not None and f.provenance["locator"] == "p7:l4"
    assert f.provenance["source"] == "emblemhealth_prime_drug_policies"
    # Without the authorization the policy requires, both are reported; the units still check out.
    no_auth = _claim("E3", "emblemhealth_prime", "J0897", 120, 120, diagnoses=["J45.909"])
    both = _scrub(tmp_path, payer_packs["emblemhealth_prime"], no_auth)
    assert sorted((f.check, f.denial) for f in both) == [("diagnosis", "CO-50"), ("prior_auth", "CO-15")]


def test_payer_claim_outside_the_payer_pack_window(payer_packs: dict[str, Path], tmp_path: Path) -> None:
    late = _claim("C9", "cigna", "J9312", 100, 1000)
    late["lines"][0]["date_of_service"] = "2026-08-01"
    (f,) = _scrub(tmp_path, payer_packs["cigna"], late)
    assert (f.check, f.severity) == ("pack_window", "error")
    assert f.message.startswith("no national Medicare pack or payer:cigna pack covers date of service 2026-08-01")


def test_cli_scrubs_a_payer_claim_with_the_full_check(payer_packs: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "claims.json"
    path.write_text(json.dumps({"claims": [_claim("C1", "cigna", "J9312", 100, 1000)]}))
    res = CliRunner().invoke(
        cli, ["scrub", str(path), "--pack", str(payer_packs["cigna"]), "--full-check", "--format", "json"]
    )
    assert res.exit_code == 1, res.output
    (f,) = json.loads(res.stdout)["findings"]
    assert (f["check"], f["policy"], f["provenance"]["locator"]) == ("prior_auth", "IP0319", "p18:l17")


# --- the scrubber's pack load: sha256 and pack id always, the schema on a sample -----------------------


def _rewrite(d: Path, edit: Any) -> Path:
    """Re-write the pack in ``d`` after ``edit(pack)`` with a consistent pack_id and manifest sha256 (a
    CONSTRUCTED pack: what a buggy or foreign compiler could write)."""
    m = json.loads((d / "manifest.json").read_text())
    p = d / m["packs"][0]["file"]
    pack = json.loads(p.read_bytes())
    edit(pack)
    pack["pack_id"] = pack_id_of(pack)
    body = canonical(pack)
    p.write_bytes(body)
    m["packs"][0]["sha256"] = hashlib.sha256(body).hexdigest()
    m["packs"][0]["pack_id"] = pack["pack_id"]
    (d / "manifest.json").write_text(json.dumps(m))
    return d


def test_sampled_check_catches_a_bad_sampled_rule_and_a_missing_key_anywhere(
    payer_packs: dict[str, Path], tmp_path: Path
) -> None:
    src = payer_packs["emblemhealth_prime"]
    codes_n = len(json.loads(next(src.glob("payer-*.json")).read_bytes())["sections"]["codes"])
    assert codes_n > 1000
    # The last code rule is always in the sample: a bad value there is refused with its real index.
    d = _rewrite(shutil.copytree(src, tmp_path / "last"), lambda p: p["sections"]["codes"][-1].update(kind="drug"))
    with pytest.raises(PackError, match=rf"\$\.sections\.codes\[{codes_n - 1}\]\.kind: 'drug' is not one of"):
        load_packs([d])
    # A rule missing a required key is refused wherever it is.
    d = _rewrite(shutil.copytree(src, tmp_path / "gap"), lambda p: p["sections"]["codes"][1001].pop("descriptor"))
    with pytest.raises(PackError, match=r"\$\.sections\.codes\[1001\]: missing required descriptor"):
        load_packs([d])
    # A bad value off the sample passes the sampled check; the full check (compile time, --full-check) finds it.
    d = _rewrite(shutil.copytree(src, tmp_path / "mid"), lambda p: p["sections"]["codes"][1001].update(kind="drug"))
    pack = json.loads(next(d.glob("payer-*.json")).read_bytes())
    assert sampled_schema_errors(pack) == []
    with pytest.raises(PackError, match=r"\$\.sections\.codes\[1001\]\.kind: 'drug' is not one of"):
        load_packs([d], full_check=True)
    with pytest.raises(PackError, match=r"\.kind: 'drug' is not one of"):
        read_packs(d)  # the default of read_packs stays the full check


def test_sampled_check_still_refuses_tampering_versions_and_bad_headers(
    payer_packs: dict[str, Path], tmp_path: Path
) -> None:
    src = payer_packs["cigna"]
    d = shutil.copytree(src, tmp_path / "tampered")
    p = next(d.glob("payer-*.json"))
    p.write_bytes(p.read_bytes().replace(b'"required":true', b'"required":false', 1))
    with pytest.raises(PackError, match=r"sha256 does not match manifest.json"):
        load_packs([d])
    d = _rewrite(shutil.copytree(src, tmp_path / "v2"), lambda p: p.update(schema_version="2.0.0"))
    with pytest.raises(PackError, match=r"schema_version '2.0.0' is not supported"):
        load_packs([d])
    d = _rewrite(shutil.copytree(src, tmp_path / "scope"), lambda p: p.update(scope="payer:Cigna!"))
    with pytest.raises(PackError, match=r"\$\.scope: 'payer:Cigna!' does not match"):
        load_packs([d])


# --- diff classifiers of the ASP kinds (CONSTRUCTED rows with the kinds' columns) -------------------


def _price(limit: str | None, **kw: Any) -> dict[str, Any]:
    return {"code": "J9035", "payment_limit": limit, "dosage": "10 MG", "coinsurance_pct": 20, "eff_end": None, **kw}


def test_payment_limit_classifier() -> None:
    assert classify_drug_price(_price("70.000"), _price("69.000"))[0] == [("payment_limit_decreased", "medium", True)]
    assert classify_drug_price(_price("70.000"), _price("60.000"))[0] == [("payment_limit_decreased", "high", True)]
    assert classify_drug_price(_price("70.000"), _price("71.000"))[0] == [("payment_limit_increased", "low", True)]
    cats, _ = classify_drug_price(_price("70.000"), _price("70.000", dosage="5 MG"))
    assert cats == [("dosage_change", "medium", True)]
    assert classify_drug_price(None, _price("70.000"))[0] == [("price_added", "low", True)]


def _ndc(units: float, **kw: Any) -> dict[str, Any]:
    row = {"ndc": "50242-0060-01", "code": "J9035", "bill_units": 10, "bill_units_pkg": units, "eff_end": None}
    return row | {"dosage": "10 MG", "pkg_size": 4, "pkg_qty": 1} | kw


def test_ndc_mapping_classifier() -> None:
    assert classify_ndc_mapping(_ndc(10), None)[0] == [("ndc_mapping_removed", "high", True)]
    assert classify_ndc_mapping(_ndc(10), _ndc(10, eff_end="2026-01-01"))[0] == [("ndc_mapping_removed", "high", True)]
    assert classify_ndc_mapping(_ndc(10), _ndc(40))[0] == [("ndc_billing_units_change", "high", True)]
    assert classify_ndc_mapping(_ndc(10), _ndc(10, pkg_size=16))[0] == [("ndc_package_change", "medium", True)]
    assert classify_ndc_mapping(None, _ndc(10))[0] == [("ndc_mapping_added", "low", True)]


def test_verify_pack_checks_every_rule(payer_packs: dict[str, Path], tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["verify-pack", str(payer_packs["cigna"])])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"ok {payer_packs['cigna']}: payer:cigna [2026-01-01, 2026-07-01) ")
    assert "coverage 4, prior_auth 4" in res.stdout
    # A rule off the sample with a bad value: the scrubber's load passes it, verify-pack refuses it.
    d = _rewrite(
        shutil.copytree(payer_packs["emblemhealth_prime"], tmp_path / "mid"),
        lambda p: p["sections"]["codes"][1001].update(kind="drug"),
    )
    res = CliRunner().invoke(cli, ["verify-pack", str(d)])
    assert res.exit_code == 3
    assert "$.sections.codes[1001].kind: 'drug' is not one of" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
