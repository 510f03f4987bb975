"""Pack sections for Part B drugs: ``prices`` and ``ndc_map`` (from the cms_asp facts) and
``modifiers`` (the drug billing rules of ``compiler/drug_rules.json``).

The drug billing rules (billing units from the descriptor, JW/JZ) are not published as a data file
by anyone, so they are kept as data here, each with the sources it was written from. Their
provenance is the sha256 of that file, which the pack lists among its ``sources`` like any fetched
document, with the Claims Processing Manual chapter as its URL.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import sqlite_utils

from rulebook.facts import as_of
from rulebook.kinds import DRUG_PRICES, NDC_CROSSWALK

__all__ = ["RULES_FILE", "RULES_SOURCE", "drug_rules", "modifier_rules", "ndc_rules", "price_rules"]

RULES_FILE = "drug_rules.json"
RULES_SOURCE = "drug_billing_rules"


def _num(text: str | None) -> int | float | None:
    if text is None or text == "":
        return None
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() else float(d)


def _prov(row: dict[str, Any]) -> dict[str, Any]:
    return {"source": "cms_asp", "sha256": row["artifact_sha256"], "locator": row["locator"], "release": row["release"]}


def price_rules(db: sqlite_utils.Database, version: int, window: tuple[str, str]) -> list[dict[str, Any]]:
    """The payment limit of each code per quarter, for quarters that intersect the window."""
    return [
        {
            "id": f"cms_asp:{r['code']}:{r['eff_start']}",
            "code": r["code"],
            "dosage": r["dosage"],
            "payment_limit": _num(r["payment_limit"]),
            "coinsurance_pct": _num(r["coinsurance_pct"]),
            "notes": r["notes"],
            "eff_start": r["eff_start"],
            "eff_end": r["eff_end"],
            "provenance": _prov(r),
        }
        for r in as_of(db, DRUG_PRICES, version, window=window)
    ]


def ndc_rules(db: sqlite_utils.Database, version: int, window: tuple[str, str]) -> list[dict[str, Any]]:
    """NDC -> HCPCS with billing units per package, per quarter."""
    return [
        {
            "id": f"cms_asp:ndc:{r['ndc']}:{r['code']}:{r['eff_start']}",
            "ndc": r["ndc"],
            "code": r["code"],
            "drug_name": r["drug_name"],
            "labeler": r["labeler"],
            "dosage": r["dosage"],
            "pkg_size": _num(r["pkg_size"]),
            "pkg_qty": _num(r["pkg_qty"]),
            "bill_units": _num(r["bill_units"]),
            "bill_units_pkg": _num(r["bill_units_pkg"]),
            "eff_start": r["eff_start"],
            "eff_end": r["eff_end"],
            "provenance": _prov(r),
        }
        for r in as_of(db, NDC_CROSSWALK, version, window=window)
    ]


@cache
def _rules_bytes() -> bytes:
    return resources.files("compiler").joinpath(RULES_FILE).read_bytes()


def drug_rules() -> dict[str, Any]:
    """The rules file as data."""
    return json.loads(_rules_bytes())  # type: ignore[no-any-return]


def modifier_rules(window: tuple[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The drug billing rules in force during the window, and the pack ``sources`` entry they cite."""
    data = drug_rules()
    sha = hashlib.sha256(_rules_bytes()).hexdigest()
    out = []
    for index, rule in enumerate(data["rules"]):
        if rule["eff_start"] >= window[1] or (rule["eff_end"] is not None and rule["eff_end"] <= window[0]):
            continue
        entry = {k: v for k, v in rule.items() if k != "start_note"}
        entry["provenance"] = {
            "source": RULES_SOURCE,
            "sha256": sha,
            "locator": f"{RULES_FILE} rules[{index}] ({rule['id']})",
            "release": data["release"],
        }
        if "start_note" in rule:
            entry["start_note"] = rule["start_note"]
        out.append(entry)
    source = {"source": RULES_SOURCE, "url": data["manual_url"], "sha256": sha, "release": data["release"]}
    return out, source
