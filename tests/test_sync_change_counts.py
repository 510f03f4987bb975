"""A sync's summary counts its version's changes as ``rulebook.diff.iter_changes`` yields them, without
holding the whole list (bench/README.md, bench_weekly: the cold sync's peak memory). The counts must
be what the full ``diff_versions`` change set gives. Two real ASP quarters go through the mirror into
two versions, so the second sync has additions, cuts and raises to count."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import pytest

from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.pipeline import SyncReport, sync
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions, iter_changes


@pytest.fixture(scope="module")
def synced(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SyncReport]]:
    home = resolve_home(tmp_path_factory.mktemp("change-counts"))
    init_home(home)
    reports = []
    for release in ("2025-10", "2026-01"):
        with MirrorServer(shared_data, releases=[release], sources=["cms_asp"]) as mirror:
            reports.append(sync(home, sources=["cms_asp"], mirror=mirror.url))
        assert reports[-1].exit_code == 0, reports[-1].to_json()
    return home.db_path, reports


def test_the_sync_summary_counts_what_diff_versions_lists(synced: tuple[Path, list[SyncReport]]) -> None:
    db_path, reports = synced
    db = open_rulebook(db_path)
    for prev, report in enumerate(reports):
        cs = diff_versions(db, prev, report.version)
        assert cs.changes  # every version here changes something
        assert report.changes == cs.counts()
        assert report.substantive_changes == sum(1 for c in cs.changes if c.substantive)
        for rep in report.sources:
            assert rep.needs_review == sum(1 for c in cs.changes if c.substantive and c.source == rep.source)
    db.close()


def test_iter_changes_yields_the_changes_diff_versions_sorts(synced: tuple[Path, list[SyncReport]]) -> None:
    db_path, reports = synced
    db = open_rulebook(db_path)
    cs = diff_versions(db, 1, 2)
    streamed = list(iter_changes(db, 1, 2))
    key = repr  # Change holds dicts: compare the dataclass fields as text
    assert sorted(map(key, map(astuple, streamed))) == sorted(map(key, map(astuple, cs.changes)))
    assert len(streamed) == len(cs.changes) > 0
    db.close()
