"""Operations (issue 8 part 6): the Prometheus metrics file, ``policysync gc`` and ``--log-format json``.
Syncs run over the loopback mirror on the recorded HCPCS files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from policysync.cli import cli
from policysync.config import Home, init_home
from policysync.lock import hold
from policysync.mirror import MirrorServer, hcpcs_release_zip
from policysync.pipeline import reparse, sync
from rulebook.blobs import BlobStore, sha256_hex
from rulebook.db import open_rulebook
from rulebook.verify import verify_rulebook

JULY = "/www.cms.gov/files/zip/july-2020-alpha-numeric-hcpcs-file.zip"


def run(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--home", str(home), *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def hcpcs_only(root: Path, extra: str = "") -> Home:
    home = Home(root)
    init_home(home)
    cfg = re.sub(r"(\[sources\.(?!cms_hcpcs\])[a-z0-9_]+\]\n)enabled = true", r"\1enabled = false",
                 home.config_path.read_text())
    home.config_path.write_text(cfg + extra)
    return home


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.type == "gauge"
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_metrics_file_per_run(tmp_path: Path, shared_data: Path) -> None:
    prom_dir = tmp_path / "textfile"  # as node_exporter's --collector.textfile.directory would be
    home = hcpcs_only(tmp_path / "h")
    cfg = home.config_path.read_text()
    assert cfg.count("[metrics]\n") == 1
    home.config_path.write_text(cfg.replace("[metrics]\n", f'[metrics]\npath = "{prom_dir}/policysync.prom"\n'))
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        first = sync(home, mirror=mirror.url)
        second = sync(home, mirror=mirror.url)
    assert first.metrics_path == second.metrics_path == str(prom_dir / "policysync.prom")
    text = (prom_dir / "policysync.prom").read_text()
    got = samples(text)  # the real Prometheus parser reads it
    src = frozenset({("kind", "sync"), ("source", "cms_hcpcs")})
    rep = second.sources[0]
    assert got[("policysync_run_version", frozenset({("kind", "sync")}))] == 2
    assert got[("policysync_run_committed", frozenset({("kind", "sync")}))] == 1
    assert got[("policysync_run_exit_code", frozenset({("kind", "sync")}))] == 0
    assert got[("policysync_run_duration_seconds", frozenset({("kind", "sync")}))] == second.duration_s > 0
    assert got[("policysync_source_requests", src)] == rep.requests > 0
    assert got[("policysync_source_not_modified", src)] == rep.not_modified == 1
    assert got[("policysync_source_documents_parsed", src)] == 0
    assert got[("policysync_source_duration_seconds", src)] == pytest.approx(rep.duration_s)
    assert got[("policysync_source_failed", src)] == 0
    assert got[("policysync_source_stale", frozenset({("source", "cms_hcpcs")}))] == 0
    assert got[("policysync_source_facts_changed", src | {("change", "added")})] == 0
    # Written whole through a rename: nothing else is left in the collector's directory.
    assert sorted(p.name for p in prom_dir.iterdir()) == ["policysync.prom"]

    # The first run's figures were the July file's: records as the parser counted them.
    assert first.sources[0].records == 7158 and first.sources[0].added == 7158
    # A reparse writes its own file beside it and leaves the sync's alone.
    rp = reparse(home)
    assert rp.metrics_path == str(prom_dir / "policysync-reparse.prom")
    assert (prom_dir / "policysync.prom").read_text() == text
    assert samples((prom_dir / "policysync-reparse.prom").read_text())[
        ("policysync_run_version", frozenset({("kind", "reparse")}))
    ] == 3


def test_failed_source_in_metrics(tmp_path: Path, shared_data: Path) -> None:
    home = hcpcs_only(tmp_path)
    overrides = {JULY: (503, {"Content-Type": "text/html"}, b"busy")}
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"], overrides=overrides) as mirror:
        report = sync(home, mirror=mirror.url, crawl_settings={"RETRY_TIMES": 0})
    got = samples((tmp_path / "metrics" / "policysync.prom").read_text())
    src = frozenset({("kind", "sync"), ("source", "cms_hcpcs")})
    assert report.exit_code == 3
    assert got[("policysync_source_failed", src)] == 1
    assert got[("policysync_source_errors", src)] == len(report.sources[0].errors) == 1
    assert got[("policysync_source_stale", frozenset({("source", "cms_hcpcs")}))] == 1
    assert got[("policysync_run_committed", frozenset({("kind", "sync")}))] == 0
    assert got[("policysync_run_exit_code", frozenset({("kind", "sync")}))] == 3


def test_gc_removes_only_what_no_version_needs(tmp_path: Path, shared_data: Path) -> None:
    home = hcpcs_only(tmp_path)
    good = hcpcs_release_zip(shared_data, "2020-07")
    truncated = good[: len(good) // 2]
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"],
                      overrides={JULY: (200, {"Content-Type": "application/zip"}, truncated)}) as mirror:
        bad = sync(home, mirror=mirror.url)
        assert bad.sources[0].outcome == "failed"
        mirror.clear_override(JULY)
        ok = sync(home, mirror=mirror.url)
        assert ok.sources[0].documents_parsed == 1
    blobs = BlobStore(home.artifacts)
    bad_sha, good_sha = sha256_hex(truncated), sha256_hex(good)
    assert blobs.has(bad_sha) and blobs.has(good_sha)
    # What a run killed between writing a blob and committing its row leaves behind.
    orphan_sha = blobs.put(b"constructed: bytes of a download whose row was never committed")
    tmp = blobs.path(good_sha).parent / ".tmp-constructed"
    tmp.write_bytes(b"half a blob")

    db = open_rulebook(home.db_path)
    facts_before = list(db.query("SELECT * FROM hcpcs_codes ORDER BY id"))

    code, out, _ = run(home.root, "gc", "--dry-run")
    assert code == 0
    lines = out.splitlines()
    assert lines[-1].startswith("would remove 3 files, ") and lines[-1].endswith("; kept 1 documents")
    assert f"would remove {orphan_sha[:12]} (orphan, 62 bytes)" in lines
    url = "https://www.cms.gov" + JULY.removeprefix("/www.cms.gov")
    assert f"would remove {bad_sha[:12]} (superseded failure, {len(truncated):,} bytes) {url}" in lines
    assert blobs.has(bad_sha) and blobs.has(orphan_sha) and tmp.exists()  # dry run: nothing touched

    code, out, _ = run(home.root, "gc", "--json")
    assert code == 0
    result = json.loads(out)
    assert sorted((r["reason"], r["sha256"]) for r in result["removed"]) == [
        ("orphan", orphan_sha), ("superseded failure", bad_sha), ("temporary", None)
    ]
    assert not blobs.has(bad_sha) and not blobs.has(orphan_sha) and not tmp.exists()
    assert blobs.has(good_sha)  # the current facts' provenance stays
    db = open_rulebook(home.db_path)
    assert list(db.query("SELECT * FROM hcpcs_codes ORDER BY id")) == facts_before
    assert {r["sha256"] for r in db.query("SELECT sha256 FROM artifacts")} == {good_sha}
    problems, _ = verify_rulebook(db, home.artifacts)
    assert problems == []
    # Nothing left to collect, and the rulebook still replays.
    assert run(home.root, "gc")[1].splitlines()[-1] == "removed 0 files, 0 bytes; kept 1 documents"
    assert reparse(home).changes == {}


def test_gc_never_removes_provenance(tmp_path: Path, shared_data: Path) -> None:
    """Even an artifact row marked failed and replaced at its URL stays while a fact names it."""
    home = hcpcs_only(tmp_path)
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        sync(home, mirror=mirror.url)
    db = open_rulebook(home.db_path)
    (art,) = list(db.query("SELECT * FROM artifacts"))
    # Constructed: pretend a later document at the same URL parsed and this one had failed.
    db.table("artifacts").update(art["sha256"], {"parse_status": "failed"})
    db.table("artifacts").insert({**art, "sha256": "0" * 64, "first_fetched_at": "2999-01-01T00:00:00Z"})
    code, out, _ = run(home.root, "gc")
    assert code == 0 and out.splitlines()[-1].startswith("removed 0 files")
    assert BlobStore(home.artifacts).has(art["sha256"])


def test_gc_waits_for_the_lock(tmp_path: Path) -> None:
    home = hcpcs_only(tmp_path)
    with hold(home, command="sync", now="2026-11-19T06:00:00Z"):
        code, _, err = run(home.root, "gc")
    assert code == 2 and "another policysync run holds the lock: pid " in err and "(sync)" in err


def test_log_format_json(tmp_path: Path, shared_data: Path) -> None:
    home = hcpcs_only(tmp_path)
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        code, out, err = run(home.root, "--log-format", "json", "sync", "--mirror", mirror.url, "--json")
    assert code == 0
    assert json.loads(out)["status"] == "committed"  # stdout stays the report alone
    events = [json.loads(line) for line in err.splitlines()]
    assert events and all({"ts", "level", "logger", "message"} <= set(e) for e in events)
    progress = [e for e in events if e.get("event") == "progress"]
    assert any(e["message"].startswith("cms_hcpcs: crawling via mirror ") for e in progress)
    report = json.loads(out)
    (done,) = [e for e in events if e.get("event") == "source_done"]
    assert done["source"] == "cms_hcpcs" and done["outcome"] == "changed"
    assert done["records"] == report["sources"][0]["records"] and done["added"] == report["sources"][0]["added"]
    (run_done,) = [e for e in events if e.get("event") == "run_done"]
    assert run_done["exit_code"] == 0 and run_done["report_path"] == report["report_path"]
    # Text (the default) stays quiet when nothing is wrong, for cron.
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        code, _, err = run(home.root, "sync", "--mirror", mirror.url)
    assert code == 0 and err == ""
