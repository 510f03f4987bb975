"""Opening the rulebook and its schema. Schema changes only through registered migrations
(CONVENTIONS.md 11): named, ordered, each applied in a transaction with its record."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from parsers.errors import RulebookError

MIGRATIONS = Migrations("policysync")

# Columns every fact table carries besides its own key and payload (DESIGN.md "The rulebook").
FACT_COLUMNS: dict[str, type] = {
    "id": int,
    "release": str,  # the release of the document that stated this row ("2020-07")
    "eff_start": str,  # valid time, half-open ISO dates
    "eff_end": str,
    "v_from": int,  # record time: the versions in which this row is current
    "v_to": int,
    "artifact_sha256": str,  # provenance
    "locator": str,
}


@MIGRATIONS()
def m001_core(db: sqlite_utils.Database) -> None:
    db["artifacts"].create(  # type: ignore[union-attr]
        {
            "sha256": str,
            "source": str,
            "url": str,
            "release": str,
            "filename": str,
            "content_type": str,
            "size": int,
            "etag": str,
            "last_modified": str,
            "first_fetched_at": str,
            "last_fetched_at": str,
            "parse_status": str,  # NULL (not yet), "parsed", "failed"
            "parse_error": str,
            "parsed_in_version": int,
            "record_count": int,
        },
        pk="sha256",
    )
    db["artifacts"].create_index(["source", "url"])  # type: ignore[union-attr]
    db["versions"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "kind": str,  # "sync" | "reparse"
            "started_at": str,
            "finished_at": str,
            "status": str,  # "building" | "committed" | "failed"
            "review_state": str,  # "none" | "pending_review" | "approved" | "rejected"
            "summary": str,  # JSON: per-source outcomes and counts
        },
        pk="id",
    )
    db["fetches"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "version_id": int,
            "source": str,
            "url": str,
            "status": int,
            "outcome": str,  # "fetched" | "not_modified" | "error"
            "sha256": str,
            "etag": str,
            "last_modified": str,
            "fetched_at": str,
            "error": str,
        },
        pk="id",
        foreign_keys=[("version_id", "versions", "id")],
    )
    db["fetches"].create_index(["source", "url"])  # type: ignore[union-attr]
    db["source_runs"].create(  # type: ignore[union-attr]
        {
            "version_id": int,
            "source": str,
            "outcome": str,  # "changed" | "unchanged" | "failed"
            "requests": int,
            "not_modified": int,
            "new_documents": int,
            "records": int,
            "added": int,
            "removed": int,
            "modified": int,
            "counted": str,  # JSON {reason: count}: what parsers and loaders counted (skipped, kept, flagged)
            "error": str,
            "duration_s": float,
        },
        pk=("version_id", "source"),
        foreign_keys=[("version_id", "versions", "id")],
    )


@MIGRATIONS()
def m002_hcpcs_codes(db: sqlite_utils.Database) -> None:
    columns: dict[str, type] = {
        "id": int,
        "code": str,
        "kind": str,
        "long_description": str,
        "short_description": str,
        "coverage_code": str,
        "pricing_indicator": str,
        "betos": str,
        "tos": str,
        "add_date": str,
        "action_eff_date": str,
        "term_date": str,
        "action_code": str,
        "unit_quantity": str,
        "unit": str,
    }
    columns.update({k: v for k, v in FACT_COLUMNS.items() if k != "id"})
    table = db["hcpcs_codes"]
    table.create(columns, pk="id", not_null={"code", "eff_start", "v_from", "artifact_sha256"})  # type: ignore[union-attr]
    table.create_index(["code", "v_to"])  # type: ignore[union-attr]
    table.create_index(["v_from"])  # type: ignore[union-attr]
    table.create_index(["v_to"])  # type: ignore[union-attr]


def _fact_table(db: sqlite_utils.Database, name: str, columns: dict[str, type], not_null: set[str]) -> None:
    cols = dict(columns)
    cols.update({k: v for k, v in FACT_COLUMNS.items() if k not in cols and k != "id"})
    db.table(name).create(
        {"id": int, **cols}, pk="id", not_null=not_null | {"eff_start", "v_from", "artifact_sha256"}
    )
    db.execute(f"CREATE INDEX [idx_{name}_v_from] ON [{name}] (v_from)")
    db.execute(f"CREATE INDEX [idx_{name}_v_to] ON [{name}] (v_to)")


@MIGRATIONS()
def m003_unit_limits(db: sqlite_utils.Database) -> None:
    """NCCI MUE: one row per (setting, code, table effective date); a timeline kind."""
    _fact_table(
        db,
        "unit_limits",
        {
            "setting": str,
            "code": str,
            "max_units": int,
            "published": int,
            "mai": int,
            "mai_label": str,
            "rationale": str,
        },
        {"setting", "code"},
    )
    # Loads look up the current row of a series; the partial index holds only current rows.
    db.execute(
        "CREATE INDEX idx_unit_limits_current ON unit_limits (setting, code, eff_start) WHERE v_to IS NULL"
    )


@MIGRATIONS()
def m004_ptp_edits(db: sqlite_utils.Database) -> None:
    """NCCI PTP: about 2.6 million current rows per setting."""
    _fact_table(
        db,
        "ptp_edits",
        {
            "setting": str,
            "column1": str,
            "column2": str,
            "deletion_date": str,
            "modifier_indicator": int,
            "prior_1996": int,
            "rationale": str,
        },
        {"setting", "column1", "column2"},
    )
    db.execute(
        "CREATE INDEX idx_ptp_edits_current ON ptp_edits (column1, column2, setting, eff_start) "
        "WHERE v_to IS NULL"
    )


@MIGRATIONS()
def m005_audit_log(db: sqlite_utils.Database) -> None:
    """Review decisions (rulebook/review.py). Append-only: triggers refuse UPDATE and DELETE."""
    db["audit_log"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "at": str,  # ISO UTC, passed in by the caller (time is an input)
            "actor": str,
            "action": str,  # "approve" | "reject"
            "version_id": int,
            "note": str,
            "previous_state": str,
            "new_state": str,
            "forced": int,  # 1 when --force overrode an earlier decision
        },
        pk="id",
        not_null={"at", "actor", "action", "version_id", "note", "previous_state", "new_state"},
        foreign_keys=[("version_id", "versions", "id")],
    )
    db.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be updated'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be deleted'); END"
    )


@MIGRATIONS()
def m006_review_guard(db: sqlite_utils.Database) -> None:
    """Quarantined sources per version (policysync/pipeline.py: a source whose parsed record count
    dropped past its configured share against its previous release, or that yielded nothing), and
    what a forced review decision overrode (rulebook/review.py)."""
    db["quarantines"].create(  # type: ignore[union-attr]
        {
            "version_id": int,
            "source": str,
            "reason": str,  # "drop" | "empty"
            "message": str,  # one line, as shown by sync, versions, diff and review
            "release": str,
            "records": int,
            "previous_release": str,
            "previous_records": int,
            "drop_share": float,
            "threshold": float,
        },
        pk=("version_id", "source"),
        not_null={"reason", "message"},
        foreign_keys=[("version_id", "versions", "id")],
    )
    # Adding a column is not an UPDATE: the append-only triggers stay as they are.
    db.execute("ALTER TABLE audit_log ADD COLUMN overrode TEXT")


@MIGRATIONS()
def m007_ops(db: sqlite_utils.Database) -> None:
    """The notification outbox (policysync/notify.py): one row per digest per channel and target.
    A delivery that fails stays undelivered, with its error, and is retried on the next run."""
    db["notifications"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "created_at": str,
            "version_id": int,  # the run that produced the digest
            "channel": str,  # "email" | "webhook"
            "target": str,  # the recipients (comma-separated) or the webhook URL
            "subject": str,
            "payload": str,  # JSON digest
            "attempts": int,
            "last_attempt_at": str,
            "last_error": str,
            "delivered_at": str,  # NULL while undelivered
        },
        pk="id",
        not_null={"created_at", "channel", "target", "payload"},
    )
    db.execute("CREATE INDEX idx_notifications_pending ON notifications (id) WHERE delivered_at IS NULL")


@MIGRATIONS()
def m010_drug_pricing(db: sqlite_utils.Database) -> None:
    """CMS ASP: payment limits per HCPCS code per quarter, and the NDC-HCPCS crosswalk."""
    _fact_table(
        db,
        "drug_prices",
        {
            "code": str,
            "short_description": str,
            "dosage": str,
            "payment_limit": str,  # exact decimal string; NULL where CMS prints N/A
            "coinsurance_pct": str,
            "notes": str,
        },
        {"code"},
    )
    db.execute("CREATE INDEX idx_drug_prices_current ON drug_prices (code, eff_start) WHERE v_to IS NULL")
    _fact_table(
        db,
        "ndc_crosswalk",
        {
            "ndc": str,
            "code": str,
            "labeler": str,
            "drug_name": str,
            "dosage": str,
            "pkg_size": str,
            "pkg_qty": str,
            "bill_units": str,
            "bill_units_pkg": str,
        },
        {"ndc", "code"},
    )
    db.execute(
        "CREATE INDEX idx_ndc_crosswalk_current ON ndc_crosswalk (ndc, code, eff_start) WHERE v_to IS NULL"
    )

def open_rulebook(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the rulebook at ``path`` and apply pending migrations."""
    try:
        db = sqlite_utils.Database(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        MIGRATIONS.apply(db)
    except sqlite_utils.db.sqlite3.DatabaseError as exc:  # type: ignore[attr-defined]
        raise RulebookError(f"{path}: not a usable rulebook database ({exc})") from None
    return db


@MIGRATIONS()
def m011_payer_docs(db: sqlite_utils.Database) -> None:
    """Commercial payer policies (parsers/payer.py): each document version with its four hashes and
    section texts, and the coverage, prior-auth and unit-limit rules read from it. Locators point at
    the PDF page and line (``p12:l34``) or table row (``p12:r3``)."""
    _fact_table(
        db,
        "payer_documents",
        {
            "payer": str,
            "url": str,
            "status": str,  # "parsed" | "needs_review"
            "reason": str,
            "policy": str,
            "title": str,
            "doc_type": str,
            "effective_date": str,
            "revised_date": str,
            "reviewed_date": str,
            "pages": int,
            "text_sha256": str,
            "meta_sha256": str,
            "criteria_sha256": str,
            "codes_sha256": str,
            "sections": str,  # JSON object: section title -> text
            "lines_of_business": str,  # JSON list
            "states": str,  # JSON list
        },
        {"payer", "url", "status"},
    )
    db.execute("CREATE INDEX idx_payer_documents_current ON payer_documents (payer, url) WHERE v_to IS NULL")
    _fact_table(
        db,
        "payer_coverage",
        {
            "payer": str,
            "policy": str,
            "code": str,
            "drug": str,
            "covered": int,
            "coverage_level": str,
            "description": str,
            "diagnoses": str,  # JSON list of dotted billable ICD-10-CM codes
            "diagnosis_specs": str,  # JSON list, as printed
            "restrictions": str,
            "states": str,
        },
        {"payer", "policy", "code", "drug"},
    )
    db.execute(
        "CREATE INDEX idx_payer_coverage_current ON payer_coverage (payer, policy, code, drug) WHERE v_to IS NULL"
    )
    _fact_table(
        db,
        "payer_prior_auth",
        {"payer": str, "policy": str, "code": str, "required": int, "note": str},
        {"payer", "policy", "code"},
    )
    db.execute("CREATE INDEX idx_payer_prior_auth_current ON payer_prior_auth (payer, policy, code) WHERE v_to IS NULL")
    _fact_table(
        db,
        "payer_unit_limits",
        {"payer": str, "policy": str, "code": str, "indication": str, "per": str, "max_units": int},
        {"payer", "policy", "code", "indication", "per"},
    )
    db.execute(
        "CREATE INDEX idx_payer_unit_limits_current ON payer_unit_limits (payer, policy, code, indication, per) "
        "WHERE v_to IS NULL"
    )


@MIGRATIONS()
def m008_coverage(db: sqlite_utils.Database) -> None:
    """Medicare coverage (parsers/cms_mcd.py): LCDs and Billing and Coding Articles, one row per
    document (its current version), and the coverage rules of each article version: a code of a group
    with the covered or noncovered ICD-10-CM codes of the same group number. JSON lists are compact
    arrays (diagnoses dotted, in tabular order)."""
    _fact_table(
        db,
        "policy_documents",
        {
            "policy": str,  # "A52370" | "L33394"
            "doc_type": str,  # "article" | "lcd"
            "version": int,
            "article_type": str,
            "title": str,
            "status": str,  # "A" | "R" | "P"
            "retired_on": str,
            "contractors": str,  # JSON [{"number", "name", "part", "jurisdiction", "states"}]
            "jurisdictions": str,  # JSON ["J6", "JK"]
            "states": str,  # JSON, sub-state ids with their parent states
            "related": str,  # JSON ["L33394"]
            "supersedes": str,  # JSON ids this document reissues
            "superseded_by": str,
        },
        {"policy", "version"},
    )
    db.execute("CREATE INDEX idx_policy_documents_current ON policy_documents (policy) WHERE v_to IS NULL")
    _fact_table(
        db,
        "coverage_rules",
        {
            "policy": str,
            "code": str,
            "dx_group": int,
            "covered": int,
            "policy_version": int,
            "diagnoses": str,  # JSON dotted ICD-10-CM billable codes
            "asterisk": str,  # JSON: the diagnoses flagged with the group's asterisk explanation
            "notes": str,  # JSON: the group paragraphs as plain text
            "jurisdictions": str,
            "states": str,
            "superseded_by": str,
            "supersedes": str,
        },
        {"policy", "code", "dx_group", "covered"},
    )
    db.execute(
        "CREATE INDEX idx_coverage_rules_current ON coverage_rules (policy, code, dx_group, covered) WHERE v_to IS NULL"
    )
    db.execute("CREATE INDEX idx_coverage_rules_code ON coverage_rules (code, eff_start)")


@MIGRATIONS()
def m013_coverage_pairing(db: sqlite_utils.Database) -> None:
    """Coverage rules say how their code was paired with the diagnosis group (``pairing``: "same_group" |
    "named_in_paragraph", parsers/mcd_pairing.py) and carry the group's dual-diagnosis secondary codes
    (``secondary_diagnoses``, JSON). Rules loaded before were all paired by group number, without
    secondary codes, so they are filled in as such (no change shows in the next diff)."""
    db.execute("ALTER TABLE coverage_rules ADD COLUMN pairing TEXT")
    db.execute("ALTER TABLE coverage_rules ADD COLUMN secondary_diagnoses TEXT")
    db.execute("UPDATE coverage_rules SET pairing = 'same_group', secondary_diagnoses = '[]'")


@MIGRATIONS()
def m009_icd10(db: sqlite_utils.Database) -> None:
    """The ICD-10-CM code set (source icd10cm): one row per (code, release date); a timeline kind."""
    _fact_table(
        db,
        "icd10_codes",
        {
            "code": str,  # dotted
            "billable": int,  # 1 valid for a claim, 0 a category/subcategory header
            "short_description": str,  # order file only (NULL from the tabular list)
            "long_description": str,
        },
        {"code", "billable", "long_description"},
    )
    db.execute("CREATE INDEX idx_icd10_codes_current ON icd10_codes (code, eff_start) WHERE v_to IS NULL")
