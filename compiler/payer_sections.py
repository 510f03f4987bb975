"""The sections of a ``payer:<id>`` pack, from the payer kinds (parsers/payer.py): ``coverage`` in the
same shape as Medicare's (compiler/coverage_sections.py), ``prior_auth`` and ``payer_unit_limits``.

Only rules of documents that were read are here: a document that needs review yields no rules, and
the rules of its previous version stay in force until a readable version replaces them.
Rows are in force in the window ``[from, to)`` as the rulebook knew them in ``version``.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from rulebook.facts import as_of
from rulebook.kinds import KINDS

NO_DIAGNOSES = (
    "The policy lists no diagnosis codes for this code: its criteria (policy text) decide coverage; diagnoses is empty."
)


def _provenance(row: dict[str, Any], source: str) -> dict[str, Any]:
    return {"source": source, "sha256": row["artifact_sha256"], "locator": row["locator"], "release": row["release"]}


def _documents(db: sqlite_utils.Database, version: int, payer: str) -> dict[str, dict[str, Any]]:
    """The payer's current parsed documents by policy number, with their configured source id."""
    out: dict[str, dict[str, Any]] = {}
    for d in as_of(
        db, KINDS["payer_documents"], version, where="payer = :p AND status = 'parsed'", params={"p": payer}
    ):
        src = db.execute("SELECT source FROM artifacts WHERE sha256 = ?", [d["artifact_sha256"]]).fetchone()
        d["source"] = src[0] if src else "payer"
        out[d["policy"] or "policy"] = d
    return out


def payer_sections(db: sqlite_utils.Database, version: int, window: tuple[str, str], payer: str) -> dict[str, Any]:
    """``{"coverage": [...], "prior_auth": [...], "payer_unit_limits": [...]}`` for ``payer``."""
    docs = _documents(db, version, payer)
    where, params = "payer = :p", {"p": payer}

    def source_of(row: dict[str, Any]) -> str:
        doc = docs.get(row["policy"])
        return doc["source"] if doc else "payer"

    def policy_version(row: dict[str, Any]) -> str | None:
        doc = docs.get(row["policy"])
        if not doc:
            return None
        return doc["effective_date"] or doc["revised_date"] or doc["reviewed_date"]

    coverage = []
    for r in as_of(db, KINDS["payer_coverage"], version, window=window, where=where, params=params):
        diagnoses = json.loads(r["diagnoses"] or "[]")
        doc = docs.get(r["policy"])
        coverage.append(
            {
                "id": f"{payer}:{r['policy']}:{r['code']}:{r['drug']}:{r['eff_start']}",
                "code": r["code"],
                "policy": r["policy"],
                "policy_version": policy_version(r),
                "policy_title": doc["title"] if doc else None,
                "covered": bool(r["covered"]),
                "group": None,
                "diagnoses": diagnoses,
                "payer": payer,
                "jurisdiction": None,
                "states": json.loads(r["states"] or "[]"),
                "notes": [] if diagnoses else [NO_DIAGNOSES],
                "drug": r["drug"],
                "coverage_level": r["coverage_level"],
                "restrictions": r["restrictions"],
                "eff_start": r["eff_start"],
                "eff_end": r["eff_end"],
                "provenance": _provenance(r, source_of(r)),
            }
        )
    coverage.sort(key=lambda c: (c["code"], c["policy"], not c["covered"], c["id"]))
    prior_auth = [
        {
            "id": f"{payer}:{r['policy']}:{r['code']}:{r['eff_start']}",
            "code": r["code"],
            "payer": payer,
            "policy": r["policy"],
            "required": bool(r["required"]),
            "note": r["note"],
            "eff_start": r["eff_start"],
            "eff_end": r["eff_end"],
            "provenance": _provenance(r, source_of(r)),
        }
        for r in as_of(db, KINDS["payer_prior_auth"], version, window=window, where=where, params=params)
    ]
    limits = [
        {
            "id": f"{payer}:{r['policy']}:{r['code']}:{r['indication']}:{r['per']}:{r['eff_start']}",
            "code": r["code"],
            "payer": payer,
            "policy": r["policy"],
            "indication": r["indication"],
            "max_units": r["max_units"],
            "per": r["per"] or None,
            "eff_start": r["eff_start"],
            "eff_end": r["eff_end"],
            "provenance": _provenance(r, source_of(r)),
        }
        for r in as_of(db, KINDS["payer_unit_limits"], version, window=window, where=where, params=params)
    ]
    return {"coverage": coverage, "prior_auth": prior_auth, "payer_unit_limits": limits}
