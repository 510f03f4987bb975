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


SETTINGS = ("practitioner", "outpatient_hospital", "dme")


@dataclass(frozen=True)
class UnitLimitRecord:
    """One NCCI MUE row: the most units of ``code`` a provider reports in ``setting``.

    ``max_units`` is None when CMS does not publish the value (blank or marked confidential):
    unpublished is never 0, which means "not payable".
    """

    code: str
    setting: str  # one of SETTINGS
    max_units: int | None
    published: bool
    mai: int | None  # MUE Adjudication Indicator 1 | 2 | 3
    mai_label: str | None  # "Date of Service Edit: Clinical"
    rationale: str | None
    eff_start: date  # the table's effective date (from its file name)
    eff_end: date | None  # None: in force until a later table says otherwise
    locator: str


@dataclass(slots=True)  # not frozen: 2.6 M a setting, and frozen construction costs 40 % of the parse
class PtpRecord:
    """One NCCI procedure-to-procedure edit: ``column2`` is not paid with ``column1`` on the same
    date of service unless the modifier indicator allows a modifier. ``eff_end`` is the half-open
    end derived from the published deletion date (see parsers/cms_ncci_ptp.py for the rule)."""

    column1: str
    column2: str
    setting: str  # one of SETTINGS
    prior_1996: bool
    eff_start: date
    eff_end: date | None
    deletion_date: date | None  # as published ("*" = None)
    modifier_indicator: int  # 0 not allowed, 1 allowed, 9 not applicable
    rationale: str
    locator: str


@dataclass(frozen=True)
class PriceRecord:
    """One row of the CMS ASP payment limit file: the Medicare Part B payment limit of ``code`` per
    billing unit (``dosage``, as CMS writes it: "10 MG") during one quarter.

    ``payment_limit`` is an exact decimal string, or None where CMS prints "N/A" (the MAC prices it).
    """

    code: str
    short_description: str
    dosage: str
    payment_limit: str | None
    coinsurance_pct: str | None  # "20.000"; absent from files before 2023 Q2
    notes: str | None
    eff_start: date
    eff_end: date | None  # the day after the file's "through" date
    locator: str


@dataclass(frozen=True)
class NdcRecord:
    """One row of the CMS ASP NDC-HCPCS crosswalk: how many billing units of ``code`` one package
    of ``ndc`` holds (``bill_units_pkg``), during one quarter."""

    ndc: str  # 5-4-2 with dashes ("50242-0060-01"), or the UPC/catalogue number CMS prints instead
    code: str
    labeler: str
    drug_name: str
    dosage: str  # HCPCS dosage ("10 MG")
    pkg_size: str  # decimal strings, exact as written
    pkg_qty: str
    bill_units: str
    bill_units_pkg: str
    eff_start: date
    eff_end: date | None
    locator: str
