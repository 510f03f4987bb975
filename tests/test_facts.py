"""The bitemporal loader and diff on small constructed releases (the rows below are constructed,
in the real record shapes; the real files are exercised by the parser and pipeline tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from rulebook import versions as vers
from rulebook.db import MIGRATIONS, open_rulebook
from rulebook.diff import diff_versions
from rulebook.facts import as_of, load_release
from rulebook.kinds import PTP_EDITS, UNIT_LIMITS

SHA_Q2 = "a" * 64
SHA_Q3 = "b" * 64
SHA_Q4 = "c" * 64


@pytest.fixture()
def db(tmp_path: Path) -> sqlite_utils.Database:
    return open_rulebook(tmp_path / "rb.db")


def test_migrations_apply_from_empty_and_only_once(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = open_rulebook(path)
    assert {"artifacts", "versions", "fetches", "source_runs", "hcpcs_codes", "unit_limits", "ptp_edits"} <= set(
        db.table_names()
    )
    assert MIGRATIONS.pending(db) == []
    names = [m.name for m in MIGRATIONS.applied(db)]
    db.close()
    db2 = open_rulebook(path)
    assert [m.name for m in MIGRATIONS.applied(db2)] == names


def mue(code: str, units: int | None, mai: int, eff: str, setting: str = "practitioner") -> dict[str, Any]:
    return {
        "setting": setting, "code": code, "max_units": units, "published": int(units is not None), "mai": mai,
        "mai_label": None, "rationale": "Clinical: Data", "eff_start": eff, "eff_end": None,
        "locator": f"MCR_MUE_{eff}.csv row 3",
    }


def commit(db: sqlite_utils.Database, loads: list[tuple[str, list[dict[str, Any]], str]], kind: Any) -> int:
    v = vers.begin_version(db, kind="sync", now="2026-01-01T00:00:00Z")
    with db.atomic():
        for release, rows, sha in loads:
            db.table("artifacts").insert({"sha256": sha, "source": kind.source, "url": f"https://x/{sha[:1]}",
                                          "release": release}, ignore=True)
            load_release(db, kind, rows, version=v, release=release, artifact_sha256=sha)
        vers.finish_version(db, v, status="committed", now="t", summary={}, review_state="none")
    return v


def in_force(db: sqlite_utils.Database, v: int, day: str) -> dict[str, int | None]:
    nxt = "9999-12-31"
    return {r["code"]: r["max_units"] for r in as_of(db, UNIT_LIMITS, v, window=(day, nxt)) if r["eff_start"] <= day}


def test_mue_timeline_keeps_history_and_classifies(db: sqlite_utils.Database) -> None:
    q2 = [mue("J9035", 160, 3, "2026-04-01"), mue("J1745", 150, 3, "2026-04-01"), mue("J9271", 100, 3, "2026-04-01"),
          mue("J9299", 48, 1, "2026-04-01")]
    v1 = commit(db, [("2026-04", q2, SHA_Q2)], UNIT_LIMITS)
    q3 = [mue("J9035", 120, 3, "2026-07-01"), mue("J1745", 150, 3, "2026-07-01"), mue("J9299", 48, 2, "2026-07-01"),
          mue("J9355", None, 3, "2026-07-01")]
    v2 = commit(db, [("2026-07", q3, SHA_Q3)], UNIT_LIMITS)
    # As of v2: Q2 values still apply to Q2 dates of service, Q3 values from July.
    assert in_force(db, v2, "2026-05-15") == {"J9035": 160, "J1745": 150, "J9271": 100, "J9299": 48}
    assert in_force(db, v2, "2026-08-01") == {"J9035": 120, "J1745": 150, "J9299": 48, "J9355": None}
    # An unchanged value stays one interval that began in April.
    j1745 = [r for r in as_of(db, UNIT_LIMITS, v2) if r["code"] == "J1745"]
    assert [(r["eff_start"], r["eff_end"], r["artifact_sha256"]) for r in j1745] == [("2026-04-01", None, SHA_Q2)]
    cs = diff_versions(db, v1, v2)
    got = {c.key: (c.categories, c.severity) for c in cs.changes}
    assert got == {
        "practitioner|J9035": (["limit_lowered"], "high"),
        "practitioner|J9271": (["limit_withdrawn"], "medium"),
        "practitioner|J9299": (["mai_change"], "high"),
        "practitioner|J9355": (["limit_added"], "medium"),
    }
    # Loading the same table again changes nothing.
    v3 = commit(db, [("2026-07", q3, SHA_Q3)], UNIT_LIMITS)
    assert diff_versions(db, v2, v3).changes == []
    # A backfill of an older table never ends newer values.
    v4 = commit(db, [("2026-04", q2, SHA_Q2)], UNIT_LIMITS)
    assert diff_versions(db, v3, v4).changes == []


def test_mue_two_tables_in_one_version(db: sqlite_utils.Database) -> None:
    q2 = [mue("J9035", 160, 3, "2026-04-01")]
    q3 = [mue("J9035", 120, 3, "2026-07-01")]
    q4 = [mue("J9035", 120, 3, "2026-10-01")]
    v = commit(db, [("2026-04", q2, SHA_Q2), ("2026-07", q3, SHA_Q3), ("2026-10", q4, SHA_Q4)], UNIT_LIMITS)
    rows = sorted((r["eff_start"], r["eff_end"], r["max_units"]) for r in as_of(db, UNIT_LIMITS, v))
    assert rows == [("2026-04-01", "2026-07-01", 160), ("2026-07-01", None, 120)]
    # No row is both opened and closed by the same version.
    assert db.execute("SELECT COUNT(*) FROM unit_limits WHERE v_to IS NOT NULL AND v_to <= v_from").fetchone()[0] == 0


def ptp(c1: str, c2: str, eff: str, end: str | None, mi: int) -> dict[str, Any]:
    return {
        "setting": "practitioner", "column1": c1, "column2": c2, "eff_start": eff, "eff_end": end,
        "deletion_date": end, "modifier_indicator": mi, "prior_1996": 0, "rationale": "Standards of medical",
        "locator": "ccipra-v322r0-f1.txt line 7",
    }


def test_ptp_changes(db: sqlite_utils.Database) -> None:
    base = [ptp("96413", "96360", "2010-01-01", None, 1), ptp("96413", "96365", "2010-01-01", None, 1),
            ptp("J9035", "96372", "2015-01-01", None, 1)]
    v1 = commit(db, [("2026-04", base, SHA_Q2)], PTP_EDITS)
    nxt = [ptp("96413", "96360", "2010-01-01", "2026-07-01", 1), ptp("96413", "96365", "2010-01-01", None, 0),
           ptp("J9035", "96372", "2015-01-01", None, 1), ptp("96409", "96411", "2026-07-01", None, 1)]
    v2 = commit(db, [("2026-07", nxt, SHA_Q3)], PTP_EDITS)
    got = {c.key: (c.categories, c.severity) for c in diff_versions(db, v1, v2).changes}
    assert got == {
        "96413|96360|practitioner|2010-01-01": (["ptp_deleted"], "medium"),
        "96413|96365|practitioner|2010-01-01": (["ptp_modifier_indicator_change"], "high"),
        "96409|96411|practitioner|2026-07-01": (["ptp_added"], "high"),
    }
