"""Records of the Medicare Coverage Database, shared by every front end.

Two front ends read the MCD: the bulk CSV exports (``parsers/cms_mcd.py``) and the Coverage API
(``cms_coverage_api``). Both turn what they read into rows keyed by the MCD table column names
(``article_id``, ``article_version``, ``hcpc_code_group``...; the API's JSON fields carry the same
names) and hand them to ``parsers.mcd_build.build``, which yields these records. So the same document
gives the same records whichever way it was read.

Dates are ``datetime.date``; valid time is half-open ``[eff_start, eff_end)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Contractor:
    """One MAC contract a policy document is assigned to, with where it works."""

    number: str  # the MAC contract number, "13202"
    name: str  # "National Government Services, Inc."
    part: str  # "A" | "B" | "HHH" | "DME" | "" (from the contractor subtype)
    jurisdiction: str | None  # "JK", "J15", "JD" (from the contract's region), None when unknown
    states: tuple[str, ...]  # state abbreviations, sub-state ids included ("CT", "DN", "NY")


@dataclass(frozen=True)
class PolicyDocumentRecord:
    """One LCD or Billing and Coding Article at one version."""

    policy: str  # "A52370" | "L33394"
    doc_type: str  # "article" | "lcd"
    version: int
    article_type: str | None  # "Billing and Coding", "Article", ... (articles only)
    title: str
    status: str  # "A" approved | "R" retired | "P" proposed (as MCD states it)
    eff_start: date  # the version's (revision) effective date
    eff_end: date | None  # exclusive: revision end date + 1 day, or the retirement date
    retired_on: date | None
    contractors: tuple[Contractor, ...]
    jurisdictions: tuple[str, ...]  # sorted labels
    states: tuple[str, ...]  # sorted, sub-state ids and their parent states included
    related: tuple[str, ...]  # linked documents of this version: "L33394", "A52855"
    supersedes: tuple[str, ...]  # documents this one reissues (MAC renumbering), e.g. ("A56001",)
    superseded_by: str | None
    locator: str


@dataclass(frozen=True)
class CoverageRuleRecord:
    """A code of an article version paired with the covered (or noncovered) ICD-10-CM diagnoses of one
    diagnosis group (``group``): one record per code and group. Pairing is by group number, or by the
    codes a diagnosis group's paragraph names when the article gives each drug its own diagnosis group
    (``pairing``; parsers/mcd_pairing.py).

    ``diagnoses`` are dotted, ranges expanded to billable leaves, unique, in tabular order. ``notes``
    keep the group paragraphs as plain text (the dual-diagnosis and asterisk requirements live there);
    ``asterisk`` lists the diagnoses flagged with the group's asterisk explanation.
    """

    policy: str  # "A52370"
    policy_version: int
    code: str  # HCPCS/CPT code, "J9035"
    group: int  # the diagnosis group (the HCPCS group too when paired by number)
    covered: bool
    diagnoses: tuple[str, ...]
    asterisk: tuple[str, ...]
    notes: tuple[str, ...]
    jurisdictions: tuple[str, ...]
    states: tuple[str, ...]
    superseded_by: str | None
    supersedes: tuple[str, ...]
    eff_start: date
    eff_end: date | None
    locator: str
    # How the code was paired with this diagnosis group (parsers/mcd_pairing.py): "same_group" (the HCPCS
    # group of the same number), "named_in_paragraph" (the diagnosis group's paragraph names the code) or
    # "same_group+named" (group-for-group article; a drug code of another HCPCS group its paragraph names).
    pairing: str = "same_group"
    # Dual diagnosis: the codes of the secondary groups attached to this group ("considered secondary
    # codes ... the claim must also include a diagnosis from the primary diagnosis list"). They support
    # the code only on a claim that also has one of ``diagnoses``; never a coverage list on their own.
    secondary_diagnoses: tuple[str, ...] = ()
