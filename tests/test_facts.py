"""The bitemporal loader and diff on small constructed releases (the rows below are constructed,
in the real record shapes; the real files are exercised by the parser and pipeline tests)."""

from __future__ import annotations

import sys
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


# --- the chunked PTP load (parse_chunks + load_chunks) against the row load ------------------------
#
# The real recorded slice, and releases constructed here from it (lines swapped, repeated or edited:
# each says so). Every scenario is loaded twice, once row by row (parse -> load_release) and once in
# chunks (parse_chunks -> load_chunks, with small blocks so that a 154-row file makes many chunks);
# the two rulebooks must hold the same rows, ids included, and report the same counts.

PTP_SLICE = "ccipra-v322r0-f1.excerpt.txt"
PTP_HEADER_LINES = 6


def _ptp_text(shared_data: Path) -> tuple[list[str], list[str]]:
    lines = (shared_data / "ncci_ptp" / PTP_SLICE).read_bytes().decode("latin-1").split("\r\n")
    assert lines[-1] == ""
    return lines[:PTP_HEADER_LINES], lines[PTP_HEADER_LINES:-1]


def _ptp_body(head: list[str], rows: list[str]) -> bytes:
    return ("\r\n".join(head + rows) + "\r\n").encode("latin-1")


def _ptp_meta(name: str, release: str) -> Any:
    from parsers.records import SourceMeta

    return SourceMeta(source="cms_ncci_ptp", url=f"https://x/{name}", sha256="", filename=name, release=release)


Doc = tuple[str, str, bytes, str]  # file name, release, body, artifact sha256


def _load_ptp_versions(path: Path, versions: list[list[Doc]], chunked: bool) -> tuple[list[Any], list[Any]]:
    """Each inner list is one version's documents, each in its own savepoint as sync does. Returns
    every ptp_edits row and, per document, (load counts, rows offered, the parser's counts)."""
    from parsers.cms_ncci_ptp import parse, parse_chunks
    from rulebook.facts import load_chunks

    db = open_rulebook(path)
    reports = []
    for docs in versions:
        v = vers.begin_version(db, kind="sync", now="2026-01-01T00:00:00Z")
        with db.atomic():
            for name, release, body, sha in docs:
                meta = _ptp_meta(name, release)
                with db.atomic():
                    if chunked:
                        counts, n = load_chunks(db, PTP_EDITS, parse_chunks(body, meta), version=v, release=release,
                                                artifact_sha256=sha)
                    else:
                        rows = [PTP_EDITS.values(r) for r in parse(body, meta)]
                        n = len(rows)
                        counts = load_release(db, PTP_EDITS, rows, version=v, release=release, artifact_sha256=sha)
                reports.append((counts, n, dict(meta.counts)))
            vers.finish_version(db, v, status="committed", now="t", summary={}, review_state="none")
    rows = list(db.query("SELECT * FROM ptp_edits ORDER BY id"))
    db.close()
    return rows, reports


def _same_both_ways(tmp_path: Path, versions: list[list[Doc]]) -> tuple[list[Any], list[Any]]:
    by_rows = _load_ptp_versions(tmp_path / "rows.db", versions, chunked=False)
    by_chunks = _load_ptp_versions(tmp_path / "chunks.db", versions, chunked=True)
    assert by_chunks[1] == by_rows[1]  # counts, rows offered, parser counts
    assert by_chunks[0] == by_rows[0]  # every row, id and provenance included
    return by_rows


@pytest.fixture()
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from parsers import cms_ncci_ptp

    monkeypatch.setattr(cms_ncci_ptp, "_BLOCK_CHARS", 700)  # ~10 lines a chunk


