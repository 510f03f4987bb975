"""The review workflow (issue 7 part 2): approve/reject through the CLI, the append-only audit log,
and which version `compile` may use. The rulebook is synced once from the recorded July and October
2020 HCPCS files (two syncs: version 1 July, version 2 October, both substantive), then copied per
test so each test reviews from a clean state."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from policysync.cli import cli
from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.pipeline import sync
from rulebook import review
from rulebook.db import open_rulebook

WINDOW = ("--from", "2020-07-01", "--to", "2020-10-01")


def run(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--home", str(home), *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def synced(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = resolve_home(tmp_path_factory.mktemp("review-home"))
    init_home(home)
    for release in ("2020-07", "2020-10"):
        with MirrorServer(shared_data, releases=[release], sources=["cms_hcpcs"]) as mirror:
            report = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
        assert report.exit_code == 0 and report.review_state == "pending_review", report.to_json()
    return home.root


@pytest.fixture
def home(synced: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "home"
    db = sqlite3.connect(synced / "rulebook.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    shutil.copytree(synced, dest)
    return dest


def states(home: Path) -> list[str]:
    code, out, _ = run(home, "versions", "--json")
    assert code == 0
    return [v["review_state"] for v in json.loads(out)["versions"]]


def test_substantive_versions_start_pending_and_compile_waits(home: Path, tmp_path: Path) -> None:
    assert states(home) == ["pending_review", "pending_review"]
    code, out, err = run(home, "compile", *WINDOW, "-o", str(tmp_path / "p"))
    assert (code, out) == (3, "")
    assert err == (
        "error: nothing to compile: no approved version (pending review: 2; see `policysync review approve`)\n"
    )
    assert not (tmp_path / "p").exists()


def test_approve_is_logged_and_compile_uses_the_newest_approved(home: Path, tmp_path: Path) -> None:
    code, out, _ = run(home, "review", "approve", "1", "--by", "Ada", "--note", "July 2020 checked")
    assert code == 0
    assert out.startswith("version 1: pending_review -> approved by Ada at ") and out.endswith(" (audit #1)\n")
    assert states(home) == ["approved", "pending_review"]

    # Version 2 is pending: the default is version 1, and compile says which.
    code, out, _ = run(home, "compile", *WINDOW, "-o", str(tmp_path / "p1"))
    assert code == 0 and out.startswith("compiled from rulebook version 1 (the newest approved version)\n")
    manifest = json.loads((tmp_path / "p1" / "manifest.json").read_text())
    assert manifest["rulebook_version"] == 1

    # A pending version compiles only when asked for by number, with a warning.
    code, out, err = run(home, "compile", *WINDOW, "--version", "2", "-o", str(tmp_path / "p2"))
    assert code == 0 and out.startswith("compiled from rulebook version 2\n")
    assert err == (
        "warning: version 2 is pending review, not approved: compiled only because --version was given "
        "(see `policysync review approve`)\n"
    )

    code, out, _ = run(home, "review", "approve", "2", "--by", "Bo", "--note", "October 2020 checked")
    assert code == 0
    code, out, _ = run(home, "compile", *WINDOW, "-o", str(tmp_path / "p3"))
    assert code == 0 and out.startswith("compiled from rulebook version 2 (the newest approved version)\n")

    code, out, _ = run(home, "review", "log")
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("#1 ") and lines[0].endswith(
        " Ada: approve version 1 (pending_review -> approved): July 2020 checked"
    )
    code, out, _ = run(home, "review", "log", "--json")
    log = json.loads(out)
    assert [(e["actor"], e["action"], e["version_id"], e["new_state"], e["forced"]) for e in log] == [
        ("Ada", "approve", 1, "approved", False),
        ("Bo", "approve", 2, "approved", False),
    ]
    assert all(e["at"].endswith("Z") and e["previous_state"] == "pending_review" for e in log)


def test_a_rejected_version_never_reaches_a_pack(home: Path, tmp_path: Path) -> None:
    assert run(home, "review", "approve", "1", "--by", "Ada", "--note", "ok")[0] == 0
    code, out, _ = run(home, "review", "reject", "2", "--by", "Ada", "--note", "October file truncated")
    assert code == 0 and out.startswith("version 2: pending_review -> rejected by Ada at ")

    code, _, err = run(home, "compile", *WINDOW, "--version", "2", "-o", str(tmp_path / "p"))
    assert code == 3
    assert err == "error: version 2 was rejected in review: its facts never reach a pack\n"
    assert not (tmp_path / "p").exists()

    # The default skips it.
    code, out, _ = run(home, "compile", *WINDOW, "-o", str(tmp_path / "d"))
    assert code == 0 and out.startswith("compiled from rulebook version 1 ")
    pack_file = json.loads((tmp_path / "d" / "manifest.json").read_text())["packs"][0]["file"]
    assert json.loads((tmp_path / "d" / pack_file).read_text())["rulebook_version"] == 1


def test_redeciding_is_refused_unless_forced(home: Path) -> None:
    assert run(home, "review", "reject", "2", "--by", "Ada", "--note", "bad")[0] == 0
    code, out, err = run(home, "review", "approve", "2", "--by", "Bo", "--note", "looks fine")
    assert (code, out) == (3, "")
    assert err.startswith("error: version 2 was already rejected by Ada at ")
    assert err.endswith("; use --force to record a new decision\n") and err.count("\n") == 1

    code, out, _ = run(home, "review", "approve", "2", "--by", "Bo", "--note", "re-checked", "--force")
    assert code == 0 and "rejected -> approved by Bo" in out and "(forced)" in out
    log = json.loads(run(home, "review", "log", "--json")[1])
    assert [(e["version_id"], e["previous_state"], e["new_state"], e["forced"]) for e in log] == [
        (2, "pending_review", "rejected", False),
        (2, "rejected", "approved", True),
    ]


def test_approving_over_a_rejected_earlier_version_needs_force(home: Path) -> None:
    # Facts are cumulative: version 2 holds version 1's facts too.
    assert run(home, "review", "reject", "1", "--by", "Ada", "--note", "bad July load")[0] == 0
    code, _, err = run(home, "review", "approve", "2", "--by", "Ada", "--note", "ok")
    assert code == 3
    assert err == (
        "error: version 2 also carries the facts of rejected version 1 (facts are cumulative); "
        "review `policysync diff 0 2` and use --force to approve anyway\n"
    )
    assert run(home, "review", "approve", "2", "--by", "Ada", "--note", "diff 0 2 read", "--force")[0] == 0


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["approve", "1", "--note", "x"], "error: review approve: --by NAME is required (who decides)\n"),
        (["approve", "1", "--by", " ", "--note", "x"], "error: review approve: --by NAME is required (who decides)\n"),
        (["reject", "1", "--by", "Ada"], "error: review reject: --note TEXT is required (why)\n"),
        (["reject", "1", "--by", "Ada", "--note", ""], "error: review reject: --note TEXT is required (why)\n"),
    ],
)
def test_by_and_note_are_required(home: Path, args: list[str], line: str) -> None:
    code, out, err = run(home, "review", *args)
    assert (code, out, err) == (2, "", line)
    assert states(home) == ["pending_review", "pending_review"]
    assert run(home, "review", "log")[1] == "no review decisions yet\n"


def test_configured_reviewers_are_the_only_names_accepted(home: Path) -> None:
    config = home / "config.toml"
    text = config.read_text()
    assert "\nreviewers = []\n" in text
    config.write_text(text.replace("\nreviewers = []\n", '\nreviewers = ["Ada", "Grace"]\n', 1))
    code, out, err = run(home, "review", "approve", "2", "--by", "Mallory", "--note", "looks fine")
    assert (code, out) == (2, "")
    assert err == (
        "error: review approve: --by 'Mallory' is not one of the reviewers in [review] reviewers (Ada, Grace)\n"
    )
    assert states(home) == ["pending_review", "pending_review"]
    code, out, _ = run(home, "review", "approve", "1", "--by", "Grace", "--note", "checked")
    assert code == 0 and "by Grace" in out
    assert states(home) == ["approved", "pending_review"]


def test_only_committed_versions_can_be_reviewed(home: Path) -> None:
    db = open_rulebook(home / "rulebook.db")
    db.execute("UPDATE versions SET status = 'failed' WHERE id = 2")
    db.conn.commit()
    db.close()
    code, _, err = run(home, "review", "approve", "2", "--by", "Ada", "--note", "x")
    assert code == 3
    assert err == "error: version 2 is failed, not committed: only committed versions can be reviewed\n"
    code, _, err = run(home, "review", "approve", "9", "--by", "Ada", "--note", "x")
    assert code == 3 and err == "error: no rulebook version 9 (see `policysync versions`)\n"


def test_a_version_without_substantive_changes_can_be_approved_and_inherits(home: Path) -> None:
    db = open_rulebook(home / "rulebook.db")
    try:
        db.execute("UPDATE versions SET review_state = 'none' WHERE id = 2")
        db.conn.commit()
        # A "none" version carries the facts of the version before it: pending until that is approved.
        assert review.effective_state(db, 2) == "pending_review"
        assert review.compilable_default(db) is None
        review.decide(db, 1, action="approve", actor="Ada", note="ok", now="2026-11-24T10:00:00Z")
        assert (review.effective_state(db, 2), review.compilable_default(db)) == ("approved", 2)
        entry = review.decide(db, 2, action="approve", actor="Ada", note="recorded", now="2026-11-24T10:05:00Z")
        assert (entry.at, entry.previous_state, entry.new_state) == ("2026-11-24T10:05:00Z", "none", "approved")
    finally:
        db.close()


def test_the_audit_log_is_append_only(home: Path) -> None:
    assert run(home, "review", "approve", "1", "--by", "Ada", "--note", "ok")[0] == 0
    conn = sqlite3.connect(home / "rulebook.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="audit_log is append-only: rows cannot be updated"):
            conn.execute("UPDATE audit_log SET actor = 'Mallory' WHERE id = 1")
        with pytest.raises(sqlite3.IntegrityError, match="audit_log is append-only: rows cannot be deleted"):
            conn.execute("DELETE FROM audit_log")
        conn.rollback()
        assert conn.execute("SELECT actor, note FROM audit_log").fetchall() == [("Ada", "ok")]
    finally:
        conn.close()
