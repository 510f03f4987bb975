"""The quarantine guard (issue 7 part 3), through the real pipeline and CLI.

The recorded files give a real shrinking release: the October 2025 HCPCS file (8,846 codes) and the
October 2026 file, which is recorded only as a 35-row excerpt (PROVENANCE.md, G-slice). Synced one
after the other, the second is exactly what the guard is for: a release with far fewer records than
the one before. The "yields nothing" case uses a CONSTRUCTED zip holding the real 2026 header row and
no data rows, published beside the recorded MUE excerpt so that the version still commits.
Expected counts are read from the recorded files themselves.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import python_calamine
from click.testing import CliRunner

from policysync.cli import cli
from policysync.config import init_home, resolve_home
from policysync.mirror import CMS_HOST, HCPCS_RELEASES, MirrorServer, build_zip
from policysync.pipeline import SyncReport, sync
from policysync.report import render_sync_report
from rulebook import review
from rulebook import versions as vers
from rulebook.db import open_rulebook

EXCERPT_2026 = "hcpcs/quarterly_2026/HCPC2026_OCT_ANWEB.excerpt.csv"
FULL_2025 = "hcpcs/quarterly_2025/HCPC2025_OCT_ANWEB.xlsx"


def run(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--home", str(home), *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def codes_in_csv(path: Path) -> int:
    """HCPCS records (RECID 3 first lines, 7 modifiers) in a recorded ANWEB csv."""
    with path.open(encoding="utf-8", newline="") as f:
        return sum(1 for r in csv.DictReader(f) if r["RECID"].strip() in ("3", "7"))


def codes_in_xlsx(path: Path) -> int:
    rows = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    text = [[str(c).strip().removesuffix(".0") for c in r] for r in rows]
    header = next(i for i, r in enumerate(text) if "HCPC" in r and "RECID" in r)
    recid = text[header].index("RECID")
    return sum(1 for r in text[header + 1 :] if r[recid] in ("3", "7"))


def copy_home(src: Path, dest: Path) -> Path:
    db = sqlite3.connect(src / "rulebook.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    shutil.copytree(src, dest)
    return dest


def sync_release(root: Path, data: Path, release: str, sources: list[str] | None = None) -> SyncReport:
    with MirrorServer(data, releases=[release], sources=sources or ["cms_hcpcs"]) as mirror:
        return sync(resolve_home(root), sources=sources or ["cms_hcpcs"], mirror=mirror.url)


@pytest.fixture(scope="module")
def first(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with one version: the full October 2025 file."""
    home = resolve_home(tmp_path_factory.mktemp("q-first"))
    init_home(home)
    report = sync_release(home.root, shared_data, "2025-10")
    assert (report.exit_code, report.status) == (0, "committed"), report.to_json()
    assert report.sources[0].quarantine is None, "a source's first release has nothing to drop from"
    return home.root


@pytest.fixture(scope="module")
def shrunk(first: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyncReport]:
    """Version 2: the October 2026 excerpt published after the full October 2025 file."""
    root = copy_home(first, tmp_path_factory.mktemp("q-shrunk") / "home")
    report = sync_release(root, shared_data, "2026-10")
    assert (report.exit_code, report.status) == (0, "committed"), report.to_json()
    return root, report


@pytest.fixture
def home(shrunk: tuple[Path, SyncReport], tmp_path: Path) -> Path:
    return copy_home(shrunk[0], tmp_path / "home")