def test_chunked_first_load_inserts_directly_and_equals_the_row_load(
    shared_data: Path, tmp_path: Path, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parsers.cms_ncci_ptp import parse_chunks
    from rulebook import facts

    head, rows = _ptp_text(shared_data)
    body = _ptp_body(head, rows)
    chunks = list(parse_chunks(body, _ptp_meta("ccipra-v322r0-f1.txt", "2026-07")))
    assert len(chunks) > 10 and sum(c.count for c in chunks) == len(rows) == 154
    assert all(c.ordered for c in chunks)
    # A first load never needs the stage table: each chunk goes straight into ptp_edits.
    real_stage = facts._stage
    staged: list[str] = []

    def stage_spy(*a: Any) -> Any:
        staged.append("stage")
        return real_stage(*a)

    monkeypatch.setattr(facts, "_stage", stage_spy)
    doc = ("ccipra-v322r0-f1.txt", "2026-07", body, SHA_Q3)
    (stored, reports) = _load_ptp_versions(tmp_path / "direct.db", [[doc]], chunked=True)
    assert staged == []
    assert reports[0][0].added == 154 and reports[0][1] == 154
    monkeypatch.setattr(facts, "_stage", real_stage)
    stored_rows, _ = _same_both_ways(tmp_path, [[doc]])
    assert stored == stored_rows
    # Line 12 of the slice: 0001A/90473, effective and deleted 20220101, indicator 9 (never in force).
    db = open_rulebook(tmp_path / "direct.db")
    got = db.execute(
        "SELECT setting, eff_start, eff_end, deletion_date, modifier_indicator, prior_1996, locator, v_from, v_to, "
        "artifact_sha256 FROM ptp_edits WHERE column1 = '0001A' AND column2 = '90473'"
    ).fetchall()
    assert got == [("practitioner", "2022-01-01", "2022-01-01", "2022-01-01", 9, 0, "ccipra-v322r0-f1.txt line 12", 1,
                    None, SHA_Q3)]


def _q4(rows: list[str]) -> list[str]:
    """A constructed 2026 Q4 release from the slice's rows: line 20's indicator flipped, line 30
    deleted 20260930, line 40 dropped from the file, a new edit after line 50; the rest unchanged."""
    out = list(rows)
    f = out[13].split("\t")
    f[5] = "0" if f[5] == "1" else "1"
    out[13] = "\t".join(f)
    f = out[23].split("\t")
    f[4] = "20260930"
    out[23] = "\t".join(f)
    c1, c2 = out[44].split("\t")[:2]
    c2 = c2[:4] + ("9" if c2[4] != "9" else "8")
    new = f"{c1}\t{c2}\t\t20261001\t*\t1\tMisuse of Column Two code with Column One code"
    del out[33]
    out.insert(44, new)
    return sorted(out, key=lambda line: line[:11])


def test_chunked_second_quarter_compares_like_the_row_load(
    shared_data: Path, tmp_path: Path, small_blocks: None
) -> None:
    head, rows = _ptp_text(shared_data)
    q3 = ("ccipra-v322r0-f1.txt", "2026-07", _ptp_body(head, rows), SHA_Q3)
    q4 = ("ccipra-v323r0-f1.txt", "2026-10", _ptp_body(head, _q4(rows)), SHA_Q4)
    stored, reports = _same_both_ways(tmp_path, [[q3], [q4]])
    counts = reports[1][0]
    # Two changed edits replaced, one added, 151 unchanged; the dropped edit stays in force.
    assert (counts.added, counts.modified, counts.removed, counts.unchanged) == (1, 2, 0, 151)
    assert sum(1 for r in stored if r["v_to"] is None) == 154 + 1  # current rows
    # The same quarter loaded again changes nothing, chunked or not.
    (tmp_path / "again").mkdir()
    _, again = _same_both_ways(tmp_path / "again", [[q3], [q3]])
    assert (again[1][0].added, again[1][0].modified, again[1][0].unchanged) == (0, 0, 154)


def test_chunked_out_of_order_and_repeated_keys_fall_back_to_the_stage(
    shared_data: Path, tmp_path: Path, small_blocks: None
) -> None:
    """Constructed: two lines swapped past the middle (out of order), and a pair stated three times,
    the first effective date again on the third line (a key twice, not adjacent). The chunks before
    went straight into ptp_edits and must move to the stage: first occurrence wins, as row by row."""
    head, rows = _ptp_text(shared_data)
    bad = list(rows)
    bad[100], bad[101] = bad[101], bad[100]
    f = bad[120].split("\t")
    again = "\t".join(f[:3] + ["20240101"] + f[4:])
    bad[121:121] = [again, bad[120].replace("CPT Manual", "CPT manual")]
    assert len(bad) == 156
    doc = ("ccipra-v322r0-f1.txt", "2026-07", _ptp_body(head, bad), SHA_Q3)
    stored, reports = _same_both_ways(tmp_path, [[doc]])
    counts, offered, parsed = reports[0]
    assert offered == 156 and parsed["out_of_order"] == 1
    assert counts.added == 155 and counts.skipped == {"duplicate key in release": 1}
    assert len(stored) == 155


def test_chunked_documents_that_overlap_in_one_version(shared_data: Path, tmp_path: Path, small_blocks: None) -> None:
    """Constructed: two parts of one release whose ranges overlap (lines 1-100 and 80-154, the shared
    lines once with another rationale), loaded in one version: the second part's overlapping chunks
    compare against the first's rows (opened by the same version, so replaced in place)."""
    head, rows = _ptp_text(shared_data)
    part2 = [r.rsplit("\t", 1)[0] + "\tConstructed rationale" if i < 20 else r for i, r in enumerate(rows[79:])]
    docs = [
        ("ccipra-v322r0-f1.txt", "2026-07", _ptp_body(head, rows[:100]), SHA_Q2),
        ("ccipra-v322r0-f2.txt", "2026-07", _ptp_body(head, part2), SHA_Q3),
    ]
    stored, reports = _same_both_ways(tmp_path, [docs])
    assert len(stored) == 154 and sum(1 for r in stored if r["v_to"] is None) == 154
    # Lines 80-99 restated with another rationale (replaced), line 100 the same (kept), 54 new.
    assert sum(1 for r in stored if r["artifact_sha256"] == SHA_Q3) == 74
    assert [c[0].modified for c in reports] == [0, 0]  # rows of an uncommitted version are replaced in place
    assert [(c[0].added, c[0].unchanged) for c in reports] == [(100, 0), (54, 1)]


def test_chunked_blank_lines_and_a_small_tail_cache(
    shared_data: Path, tmp_path: Path, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constructed: blank lines inside the rows (each ends a chunk; line numbers stay those of the
    file), and a tail cache of two entries, so tails are forgotten and sent to SQLite again."""
    from parsers import cms_ncci_ptp

    monkeypatch.setattr(cms_ncci_ptp, "_MAX_STATES", 2)
    head, rows = _ptp_text(shared_data)
    spaced = rows[:30] + [""] + rows[30:31] + ["  ", ""] + rows[31:]
    doc = ("ccipra-v322r0-f1.txt", "2026-07", _ptp_body(head, spaced), SHA_Q3)
    stored, reports = _same_both_ways(tmp_path, [[doc]])
    assert reports[0][2]["blank_line"] == 3 and len(stored) == 154


def test_chunked_load_stopped_midway_joins_the_parser_thread(
    shared_data: Path, tmp_path: Path, small_blocks: None
) -> None:
    """A stop while loading (SIGTERM reaches ``on_chunk``) and a parse error on the parser's thread
    both surface in the caller, and the parser thread is gone afterwards."""
    import threading

    from parsers.cms_ncci_ptp import parse_chunks
    from parsers.errors import ParseError
    from rulebook.facts import load_chunks

    head, rows = _ptp_text(shared_data)
    db = open_rulebook(tmp_path / "rb.db")
    v = vers.begin_version(db, kind="sync", now="2026-01-01T00:00:00Z")
    seen: list[int] = []
    interval = sys.getswitchinterval()

    def stop() -> None:
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt

    meta = _ptp_meta("ccipra-v322r0-f1.txt", "2026-07")
    with pytest.raises(KeyboardInterrupt), db.atomic():
        load_chunks(db, PTP_EDITS, parse_chunks(_ptp_body(head, rows), meta), version=v, release="2026-07",
                    artifact_sha256=SHA_Q3, on_chunk=stop)
    assert seen == [1, 1, 1] and "policysync-parse" not in {t.name for t in threading.enumerate()}
    assert sys.getswitchinterval() == interval  # shortened only while the parser thread ran
    assert db.execute("SELECT COUNT(*) FROM ptp_edits").fetchone()[0] == 0
    broken = rows[:120] + ["0001A\t0591T\t\t20220101"] + rows[120:]
    with pytest.raises(ParseError, match=r"^ccipra-v322r0-f1.txt line 127: expected 7 tab-separated fields, found 4$"):
        with db.atomic():
            load_chunks(db, PTP_EDITS, parse_chunks(_ptp_body(head, broken), meta), version=v, release="2026-07",
                        artifact_sha256=SHA_Q3)
    assert "policysync-parse" not in {t.name for t in threading.enumerate()}
    assert db.execute("SELECT COUNT(*) FROM ptp_edits").fetchone()[0] == 0
