"""Change sets between two rulebook versions: a set operation on record time (``v_from``/``v_to``).

Each change carries its fact kind, natural key, a category list (the first is the most severe),
severity, substantive-or-cosmetic, retroactivity, field-level before/after, the valid time and the
provenance of the row that states the new (or, for a removal, the old) fact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import sqlite_utils

from parsers.errors import RulebookError
from rulebook import versions as vers
from rulebook.kinds import KINDS, KINDS_BY_SOURCE, FactKind

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
    # Sources quarantined in a version after v1 up to v2 (rows of rulebook.versions.quarantines).
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    # Each configured source's status (rulebook.versions.source_status: last fetch, stale); filled by
    # callers that know the configuration and the time, empty otherwise.
    sources: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.category] = out.get(c.category, 0) + 1
        return dict(sorted(out.items()))

    def severity_counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.changes if c.severity == s) for s in ("high", "medium", "low")}

    def summary(self) -> dict[str, int]:
        substantive = sum(1 for c in self.changes if c.substantive)
        return {
            "total": len(self.changes),
            "substantive": substantive,
            "cosmetic": len(self.changes) - substantive,
            "retroactive": sum(1 for c in self.changes if c.retroactive),
        }

    def stale(self) -> list[dict[str, Any]]:
        return [s for s in self.sources if s.get("stale")]

    def to_json(self) -> dict[str, Any]:
        return {
            "from_version": self.v1,
            "to_version": self.v2,
            "summary": self.summary(),
            "counts": self.counts(),
            "severity": self.severity_counts(),
            "quarantined": [
                {k: q.get(k) for k in QUARANTINE_FIELDS} for q in self.quarantined
            ],
            "sources": self.sources,
            "changes": [_change_json(c) for c in self.changes],
        }


def _change_json(c: Change) -> dict[str, Any]:
    """``asdict(c)`` plus its category, without asdict's deep copy (7x slower on 10,000 changes)."""
    out = {f: getattr(c, f) for f in _CHANGE_FIELDS}
    out["categories"] = list(c.categories)
    out["category"] = c.category
    return out


_CHANGE_FIELDS = tuple(f.name for f in fields(Change))

QUARANTINE_FIELDS = (
    "version_id",
    "source",
    "reason",
    "message",
    "release",
    "records",
    "previous_release",
    "previous_records",
)


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


# --- commercial payer policies ----------------------------------------------------------------


