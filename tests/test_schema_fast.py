"""compiler/schema_fast.py: the compile-time pack check gives exactly the errors of plain jsonschema
(compiler.schema.errors), and compile_packs still refuses a pack that breaks the schema.

The packs here are CONSTRUCTED: the tracked example pack (compiler/schemas/examples) with coverage
rules in the shape compile_packs writes for medicare:JK (values like those of a compiled generated
rulebook), several rules sharing one diagnosis list, as real articles do. The broken variants put a
bad value where a remembered good value of the same subschema stands elsewhere, so a verdict wrongly
reused would hide the error.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compiler import schema, schema_fast
from compiler.packs import compile_packs
from parsers.errors import CompileError
from rulebook import versions as vers
from rulebook.db import open_rulebook
from tests.conftest import REPO

SHA = "b9308ef9eb7b7e80ec2564346891bdb80b0e51f9bd0a6f9ffcfbf6129c1c6a25"
DIAGNOSES = ["C34.00", "C34.01", "C34.02", "C34.10", "C34.90", "E10.3523", "QA0.0101"]


def coverage_rule(code: str, group: int, diagnoses: list[str]) -> dict[str, Any]:
    return {
        "id": f"cms_mcd:A52370:{code}:{group}:covered:2026-01-01",
        "code": code,
        "policy": "A52370",
        "policy_version": 128,
        "policy_title": "Billing and Coding: constructed",
        "covered": True,
        "group": group,
        "diagnoses": list(diagnoses),
        "asterisk": [],
        "notes": ["Group 1 Paragraph: constructed"],
        "pairing": "same_group",
        "secondary_diagnoses": [],
        "payer": None,
        "jurisdiction": "JK",
        "states": ["CT", "DN", "NY"],
        "parts": ["A", "B"],
        "contractors": ["13101", "13202"],
        "related_policies": ["L33394"],
        "eff_start": "2026-01-01",
        "eff_end": None,
        "provenance": {"source": "cms_mcd", "sha256": SHA, "locator": f"constructed {code}", "release": "2026-01"},
    }


def valid_pack() -> dict[str, Any]:
    pack = json.loads((REPO / "compiler" / "schemas" / "examples" / "pack.example.json").read_text("utf-8"))
    pack["scope"] = "medicare:JK"
    pack["sections"]["coverage"] = [coverage_rule(c, 1, DIAGNOSES) for c in ("J9035", "J9271", "J9299")]
    return pack  # type: ignore[no-any-return]


def _cov(pack: dict[str, Any], i: int) -> dict[str, Any]:
    return pack["sections"]["coverage"][i]  # type: ignore[no-any-return]


BREAKS: dict[str, Callable[[dict[str, Any]], None]] = {
    # a diagnosis list equal to a good one but for one code (not a code, lower case, a number)
    "bad_code_in_shared_list": lambda p: _cov(p, 2)["diagnoses"].__setitem__(3, "C34-10"),
    "lower_case_code": lambda p: _cov(p, 1)["diagnoses"].append("c34.90"),
    "number_in_list": lambda p: _cov(p, 1)["diagnoses"].append(3490),
    "object_in_list": lambda p: _cov(p, 0)["diagnoses"].append({"code": "C34.90"}),
    # true is not an integer, though True == 1 in Python; 1.0 is not a boolean
    "boolean_group": lambda p: _cov(p, 1).__setitem__("group", True),
    "number_covered": lambda p: _cov(p, 1).__setitem__("covered", 1),
    # the date pattern holds but the format (a real date) does not
    "impossible_date": lambda p: _cov(p, 2).__setitem__("eff_start", "2026-02-30"),
    "bad_eff_end": lambda p: _cov(p, 0).__setitem__("eff_end", "soon"),
    "bad_sha256": lambda p: _cov(p, 1)["provenance"].__setitem__("sha256", SHA.upper()),
    "bad_part": lambda p: _cov(p, 2)["parts"].append("C"),
    "bad_state": lambda p: _cov(p, 0)["states"].append("new york"),
    "bad_jurisdiction": lambda p: _cov(p, 1).__setitem__("jurisdiction", "K"),
    "unknown_key": lambda p: _cov(p, 1).__setitem__("covrd", True),
    "missing_key": lambda p: _cov(p, 2).pop("diagnoses"),
    "extra_provenance_key": lambda p: _cov(p, 0)["provenance"].__setitem__("note", "x"),
    "bad_code_section": lambda p: p["sections"]["codes"][0].__setitem__("eff_start", "2026-13-01"),
    "several": lambda p: (
        _cov(p, 0).__setitem__("group", "1"),
        _cov(p, 2)["diagnoses"].insert(0, ""),
        _cov(p, 1).__setitem__("code", "J903"),
    ),
}


def test_a_valid_pack_passes_both() -> None:
    pack = valid_pack()
    assert schema.errors("pack", pack) == []
    assert schema_fast.errors("pack", pack) == []
    assert schema_fast.errors("pack", pack) == []  # again, from remembered verdicts
    assert schema_fast.first_error("pack", pack) is None


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_same_errors_as_plain_jsonschema(name: str) -> None:
    schema_fast.errors("pack", valid_pack())  # the good values are remembered first
    pack = valid_pack()
    BREAKS[name](pack)
    expected = schema.errors("pack", pack)
    assert expected, f"{name} should break the pack"
    assert schema_fast.errors("pack", pack) == expected
    assert schema_fast.first_error("pack", pack) == schema.first_error("pack", pack)
    # and the good pack still passes after the bad values were seen
    assert schema_fast.errors("pack", valid_pack()) == []


def test_manifest_too() -> None:
    manifest = json.loads((REPO / "compiler" / "schemas" / "examples" / "manifest.example.json").read_text("utf-8"))
    assert schema_fast.errors("manifest", manifest) == schema.errors("manifest", manifest) == []
    broken = copy.deepcopy(manifest)
    broken["packs"][0]["sha256"] = "0" * 63
    assert schema_fast.errors("manifest", broken) == schema.errors("manifest", broken) != []


def test_compile_refuses_a_rule_that_breaks_the_schema(tmp_path: Path) -> None:
    """A CONSTRUCTED rulebook: one billing article of a JK contractor whose rules' diagnoses are the
    same list but for one entry that is no ICD-10-CM code (as if a parser let it through)."""
    db = open_rulebook(tmp_path / "rulebook.db")
    now = "2026-01-10T00:00:00Z"
    v = vers.begin_version(db, kind="sync", now=now)
    vers.upsert_artifact(
        db, {"sha256": SHA, "source": "cms_mcd", "url": "https://example.invalid/a.zip", "fetched_at": now}
    )
    contractor = {"number": "13202", "part": "B", "jurisdiction": "JK", "states": ["DN", "NY"]}
    common = {"release": "2026-01", "eff_start": "2026-01-01", "v_from": v, "artifact_sha256": SHA, "locator": "x"}
    db["policy_documents"].insert(
        {
            "policy": "A52370",
            "doc_type": "article",
            "version": 128,
            "title": "constructed",
            "contractors": json.dumps([contractor]),
            **common,
        }
    )
    for i, code in enumerate(("J9035", "J9271")):
        dx = [*DIAGNOSES, "C34.9Z!" if i else "C34.91"]
        db["coverage_rules"].insert(
            {
                "policy": "A52370",
                "code": code,
                "dx_group": 1,
                "covered": 1,
                "policy_version": 128,
                "diagnoses": json.dumps(dx),
                **common,
            }
        )
    vers.finish_version(db, v, status="committed", now=now, summary={}, review_state="approved")
    out = tmp_path / "packs"
    with pytest.raises(CompileError) as err:
        compile_packs(db, start="2026-01-01", end="2026-04-01", scope="medicare:JK", out_dir=out, version=v)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("compiled pack fails its schema: $.sections.coverage[1].diagnoses[7]: 'C34.9Z!' does not")
    assert not (out / "manifest.json").exists()


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound the memory starts afresh, and the errors stay those of plain jsonschema."""
    monkeypatch.setattr(schema_fast, "_MAX_REMEMBERED", 10)
    schema_fast.forget()
    pack = valid_pack()
    for i, rule in enumerate(pack["sections"]["coverage"]):
        rule["diagnoses"] = [f"C{i}{j}.{k}" for j in range(10) for k in range(3)]
    assert schema_fast.errors("pack", pack) == schema.errors("pack", pack) == []
    assert schema_fast.remembered() <= 10
    BREAKS["several"](pack)
    assert schema_fast.errors("pack", pack) == schema.errors("pack", pack) != []
    assert schema_fast.remembered() <= 10
    schema_fast.forget()
    assert schema_fast.remembered() == 0
