"""ASP payment limits diffed quarter on quarter (issue 6): the October 2025 and January 2026 payment
limit files go through the mirror into two rulebook versions, and the diff compares each code's new
quarter with the quarter before. The expected figures are read from the two recorded CSV files with
the csv module, not through the parser under test."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer
from rulebook.db import open_rulebook
from rulebook.diff import ASP_MARGIN_HIGH, diff_versions

OCT = "pricing/section 508 version of Oct 2025 ASP Pricing File 091725.csv"
JAN = "pricing/section 508 version of January 2026 Medicare Part B Payment Limit File 121725.csv"


def limits(path: Path) -> dict[str, float]:
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("cp1252"))))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "HCPCS Code")
    col = rows[start].index("Payment Limit")
    out = {}
    for r in rows[start + 1 :]:
        try:
            out[r[0]] = float(r[col])
        except (IndexError, ValueError):  # blank rows, "N/A" limits: not compared here
            continue
    return out


@pytest.fixture(scope="module")
def changes(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from policysync.pipeline import sync

    home = resolve_home(tmp_path_factory.mktemp("asp-diff"))
    init_home(home)
    for release in ("2025-10", "2026-01"):
        with MirrorServer(shared_data, releases=[release], sources=["cms_asp"]) as mirror:
            report = sync(home, sources=["cms_asp"], mirror=mirror.url)
        assert report.exit_code == 0, report.to_json()
    db = open_rulebook(home.db_path)
    cs = diff_versions(db, 1, 2, sources=["cms_asp"])
    return {c.key: c for c in cs.changes if c.fact_kind == "drug_prices"}


def test_a_quarter_on_quarter_cut_is_a_payment_limit_decrease(shared_data: Path, changes: dict) -> None:
    oct_, jan = limits(shared_data / "asp" / OCT), limits(shared_data / "asp" / JAN)
    both = sorted(set(oct_) & set(jan))
    cuts = [c for c in both if jan[c] < oct_[c]]
    deep = [c for c in cuts if (oct_[c] - jan[c]) / oct_[c] > ASP_MARGIN_HIGH]
    shallow = [c for c in cuts if c not in deep]
    raised = [c for c in both if jan[c] > oct_[c]]
    assert deep and shallow and raised  # the two real files have all three
    for code in deep[:20]:
        ch = changes[code]
        assert ch.categories[0] == "payment_limit_decreased" and ch.severity == "high", code
        assert float(ch.fields["payment_limit"]["before"]) == oct_[code]
        assert float(ch.fields["payment_limit"]["after"]) == jan[code]
        assert (ch.eff_start, ch.substantive) == ("2026-01-01", True)
    for code in shallow[:20]:
        assert (changes[code].categories[0], changes[code].severity) == ("payment_limit_decreased", "medium")
    for code in raised[:20]:
        assert (changes[code].categories[0], changes[code].severity) == ("payment_limit_increased", "low")
    # Every code whose limit moved is a substantive change; a code at the same limit is not.
    moved = {c for c in both if jan[c] != oct_[c]}
    assert {c for c, ch in changes.items() if ch.substantive and c in both} >= moved
    same = [c for c in both if jan[c] == oct_[c] and c in changes]
    assert same and not any(cat.startswith("payment_limit") for c in same for cat in changes[c].categories)
    # A code whose new quarter restates everything but the dates is the quarter rolling over: cosmetic.
    rolled = [c for c in same if set(changes[c].fields) == {"eff_start", "eff_end"}]
    assert rolled and all(changes[c].categories == ["next_quarter_same_limit"] for c in rolled)
    assert not any(changes[c].substantive for c in rolled)

