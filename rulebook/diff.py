"""Change sets between two rulebook versions: a set operation on record time (``v_from``/``v_to``).

Each change carries its fact kind, natural key, a category list (the first is the most severe),
severity, substantive-or-cosmetic, retroactivity, field-level before/after, the valid time and the
provenance of the row that states the new (or, for a removal, the old) fact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlite_utils

from parsers.errors import RulebookError
from rulebook.kinds import KINDS, FactKind

SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}


@dataclass
class Change:
    fact_kind: str
    source: str
    key: str
    categories: list[str]
    severity: str
    substantive: bool
    retroactive: bool
    eff_start: str | None
    eff_end: str | None
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str:
        return self.categories[0]


@dataclass
class ChangeSet:
    v1: int
    v2: int
    changes: list[Change]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.category] = out.get(c.category, 0) + 1
        return dict(sorted(out.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "from_version": self.v1,
            "to_version": self.v2,
            "counts": self.counts(),
            "severity": {
                s: sum(1 for c in self.changes if c.severity == s) for s in ("high", "medium", "low")
            },
            "changes": [asdict(c) | {"category": c.category} for c in self.changes],
        }


def _release_start(release: str | None) -> str | None:
    """ "2020-07" -> "2020-07-01": the first day a release's content is in force."""
    if release and re.fullmatch(r"\d{4}-\d{2}", release):
        return release + "-01"
    return None


def _cosmetic_text(a: str | None, b: str | None) -> bool:
    norm = lambda s: re.sub(r"[\s.,;:]+", " ", (s or "").lower()).strip()  # noqa: E731
    return norm(a) == norm(b)


_NON_COVERED = {"M", "S", "I"}


