"""Typed record classes that parsers yield and the rulebook loads.

Dates are ``datetime.date``; valid time is half-open ``[eff_start, eff_end)`` with ``None`` for an
open end. A source's inclusive end date (HCPCS TERM DT) is converted to the exclusive form by the
parser, never later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class SourceMeta:
    """What a parser knows about the document besides its bytes.

    ``counts`` is where a parser counts what it skipped or could not read, by reason
    (CONVENTIONS.md 13); the pipeline reports it.
    """

    source: str
    url: str
    sha256: str
    filename: str
    release: str | None = None  # e.g. "2020-07" for the July 2020 quarterly HCPCS file
    counts: Counter[str] = field(default_factory=Counter, compare=False)


@dataclass(frozen=True)
class BillingUnit:
    """The billing unit of a drug code, read from its long descriptor: ``10 mg``, ``1 vial``."""

    quantity: str  # a decimal string, exact as written ("0.1", "10", "100")
    unit: str  # normalised lower-case unit: "mg", "mcg", "g", "ml", "units", "vial", "dose", ...


@dataclass(frozen=True)
class HcpcsRecord:
    """One HCPCS Level II procedure code or modifier as one release file states it."""

    code: str  # "J9035"; modifiers are the two characters ("A1"), never left-padded
    kind: str  # "procedure" | "modifier"
    long_description: str
    short_description: str
    coverage_code: str | None
    pricing_indicator: str | None  # PRICE1 / positions 120-121
    betos: str | None
    tos: str | None  # TOS1 (first type-of-service code)
    add_date: date | None
    action_eff_date: date | None
    term_date: date | None  # inclusive, as CMS publishes it
    action_code: str | None
    billing_unit: BillingUnit | None
    eff_start: date  # first day the code may be used
    eff_end: date | None  # first day it may no longer be used (term_date + 1 day), None = open
    locator: str  # "HCPC2020_JUL_ANWEB.xlsx row 12" or "HCPC2019_CONTR_ANWEB.txt line 40"
