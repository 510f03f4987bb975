"""``policysync browse``: Datasette over the rulebook, read-only, with canned queries for the
questions compliance staff ask (issue 7 part 6).

The rulebook is served in Datasette's immutable mode (opened read-only, never written; the WAL is
checkpointed into the file first). Canned queries are built from the tables the rulebook has when
browse starts: a query whose tables are missing (a source not yet added) is left out rather than
failing. Stale-source status needs each source's cadence, which lives in ``config.toml``, so the
configured cadences are written into that query as a ``VALUES`` list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from rulebook.diff import kind_sources
from rulebook.kinds import KINDS

DB_NAME = "rulebook"
#: Datasette settings: canned queries over national tables (2.6 M PTP rows) need more than the
#: default 1 s; pages stay at Datasette's default of 1,000 rows.
SETTINGS = {"sql_time_limit_ms": 5000, "max_returned_rows": 1000}

_SINCE = "coalesce(nullif(:since, ''), strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days'))"
_AS_OF = "coalesce(nullif(:as_of, ''), date('now'))"

#: Commercial payer coverage rows (parsers/payer.py, m011) and Medicare LCD / article coverage rules
#: (parsers/cms_mcd.py, m008): the columns each part of ``drug_coverage`` needs.
_PAYER_COLUMNS = {"payer", "policy", "code", "drug", "covered", "states", "eff_start", "eff_end", "v_to"}
_MCD_COLUMNS = {"policy", "code", "dx_group", "covered", "jurisdictions", "states", "eff_start", "eff_end", "v_to"}


@dataclass(frozen=True)
class Served:
    db_path: Path
    metadata: dict[str, Any]
    settings: dict[str, int]

    def command_line(self, port: int) -> str:
        """The equivalent ``datasette serve`` command (what --dry-run prints)."""
        sets = " ".join(f"--setting {k} {v}" for k, v in self.settings.items())
        return f"datasette serve -i {self.db_path} -h 127.0.0.1 -p {port} --metadata browse-metadata.json {sets}"


def _columns(db: sqlite_utils.Database) -> dict[str, set[str]]:
    return {t: set(db.table(t).columns_dict) for t in db.table_names()}


def _key_expr(cols: tuple[str, ...]) -> str:
    return " || '|' || ".join(f"coalesce(f.[{c}], '')" for c in cols)


def _changed_facts(cols: dict[str, set[str]]) -> str | None:
    parts = []
    needed = {"v_from", "v_to", "eff_start", "eff_end", "release", "artifact_sha256", "locator"}
    for kind in KINDS.values():
        have = cols.get(kind.name, set())
        if not needed <= have or not set(kind.diff_key) <= have:
            continue
        # A table several sources load (the MCD kinds: cms_mcd and cms_coverage_api; payer kinds) is
        # labelled by the source of the row's artifact, as rulebook/diff.py does; others by the kind's.
        shared = kind.source == "payer" or len(kind_sources(kind)) > 1
        source = f"coalesce(a.source, '{kind.source}')" if shared else f"'{kind.source}'"
        for column, change in (("v_from", "stated"), ("v_to", "superseded or withdrawn")):
            parts.append(
                f"SELECT '{kind.name}' AS fact_table, {source} AS source, v.id AS version, "
                f"v.finished_at, v.review_state, '{change}' AS change, {_key_expr(kind.diff_key)} AS key, "
                "f.eff_start, f.eff_end, f.release, a.url AS source_url, f.artifact_sha256 AS sha256, f.locator "
                f"FROM versions v JOIN [{kind.name}] f ON f.{column} = v.id "
                "LEFT JOIN artifacts a ON a.sha256 = f.artifact_sha256 "
                f"WHERE v.status = 'committed' AND v.finished_at >= {_SINCE} "
                f"AND (:code = '' OR {_key_expr(kind.diff_key)} LIKE '%' || :code || '%')"
            )
    return "\nUNION ALL\n".join(parts) or None


def _drug_coverage(cols: dict[str, set[str]]) -> str | None:
    parts = []
    drug = "trim(:drug)"
    if {"code", "long_description", "coverage_code", "v_to"} <= cols.get("hcpcs_codes", set()):
        parts.append(
            "SELECT 'Medicare' AS payer, 'national' AS jurisdiction, NULL AS policy, h.code, "
            "h.long_description AS drug, 'HCPCS coverage code ' || coalesce(h.coverage_code, '?') AS coverage, "
            "h.eff_start, h.eff_end, a.url AS source_url, h.artifact_sha256 AS sha256, h.locator "
            "FROM hcpcs_codes h LEFT JOIN artifacts a ON a.sha256 = h.artifact_sha256 "
            f"WHERE h.v_to IS NULL AND h.eff_start <= {_AS_OF} AND (h.eff_end IS NULL OR h.eff_end > {_AS_OF}) "
            f"AND (upper(h.code) = upper({drug}) OR h.long_description LIKE '%' || {drug} || '%')"
        )
    if _MCD_COLUMNS <= cols.get("coverage_rules", set()):
        titled = {"policy", "title", "v_to"} <= cols.get("policy_documents", set())
        title = "d.title" if titled else "NULL"
        join = (
            "LEFT JOIN policy_documents d ON d.policy = r.policy AND d.v_to IS NULL "
            "AND d.id = (SELECT MAX(d2.id) FROM policy_documents d2 WHERE d2.policy = r.policy AND d2.v_to IS NULL) "
            if titled
            else ""
        )
        parts.append(
            "SELECT 'Medicare' AS payer, "
            "coalesce(r.jurisdictions, '[]') || ' ' || coalesce(r.states, '[]') AS jurisdiction, r.policy, r.code, "
            f"{title} AS drug, CASE WHEN r.covered THEN 'covered' ELSE 'not covered' END "
            "|| ' for the diagnoses of group ' || r.dx_group AS coverage, "
            "r.eff_start, r.eff_end, a.url AS source_url, r.artifact_sha256 AS sha256, r.locator "
            f"FROM coverage_rules r {join}LEFT JOIN artifacts a ON a.sha256 = r.artifact_sha256 "
            f"WHERE r.v_to IS NULL AND r.eff_start <= {_AS_OF} AND (r.eff_end IS NULL OR r.eff_end > {_AS_OF}) "
            f"AND (upper(r.code) = upper({drug}) OR {title} LIKE '%' || {drug} || '%') "
            "AND (:jurisdiction = '' OR r.jurisdictions LIKE '%\"' || upper(trim(:jurisdiction)) || '\"%' "
            "OR r.states LIKE '%\"' || upper(trim(:jurisdiction)) || '\"%')"
        )
    for table in ("payer_coverage",):
        if not _PAYER_COLUMNS <= cols.get(table, set()):
            continue
        level = "c.coverage_level" if "coverage_level" in cols[table] else "NULL"
        parts.append(
            "SELECT c.payer, CASE WHEN coalesce(c.states, '[]') IN ('[]', '') THEN 'all states' ELSE c.states END "
            "AS jurisdiction, c.policy, c.code, c.drug, "
            f"CASE WHEN c.covered THEN 'covered' ELSE 'not covered' END || coalesce(' (' || {level} || ')', '') "
            "AS coverage, c.eff_start, c.eff_end, a.url AS source_url, c.artifact_sha256 AS sha256, c.locator "
            f"FROM [{table}] c LEFT JOIN artifacts a ON a.sha256 = c.artifact_sha256 "
            f"WHERE c.v_to IS NULL AND c.eff_start <= {_AS_OF} AND (c.eff_end IS NULL OR c.eff_end > {_AS_OF}) "
            f"AND (upper(c.code) = upper({drug}) OR c.drug LIKE '%' || {drug} || '%') "
            "AND (:jurisdiction = '' OR coalesce(c.states, '[]') IN ('[]', '') "
            "OR c.states LIKE '%\"' || upper(trim(:jurisdiction)) || '\"%')"
        )
    if not parts:
        return None
    return "SELECT * FROM (\n" + "\nUNION ALL\n".join(parts) + "\n) ORDER BY payer, jurisdiction, policy, code"


def _stale_sources(cadences: dict[str, int]) -> str | None:
    if not cadences:
        return None
    values = ", ".join(f"('{sid.replace(chr(39), '')}', {int(days)})" for sid, days in sorted(cadences.items()))
    now = "coalesce(nullif(:as_of, ''), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))"
    return (
        f"WITH cfg(source, cadence_days) AS (VALUES {values}), "
        "ok AS (SELECT source, MAX(fetched_at) AS last_successful_fetch FROM fetches "
        "WHERE outcome IN ('fetched', 'not_modified') GROUP BY source) "
        "SELECT cfg.source, CASE WHEN ok.last_successful_fetch IS NULL "
        f"OR julianday({now}) - julianday(ok.last_successful_fetch) > 1.5 * cfg.cadence_days "
        "THEN 'STALE' ELSE 'ok' END AS status, cfg.cadence_days, ok.last_successful_fetch, "
        "(SELECT r.outcome || ' in version ' || r.version_id FROM source_runs r WHERE r.source = cfg.source "
        "ORDER BY r.version_id DESC LIMIT 1) AS last_run "
        "FROM cfg LEFT JOIN ok ON ok.source = cfg.source ORDER BY status = 'ok', cfg.source"
    )


def _versions_this_week(cols: dict[str, set[str]]) -> str:
    quarantined = (
        "(SELECT group_concat(q.message, '; ') FROM quarantines q WHERE q.version_id = v.id)"
        if "quarantines" in cols
        else "NULL"
    )
    return (
        "SELECT v.id AS version, v.kind, v.status, v.review_state, v.started_at, v.finished_at, "
        f"{quarantined} AS quarantined, "
        "(SELECT group_concat(r.source || '=' || r.outcome, ', ') FROM source_runs r WHERE r.version_id = v.id) "
        "AS sources, (SELECT sum(r.added) FROM source_runs r WHERE r.version_id = v.id) AS facts_added, "
        "(SELECT sum(r.removed) FROM source_runs r WHERE r.version_id = v.id) AS facts_removed, "
        "(SELECT sum(r.modified) FROM source_runs r WHERE r.version_id = v.id) AS facts_modified "
        f"FROM versions v WHERE v.finished_at >= {_SINCE} ORDER BY v.id DESC"
    )


def build(db_path: Path, cadences: dict[str, int]) -> Served:
    """The metadata (canned queries) Datasette serves for the rulebook at ``db_path``."""
    db = sqlite_utils.Database(db_path)
    try:
        # Immutable mode reads the main file only: fold the write-ahead log into it first.
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cols = _columns(db)
    finally:
        db.close()
    queries: dict[str, dict[str, Any]] = {}
    coverage = _drug_coverage(cols)
    if coverage:
        queries["drug_coverage"] = {
            "title": "Coverage of a drug by jurisdiction as of a date",
            "description": (
                "drug: a HCPCS code (J9271) or part of a drug name (pembrolizumab); as_of: YYYY-MM-DD (blank: "
                "today); jurisdiction: a state such as MI or a MAC jurisdiction such as J6 (blank: all). HCPCS "
                "rows are national; LCD and billing-article rules apply in their contractors' jurisdictions and "
                "states; payer rows in the states their policy names. Rules as known in the latest version."
            ),
            "sql": coverage,
        }
    changed = _changed_facts(cols)
    if changed:
        queries["facts_changed_this_week"] = {
            "title": "What changed this week: facts stated or ended by recent versions",
            "description": (
                "since: an ISO date or time (blank: 7 days ago); code: part of the fact's key (blank: all). "
                "'stated' rows were added by the version; 'superseded or withdrawn' rows ended in it."
            ),
            "sql": changed,
        }
    queries["versions_this_week"] = {
        "title": "What changed this week: versions",
        "description": "since: an ISO date or time (blank: 7 days ago). Review state and quarantined sources.",
        "sql": _versions_this_week(cols),
    }
    stale = _stale_sources(cadences)
    if stale:
        queries["stale_sources"] = {
            "title": "Which sources are stale",
            "description": (
                "STALE: no successful fetch (200 or 304) within 1.5 x the source's cadence_days in config.toml. "
                "as_of: an ISO time (blank: now)."
            ),
            "sql": stale,
        }
    metadata = {
        "title": "policysync rulebook",
        "description": (
            "The policysync rulebook, read-only. Facts are bitemporal: [eff_start, eff_end) is when a rule "
            "applies, [v_from, v_to) the versions that hold it; v_to empty means current."
        ),
        "databases": {DB_NAME: {"queries": queries}},
    }
    return Served(db_path=db_path, metadata=metadata, settings=dict(SETTINGS))


def datasette_app(served: Served) -> Any:
    """The Datasette instance (immutable, canned queries); its ``app()`` is the ASGI app."""
    from datasette.app import Datasette

    return Datasette([], immutables=[str(served.db_path)], metadata=served.metadata, settings=served.settings)


def serve(served: Served, port: int) -> None:
    """Serve on 127.0.0.1:``port`` until interrupted (Ctrl-C or SIGTERM)."""
    import asyncio

    import uvicorn

    ds = datasette_app(served)
    asyncio.run(ds.invoke_startup())
    uvicorn.run(ds.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="on", workers=1)
