"""The run report (issue 8 part 4): per source requests, not-modified, new documents, records,
facts added/removed/modified, needs-review items, errors (one line each) and duration; the JSON file,
the terminal summary, and `policysync versions` showing each source's last report. Syncs run over the
loopback mirror on the recorded HCPCS files; record counts are read from the documents themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from parsers.cms_hcpcs import parse
from parsers.records import SourceMeta
from policysync.cli import cli
from policysync.config import Home, init_home
from policysync.mirror import MirrorServer, hcpcs_release_zip
from rulebook.blobs import sha256_hex
from rulebook.db import open_rulebook

OCTOBER = "/www.cms.gov/files/zip/october-2020-alpha-numeric-hcpcs-file.zip"
JANUARY = "/www.cms.gov/files/zip/january-2021-alpha-numeric-hcpcs-files.zip"


def run(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--home", str(home), *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def test_run_report_per_source(tmp_path: Path, shared_data: Path) -> None:
    home = Home(tmp_path)
    init_home(home)
    cfg = re.sub(r"(\[sources\.(?!cms_hcpcs\])[a-z0-9_]+\]\n)enabled = true", r"\1enabled = false",
                 home.config_path.read_text())
    home.config_path.write_text(cfg)
    july = hcpcs_release_zip(shared_data, "2020-07")
    meta = SourceMeta(source="cms_hcpcs", url="x", sha256=sha256_hex(july), filename="july.zip", release="2020-07")
    july_records = sum(1 for _ in parse(july, meta))

    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        # 1. First sync: everything is new.
        code, out, _ = run(tmp_path, "sync", "--mirror", mirror.url, "--json")
        assert code == 0
        report = json.loads(out)
        (src,) = report["sources"]
        db = open_rulebook(home.db_path)
        fetched = list(db.query("SELECT outcome FROM fetches WHERE version_id = 1"))
        assert src["requests"] == len(fetched) >= 1
        assert (src["not_modified"], src["new_documents"], src["documents_parsed"]) == (0, 1, 1)
        assert src["records"] == july_records
        added = db.execute("SELECT COUNT(*) FROM hcpcs_codes WHERE v_from = 1").fetchone()[0]
        assert (src["added"], src["removed"], src["modified"]) == (added, 0, 0)
        assert src["errors"] == [] and src["outcome"] == "changed" and src["duration_s"] > 0
        assert src["needs_review"] == report["substantive_changes"] > 0
        assert report["duration_s"] >= src["duration_s"]
        # The same report is on disk, where the report says.
        assert report["report_path"] == str(home.reports / "sync-00001.json")
        assert json.loads(Path(report["report_path"]).read_text()) == report

        # 2. Nothing changed: a readable summary with the counts and where the report is.
        code, out, _ = run(tmp_path, "sync", "--mirror", mirror.url)
        assert code == 0
        lines = out.rstrip("\n").splitlines()
        assert lines[0] == "version 2 (sync): committed, review: none"
        assert re.fullmatch(
            r"  cms_hcpcs: unchanged — \d+ requests, 1 not modified, 0 new documents, 0 parsed, 0 records; "
            r"facts \+0 -0 ~0; \d+\.\ds", lines[1]
        )
        assert "  no changes" in lines
        assert re.fullmatch(rf"  run took \d+\.\ds; report: {re.escape(str(home.reports))}/sync-00002\.json",
                            lines[-1])

        # 3. October is published: the items that wait for review are counted per source.
        mirror.put(OCTOBER, hcpcs_release_zip(shared_data, "2020-10"),
                   link_text="October 2020 Alpha-Numeric HCPCS File (ZIP)")
        code, out, _ = run(tmp_path, "sync", "--mirror", mirror.url, "--json")
        third = json.loads(out)
        assert third["review_state"] == "pending_review"
        assert third["sources"][0]["needs_review"] == third["substantive_changes"] > 0
        code, out, _ = run(tmp_path, "versions")
        assert "cms_hcpcs: ok (last successful fetch " in out

        # 4. A broken January file: the source fails with a one-line cause; nothing is committed.
        mirror.put(JANUARY, july[: len(july) // 3], link_text="January 2021 Alpha-Numeric HCPCS Files (ZIP)")
        code, out, _ = run(tmp_path, "sync", "--mirror", mirror.url, "--json")
    assert code == 3
    failed = json.loads(out)
    (src,) = failed["sources"]
    assert src["outcome"] == "failed" and src["new_documents"] == 1 and src["documents_parsed"] == 0
    assert len(src["errors"]) == 1 and "\n" not in src["errors"][0]
    assert src["errors"][0].startswith("january-2021-alpha-numeric-hcpcs-files.zip")

    # `versions` shows each source's last report: outcome, its error line and its counts.
    code, out, _ = run(tmp_path, "versions")
    line = next(x for x in out.splitlines() if x.startswith("  cms_hcpcs: "))
    assert f"; last run: failed in version 4: {src['errors'][0]} (" in line
    assert f"{src['requests']} requests, {src['not_modified']} not modified, 1 new documents, 0 records, " \
           "facts +0 -0 ~0, " in line
    code, out, _ = run(tmp_path, "versions", "--json")
    (status,) = [s for s in json.loads(out)["sources"] if s["source"] == "cms_hcpcs"]
    assert status["last_run"]["outcome"] == "failed" and status["last_run"]["errors"] == src["errors"]
    assert status["last_run"]["version_id"] == 4