def test_a_release_that_shrinks_is_quarantined(shrunk: tuple[Path, SyncReport], shared_data: Path) -> None:
    root, report = shrunk
    new, before = codes_in_csv(shared_data / EXCERPT_2026), codes_in_xlsx(shared_data / FULL_2025)
    assert (new, before) == (35, 8846)  # what the two recorded files hold
    (src,) = report.sources
    q = src.quarantine
    assert q is not None
    drop = 1 - new / before
    assert q == {
        "source": "cms_hcpcs",
        "reason": "drop",
        "message": (
            f"cms_hcpcs: release 2026-10 yielded {new} records against {before:,} in release 2025-10 "
            f"(-{drop:.1%}, more than the configured quarantine_drop of 20%)"
        ),
        "release": "2026-10",
        "records": new,
        "previous_release": "2025-10",
        "previous_records": before,
        "drop_share": round(drop, 4),
        "threshold": 0.2,
    }
    assert report.review_state == "pending_review"
    assert f"    QUARANTINED: {q['message']} (approval needs --force and a --note)" in render_sync_report(report)
    # Recorded on the version, and in the run report on disk.
    db = open_rulebook(root / "rulebook.db")
    (row,) = vers.quarantines(db)
    assert row["version_id"] == report.version == 2 and row["message"] == q["message"]
    on_disk = json.loads((root / "reports" / "sync-00002.json").read_text())
    assert on_disk["sources"][0]["quarantine"]["message"] == q["message"]
    # Nothing was deleted: HCPCS keeps codes missing from a newer release, so every 2025 code is current.
    current = db.execute("SELECT COUNT(DISTINCT code) FROM hcpcs_codes WHERE v_to IS NULL").fetchone()[0]
    assert current >= before


def test_versions_shows_the_quarantine(home: Path) -> None:
    code, out, _ = run(home, "versions")
    assert code == 0
    lines = out.splitlines()
    (v2,) = [i for i, line in enumerate(lines) if line.lstrip().startswith("2 ")]
    assert lines[v2 + 1].startswith("      QUARANTINED cms_hcpcs: release 2026-10 yielded 35 records against 8,846")
    assert lines[v2 + 1].endswith("(approval needs --force and a --note)")
    assert sum("QUARANTINED" in line for line in lines) == 1
    code, out, _ = run(home, "versions", "--json")
    listed = json.loads(out)["versions"]
    assert [[q["source"] for q in v["quarantined"]] for v in listed] == [[], ["cms_hcpcs"]]
    assert listed[1]["quarantined"][0]["reason"] == "drop"


def test_approving_a_quarantined_version_needs_force_and_a_reason(home: Path) -> None:
    assert run(home, "review", "approve", "1", "--by", "Ada", "--note", "October 2025 checked")[0] == 0
    code, out, err = run(home, "review", "approve", "2", "--by", "Ada", "--note", "looks fine")
    assert (code, out) == (3, "")
    assert err.startswith(
        "error: version 2 is quarantined: cms_hcpcs: release 2026-10 yielded 35 records against 8,846 in release "
        "2025-10 (-99.6%, more than the configured quarantine_drop of 20%); "
    )
    assert err.endswith(
        "review `policysync diff 1 2` and use --force with a --note giving the reason to approve anyway\n"
    )
    assert err.count("\n") == 1
    # --force alone is not enough: the reason is required.
    code, _, err = run(home, "review", "approve", "2", "--by", "Ada", "--force")
    assert (code, err) == (2, "error: review approve: --note TEXT is required (why)\n")
    assert run(home, "versions", "--json")[1].count('"pending_review"') == 1

    note = "2026 file is a known excerpt; confirmed with CMS"
    code, out, _ = run(home, "review", "approve", "2", "--by", "Bo", "--note", note, "--force")
    assert code == 0 and out.startswith("version 2: pending_review -> approved by Bo at ") and "(forced)" in out
    log = json.loads(run(home, "review", "log", "--json")[1])
    assert [(e["version_id"], e["forced"], e["note"]) for e in log] == [
        (1, False, "October 2025 checked"),
        (2, True, note),
    ]
    assert log[0]["overrode"] is None
    assert log[1]["overrode"].startswith("quarantine of version 2: cms_hcpcs: release 2026-10 yielded 35 records")
    code, out, _ = run(home, "review", "log")
    assert out.splitlines()[1].endswith(f"(forced over {log[1]['overrode']}): {note}")


def test_rejecting_a_quarantined_version_needs_no_force(home: Path) -> None:
    code, out, _ = run(home, "review", "reject", "2", "--by", "Ada", "--note", "truncated HCPCS file")
    assert code == 0 and "pending_review -> rejected" in out and "(forced)" not in out


