"""Fact kinds: how each record type becomes rows of its bitemporal fact table.

A new source plugs in here: its table (a migration in ``rulebook.db``), its natural key, the payload
columns whose change is a change of the fact, and what absence from a newer release means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parsers.records import HcpcsRecord


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
    # The record type this kind is made from (a source may yield several).
    record_type: type | None = None

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

KINDS: dict[str, FactKind] = {HCPCS_CODES.name: HCPCS_CODES}
KINDS_BY_SOURCE: dict[str, list[FactKind]] = {}
for _k in KINDS.values():
    KINDS_BY_SOURCE.setdefault(_k.source, []).append(_k)