def classify_hcpcs(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """Categories of one HCPCS change as (category, severity, substantive), and retroactivity."""
    cats: list[tuple[str, str, bool]] = []
    row = after or before
    assert row is not None
    release_start = _release_start(row.get("release"))
    retro = False
    if before is None and after is not None:
        cats.append(("added", "medium", True))
        retro = bool(release_start and after["eff_start"] < release_start)
        return cats, retro
    if after is None and before is not None:
        return [("removed", "high", True)], False
    assert before is not None and after is not None
    b_end, a_end = before["eff_end"], after["eff_end"]
    if b_end != a_end:
        if b_end is None:
            cats.append(("discontinued", "high", True))
        elif a_end is None:
            cats.append(("reactivated", "medium", True))
        elif a_end < b_end:
            cats.append(("termination_moved_earlier", "high", True))
        else:
            cats.append(("termination_moved_later", "medium", True))
        if a_end is not None and release_start and a_end < release_start:
            retro = True
    if before["eff_start"] != after["eff_start"]:
        later = after["eff_start"] > before["eff_start"]
        cats.append(("effective_date_change", "high" if later else "medium", True))
        if release_start and after["eff_start"] < release_start:
            retro = True
    if (before["unit_quantity"], before["unit"]) != (after["unit_quantity"], after["unit"]):
        cats.append(("billing_unit_change", "high", True))
    if before["long_description"] != after["long_description"]:
        cosmetic = _cosmetic_text(before["long_description"], after["long_description"])
        cats.append(("descriptor_change", "low" if cosmetic else "medium", not cosmetic))
    if before["coverage_code"] != after["coverage_code"]:
        narrowing = (after["coverage_code"] or "") in _NON_COVERED
        cats.append(("coverage_code_change", "high" if narrowing else "medium", True))
    if before["pricing_indicator"] != after["pricing_indicator"]:
        cats.append(("pricing_indicator_change", "medium", True))
    if before["short_description"] != after["short_description"]:
        # Short descriptors are 28-character truncations; claims are coded from the long one.
        cats.append(("short_descriptor_change", "low", False))
    if (before["betos"], before["tos"]) != (after["betos"], after["tos"]):
        cats.append(("betos_tos_change", "low", False))
    if before["add_date"] != after["add_date"] and not any(c[0] == "effective_date_change" for c in cats):
        cats.append(("add_date_change", "low", False))
    if before["kind"] != after["kind"]:
        cats.append(("kind_change", "high", True))
    if not cats:
        cats.append(("modified", "low", False))
    return cats, retro


def _generic(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    if before is None:
        return [("added", "medium", True)], False
    if after is None:
        return [("removed", "high", True)], False
    return [("modified", "medium", True)], False


Classifier = Callable[
    [dict[str, Any] | None, dict[str, Any] | None], tuple[list[tuple[str, str, bool]], bool]
]
def classify_mue(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """MUE changes, judged on the value in force from the newer table on. A lowered limit or a
    change to or from MAI 2 (an absolute per-day limit no contractor may override) is high."""
    release_start = _release_start((after or before or {}).get("release"))
    if before is None or before["eff_end"] is not None:
        assert after is not None
        return [("limit_added", "medium", True)], bool(release_start and after["eff_start"] < release_start)
    if after is None or after["eff_end"] is not None:
        return [("limit_withdrawn", "medium", True)], False
    cats: list[tuple[str, str, bool]] = []
    b, a = before["max_units"], after["max_units"]
    if before["published"] and not after["published"]:
        cats.append(("limit_unpublished", "medium", True))
    elif after["published"] and not before["published"]:
        cats.append(("limit_published", "high", True))
    elif b != a and a is not None and b is not None:
        cats.append(("limit_lowered", "high", True) if a < b else ("limit_raised", "low", True))
    if before["mai"] != after["mai"]:
        to_or_from_2 = 2 in (before["mai"], after["mai"])
        cats.append(("mai_change", "high" if to_or_from_2 else "medium", True))
    if before["rationale"] != after["rationale"]:
        cats.append(("rationale_change", "low", False))
    if not cats:
        cats.append(("modified", "low", False))
    return cats, bool(release_start and after["eff_start"] < release_start)


def classify_ptp(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """PTP changes. A new edit or a modifier indicator tightened to 0 denies a line that was paid
    (high); a deletion frees the pair (medium)."""
    ref = after or before
    assert ref is not None
    release_start = _release_start(ref.get("release"))
    if before is None:
        assert after is not None
        if after["eff_end"] is not None:
            return [("ptp_added_deleted", "low", True)], False
        return [("ptp_added", "high", True)], bool(release_start and after["eff_start"] < release_start)
    if after is None:
        return [("ptp_removed", "medium", True)], False
    cats: list[tuple[str, str, bool]] = []
    retro = False
    if before["eff_end"] != after["eff_end"]:
        if after["eff_end"] is not None and before["eff_end"] is None:
            cats.append(("ptp_deleted", "medium", True))
        elif after["eff_end"] is None:
            cats.append(("ptp_reinstated", "high", True))
        else:
            cats.append(("ptp_deletion_date_change", "medium", True))
        retro = bool(after["eff_end"] and release_start and after["eff_end"] < release_start)
    if before["modifier_indicator"] != after["modifier_indicator"]:
        tightened = after["modifier_indicator"] == 0
        cats.append(("ptp_modifier_indicator_change", "high" if tightened else "medium", True))
    if before["rationale"] != after["rationale"] or before["prior_1996"] != after["prior_1996"]:
        cats.append(("ptp_rationale_change", "low", False))
    if not cats:
        cats.append(("modified", "low", False))
    return cats, retro


CLASSIFIERS: dict[str, Classifier] = {
    "hcpcs_codes": classify_hcpcs,
    "unit_limits": classify_mue,
    "ptp_edits": classify_ptp,
}


def register_classifier(kind: str, fn: Classifier) -> None:
    CLASSIFIERS[kind] = fn


def _rows(db: sqlite_utils.Database, kind: FactKind, v1: int, v2: int) -> Iterator[dict[str, Any]]:
    cur = db.execute(
        f"SELECT f.*, a.url AS artifact_url FROM [{kind.name}] f LEFT JOIN artifacts a "
        "ON a.sha256 = f.artifact_sha256 "
        "WHERE (f.v_from > :v1 AND f.v_from <= :v2) OR (f.v_to > :v1 AND f.v_to <= :v2)",
        {"v1": v1, "v2": v2},
    )
    names = [d[0] for d in cur.description]
    for r in cur:
        yield dict(zip(names, r, strict=True))


def _current(row: dict[str, Any], v: int) -> bool:
    return bool(row["v_from"] <= v and (row["v_to"] is None or row["v_to"] > v))


def _pick(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row a change is about among a series' rows: the open-ended one, else the latest."""
    if not rows:
        return None
    return max(rows, key=lambda r: (r["eff_end"] is None, r["eff_start"]))


def diff_versions(
    db: sqlite_utils.Database, v1: int, v2: int, *, sources: list[str] | None = None
) -> ChangeSet:
    if v1 >= v2:
        raise RulebookError(f"diff: the first version must be older than the second (got {v1} and {v2})")
    changes: list[Change] = []
    for kind in KINDS.values():
        if sources and kind.source not in sources:
            continue
        groups: dict[tuple[Any, ...], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for row in _rows(db, kind, v1, v2):
            slot = groups.setdefault(tuple(row[c] for c in kind.diff_key), ([], []))
            if _current(row, v1):
                slot[0].append(row)
            if _current(row, v2):
                slot[1].append(row)
        classify = CLASSIFIERS.get(kind.name, _generic)
        compared = kind.compared + ("eff_start", "eff_end")
        for key, (befores, afters) in groups.items():
            if not befores and not afters:
                continue  # rows that lived and died between the two versions
            before, after = _pick(befores), _pick(afters)
            fields: dict[str, dict[str, Any]] = {}
            for col in compared:
                b = before.get(col) if before else None
                a = after.get(col) if after else None
                if b != a:
                    fields[col] = {"before": b, "after": a}
            if before is not None and after is not None and not fields:
                continue
            cats, retro = classify(before, after)
            cats.sort(key=lambda c: -SEVERITY_RANK[c[1]])
            ref = after or before
            assert ref is not None
            changes.append(
                Change(
                    fact_kind=kind.name,
                    source=kind.source,
                    key="|".join(str(k) for k in key),
                    categories=[c[0] for c in cats],
                    severity=cats[0][1],
                    substantive=any(c[2] for c in cats),
                    retroactive=retro,
                    eff_start=ref["eff_start"],
                    eff_end=ref["eff_end"],
                    fields=fields,
                    provenance={
                        "source": kind.source,
                        "sha256": ref["artifact_sha256"],
                        "locator": ref["locator"],
                        "url": ref["artifact_url"],
                        "release": ref["release"],
                    },
                )
            )
    changes.sort(key=lambda c: (c.source, c.fact_kind, -SEVERITY_RANK[c.severity], c.key))
    return ChangeSet(v1, v2, changes)


# --- rendering --------------------------------------------------------------------------------


def _fmt_fields(c: Change) -> str:
    parts = []
    for name, ba in c.fields.items():
        parts.append(f"{name}: {ba['before']!r} -> {ba['after']!r}")
    return "; ".join(parts)


def render_text(cs: ChangeSet) -> str:
    lines = [f"Changes from version {cs.v1} to version {cs.v2}: {len(cs.changes)}"]
    for cat, n in cs.counts().items():
        lines.append(f"  {cat}: {n}")
    for c in cs.changes:
        flags = " RETROACTIVE" if c.retroactive else ""
        flags += "" if c.substantive else " (cosmetic)"
        lines.append(
            f"[{c.severity}] {c.source} {c.key} {','.join(c.categories)}{flags} "
            f"[{c.eff_start}, {c.eff_end or 'open'}) {_fmt_fields(c)}"
        )
    return "\n".join(lines) + "\n"


def render_json(cs: ChangeSet) -> str:
    return json.dumps(cs.to_json(), indent=2, sort_keys=True) + "\n"


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ") if v is not None else ""


def render_markdown(cs: ChangeSet) -> str:
    out = [f"# Rulebook changes: version {cs.v1} → {cs.v2}", ""]
    out.append(f"{len(cs.changes)} changes: " + ", ".join(f"{n} {k}" for k, n in cs.counts().items()))
    out.append("")
    if cs.changes:
        out.append(
            "| severity | source | code | change | effective | retroactive | before → after | provenance |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for c in cs.changes:
            prov = f"{c.provenance.get('locator')} (sha256 {str(c.provenance.get('sha256'))[:12]})"
            out.append(
                "| "
                + " | ".join(
                    _md_cell(x)
                    for x in (
                        c.severity,
                        c.source,
                        c.key,
                        ", ".join(c.categories) + ("" if c.substantive else " (cosmetic)"),
                        f"[{c.eff_start}, {c.eff_end or 'open'})",
                        "yes" if c.retroactive else "",
                        _fmt_fields(c),
                        prov,
                    )
                )
                + " |"
            )
    return "\n".join(out) + "\n"
