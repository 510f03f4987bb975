"""Fact kinds: how each record type becomes rows of its bitemporal fact table.

A new source plugs in here: its table (a migration in ``rulebook.db``), its natural key, the payload
columns whose change is a change of the fact, and what absence from a newer release means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parsers.records import HcpcsRecord, PtpRecord, UnitLimitRecord


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

KINDS: dict[str, FactKind] = {k.name: k for k in (HCPCS_CODES, UNIT_LIMITS, PTP_EDITS)}
KINDS_BY_SOURCE: dict[str, list[FactKind]] = {}
for _k in KINDS.values():
    KINDS_BY_SOURCE.setdefault(_k.source, []).append(_k)