def test_a_later_version_carries_the_quarantine(home: Path, shared_data: Path) -> None:
    """Facts are cumulative: approving a later version while the quarantined one is unapproved needs
    --force too. Version 3 is a backfill of July 2020, which never overrides newer facts, so it has no
    substantive change and holds version 2's facts."""
    report = sync_release(home, shared_data, "2020-07")
    assert report.status == "committed" and report.sources[0].quarantine is None
    assert report.review_state == "none"
    assert review.effective_state(open_rulebook(home / "rulebook.db"), 3) == "pending_review"
    code, _, err = run(home, "review", "approve", "3", "--by", "Ada", "--note", "July 2020 backfill")
    assert code == 3
    assert err.startswith("error: version 3 carries the facts of version 2, which is quarantined: cms_hcpcs: ")
    db = open_rulebook(home / "rulebook.db")
    entry = review.decide(
        db, 3, action="approve", actor="Ada", note="read diff 0 3", now="2026-06-01T00:00:00Z", force=True
    )
    assert entry.forced and entry.overrode and entry.overrode.startswith("quarantine of version 2: ")


def test_the_share_comes_from_config(first: Path, shared_data: Path, tmp_path: Path) -> None:
    root = copy_home(first, tmp_path / "home")
    config = root / "config.toml"
    text = config.read_text()
    config.write_text(text.replace("[sources.cms_hcpcs]\n", "[sources.cms_hcpcs]\nquarantine_drop = 1.0\n", 1))
    report = sync_release(root, shared_data, "2026-10")
    assert report.status == "committed" and report.sources[0].quarantine is None
    assert vers.quarantines(open_rulebook(root / "rulebook.db")) == []

    config.write_text(text.replace("[sources.cms_hcpcs]\n", "[sources.cms_hcpcs]\nquarantine_drop = 1.5\n", 1))
    code, _, err = run(root, "versions")
    assert (code, err) == (
        2,
        f"error: {config}: [sources.cms_hcpcs] quarantine_drop must be a share between 0 and 1 (e.g. 0.20), got 1.5\n",
    )


def test_a_source_that_yields_nothing_is_quarantined(shared_data: Path, tmp_path: Path) -> None:
    home = resolve_home(tmp_path / "home")
    init_home(home)
    both = ["cms_hcpcs", "cms_ncci_mue"]
    with MirrorServer(shared_data, releases=["2025-10"], sources=both) as mirror:
        assert sync(home, sources=both, mirror=mirror.url).status == "committed"
        # CONSTRUCTED: the real 2026 header row and no data rows, in the 2026-10 zip at its real path.
        header = (shared_data / EXCERPT_2026).read_bytes().split(b"\n", 1)[0] + b"\n"
        (rel,) = [r for r in HCPCS_RELEASES if r.release == "2026-10"]
        body = build_zip([("HCPC2026_OCT_ANWEB.excerpt.csv", header)], rel.published)
        mirror.put(f"/{CMS_HOST}{rel.path}", body, link_text=rel.text, last_modified=rel.published)
        report = sync(home, sources=both, mirror=mirror.url)
    hcpcs, mue = report.sources
    assert (report.status, hcpcs.outcome, mue.outcome) == ("committed", "failed", "unchanged")
    assert hcpcs.records == 0 and len(hcpcs.errors) == 1 and "no records" in hcpcs.errors[0]
    assert hcpcs.quarantine is not None and mue.quarantine is None
    assert hcpcs.quarantine["reason"] == "empty"
    assert hcpcs.quarantine["message"] == (
        "cms_hcpcs: yielded no records from 1 document(s) (october-2026-alpha-numeric-hcpcs-file.zip)"
    )
    # Nothing changed, yet the version waits for a reviewer, and its facts are the previous ones.
    assert (report.substantive_changes, report.review_state) == (0, "pending_review")
    db = open_rulebook(home.db_path)
    assert [q["source"] for q in vers.quarantines(db, [report.version])] == ["cms_hcpcs"]
    assert io.StringIO(render_sync_report(report)).read().count("QUARANTINED") == 1
