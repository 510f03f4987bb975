"""Fact kinds: how each record type becomes rows of its bitemporal fact table.

A new source plugs in here: its table (a migration in ``rulebook.db``), its natural key, the payload
columns whose change is a change of the fact, and what absence from a newer release means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parsers.records import HcpcsRecord, NdcRecord, PriceRecord, PtpRecord, UnitLimitRecord


@dataclass(frozen=True)
class FactKind:
    name: str  # also the table name
    source: str
    key: tuple[str, ...]
    # Compared between releases: a difference here is a change of the fact. Valid time
    # (eff_start, eff_end) is always compared.
    compared: tuple[str, ...]
    # Stored with the row but not compared: CMS bookkeeping that moves every quarter without the
    # rule changing (HCPCS ACTION CD is "the latest action only", DOMAIN.md 3.4).
    stored: tuple[str, ...]
    # What it means when a key of the current rulebook is missing from a newer release:
    # "retain" — the fact stays in force (HCPCS drops discontinued codes from the file after
    # four years; their history is still true); "close" — the release withdraws it.
    absent: str
    to_row: Callable[[Any], dict[str, Any]]
    # "stated": rows carry their own valid time; "timeline": a release is a table in force from its
    # effective date until the next (see rulebook.facts).
    mode: str = "stated"
    # Columns a release covers as a whole (a MUE table is one setting): absence is judged inside them.
    partition: tuple[str, ...] = ()
    # Timeline kinds: the key without eff_start — the thing whose value changes over time.
    series: tuple[str, ...] = ()
    # Whether rows missing from a newer release are counted in the run report (retain mode).
    count_absent: bool = True
    # The record type this kind is made from (a source may yield several).
    record_type: type | None = None
    # Optional fast path: the record straight to a tuple in ``row_columns`` order (PTP: 2.6 M rows,
    # where building a dict per row costs more than parsing the line).
    to_values: Callable[[Any], tuple[Any, ...]] | None = None

    def values(self, rec: Any) -> tuple[Any, ...]:
        if self.to_values is not None:
            return self.to_values(rec)
        row = self.to_row(rec)
        return tuple(row.get(c) for c in self.row_columns)

    @property
    def row_columns(self) -> tuple[str, ...]:
        """Every column a parser row fills: key, payload, valid time, locator (each once)."""
        out: list[str] = []
        for c in self.key + self.compared + self.stored + ("eff_start", "eff_end", "locator"):
            if c not in out:
                out.append(c)
        return tuple(out)

    @property
    def diff_key(self) -> tuple[str, ...]:
        """What a change is about: the series for timeline kinds, else the natural key."""
        return self.series or self.key


def _iso(d: Any) -> str | None:
    return d.isoformat() if d is not None else None


def hcpcs_row(rec: HcpcsRecord) -> dict[str, Any]:
    return {
        "code": rec.code,
        "kind": rec.kind,
        "long_description": rec.long_description,
        "short_description": rec.short_description,
        "coverage_code": rec.coverage_code,
        "pricing_indicator": rec.pricing_indicator,
        "betos": rec.betos,
        "tos": rec.tos,
        "add_date": _iso(rec.add_date),
        "action_eff_date": _iso(rec.action_eff_date),
        "term_date": _iso(rec.term_date),
        "action_code": rec.action_code,
        "unit_quantity": rec.billing_unit.quantity if rec.billing_unit else None,
        "unit": rec.billing_unit.unit if rec.billing_unit else None,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": _iso(rec.eff_end),
        "locator": rec.locator,
    }


HCPCS_CODES = FactKind(
    name="hcpcs_codes",
    source="cms_hcpcs",
    key=("code",),
    compared=(
        "kind",
        "long_description",
        "short_description",
        "coverage_code",
        "pricing_indicator",
        "betos",
        "tos",
        "add_date",
        "term_date",
        "unit_quantity",
        "unit",
    ),
    stored=("action_eff_date", "action_code"),
    absent="retain",
    to_row=hcpcs_row,
    record_type=HcpcsRecord,
)

def unit_limit_row(rec: UnitLimitRecord) -> dict[str, Any]:
    return {
        "setting": rec.setting,
        "code": rec.code,
        "max_units": rec.max_units,
        "published": int(rec.published),
        "mai": rec.mai,
        "mai_label": rec.mai_label,
        "rationale": rec.rationale,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": _iso(rec.eff_end),
        "locator": rec.locator,
    }


UNIT_LIMITS = FactKind(
    name="unit_limits",
    source="cms_ncci_mue",
    key=("setting", "code", "eff_start"),
    compared=("max_units", "published", "mai", "rationale"),
    stored=("mai_label",),
    # A quarterly MUE table is the whole list for its setting: a code it no longer lists has no
    # MUE from the table's date on.
    absent="close",
    to_row=unit_limit_row,
    mode="timeline",
    partition=("setting",),
    series=("setting", "code"),
    record_type=UnitLimitRecord,
)


def ptp_row(rec: PtpRecord) -> dict[str, Any]:
    return {
        "setting": rec.setting,
        "column1": rec.column1,
        "column2": rec.column2,
        "deletion_date": _iso(rec.deletion_date),
        "modifier_indicator": rec.modifier_indicator,
        "prior_1996": int(rec.prior_1996),
        "rationale": rec.rationale,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": _iso(rec.eff_end),
        "locator": rec.locator,
    }


def ptp_values(rec: PtpRecord) -> tuple[Any, ...]:
    """``ptp_row`` as a tuple in PTP_EDITS.row_columns order (checked by a test)."""
    dd, ee = rec.deletion_date, rec.eff_end
    return (
        rec.column1,
        rec.column2,
        rec.setting,
        rec.eff_start.isoformat(),
        dd.isoformat() if dd else None,
        rec.modifier_indicator,
        int(rec.prior_1996),
        rec.rationale,
        ee.isoformat() if ee else None,
        rec.locator,
    )


PTP_EDITS = FactKind(
    name="ptp_edits",
    source="cms_ncci_ptp",
    key=("column1", "column2", "setting", "eff_start"),
    compared=("deletion_date", "modifier_indicator", "prior_1996", "rationale"),
    stored=(),
    # CMS keeps deleted edits in the file with their deletion date; a row that vanishes is kept in
    # force as last stated. Each setting ships in four parts (f1..f4), so absence from one part
    # says nothing and is not even counted.
    absent="retain",
    count_absent=False,
    to_row=ptp_row,
    record_type=PtpRecord,
    to_values=ptp_values,
)



def price_row(rec: PriceRecord) -> dict[str, Any]:
    return {
        "code": rec.code,
        "short_description": rec.short_description,
        "dosage": rec.dosage,
        "payment_limit": rec.payment_limit,
        "coinsurance_pct": rec.coinsurance_pct,
        "notes": rec.notes,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": _iso(rec.eff_end),
        "locator": rec.locator,
    }


DRUG_PRICES = FactKind(
    name="drug_prices",
    source="cms_asp",
    # Each quarterly file states its own period ("Effective ... through ..."), so a quarter's limit
    # is its own fact; a later quarter never rewrites an earlier one.
    key=("code", "eff_start"),
    compared=("payment_limit", "dosage", "coinsurance_pct"),
    stored=("short_description", "notes"),
    # Stated facts, but a diff is about the code: the new quarter's limit is compared with the
    # quarter before it, so a quarter-on-quarter cut shows as payment_limit_decreased.
    series=("code",),
    # A code missing from a later quarter's file simply has no limit then; its past limits stay true.
    absent="retain",
    count_absent=False,
    to_row=price_row,
    record_type=PriceRecord,
)


def ndc_row(rec: NdcRecord) -> dict[str, Any]:
    return {
        "ndc": rec.ndc,
        "code": rec.code,
        "labeler": rec.labeler,
        "drug_name": rec.drug_name,
        "dosage": rec.dosage,
        "pkg_size": rec.pkg_size,
        "pkg_qty": rec.pkg_qty,
        "bill_units": rec.bill_units,
        "bill_units_pkg": rec.bill_units_pkg,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": _iso(rec.eff_end),
        "locator": rec.locator,
    }


NDC_CROSSWALK = FactKind(
    name="ndc_crosswalk",
    source="cms_asp",
    key=("ndc", "code", "eff_start"),
    compared=("bill_units_pkg", "bill_units", "dosage", "pkg_size", "pkg_qty"),
    stored=("labeler", "drug_name"),
    absent="retain",
    count_absent=False,
    to_row=ndc_row,
    record_type=NdcRecord,
)

KINDS: dict[str, FactKind] = {k.name: k for k in (HCPCS_CODES, UNIT_LIMITS, PTP_EDITS, DRUG_PRICES, NDC_CROSSWALK)}
# --- commercial payer policies (parsers/payer.py): one parser for every `<payer>_<docset>` source ---


def _json(v: Any) -> str:
    import json

    return json.dumps(list(v) if isinstance(v, tuple) else v, sort_keys=True, ensure_ascii=False)


def payer_document_row(rec: Any) -> dict[str, Any]:
    return {
        "payer": rec.payer,
        "url": rec.url,
        "status": rec.status,
        "reason": rec.reason,
        "policy": rec.policy,
        "title": rec.title,
        "doc_type": rec.doc_type,
        "effective_date": _iso(rec.effective_date),
        "revised_date": _iso(rec.revised_date),
        "reviewed_date": _iso(rec.reviewed_date),
        "pages": rec.pages,
        "text_sha256": rec.text_sha256,
        "meta_sha256": rec.meta_sha256,
        "criteria_sha256": rec.criteria_sha256,
        "codes_sha256": rec.codes_sha256,
        "sections": _json(rec.sections),
        "lines_of_business": _json(rec.lines_of_business),
        "states": _json(rec.states),
        "eff_start": _iso(rec.eff_start),
        "eff_end": None,
        "locator": rec.locator,
    }


def payer_coverage_row(rec: Any) -> dict[str, Any]:
    return {
        "payer": rec.payer,
        "policy": rec.policy,
        "code": rec.code,
        "drug": rec.drug,
        "covered": int(rec.covered),
        "coverage_level": rec.coverage_level,
        "description": rec.description,
        "diagnoses": _json(rec.diagnoses),
        "diagnosis_specs": _json(rec.diagnosis_specs),
        "restrictions": rec.restrictions,
        "states": _json(rec.states),
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": None,
        "locator": rec.locator,
    }


def payer_prior_auth_row(rec: Any) -> dict[str, Any]:
    return {
        "payer": rec.payer,
        "policy": rec.policy,
        "code": rec.code,
        "required": int(rec.required),
        "note": rec.note,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": None,
        "locator": rec.locator,
    }


def payer_unit_limit_row(rec: Any) -> dict[str, Any]:
    return {
        "payer": rec.payer,
        "policy": rec.policy,
        "code": rec.code,
        "indication": rec.indication,
        "per": rec.per or "",
        "max_units": rec.max_units,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": None,
        "locator": rec.locator,
    }


def _payer_kinds() -> tuple[FactKind, ...]:
    from parsers.payer_records import (
        PayerCoverageRecord,
        PayerDocumentRecord,
        PayerPriorAuthRecord,
        PayerUnitLimitRecord,
    )

    # A payer policy is the whole statement of its rules: a code, limit or prior-auth rule a new
    # version no longer lists ends there ("close"), but only within that payer's policy (partition).
    # A document that needs review yields no rules, so nothing of its policy is closed.
    return (
        FactKind(
            name="payer_documents",
            source=PAYER_SOURCE,
            key=("payer", "url"),
            compared=(
                "status", "reason", "policy", "title", "effective_date", "revised_date", "reviewed_date",
                "text_sha256", "meta_sha256", "criteria_sha256", "codes_sha256",
            ),
            stored=("doc_type", "pages", "sections", "lines_of_business", "states"),
            absent="retain",
            count_absent=False,
            to_row=payer_document_row,
            record_type=PayerDocumentRecord,
        ),
        FactKind(
            name="payer_coverage",
            source=PAYER_SOURCE,
            key=("payer", "policy", "code", "drug"),
            compared=(
                "covered", "coverage_level", "description", "diagnoses", "diagnosis_specs", "restrictions", "states",
            ),
            stored=(),
            absent="close",
            partition=("payer", "policy"),
            to_row=payer_coverage_row,
            record_type=PayerCoverageRecord,
        ),
        FactKind(
            name="payer_prior_auth",
            source=PAYER_SOURCE,
            key=("payer", "policy", "code"),
            compared=("required", "note"),
            stored=(),
            absent="close",
            partition=("payer", "policy"),
            to_row=payer_prior_auth_row,
            record_type=PayerPriorAuthRecord,
        ),
        FactKind(
            name="payer_unit_limits",
            source=PAYER_SOURCE,
            key=("payer", "policy", "code", "indication", "per"),
            compared=("max_units",),
            stored=(),
            absent="close",
            partition=("payer", "policy"),
            to_row=payer_unit_limit_row,
            record_type=PayerUnitLimitRecord,
        ),
    )


# The parser name every configured payer source shares (`parser = "payer"` in its config entry).
PAYER_SOURCE = "payer"
PAYER_KINDS: tuple[FactKind, ...] = _payer_kinds()
KINDS.update({k.name: k for k in PAYER_KINDS})

KINDS_BY_SOURCE: dict[str, list[FactKind]] = {}
for _k in KINDS.values():
    KINDS_BY_SOURCE.setdefault(_k.source, []).append(_k)


# --- Medicare coverage (parsers/cms_mcd.py; parsers/mcd_build.py for every MCD front end) ---------


def _mcd_json(v: Any) -> str:
    import json

    return json.dumps(list(v), ensure_ascii=False, separators=(",", ":"))


def policy_document_row(rec: Any) -> dict[str, Any]:
    contractors = [
        {"number": c.number, "name": c.name, "part": c.part, "jurisdiction": c.jurisdiction, "states": list(c.states)}
        for c in rec.contractors
    ]
    return {
        "policy": rec.policy,
        "doc_type": rec.doc_type,
        "version": rec.version,
        "article_type": rec.article_type,
        "title": rec.title,
        "status": rec.status,
        "retired_on": _iso(rec.retired_on),
        "contractors": _mcd_json(contractors),
        "jurisdictions": _mcd_json(rec.jurisdictions),
        "states": _mcd_json(rec.states),
        "related": _mcd_json(rec.related),
        "supersedes": _mcd_json(rec.supersedes),
        "superseded_by": rec.superseded_by,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": _iso(rec.eff_end),
        "locator": rec.locator,
    }


def coverage_rule_row(rec: Any) -> dict[str, Any]:
    return {
        "policy": rec.policy,
        "code": rec.code,
        "dx_group": rec.group,
        "covered": int(rec.covered),
        "policy_version": rec.policy_version,
        "diagnoses": _mcd_json(rec.diagnoses),
        "asterisk": _mcd_json(rec.asterisk),
        "notes": _mcd_json(rec.notes),
        "jurisdictions": _mcd_json(rec.jurisdictions),
        "states": _mcd_json(rec.states),
        "superseded_by": rec.superseded_by,
        "supersedes": _mcd_json(rec.supersedes),
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": _iso(rec.eff_end),
        "locator": rec.locator,
        "pairing": rec.pairing,
        "secondary_diagnoses": _mcd_json(rec.secondary_diagnoses),
    }


def _mcd_kinds() -> tuple[FactKind, ...]:
    from parsers.mcd_records import CoverageRuleRecord, PolicyDocumentRecord

    return (
        # One row per LCD or article: a new version replaces the row (the diff shows the version change).
        # A document missing from a newer export stays in force, counted (the Coverage API path sends
        # only changed documents).
        FactKind(
            name="policy_documents",
            source="cms_mcd",
            key=("policy",),
            compared=(
                "version", "title", "status", "retired_on", "contractors", "jurisdictions", "states", "related",
                "superseded_by", "supersedes",
            ),
            stored=("doc_type", "article_type"),
            absent="retain",
            # the article and LCD exports are separate documents: absence is judged within a type
            partition=("doc_type",),
            to_row=policy_document_row,
            record_type=PolicyDocumentRecord,
        ),
        # One row per article, code, group and covered flag. An article version is the whole statement of
        # its rules: a code or group it no longer lists ends, but only within that article (partition).
        FactKind(
            name="coverage_rules",
            source="cms_mcd",
            key=("policy", "code", "dx_group", "covered"),
            compared=(
                "policy_version", "diagnoses", "asterisk", "notes", "superseded_by", "pairing", "secondary_diagnoses",
            ),
            stored=("jurisdictions", "states", "supersedes"),
            absent="close",
            partition=("policy",),
            to_row=coverage_rule_row,
            record_type=CoverageRuleRecord,
        ),
    )  # fmt: skip


MCD_KINDS: tuple[FactKind, ...] = _mcd_kinds()
KINDS.update({k.name: k for k in MCD_KINDS})
for _k in MCD_KINDS:
    KINDS_BY_SOURCE.setdefault(_k.source, []).append(_k)
# The Coverage API front end (parsers/cms_coverage_api.py) yields the same records into the same tables.
KINDS_BY_SOURCE["cms_coverage_api"] = list(MCD_KINDS)


# --- ICD-10-CM code set (parsers/icd10cm_files.py, source icd10cm) ---------------------------------


def icd10_code_row(rec: Any) -> dict[str, Any]:
    return {
        "code": rec.code,
        "billable": int(rec.billable),
        "short_description": rec.short_description,
        "long_description": rec.long_description,
        "eff_start": rec.eff_start.isoformat(),
        "eff_end": _iso(rec.eff_end),
        "locator": rec.locator,
    }


def _icd10_kind() -> FactKind:
    from parsers.icd10cm_files import Icd10CodeRecord

    # Each release (FY base from October 1, the April 1 update) is the whole code set, in force until
    # the next: a timeline. A code the next release leaves out is deleted from that date; a code that
    # gains children becomes a header (non-billable). Both are high severity in the diff.
    return FactKind(
        name="icd10_codes",
        source="icd10cm",
        key=("code", "eff_start"),
        compared=("billable", "short_description", "long_description"),
        stored=(),
        absent="close",
        to_row=icd10_code_row,
        mode="timeline",
        series=("code",),
        record_type=Icd10CodeRecord,
    )


ICD10_CODES = _icd10_kind()
KINDS[ICD10_CODES.name] = ICD10_CODES
KINDS_BY_SOURCE.setdefault(ICD10_CODES.source, []).append(ICD10_CODES)
