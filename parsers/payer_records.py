"""Records the commercial payer parser (``parsers.payer``) yields.

Every record names its payer (the payer id, ``uhc``) and policy (the payer's policy number), and its
``locator`` points at the PDF page and line (``p12:l34``) or the HTML element the fact was read from.
Valid time starts at the document's effective date (or, where a payer prints none, its revised or
last-review date) and is open-ended: a later version of the policy is what ends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class PayerDocumentRecord:
    """One version of one payer policy document, with its four change-detection hashes.

    ``status`` is ``parsed`` or ``needs_review``; a document that needs review (scanned, encrypted,
    no code table, login wall) carries the ``reason`` and yields no rules, so the previous rules of
    that policy stay in force.
    """

    payer: str
    url: str
    status: str
    reason: str | None
    policy: str | None
    title: str | None
    doc_type: str  # "pdf" | "html"
    effective_date: date | None
    revised_date: date | None
    reviewed_date: date | None
    pages: int
    text_sha256: str | None  # the whole extracted text
    meta_sha256: str | None  # policy number, title, dates
    criteria_sha256: str | None  # the criteria sections' text
    codes_sha256: str | None  # the code tables (HCPCS, diagnoses, limits)
    sections: dict[str, str] = field(default_factory=dict)  # section title -> text, in order
    lines_of_business: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    eff_start: date | None = None
    locator: str = "p1:l1"


@dataclass(frozen=True)
class PayerCoverageRecord:
    """A drug code the policy covers (or does not), with the diagnoses it is covered for."""

    payer: str
    policy: str
    code: str  # HCPCS (J, Q, C ... incl. NOC codes such as J3590) or a CPT code
    drug: str  # the drug (brand or generic) the row is about; "" when the policy lists codes only
    covered: bool
    coverage_level: str | None  # Priority Health's level ("Preferred Specialty", "Not Covered", ...)
    description: str | None  # HCPCS Level II descriptor as printed; None for CPT codes (AMA licence)
    diagnoses: tuple[str, ...]  # dotted ICD-10-CM codes, ranges expanded to billable leaves
    diagnosis_specs: tuple[str, ...]  # the codes and ranges as printed ("C18.0 - C18.9")
    restrictions: str | None
    eff_start: date
    locator: str
    states: tuple[str, ...] = ()


@dataclass(frozen=True)
class PayerPriorAuthRecord:
    payer: str
    policy: str
    code: str
    required: bool
    note: str | None
    eff_start: date
    locator: str


@dataclass(frozen=True)
class PayerUnitLimitRecord:
    payer: str
    policy: str
    code: str
    indication: str  # what the limit applies to ("" = every use)
    max_units: int
    per: str | None  # "every 6 months", "per dose" ... as printed
    eff_start: date
    locator: str


HASHES = ("text_sha256", "meta_sha256", "criteria_sha256", "codes_sha256")


def change_class(
    before: Mapping[str, object] | None, after: Mapping[str, object] | None
) -> tuple[str, list[str]]:
    """How one document version differs from the previous one, from the four hashes:

    - ``identical``: every hash the same;
    - ``cosmetic``: only the whole text and/or the metadata (dates, title) changed: re-dated,
      re-formatted, same rules;
    - ``substantive``: the criteria sections or the code tables changed;
    - ``needs_review``: the new version could not be read (its reason says why); the rules of the
      previous version stay in force;
    - ``added`` / ``removed``: no previous / no new version.

    Returns the class and what changed (hash names without ``_sha256``).
    """
    if before is None:
        return "added", []
    if after is None:
        return "removed", []
    if after.get("status") == "needs_review":
        return "needs_review", [str(after.get("reason") or "")]
    changed = [h.removesuffix("_sha256") for h in HASHES if before.get(h) != after.get(h)]
    if not changed:
        return "identical", []
    if "criteria" in changed or "codes" in changed:
        return "substantive", changed
    return "cosmetic", changed
