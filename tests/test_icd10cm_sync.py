"""icd10cm end to end: ``pipeline.sync`` over the loopback mirror loads the recorded April 2026 tabular
list into ``icd10_codes``; a constructed next release (FY2027 base, from 2026-10-01) that deletes a code
and gives a billable code children is a timeline change whose diff rates both high."""

from __future__ import annotations

from pathlib import Path

from policysync import pipeline
from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer, build_zip
from policysync.mirror_icd10cm import PUBLISHED, publish_icd10cm
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions

XML = "icd10cm/icd10cm_tabular_2026_April-1.xml"


def constructed_fy2027(shared_data: Path) -> bytes:
    """CONSTRUCTED from the recorded FY2026 April list: version 2027, A00.1 deleted, and M54.2 Cervicalgia
    split into two (made-up) children, so M54.2 becomes a header."""
    xml = (shared_data / XML).read_text(encoding="utf-8")
    xml = xml.replace("<version>2026</version>", "<version>2027</version>", 1)
    a001 = xml.index("<name>A00.1</name>")
    start, end = xml.rindex("<diag>", 0, a001), xml.index("</diag>", a001) + len("</diag>")
    xml = xml[:start] + xml[end:]
    m542 = xml.index("<name>M54.2</name>")
    close = xml.index("</diag>", m542)
    kids = (
        "<diag><name>M54.20</name><desc>Cervicalgia, unspecified (constructed)</desc></diag>"
        "<diag><name>M54.21</name><desc>Cervicalgia, other (constructed)</desc></diag>"
    )
    xml = xml[:close] + kids + xml[close:]
    return build_zip([("Table and Index/icd10cm_tabular_2027.xml", xml.encode("utf-8"))], PUBLISHED)


def test_sync_and_next_release(shared_data: Path, tmp_path: Path) -> None:
    home = resolve_home(tmp_path / "home")
    init_home(home)
    with MirrorServer(shared_data, sources=["icd10cm"]) as mirror:
        r1 = pipeline.sync(home, sources=["icd10cm"], mirror=mirror.url)
        (s1,) = r1.sources
        assert (r1.status, s1.outcome, s1.records, s1.documents_parsed) == ("committed", "changed", 98_186, 1)
        db = open_rulebook(home.db_path)
        row = db.execute(
            "SELECT billable, long_description, eff_start, eff_end, release FROM icd10_codes WHERE code = 'C34.90'"
        ).fetchone()
        assert row == (
            1,
            "Malignant neoplasm of unspecified part of unspecified bronchus or lung",
            "2026-04-01",
            None,
            "2026-04",
        )
        again = pipeline.sync(home, sources=["icd10cm"], mirror=mirror.url)
        assert again.sources[0].not_modified == 1 and again.sources[0].documents_parsed == 0

        publish_icd10cm(
            mirror, 2027, "/files/zip/2027-code-tables-tabular-and-index.zip", constructed_fy2027(shared_data),
            link_text="2027 Code Tables, Tabular and Index (ZIP)",
        )  # fmt: skip
        r2 = pipeline.sync(home, sources=["icd10cm"], mirror=mirror.url)
        current = db.execute("SELECT COUNT(*) FROM icd10_codes WHERE v_to IS NULL").fetchone()[0]
        # bad input: the zip comes back truncated (constructed): one line, the source fails, facts stay
        path = "/www.cms.gov/files/zip/2027-code-tables-tabular-and-index.zip"
        mirror.override(path, 200, {"Content-Type": "application/zip"}, constructed_fy2027(shared_data)[:4096])
        r3 = pipeline.sync(home, sources=["icd10cm"], mirror=mirror.url)
    assert r2.status == "committed" and r2.sources[0].documents_parsed == 1
    (s3,) = r3.sources
    assert s3.outcome == "failed" and len(s3.errors) == 1 and "2027-code-tables-tabular-and-index.zip" in s3.errors[0]
    assert "\n" not in s3.errors[0]
    assert db.execute("SELECT COUNT(*) FROM icd10_codes WHERE v_to IS NULL").fetchone()[0] == current
    cs = diff_versions(db, r1.version, r2.version)
    by = {c.key: c for c in cs.changes}
    assert set(by) == {"A00.1", "M54.2", "M54.20", "M54.21"}
    assert (by["A00.1"].categories, by["A00.1"].severity, by["A00.1"].eff_end) == (
        ["icd10_code_deleted"],
        "high",
        "2026-10-01",
    )
    assert by["M54.2"].categories == ["icd10_became_non_billable"] and by["M54.2"].severity == "high"
    assert by["M54.2"].eff_start == "2026-10-01"
    assert by["M54.20"].categories == ["icd10_code_added"] and by["M54.20"].severity == "medium"
    # the timeline: M54.2 billable in [2026-04-01, 2026-10-01), a header from then on
    rows = db.execute(
        "SELECT billable, eff_start, eff_end FROM icd10_codes WHERE code = 'M54.2' AND v_to IS NULL ORDER BY eff_start"
    ).fetchall()
    assert rows == [(1, "2026-04-01", "2026-10-01"), (0, "2026-10-01", None)]
    unchanged = db.execute(
        "SELECT eff_start, eff_end FROM icd10_codes WHERE code = 'C34.90' AND v_to IS NULL"
    ).fetchall()
    assert unchanged == [("2026-04-01", None)]  # one interval across both releases
