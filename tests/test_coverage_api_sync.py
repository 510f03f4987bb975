"""The weekly Coverage API path end to end (issue 4, parts 2 and 9): ``sync --source cms_coverage_api``
against the loopback mirror's constructed API, week after week: the first run loads the versions
created in its week, the next run starts where the fetch log says the last one ended and loads only
the new version of A52370, and bad answers (a truncated JSON body, a 500) fail that document with one
line while every previous fact stays in force.

The tables behind the API are the recorded ``mcd/export_2026-01`` ones completed with the constructed
``tests/fixtures/cms_mcd`` ones; "next week's" A52370 v129 is constructed here from v128 (one covered
diagnosis withdrawn). Expectations are read from the fixture CSVs with ``csv``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from click.testing import CliRunner

from policysync.cli import cli
from policysync.config import Home, init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.mirror_coverage_api import API_HOST, CoverageApi, coverage_api, publish_tables, read_tables
from policysync.mirror_faults import Fault
from policysync.mirror_mcd import export_zip, publish_export
from policysync.pipeline import SyncReport, sync
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"
EXPORT = "mcd/export_2026-01"
SOURCE = "cms_coverage_api"
THURSDAY_0108 = datetime(2026, 1, 8, tzinfo=UTC)  # constructed export refresh dates (Thursdays)
THURSDAY_0115 = datetime(2026, 1, 15, tzinfo=UTC)
VERSIONED = (
    "article", "article_x_contractor", "article_related_documents", "article_x_hcpc_code",
    "article_x_hcpc_code_group", "article_x_icd10_covered", "article_x_icd10_covered_group",
    "article_x_icd10_noncovered", "article_x_icd10_noncovered_group", "article_x_primary_jurisdiction",
)  # fmt: skip


def fixture_rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((FIXTURES / name).read_bytes().decode("cp1252"), newline="")))


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = resolve_home(tmp_path / "home")
    init_home(h)
    return h


@contextmanager
def rulebook(home: Home) -> Iterator[sqlite_utils.Database]:
    db = open_rulebook(home.db_path)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def mirror(shared_data: Path) -> Iterator[MirrorServer]:
    with MirrorServer(shared_data, sources=[SOURCE]) as m:
        api = coverage_api(m)
        publish_tables(m, read_tables([FIXTURES]))
        api.schedule = (date(2025, 12, 28), date(2026, 1, 1))  # the week the fixtures' versions were created
        yield m


def run(home: Home, m: MirrorServer) -> SyncReport:
    return sync(home, sources=[SOURCE], mirror=m.url)


def source(report: SyncReport) -> Any:
    (found,) = [s for s in report.sources if s.source == SOURCE]
    return found


def current(db: sqlite_utils.Database, table: str, policy: str) -> list[dict[str, Any]]:
    return list(db.query(f"SELECT * FROM [{table}] WHERE policy = ? AND v_to IS NULL ORDER BY code, dx_group, covered"
                         if table == "coverage_rules" else
                         f"SELECT * FROM [{table}] WHERE policy = ? AND v_to IS NULL", [policy]))  # fmt: skip


def next_version(
    api: CoverageApi, article: str, old: str, new: str, updated: str, drop_dx: str, drop_code: str = ""
) -> None:
    """Publish version ``new`` of ``article`` (a copy of ``old`` created on ``updated``, without the
    covered diagnosis ``drop_dx`` and, if given, the HCPCS code ``drop_code``) beside the versions
    already served."""
    tables = api.tables()
    out: dict[str, list[dict[str, str]]] = {}
    for t in VERSIONED:
        rows = list(tables.get(t, []))
        for r in tables.get(t, []):
            if r.get("article_id", "").strip() == article and r.get("article_version", "").strip() == old:
                if t == "article_x_icd10_covered" and r["icd10_code_id"] == drop_dx:
                    continue
                if t == "article_x_hcpc_code" and r["hcpc_code_id"] == drop_code:
                    continue
                copy = dict(r, article_version=new)
                if "last_updated" in copy:
                    copy["last_updated"] = f"{updated} 10:00:00.000000000"
                rows.append(copy)
        out[t] = rows
    api.publish(out)


def test_weekly_syncs_load_only_what_changed(home: Home, mirror: MirrorServer) -> None:
    api = coverage_api(mirror)
    first = run(home, mirror)
    rep = source(first)
    assert first.status == "committed" and rep.outcome == "changed", rep.errors
    created = sorted(
        f"A{r['article_id']}" for r in fixture_rows("article.csv") if r["last_updated"][:10] == "2025-12-22"
    )
    assert rep.documents_parsed == len(created) and rep.errors == []
    j9035 = [r for r in fixture_rows("article_x_icd10_covered.csv") if (r["article_id"], r["article_version"],
             r["icd10_covered_group"]) == ("52370", "128", "1")]  # fmt: skip
    with rulebook(home) as db:
        (doc,) = current(db, "policy_documents", "A52370")
        assert doc["version"] == 128 and json.loads(doc["jurisdictions"]) == ["J6", "JK"]
        (rule,) = [r for r in current(db, "coverage_rules", "A52370") if (r["code"], r["dx_group"]) == ("J9035", 1)]
        assert rule["policy_version"] == 128 and rule["covered"] == 1
        assert "C34.90" in json.loads(rule["diagnoses"])
        assert {d for d in json.loads(rule["diagnoses"])} >= {r["icd10_code_id"] for r in j9035}
        prov = db.execute(
            "SELECT a.url, a.release FROM artifacts a WHERE a.sha256 = ?", [rule["artifact_sha256"]]
        ).fetchone()
        assert prov == (f"https://{API_HOST}/v1/data/article/?articleid=52370&ver=128", "2025-12-28")
        assert (
            sorted(r["policy"] for r in db.query("SELECT policy FROM policy_documents WHERE v_to IS NULL")) == created
        )

    # a week later: A52370 v129 withdraws C34.90; A52369 did not change
    next_version(api, "52370", "128", "129", "2026-01-05", drop_dx="C34.90")
    api.schedule = (date(2026, 1, 11), date(2026, 1, 15))
    mirror.requests.clear()
    second = run(home, mirror)
    rep = source(second)
    assert rep.outcome == "changed" and rep.documents_parsed == 1, rep.errors
    listings = [r.path for r in mirror.requests if "/reports/whats-new/local/" in r.path]
    assert "start_date=20251229" in listings[0]  # where the first run ended (its window's end)
    details = {r.path.split("?")[1] for r in mirror.requests if "/v1/data/article/" in r.path}
    assert all("articleid=52370" in q for q in details)  # A52369 v16 is not fetched again
    with rulebook(home) as db:
        (doc,) = current(db, "policy_documents", "A52370")
        assert doc["version"] == 129
        (rule,) = [r for r in current(db, "coverage_rules", "A52370") if (r["code"], r["dx_group"]) == ("J9035", 1)]
        assert rule["policy_version"] == 129 and "C34.90" not in json.loads(rule["diagnoses"])
        assert rule["eff_start"] == "2026-01-01"
        (a52369,) = current(db, "policy_documents", "A52369")
        assert a52369["v_from"] == first.version  # untouched


def test_bad_answers_keep_previous_facts(home: Home, mirror: MirrorServer) -> None:
    api = coverage_api(mirror)
    assert source(run(home, mirror)).outcome == "changed"
    with rulebook(home) as db:
        before = current(db, "coverage_rules", "A52370")

    # next week: v129, but its icd10-covered answer is cut off mid-body (a 200 with truncated JSON)
    next_version(api, "52370", "128", "129", "2026-01-05", drop_dx="C34.90")
    api.schedule = (date(2026, 1, 11), date(2026, 1, 15))
    path = f"/{API_HOST}/v1/data/article/icd10-covered?articleid=52370&ver=129"
    token = api.issue_token()
    whole = api.handle(path.partition("?")[0], path.partition("?")[2], {"authorization": f"Bearer {token}"})
    assert whole is not None and whole[0] == 200
    mirror.fault(path, Fault.answer(200, {"Content-Type": "application/json"}, whole[2][: len(whole[2]) // 2]))
    report = run(home, mirror)
    rep = source(report)
    assert rep.outcome == "failed" and report.exit_code in (1, 3)
    (line,) = rep.errors
    assert line.startswith(f"https://{API_HOST}/v1/data/article/?articleid=52370&ver=129: A52370 v129: ")
    assert "data/article/icd10-covered: incomplete or invalid JSON body" in line and "\n" not in line
    with rulebook(home) as db:
        assert current(db, "coverage_rules", "A52370") == before

    # the week after: the API answers 500 on that call (after the retries): a fetch error, facts kept;
    # the week is listed again, because the failed version held the start back
    mirror.clear_fault(path)
    mirror.fault(path, Fault.burst(500))
    mirror.requests.clear()
    report = run(home, mirror)
    rep = source(report)
    assert rep.outcome == "failed"
    assert any("A52370 v129: data/article/icd10-covered: HTTP 500" in e for e in rep.errors)
    assert "start_date=20251229" in next(r.path for r in mirror.requests if "/whats-new/" in r.path)
    with rulebook(home) as db:
        assert current(db, "coverage_rules", "A52370") == before

    # and when the API answers whole again, the version loads
    mirror.clear_fault(path)
    rep = source(run(home, mirror))
    assert rep.outcome == "changed", rep.errors
    with rulebook(home) as db:
        (rule,) = [r for r in current(db, "coverage_rules", "A52370") if (r["code"], r["dx_group"]) == ("J9035", 1)]
        assert rule["policy_version"] == 129 and "C34.90" not in json.loads(rule["diagnoses"])


def test_a_bundle_that_does_not_parse_keeps_previous_facts(home: Home, mirror: MirrorServer) -> None:
    """A whole answer the parser cannot use (here: an article answer naming another version) fails that
    document with one line; the facts stay."""
    api = coverage_api(mirror)
    assert source(run(home, mirror)).outcome == "changed"
    with rulebook(home) as db:
        before = current(db, "coverage_rules", "A52370")
    next_version(api, "52370", "128", "129", "2026-01-05", drop_dx="C34.90")
    api.schedule = (date(2026, 1, 11), date(2026, 1, 15))
    path = f"/{API_HOST}/v1/data/article/?articleid=52370&ver=129"
    token = api.issue_token()
    old = api.handle(path.partition("?")[0], "articleid=52370&ver=128", {"authorization": f"Bearer {token}"})
    assert old is not None
    mirror.fault(path, Fault.answer(200, {"Content-Type": "application/json"}, old[2]))
    rep = source(run(home, mirror))
    assert rep.outcome == "failed"
    (line,) = rep.errors
    assert line == (
        "article_52370_v129.json: the data/article/ answer has no article 52370 version 129 (found: 52370 v128)"
    )
    with rulebook(home) as db:
        assert current(db, "coverage_rules", "A52370") == before
        status = db.execute("SELECT parse_status FROM artifacts WHERE filename = 'article_52370_v129.json'").fetchone()
        assert status == ("failed",)


# --- the two paths together: the bulk export, then the API's newer version, then the next export ---


def csv_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(path.read_bytes().decode("cp1252"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def csv_bytes(columns: list[str], rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, columns, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode("cp1252")


def export_with_v129(shared_data: Path) -> bytes:
    """current_article.zip whose A52370 is version 129 (v128 relabelled, C34.90 withdrawn): the export a
    week after the API published v129."""
    replace: dict[str, bytes] = {}
    for t in VERSIONED:
        path = FIXTURES / f"{t}.csv"
        if not path.is_file():
            path = shared_data / EXPORT / "current_article" / "csv" / f"{t}.csv"
        columns, rows = csv_table(path)
        out = []
        for r in rows:
            if (r.get("article_id"), r.get("article_version")) == ("52370", "128"):
                if t == "article_x_icd10_covered" and r["icd10_code_id"] == "C34.90":
                    continue
                r = dict(r, article_version="129")
            out.append(r)
        replace[t] = csv_bytes(columns, out)
    dirs = [shared_data / EXPORT / "current_article" / "csv", FIXTURES]
    return export_zip("current_article", dirs, replace=replace)


def test_export_and_api_versions_are_ordered_by_snapshot(home: Home, shared_data: Path) -> None:
    with MirrorServer(shared_data, sources=["cms_mcd", SOURCE]) as m:
        dirs = [shared_data / EXPORT / "current_article" / "csv", FIXTURES]
        publish_export(m, "current_article", export_zip("current_article", dirs), last_modified=THURSDAY_0108)
        lcd_dirs = [shared_data / EXPORT / "current_lcd" / "csv", FIXTURES]
        publish_export(m, "current_lcd", export_zip("current_lcd", lcd_dirs), last_modified=THURSDAY_0108)
        first = sync(home, sources=["cms_mcd"], mirror=m.url)
        assert first.status == "committed" and first.sources[0].outcome == "changed", first.sources[0].errors
        with rulebook(home) as db:
            (doc,) = current(db, "policy_documents", "A52370")
            assert doc["version"] == 128 and doc["release"] == "2026-01-08"
            states_128 = json.loads(doc["states"])
            assert "NY" in states_128

        # v129 is created on Monday 2026-01-05: after the 01-08 export's snapshot (captured through Sunday
        # 01-04) but before its refresh date. The API lists it in the snapshot refreshed 2026-01-15.
        api = coverage_api(m)
        publish_tables(m, read_tables([FIXTURES]))
        next_version(api, "52370", "128", "129", "2026-01-05", drop_dx="C34.90")
        api.schedule = (date(2026, 1, 11), date(2026, 1, 15))
        rep = source(sync(home, sources=[SOURCE], mirror=m.url))
        assert rep.outcome == "changed" and rep.documents_parsed == 1, rep.errors
        with rulebook(home) as db:
            (doc,) = current(db, "policy_documents", "A52370")
            # released as of its snapshot (captured through 01-11), so the 01-08 export's v128 does not hold it back
            assert (doc["version"], doc["release"]) == (129, "2026-01-11")
            assert json.loads(doc["jurisdictions"]) == ["J6", "JK"]
            assert json.loads(doc["states"]) == []  # the API's gap (README: "What the API lacks")
            (rule,) = [r for r in current(db, "coverage_rules", "A52370") if (r["code"], r["dx_group"]) == ("J9035", 1)]
            assert rule["policy_version"] == 129 and "C34.90" not in json.loads(rule["diagnoses"])

        # the export of the same snapshot (refreshed Thursday 01-15) restates v129, with its states
        publish_export(m, "current_article", export_with_v129(shared_data), last_modified=THURSDAY_0115)
        third = sync(home, sources=["cms_mcd"], mirror=m.url)
        assert third.sources[0].outcome == "changed", third.sources[0].errors
        with rulebook(home) as db:
            (doc,) = current(db, "policy_documents", "A52370")
            assert doc["version"] == 129 and json.loads(doc["states"]) == states_128
            (rule,) = [r for r in current(db, "coverage_rules", "A52370") if (r["code"], r["dx_group"]) == ("J9035", 1)]
            assert rule["policy_version"] == 129 and "C34.90" not in json.loads(rule["diagnoses"])


def test_changes_loaded_through_the_api_are_the_apis(home: Home, shared_data: Path) -> None:
    """The export (cms_mcd) loads A52370 v128; the API (cms_coverage_api) then loads v129 (constructed:
    C34.90 withdrawn, Q5160 no longer listed). The MCD tables are shared by both sources, so each change
    names the source of the artifact that made it: the diagnosis withdrawn, the version change and the
    Q5160 rules that v129 ended (their rows came from the export) are the API's, `diff --source
    cms_coverage_api` shows them and the API's report counts them as waiting for review."""
    with MirrorServer(shared_data, sources=["cms_mcd", SOURCE]) as m:
        dirs = [shared_data / EXPORT / "current_article" / "csv", FIXTURES]
        publish_export(m, "current_article", export_zip("current_article", dirs), last_modified=THURSDAY_0108)
        lcd_dirs = [shared_data / EXPORT / "current_lcd" / "csv", FIXTURES]
        publish_export(m, "current_lcd", export_zip("current_lcd", lcd_dirs), last_modified=THURSDAY_0108)
        first = sync(home, sources=["cms_mcd"], mirror=m.url)
        assert first.status == "committed" and first.sources[0].outcome == "changed", first.sources[0].errors
        api = coverage_api(m)
        publish_tables(m, read_tables([FIXTURES]))
        next_version(api, "52370", "128", "129", "2026-01-05", drop_dx="C34.90", drop_code="Q5160")
        api.schedule = (date(2026, 1, 11), date(2026, 1, 15))
        second = sync(home, sources=[SOURCE], mirror=m.url)
        rep = source(second)
        assert rep.outcome == "changed" and rep.documents_parsed == 1, rep.errors
        assert second.review_state == "pending_review"
    with rulebook(home) as db:
        mine = diff_versions(db, first.version, second.version, sources=[SOURCE])
        assert diff_versions(db, first.version, second.version, sources=["cms_mcd"]).changes == []
        everything = diff_versions(db, first.version, second.version)
    assert [(c.fact_kind, c.key) for c in mine.changes] == [(c.fact_kind, c.key) for c in everything.changes]
    assert {c.source for c in mine.changes} == {SOURCE}
    by_key = {(c.fact_kind, c.key): c for c in mine.changes}
    j9035 = by_key[("coverage_rules", "A52370|J9035|1|1")]
    assert j9035.categories[0] == "diagnoses_removed" and j9035.fields["diagnoses"]["removed"] == ["C34.90"]
    assert j9035.provenance["url"] == f"https://{API_HOST}/v1/data/article/?articleid=52370&ver=129"
    # Q5160's rules (group 1, and group 2 whose paragraph names it) end with v129: removals by the API load
    for key in ("A52370|Q5160|1|1", "A52370|Q5160|2|1"):
        assert by_key[("coverage_rules", key)].categories == ["coverage_removed"]
        assert by_key[("coverage_rules", key)].severity == "high"
    assert by_key[("policy_documents", "A52370")].fields["version"] == {"before": 128, "after": 129}
    assert rep.needs_review == sum(1 for c in mine.changes if c.substantive) >= 4
    # the command a reviewer runs
    res = CliRunner().invoke(
        cli, ["--home", str(home.root), "diff", str(first.version), str(second.version), "--source", SOURCE, "--json"]
    )
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)["changes"]
    assert {(c["fact_kind"], c["key"], c["source"]) for c in listed} == {
        (c.fact_kind, c.key, SOURCE) for c in mine.changes
    }


def test_one_weekly_sync_of_both_paths_keeps_the_exports_states(home: Home, shared_data: Path) -> None:
    """Both sources in one sync, the export and the API both holding A52370 v129 of the same snapshot:
    the API's copy (released as of the Sunday the snapshot ends) does not replace the export's (released
    as of the Thursday refresh), so the states the API cannot give stay."""
    with MirrorServer(shared_data, sources=["cms_mcd", SOURCE]) as m:
        publish_export(m, "current_article", export_with_v129(shared_data), last_modified=THURSDAY_0115)
        lcd_dirs = [shared_data / EXPORT / "current_lcd" / "csv", FIXTURES]
        publish_export(m, "current_lcd", export_zip("current_lcd", lcd_dirs), last_modified=THURSDAY_0115)
        api = coverage_api(m)
        publish_tables(m, read_tables([FIXTURES]))
        next_version(api, "52370", "128", "129", "2026-01-05", drop_dx="C34.90")
        api.schedule = (date(2026, 1, 11), date(2026, 1, 15))
        report = sync(home, sources=["cms_mcd", SOURCE], mirror=m.url)
        by = {r.source: r for r in report.sources}
        assert by["cms_mcd"].outcome == "changed" and by[SOURCE].documents_parsed == 1, by[SOURCE].errors
        assert by[SOURCE].counted.get("older release than current fact", 0) >= 1
        with rulebook(home) as db:
            (doc,) = current(db, "policy_documents", "A52370")
            assert doc["version"] == 129 and doc["release"] == "2026-01-15"
            assert "NY" in json.loads(doc["states"])