def classify_payer_document(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """A policy document version, judged on its four hashes (parsers.payer_records.change_class):
    changed criteria or code tables are substantive; a re-dated or re-worded-elsewhere document is
    cosmetic; a document that could not be read needs review (its previous rules stay)."""
    from parsers.payer_records import change_class

    cls, _ = change_class(before, after)
    return [
        {
            "added": ("policy_added", "medium", True),
            "removed": ("policy_removed", "medium", True),
            "needs_review": ("needs_review", "high", True),
            "substantive": ("policy_substantive_change", "high", True),
            "cosmetic": ("policy_cosmetic_change", "low", False),
        }.get(cls, ("modified", "low", False))
    ], False


def classify_payer_rule(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """Coverage, prior-auth and unit-limit rules of payer policies: what narrows is high."""
    if before is None:
        return [("payer_rule_added", "medium", True)], False
    if after is None:
        return [("payer_rule_removed", "high", True)], False
    if "covered" in after and before["covered"] and not after["covered"]:
        return [("coverage_withdrawn", "high", True)], False
    if "required" in after and after["required"] and not before["required"]:
        return [("prior_auth_added", "high", True)], False
    if "max_units" in after and (after["max_units"] or 0) < (before["max_units"] or 0):
        return [("limit_lowered", "high", True)], False
    bookkeeping = {"id", "eff_start", "eff_end", "locator", "release", "v_from", "v_to", "artifact_sha256"}
    if all(before.get(k) == v for k, v in after.items() if k not in bookkeeping and not k.startswith("artifact_")):
        # Same rule, only re-dated or moved in the document (a re-dated policy): cosmetic.
        return [("payer_rule_redated", "low", False)], False
    return [("payer_rule_modified", "medium", True)], False


CLASSIFIERS.update(
    {
        "payer_documents": classify_payer_document,
        "payer_coverage": classify_payer_rule,
        "payer_prior_auth": classify_payer_rule,
        "payer_unit_limits": classify_payer_rule,
    }
)


def _rows(db: sqlite_utils.Database, kind: FactKind, v1: int, v2: int) -> Iterator[dict[str, Any]]:
    cur = db.execute(
        f"SELECT f.*, a.url AS artifact_url, a.source AS artifact_source FROM [{kind.name}] f LEFT JOIN artifacts a "
        "ON a.sha256 = f.artifact_sha256 "
        "WHERE (f.v_from > :v1 AND f.v_from <= :v2) OR (f.v_to > :v1 AND f.v_to <= :v2)",
        {"v1": v1, "v2": v2},
    )
    names = [d[0] for d in cur.description]
    for r in cur:
        yield dict(zip(names, r, strict=True))


def _add_unchanged_neighbours(
    db: sqlite_utils.Database,
    kind: FactKind,
    v1: int,
    v2: int,
    groups: dict[tuple[Any, ...], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
) -> None:
    """A stated kind diffed per series (ASP limits: one fact per code per quarter) compares a new
    quarter's row with the code's earlier rows, which did not change between the versions and so are
    not among :func:`_rows`. Add the rows current in both versions to the series that changed."""
    if not groups:
        return
    cur = db.execute(
        f"SELECT f.*, a.url AS artifact_url, a.source AS artifact_source FROM [{kind.name}] f LEFT JOIN artifacts a "
        "ON a.sha256 = f.artifact_sha256 WHERE f.v_from <= :v1 AND (f.v_to IS NULL OR f.v_to > :v2)",
        {"v1": v1, "v2": v2},
    )
    names = [d[0] for d in cur.description]
    for r in cur:
        row = dict(zip(names, r, strict=True))
        slot = groups.get(tuple(row[c] for c in kind.series))
        if slot is not None:
            slot[0].append(row)
            slot[1].append(row)


def _current(row: dict[str, Any], v: int) -> bool:
    return bool(row["v_from"] <= v and (row["v_to"] is None or row["v_to"] > v))


def _pick(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row a change is about among a series' rows: the open-ended one, else the latest."""
    if not rows:
        return None
    return max(rows, key=lambda r: (r["eff_end"] is None, r["eff_start"]))


def kind_sources(kind: FactKind) -> list[str]:
    """The sources whose loads write ``kind``'s table: its own, and every other source that
    KINDS_BY_SOURCE gives the same kind (the Coverage API front end writes the cms_mcd tables)."""
    return [kind.source] + [
        s for s, ks in KINDS_BY_SOURCE.items() if s != kind.source and any(k.name == kind.name for k in ks)
    ]


def _restating_sources(db: sqlite_utils.Database, kind: FactKind, v1: int, v2: int) -> dict[str, str]:
    """policy -> the source of the artifact that stated the policy's rows newly in force at ``v2``
    (the latest such load wins): the load that also ended the rows the new version no longer lists."""
    out: dict[str, str] = {}
    for table in dict.fromkeys(("policy_documents", kind.name)):
        if table not in KINDS or "policy" not in KINDS[table].key + KINDS[table].partition:
            continue
        for policy, source in db.execute(
            f"SELECT f.policy, a.source FROM [{table}] f JOIN artifacts a ON a.sha256 = f.artifact_sha256 "
            "WHERE f.v_from > :v1 AND f.v_from <= :v2 AND (f.v_to IS NULL OR f.v_to > :v2) ORDER BY f.v_from",
            {"v1": v1, "v2": v2},
        ):
            if source:
                out[policy] = source
    return out


def diff_versions(
    db: sqlite_utils.Database, v1: int, v2: int, *, sources: list[str] | None = None
) -> ChangeSet:
    changes = list(iter_changes(db, v1, v2, sources=sources))
    changes.sort(key=lambda c: (c.source, c.fact_kind, -SEVERITY_RANK[c.severity], c.key))
    quarantined = [
        q
        for q in vers.quarantines(db, list(range(v1 + 1, v2 + 1)))
        if not sources or q["source"] in sources
    ]
    return ChangeSet(v1, v2, changes, quarantined=quarantined)


def iter_changes(
    db: sqlite_utils.Database, v1: int, v2: int, *, sources: list[str] | None = None
) -> Iterator[Change]:
    """:func:`diff_versions`' changes one at a time, kind by kind, unsorted: for a caller that only
    counts them (a sync's summary), without holding every change at once (180k for a first load)."""
    if v1 >= v2:
        raise RulebookError(f"diff: the first version must be older than the second (got {v1} and {v2})")
    for kind in KINDS.values():
        # Payer kinds are shared by every configured payer source, the MCD kinds by cms_mcd and
        # cms_coverage_api: each change names the source of its artifact, filtered per change below.
        writers = kind_sources(kind)
        shared = kind.source == "payer" or len(writers) > 1
        if sources and not set(writers) & set(sources) and kind.source != "payer":
            continue
        # A row a newer document version no longer lists ends with the load of that version: a removal
        # is attributed to the source that loaded the policy's newer rows (else to the row's own source).
        restated = _restating_sources(db, kind, v1, v2) if len(writers) > 1 else {}
        groups: dict[tuple[Any, ...], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for row in _rows(db, kind, v1, v2):
            slot = groups.setdefault(tuple(row[c] for c in kind.diff_key), ([], []))
            if _current(row, v1):
                slot[0].append(row)
            if _current(row, v2):
                slot[1].append(row)
        if kind.series and kind.mode == "stated":
            _add_unchanged_neighbours(db, kind, v1, v2, groups)
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
            if kind.name in FIELD_DETAILS:
                fields = FIELD_DETAILS[kind.name](fields, before, after)
            cats, retro = classify(before, after)
            cats.sort(key=lambda c: -SEVERITY_RANK[c[1]])
            ref = after or before
            assert ref is not None
            # A shared parser's kinds (payer; the MCD tables of cms_mcd and cms_coverage_api) name the
            # source the document came from: the artifact's, not the kind's.
            source = (ref.get("artifact_source") or kind.source) if shared else kind.source
            if after is None and ref.get("policy") in restated:
                source = restated[ref["policy"]]
            if sources and source not in sources:
                continue
            yield (
                Change(
                    fact_kind=kind.name,
                    source=source,
                    key="|".join(str(k) for k in key),
                    categories=[c[0] for c in cats],
                    severity=cats[0][1],
                    substantive=any(c[2] for c in cats),
                    retroactive=retro,
                    eff_start=ref["eff_start"],
                    eff_end=ref["eff_end"],
                    fields=fields,
                    provenance={
                        "source": source,
                        "sha256": ref["artifact_sha256"],
                        "locator": ref["locator"],
                        "url": ref["artifact_url"],
                        "release": ref["release"],
                        # Policy-based kinds (LCDs, articles, payer policies) group by their policy.
                        **({"policy": ref["policy"]} if ref.get("policy") else {}),
                    },
                )
            )


# --- rendering --------------------------------------------------------------------------------


def _fmt_fields(c: Change) -> str:
    parts = []
    for name, ba in c.fields.items():
        parts.append(f"{name}: {ba['before']!r} -> {ba['after']!r}")
    return "; ".join(parts)


def _guard_lines(cs: ChangeSet) -> list[str]:
    """One line per quarantined source and per stale source (shown by every format)."""
    lines = [
        f"QUARANTINED in version {q['version_id']}: {q['message']} (approval needs --force and a --note)"
        for q in cs.quarantined
    ]
    for st in cs.stale():
        last = st.get("last_successful_fetch") or "never"
        lines.append(
            f"STALE: {st['source']}: no successful fetch within 1.5 x its {st['cadence_days']}-day cadence "
            f"(last: {last})"
        )
    return lines


def render_text(cs: ChangeSet) -> str:
    lines = [f"Changes from version {cs.v1} to version {cs.v2}: {len(cs.changes)}"]
    lines.extend(_guard_lines(cs))
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


def group_label(c: Change) -> str:
    """The second level of a change set's grouping (source -> policy or table -> code): the policy a
    change belongs to, with its table, when its provenance names one, else its fact table."""
    policy = c.provenance.get("policy")
    return f"{policy} ({c.fact_kind})" if policy else c.fact_kind


def grouped(cs: ChangeSet) -> dict[str, dict[str, list[Change]]]:
    """source -> policy or table -> changes sorted by code (key), in the change set's source order."""
    out: dict[str, dict[str, list[Change]]] = {}
    for c in cs.changes:
        out.setdefault(c.source, {}).setdefault(group_label(c), []).append(c)
    for tables in out.values():
        for rows in tables.values():
            rows.sort(key=lambda c: c.key)
    return out


def _md_link(text: str, url: str | None) -> str:
    if url and re.match(r"https?://", url):
        # Brackets and parentheses would end the link early; % -escape the URL's.
        safe = url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
        label = re.sub(r"([\\\[\]])", r"\\\1", text)
        return f"[{label}]({safe})"
    return text


def render_markdown(cs: ChangeSet) -> str:
    out = [f"# Rulebook changes: version {cs.v1} → {cs.v2}", ""]
    summary, sev = cs.summary(), cs.severity_counts()
    out.append(
        f"{summary['total']} changes ({sev['high']} high, {sev['medium']} medium, {sev['low']} low; "
        f"{summary['substantive']} substantive, {summary['cosmetic']} cosmetic, {summary['retroactive']} retroactive): "
        + ", ".join(f"{n} {k}" for k, n in cs.counts().items())
    )
    out.append("")
    for line in _guard_lines(cs):
        out.append(f"- **{_md_cell(line)}**")
    if cs.quarantined or cs.stale():
        out.append("")
    for source, tables in grouped(cs).items():
        for label, rows in tables.items():
            out.append(f"## {_md_cell(source)} → {_md_cell(label)} ({len(rows)})")
            out.append("")
            out.append(
                "| code | severity | change | effective | retroactive | before → after | provenance |"
            )
            out.append("|---|---|---|---|---|---|---|")
            for c in rows:
                sha = str(c.provenance.get("sha256") or "")
                prov = _md_link(_md_cell(c.provenance.get("locator")), c.provenance.get("url"))
                prov += f" sha256 `{sha}`" if sha else ""
                out.append(
                    "| "
                    + " | ".join(
                        (
                            _md_cell(c.key),
                            _md_cell(c.severity),
                            _md_cell(", ".join(c.categories) + ("" if c.substantive else " (cosmetic)")),
                            _md_cell(f"[{c.eff_start}, {c.eff_end or 'open'})"),
                            "yes" if c.retroactive else "",
                            _md_cell(_fmt_fields(c)),
                            prov,
                        )
                    )
                    + " |"
                )
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# --- Medicare coverage (cms_mcd): policy documents and coverage rules -------------------------------

Fields = dict[str, dict[str, Any]]
FieldDetail = Callable[[Fields, dict[str, Any] | None, dict[str, Any] | None], Fields]


def _codes(v: Any) -> list[str]:
    return list(json.loads(v)) if v else []


def coverage_fields(
    fields: dict[str, dict[str, Any]], before: dict[str, Any] | None, after: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """A coverage rule's diagnoses change as the codes added and removed (not two lists of 500 codes),
    with the article version change and where the article applies."""
    ref = after or before
    assert ref is not None
    # diagnoses, and the dual-diagnosis secondary codes that may accompany them (A52453 group 7)
    for col in ("diagnoses", "secondary_diagnoses"):
        if col not in fields:
            continue
        b = _codes(before.get(col)) if before else []
        a = _codes(after.get(col)) if after else []
        bs, as_ = set(b), set(a)
        added = [c for c in a if c not in bs]
        removed = [c for c in b if c not in as_]
        # the codes are named in the text when a rule changes, counted when it appears or goes as a whole
        both = before is not None and after is not None
        fields[col] = {
            "before": f"{len(b)} codes" + (f" (removed: {', '.join(removed)})" if removed and both else ""),
            "after": f"{len(a)} codes" + (f" (added: {', '.join(added)})" if added and both else ""),
            "added": added,
            "removed": removed,
            "policy_version": [
                before["policy_version"] if before else None,
                after["policy_version"] if after else None,
            ],
            "jurisdictions": _codes(ref.get("jurisdictions")),
        }
    for col in ("notes", "asterisk"):
        if col in fields:
            fields[col] = {"before": _codes(fields[col]["before"]), "after": _codes(fields[col]["after"])}
    return fields


def classify_coverage(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """Coverage rule changes for compliance staff. A diagnosis removed from a drug's coverage (or the
    whole rule ended or withdrawn) narrows coverage: high. A rule reissued under a new document id
    (MAC renumbering) is a supersession, not a removal plus an addition."""
    if before is None:
        assert after is not None
        if _codes(after.get("supersedes")):
            return [("coverage_reissued", "low", True)], False
        if not after["covered"]:
            return [("noncoverage_added", "high", True)], False
        return [("coverage_added", "medium", True)], False
    if after is None:
        if before.get("superseded_by"):
            return [("coverage_superseded", "low", True)], False
        return [("coverage_removed" if before["covered"] else "noncoverage_removed", "high", True)], False
    cats: list[tuple[str, str, bool]] = []
    b, a = set(_codes(before["diagnoses"])), set(_codes(after["diagnoses"]))
    if b - a:
        cats.append(("diagnoses_removed", "high" if before["covered"] else "medium", True))
    if a - b:
        cats.append(("diagnoses_added", "medium" if after["covered"] else "high", True))
    # Secondary (dual-diagnosis) codes: a claim may carry them only with a primary diagnosis. One taken
    # away denies claims that paired it with a primary: it narrows coverage (high). One added lets a
    # claim carry another code beside a primary that is supported anyway: low. The codes are in the
    # change's fields (secondary_diagnoses: added / removed).
    sb, sa = set(_codes(before.get("secondary_diagnoses"))), set(_codes(after.get("secondary_diagnoses")))
    if sb - sa:
        cats.append(("secondary_diagnoses_removed", "high", True))
    if sa - sb:
        cats.append(("secondary_diagnoses_added", "low", True))
    if before["eff_end"] != after["eff_end"] and after["eff_end"] is not None:
        if after.get("superseded_by"):
            cats.append(("coverage_superseded", "low", True))
        else:
            cats.append(("coverage_ended", "high", True))
    if before["eff_start"] != after["eff_start"]:
        cats.append(("effective_date_change", "medium", True))
    if before["policy_version"] != after["policy_version"]:
        cats.append(("policy_version_change", "low", False))
    if before["notes"] != after["notes"] or before["asterisk"] != after["asterisk"]:
        cats.append(("notes_change", "medium", True))
    if not cats:
        cats.append(("modified", "low", False))
    return cats, False


def classify_policy_document(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    if before is None:
        assert after is not None
        if _codes(after.get("supersedes")):
            return [("policy_reissued", "low", True)], False
        return [("policy_added", "medium", True)], False
    if after is None:
        return [("policy_removed", "high", True)], False
    cats: list[tuple[str, str, bool]] = []
    if before["status"] != after["status"] or before["retired_on"] != after["retired_on"]:
        if after.get("superseded_by"):
            cats.append(("policy_superseded", "low", True))
        elif after["status"] == "R" or after["retired_on"]:
            cats.append(("policy_retired", "high", True))
        else:
            cats.append(("policy_status_change", "medium", True))
    if before["version"] != after["version"]:
        cats.append(("policy_version_change", "low", True))
    if before["contractors"] != after["contractors"] or before["states"] != after["states"]:
        cats.append(("policy_jurisdiction_change", "medium", True))
    if before["title"] != after["title"]:
        cats.append(("policy_title_change", "low", False))
    if before["related"] != after["related"]:
        cats.append(("policy_links_change", "low", False))
    if not cats:
        cats.append(("modified", "low", False))
    return cats, False


CLASSIFIERS.update({"coverage_rules": classify_coverage, "policy_documents": classify_policy_document})
FIELD_DETAILS: dict[str, FieldDetail] = {"coverage_rules": coverage_fields}


def classify_icd10(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """ICD-10-CM codes (a timeline per code): a code deleted by a release, or one that stops being
    billable (it became a header with children), breaks claims that carry it: high."""
    if before is None:
        return [("icd10_code_added", "medium", True)], False
    if after is None or (after["eff_end"] is not None and before["eff_end"] is None):
        return [("icd10_code_deleted", "high", True)], False
    cats: list[tuple[str, str, bool]] = []
    if before["billable"] and not after["billable"]:
        cats.append(("icd10_became_non_billable", "high", True))
    elif after["billable"] and not before["billable"]:
        cats.append(("icd10_became_billable", "medium", True))
    if (before["short_description"], before["long_description"]) != (
        after["short_description"],
        after["long_description"],
    ):
        cats.append(("icd10_description_change", "low", True))
    if not cats:
        cats.append(("modified", "low", False))
    return cats, False


CLASSIFIERS["icd10_codes"] = classify_icd10


# --- CMS ASP drug pricing (parsers/cms_asp.py) ------------------------------------------------


def _num(v: Any) -> float | None:
    try:
        return None if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return None


ASP_MARGIN_HIGH = 0.05  # a payment limit cut by more than 5 % eats a practice's drug margin: high


def classify_drug_price(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """ASP payment limits, one fact per code per quarter (key code, eff_start), diffed per code
    (the kind's series): a new quarter's limit is compared with the quarter before. A limit that
    decreased cuts the margin on every line billed (medium; high beyond
    :data:`ASP_MARGIN_HIGH`), an increase is low. A dosage change changes the units billed: medium."""
    if before is None:
        return [("price_added", "low", True)], False
    if after is None:
        return [("price_removed", "medium", True)], False
    cats: list[tuple[str, str, bool]] = []
    b, a = _num(before.get("payment_limit")), _num(after.get("payment_limit"))
    if b is not None and a is not None and a != b:
        if a < b:
            cut = (b - a) / b if b else 1.0
            cats.append(("payment_limit_decreased", "high" if cut > ASP_MARGIN_HIGH else "medium", True))
        else:
            cats.append(("payment_limit_increased", "low", True))
    elif (b is None) != (a is None):
        cats.append(("payment_limit_withdrawn" if a is None else "payment_limit_published", "medium", True))
    if before.get("dosage") != after.get("dosage"):
        cats.append(("dosage_change", "medium", True))
    if before.get("coinsurance_pct") != after.get("coinsurance_pct"):
        cats.append(("coinsurance_change", "low", True))
    if not cats:
        new_quarter = before.get("eff_start") != after.get("eff_start")
        cats.append(("next_quarter_same_limit" if new_quarter else "modified", "low", False))
    return cats, False


def classify_ndc_mapping(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[list[tuple[str, str, bool]], bool]:
    """NDC -> HCPCS crosswalk rows: a mapping removed (or ended) or its billing units changed makes
    claims that bill the NDC with the old units wrong: high."""
    if before is None:
        return [("ndc_mapping_added", "low", True)], False
    if after is None or (after.get("eff_end") is not None and before.get("eff_end") is None):
        return [("ndc_mapping_removed", "high", True)], False
    cats: list[tuple[str, str, bool]] = []
    units = ("bill_units_pkg", "bill_units")
    if any(before.get(k) != after.get(k) for k in units):
        cats.append(("ndc_billing_units_change", "high", True))
    if (before.get("dosage"), before.get("pkg_size"), before.get("pkg_qty")) != (
        after.get("dosage"),
        after.get("pkg_size"),
        after.get("pkg_qty"),
    ):
        cats.append(("ndc_package_change", "medium", True))
    if not cats:
        cats.append(("modified", "low", False))
    return cats, False


CLASSIFIERS.update({"drug_prices": classify_drug_price, "ndc_crosswalk": classify_ndc_mapping})
