"""Which HCPCS codes of an article a diagnosis group applies to (used by ``parsers/mcd_build.py``).

The MCD joins an article's codes to its diagnoses by group number: ``article_x_hcpc_code`` group *g*
with ``article_x_icd10_covered`` (and ``_noncovered``) group *g* (DOMAIN.md §3.2). Many articles are
laid out that way (A52370: drug codes in group 1 with the non-ophthalmologic diagnoses of group 1,
the injection procedure 67028 in group 2 with the ophthalmologic diagnoses of group 2). Others list
every code in one HCPCS group and give each drug its own diagnosis group, headed by a paragraph that
names the drug (A52453, LHRH analogs: one HCPCS group, 14 diagnosis groups; group 6 begins "J9217
[Leuprolide acetate ...] Primary ICD-10-CM codes", group 7 "The ICD-10-CM codes listed below are
considered secondary codes. When these codes are reported for J9217, the claim must also include a
diagnosis from the primary diagnosis list above"). Pairing such an article by number gives every
drug group 1's diagnoses and drops groups 2-14: wrong pairs a scrubber would pass or deny claims on.

The rules, in order, each recorded on the rule as ``pairing``:

1. **Layout.** An article whose every (primary) diagnosis group with codes has an HCPCS group of the
   same number is laid out group for group and is paired by number (``same_group``), whatever its
   paragraphs mention: a group's diagnoses never leave the codes of its own HCPCS group. A paragraph
   naming *drug* codes (HCPCS Level II: a letter and four digits) that the article lists in another
   HCPCS group adds those codes to the group (``same_group+named``): A52370's group 2 paragraph says
   "HCPCS code C9142*, C9257, Q5107, Q5118, Q5126 or Q5129 and the ICD-10-CM codes listed below should
   be reported for treatment of approved ophthalmologic indications" (Part A, and J9035 for Part B)
   while its HCPCS group 2 holds only the injection procedure 67028, so the ophthalmologic diagnoses
   (wet AMD, H35.32xx) go to 67028 (``same_group``) and to the eight drug codes its paragraph names.
   A code a paragraph names that is already in its own HCPCS group gives no second rule (A52370's
   group 1 names the drugs of HCPCS group 1); CPT codes named in another group's paragraph, and codes
   the article does not list, are not paired by name in this layout.
2. **Named in the paragraph.** Otherwise (diagnosis groups beyond the HCPCS groups), a diagnosis group
   whose paragraph names HCPCS/CPT codes that are in the article's code list applies to exactly those
   codes (``named_in_paragraph``); a range "J7605-J7614" names the article's codes between its ends.
   Codes it names that the article does not list are counted ("names HCPCS codes not in the
   article") and not paired. A group naming no listed code falls back to the HCPCS group of the same
   number (``same_group``), counted so it can be checked (A52479 heads its groups with drug names,
   "For Busulfan:", not codes); with none, it gives no rule and is counted.
3. **Secondary (dual-diagnosis) groups** are not coverage lists of their own: a claim may carry their
   codes only together with a primary diagnosis. A covered group is secondary when its paragraph says
   so in the wording the recorded export uses: "... are considered secondary codes", "the following
   are secondary (dual) diagnoses", "secondary codes to be reported with those in Group 2", or a
   heading line such as "Secondary Diagnoses:", "Secondary (Dual) Diagnoses", "Covered for secondary
   ICD-10-CM codes:", "(Secondary Diagnosis)". A primary paragraph that only mentions secondary codes
   ("these diagnoses can be billed as a single diagnosis or in conjunction with the secondary ICD-10-CM
   codes listed below") is not one. A secondary group is attached to the primary group(s) it
   qualifies: the groups its paragraph refers to ("Group 2"); else, for each listed code it names,
   the nearest primary group above it paired with that code (A52453 group 7 -> group 6, J9217); else
   the nearest primary group above it. Its codes become the rule's ``secondary_diagnoses`` and its
   paragraph joins the rule's notes. A secondary group with no primary group to attach to is counted
   and paired as a list of its own (rule 1 or 2).
4. Whatever cannot be paired (a diagnosis group with no code named and no HCPCS group of its number,
   an HCPCS code no diagnosis group applies to) is counted, never guessed.

Noncovered groups follow rules 1, 2 and 4 (a noncovered list has no secondary codes).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SAME_GROUP = "same_group"
NAMED = "named_in_paragraph"
# same_group layout: a drug code of another HCPCS group that the diagnosis group's paragraph names
SAME_GROUP_NAMED = "same_group+named"
PAIRINGS = (SAME_GROUP, NAMED, SAME_GROUP_NAMED)

# A HCPCS Level II code (J9217) or a CPT code (67028, 0275T), standing alone: not inside L33394,
# A52370, a dotted ICD-10-CM code (C7951.5, M62.411) or a longer number.
_CODE = r"(?<![A-Za-z0-9.])(?:[A-V][0-9]{4}|[0-9]{4}[0-9FTU])(?![A-Za-z0-9]|\.[0-9A-Za-z])"
_NAMED = re.compile(rf"({_CODE})(?:\s*(?:-|\u2013|\u2014|through|thru)\s*({_CODE}))?")
_SECONDARY = (
    re.compile(r"\bconsidered secondary\b", re.I),
    re.compile(r"\bare secondary \(dual\) diagnos", re.I),
    re.compile(r"\bsecondary codes? to be (?:reported|used|billed) with\b", re.I),
    re.compile(r"^\W*(?:covered for )?secondary\b[^.\n]{0,40}\b(?:codes?|diagnos[ie]s|icd-10\S*)\W*$", re.I | re.M),
    re.compile(r"\((?:secondary|dual) diagnos[ie]s\)\s*:?\s*$", re.I | re.M),
)
_GROUP_REF = re.compile(r"\bgroups? (\d{1,3})\b", re.I)
_DRUG_CODE = re.compile(r"[A-V][0-9]{4}")  # HCPCS Level II (J9035, Q5107, C9257); not CPT (67028)


def is_secondary(text: str) -> bool:
    """Whether a covered group's paragraph declares its codes secondary (see the module docstring)."""
    return any(p.search(text) for p in _SECONDARY)


