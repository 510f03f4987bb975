"""The ``coverage`` section of Medicare jurisdiction and state packs (scope ``medicare:<J>``, ``medicare:<ST>``).

Each item is one coverage rule of ``rulebook`` table ``coverage_rules`` (an article version's code with
the covered or noncovered diagnoses of one diagnosis group: the group of the same number, or the group
whose paragraph names the code, as ``pairing`` says; dual-diagnosis secondary codes in
``secondary_diagnoses``) whose interval intersects the window, joined with its policy document
(``policy_documents``) for where it applies:

* ``medicare:JK`` takes the rules of documents with a contractor in jurisdiction JK; the item's
  ``states``, ``parts`` and ``contractors`` are those of the document's JK contractors.
* ``medicare:NY`` takes the rules of documents with a contractor working in New York, sub-state ids
  included (DN, QN, UN); the item's ``states`` are NY and the sub-state ids those contractors list, its
  ``jurisdiction`` the label of those contractors (the first, sorted, if they span several).

The item shape is the pack schema's ``coverage_rule`` (compiler/schemas/pack.schema.json), shared with
payer coverage (``payer`` set there, null here). A scrubber answers "is J9035 with C34.90 supported
for a New York Part B claim on 2026-02-10, and by which article version" from the items alone: code,
a diagnosis in ``diagnoses``, ``covered``, ``"B" in parts`` and the interval.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from rulebook.facts import as_of
from rulebook.kinds import KINDS

SOURCE = "cms_mcd"


def _contractors_in_scope(doc: dict[str, Any], scope_value: str) -> list[dict[str, Any]]:
    contractors = json.loads(doc["contractors"] or "[]")
    if scope_value.startswith("J"):
        return [c for c in contractors if c.get("jurisdiction") == scope_value]
    return [c for c in contractors if scope_value in c.get("states", [])]


def medicare_coverage(
    db: sqlite_utils.Database, version: int, window: tuple[str, str], scope: str
) -> list[dict[str, Any]]:
    """The coverage items of a ``medicare:<jurisdiction>`` or ``medicare:<state>`` scope."""
    if "coverage_rules" not in KINDS or not db["coverage_rules"].exists():
        return []
    value = scope.partition(":")[2]
    if not value:
        return []
    docs = {d["policy"]: d for d in as_of(db, KINDS["policy_documents"], version)}
    where: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for policy, doc in docs.items():
        cs = _contractors_in_scope(doc, value)
        if not cs:
            continue
        if value.startswith("J"):
            states = sorted({s for c in cs for s in c.get("states", [])})
            jurisdiction: str | None = value
        else:
            # the state and the sub-state ids of it that these contractors list
            states = sorted({s for c in cs for s in c.get("states", []) if s == value or _sub_state_of(s, value)})
            labels = sorted({c["jurisdiction"] for c in cs if c.get("jurisdiction")})
            jurisdiction = labels[0] if labels else None
        where[policy] = (
            cs,
            {
                "jurisdiction": jurisdiction,
                "states": states,
                "parts": sorted({c["part"] for c in cs if c.get("part")}),
                "contractors": sorted({c["number"] for c in cs}),
                "policy_title": doc["title"],
                "related_policies": json.loads(doc["related"] or "[]"),
            },
        )
    if not where:
        return []
    items: list[dict[str, Any]] = []
    rows = _rules(db, version, window, list(where))
    # The provenance names the source that fetched the row's document: the bulk export (cms_mcd) or the
    # Coverage API (cms_coverage_api), which loads the same records into the same table.
    shas = sorted({r["artifact_sha256"] for r in rows})
    source_of: dict[str, str] = {}
    for i in range(0, len(shas), 500):
        chunk = shas[i : i + 500]
        marks = ", ".join("?" for _ in chunk)
        for sha, src in db.execute(f"SELECT sha256, source FROM artifacts WHERE sha256 IN ({marks})", chunk):
            source_of[sha] = src
    for r in rows:
        _, extra = where[r["policy"]]
        covered = bool(r["covered"])
        items.append(
            {
                "id": f"{SOURCE}:{r['policy']}:{r['code']}:{r['dx_group']}:{'covered' if covered else 'noncovered'}:"
                f"{r['eff_start']}",
                "code": r["code"],
                "policy": r["policy"],
                "policy_version": r["policy_version"],
                "covered": covered,
                "group": r["dx_group"],
                "diagnoses": json.loads(r["diagnoses"]),
                "asterisk": json.loads(r["asterisk"] or "[]"),
                "notes": json.loads(r["notes"] or "[]"),
                # how the code was paired with the diagnosis group, and the dual-diagnosis codes accepted only
                # with one of ``diagnoses`` on the claim (parsers/mcd_pairing.py)
                "pairing": r.get("pairing") or "same_group",
                "secondary_diagnoses": json.loads(r.get("secondary_diagnoses") or "[]"),
                "payer": None,
                **extra,
                "eff_start": r["eff_start"],
                "eff_end": r["eff_end"],
                "provenance": {
                    "source": source_of.get(r["artifact_sha256"], SOURCE),
                    "sha256": r["artifact_sha256"],
                    "locator": r["locator"],
                    "release": r["release"],
                },
            }
        )
    items.sort(key=lambda i: (i["code"], i["policy"], not i["covered"], i["group"], i["id"]))
    return items


# Sub-state ids of the MCD state table (state_lookup.csv): NY = 41 + DN/QN/UN, CA = 6 + NF/SF, MO = 29 + EM/WM.
SUB_STATES = {"DN": "NY", "QN": "NY", "UN": "NY", "NF": "CA", "SF": "CA", "EM": "MO", "WM": "MO"}


def _sub_state_of(sub: str, state: str) -> bool:
    return SUB_STATES.get(sub) == state


def _rules(
    db: sqlite_utils.Database, version: int, window: tuple[str, str], policies: list[str]
) -> list[dict[str, Any]]:
    """Current rules of ``policies`` intersecting ``window``, through a temp table (thousands of ids)."""
    db.execute("DROP TABLE IF EXISTS temp.scope_policies")
    db.execute("CREATE TEMP TABLE scope_policies (policy TEXT PRIMARY KEY)")
    db.conn.executemany("INSERT INTO temp.scope_policies VALUES (?)", [(p,) for p in policies])
    try:
        return list(
            as_of(
                db,
                KINDS["coverage_rules"],
                version,
                window=window,
                where="policy IN (SELECT policy FROM temp.scope_policies)",
            )
        )
    finally:
        db.execute("DROP TABLE IF EXISTS temp.scope_policies")