def named_codes(text: str, listed: set[str]) -> tuple[list[str], list[str]]:
    """The codes ``text`` names that are in ``listed`` (text order, unique) and those it names that are
    not. A range names the listed codes between its ends (its ends count as listed if any does)."""
    found: list[str] = []
    missing: list[str] = []
    for m in _NAMED.finditer(text):
        lo, hi = m.group(1).upper(), (m.group(2) or "").upper()
        if hi:
            inside = sorted(c for c in listed if len(c) == len(lo) and lo <= c <= hi)
            if inside:
                found.extend(inside)
                continue
        for c in (lo, hi) if hi else (lo,):
            (found if c in listed else missing).append(c)
    return list(dict.fromkeys(found)), [c for c in dict.fromkeys(missing) if c not in found]


def group_refs(text: str) -> set[int]:
    return {int(n) for n in _GROUP_REF.findall(text)}


@dataclass(frozen=True)
class Pair:
    """One rule to make: HCPCS ``code`` (from ``hcpcs_group``, listed at ``record``) with the diagnoses of
    group ``group`` (covered or noncovered), and the secondary groups attached to it."""

    covered: bool
    group: int
    code: str
    record: int
    hcpcs_group: int
    pairing: str
    secondary: tuple[int, ...] = ()


class PairingAudit:
    """Counts of what could not be paired (and how things were paired), with the first example of each."""

    def __init__(self) -> None:
        self.n: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def add(self, key: str, example: str, n: int = 1) -> None:
        self.n[key] += n
        self.first.setdefault(key, example)

    def into(self, counts: Counter[str]) -> None:
        for key, n in self.n.items():
            counts[f"{key} (first: {self.first[key]})"] += n


NOT_IN_ARTICLE = "diagnosis group paragraph names HCPCS codes not in the article (not paired with them)"
NO_CODES = "diagnosis group with no HCPCS code named and no HCPCS group of its number (no rules)"
NO_PRIMARY = "secondary diagnosis group with no primary group to attach to (paired as its own list)"
CODE_UNPAIRED = "HCPCS code no diagnosis group applies to (no rules)"
SECONDARY_NUMBERED = "HCPCS group whose diagnosis group of the same number is a secondary list (no rules)"
FALLBACK = (
    "diagnosis group naming no listed code paired with the HCPCS group of its number, in an article with "
    "more diagnosis groups than HCPCS groups (check)"
)
BY_NAME = "diagnosis group paired with the HCPCS codes its paragraph names"
NAMED_EXTRA = (
    "diagnosis group also paired with drug codes of another HCPCS group that its paragraph names "
    "(same_group+named)"
)
ATTACHED = "secondary (dual-diagnosis) group attached to its primary group"


def plan(
    doc: str,
    hcpcs: Mapping[int, Sequence[tuple[int, str]]],
    covered: Mapping[int, str],
    noncovered: Mapping[int, str],
    audit: PairingAudit,
) -> tuple[list[Pair], bool]:
    """The rules of one article version. ``hcpcs``: HCPCS group -> (record number, code); ``covered`` and
    ``noncovered``: the diagnosis groups that list codes -> their paragraph text. Returns the pairs (in
    diagnosis group order) and whether the article is laid out group for group."""
    where: dict[str, tuple[int, int]] = {}  # code -> (record, HCPCS group) of its first listing
    for g in sorted(hcpcs):
        for rec, code in hcpcs[g]:
            where.setdefault(code, (rec, g))
    listed = set(where)
    secondary = {g for g, text in covered.items() if is_secondary(text)}
    primary = [(True, g) for g in sorted(covered) if g not in secondary] + [(False, g) for g in sorted(noncovered)]
    by_number = all(g in hcpcs for _, g in primary)

    def pair_group(is_cov: bool, g: int, text: str) -> list[Pair]:
        if not by_number:
            found, missing = named_codes(text, listed)
            if missing:
                audit.add(NOT_IN_ARTICLE, f"{doc} group {g} {', '.join(missing)}", len(missing))
            if found:
                audit.add(BY_NAME, f"{doc} group {g}")
                return [Pair(is_cov, g, c, where[c][0], where[c][1], NAMED) for c in found]
        if g in hcpcs:
            if not by_number:
                audit.add(FALLBACK, f"{doc} group {g}")
            seen: set[str] = set()
            out = []
            for rec, c in hcpcs[g]:
                if c not in seen:
                    seen.add(c)
                    out.append(Pair(is_cov, g, c, rec, g, SAME_GROUP))
            if by_number:
                # the union with the drug codes the paragraph names (listed in another HCPCS group)
                extra = [c for c in named_codes(text, listed)[0] if c not in seen and _DRUG_CODE.fullmatch(c)]
                if extra:
                    audit.add(NAMED_EXTRA, f"{doc} group {g} {', '.join(extra)}", len(extra))
                out.extend(Pair(is_cov, g, c, where[c][0], where[c][1], SAME_GROUP_NAMED) for c in extra)
            return out
        audit.add(NO_CODES, f"{doc} group {g}")
        return []

    pairs: dict[tuple[bool, int], list[Pair]] = {}
    for is_cov, g in primary:
        pairs[(is_cov, g)] = pair_group(is_cov, g, (covered if is_cov else noncovered)[g])
    attached: dict[tuple[int, str], list[int]] = {}  # (primary group, code) -> secondary groups
    for g in sorted(secondary):
        text = covered[g]
        above = sorted(k[1] for k, v in pairs.items() if k[0] and k[1] < g and v)
        targets: list[tuple[int, str]] = []
        refs = sorted(r for r in group_refs(text) - {g} if pairs.get((True, r)))
        if refs:
            targets = [(r, p.code) for r in refs for p in pairs[(True, r)]]
        else:
            found, _ = named_codes(text, listed)
            for code in found:
                for pg in reversed(above):
                    if any(p.code == code for p in pairs[(True, pg)]):
                        targets.append((pg, code))
                        break
            if not found and above:
                targets = [(above[-1], p.code) for p in pairs[(True, above[-1])]]
        if targets:
            audit.add(
                ATTACHED, f"{doc} group {g} -> group {', '.join(str(t) for t in sorted({t[0] for t in targets}))}"
            )
            for t in targets:
                attached.setdefault(t, []).append(g)
        else:
            audit.add(NO_PRIMARY, f"{doc} group {g}")
            pairs[(True, g)] = pair_group(True, g, text)
    out: list[Pair] = []
    for is_cov, g in sorted(pairs, key=lambda k: (not k[0], k[1])):
        for p in pairs[(is_cov, g)]:
            extra = tuple(attached.get((g, p.code), ())) if is_cov else ()
            out.append(Pair(p.covered, p.group, p.code, p.record, p.hcpcs_group, p.pairing, extra))
    paired_codes = {p.code for p in out}
    if by_number:
        for g in sorted(hcpcs):
            if g in secondary and (True, g) not in pairs and (False, g) not in pairs:
                audit.add(SECONDARY_NUMBERED, f"{doc} group {g}")
    else:
        for code in sorted(listed - paired_codes):
            audit.add(CODE_UNPAIRED, f"{doc} {code}")
    return out, by_number
