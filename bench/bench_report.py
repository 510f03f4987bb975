"""Benchmark of the change-set report (issue 7 part 1): a change set of 10,000 changes rendered as
HTML, Markdown and JSON (a script, not a test).

    .venv/bin/python bench/bench_report.py [--data DIR] [--changes N] [--repeat N] [--json]

The change set is real: the recorded April 2020 and October 2025 HCPCS files are synced through the
loopback mirror as two versions into a temporary home, and ``diff_versions`` gives the change set
from nothing to October 2025 (every code added) and from April 2020 to October 2025 (discontinued,
descriptor, coverage and pricing changes, with before/after fields). Their changes are concatenated
and repeated with a numbered key suffix up to ``--changes`` (default 10,000), so the page holds that
many rows.

Timed, best of N each: ``render_html`` (the standalone page), ``render_markdown``, ``render_json``,
``json.dumps(cs.to_json())`` (the dataclasses to dicts, then JSON), and the baseline: ``json.dumps`` of
the change set already converted to dicts (no indent), measured in the same run. Ratios are each
renderer's time over the baseline's. Target: the HTML of 10,000 changes in under
2 s. The exit status is 1 only when something is wrong (fewer rows in the page than changes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make tests.conftest importable beside the installed packages

from policysync.config import init_home, resolve_home  # noqa: E402
from policysync.mirror import MirrorServer  # noqa: E402
from policysync.pipeline import sync  # noqa: E402
from rulebook.db import open_rulebook  # noqa: E402
from rulebook.diff import ChangeSet, diff_versions, render_json, render_markdown  # noqa: E402
from rulebook.report_html import render_html  # noqa: E402
from tests.conftest import shared_data_dir  # noqa: E402

TARGET_S = 2.0


def build_changeset(data: Path, tmp: Path, n: int) -> tuple[ChangeSet, int]:
    home = resolve_home(tmp / "home")
    init_home(home)
    for release in ("2020-04", "2025-10"):
        with MirrorServer(data, releases=[release], sources=["cms_hcpcs"]) as mirror:
            report = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
        if report.status != "committed":
            raise SystemExit(f"bench_report: sync of {release} failed: {report.to_json()}")
    db = open_rulebook(home.db_path)
    real = diff_versions(db, 0, 2).changes + diff_versions(db, 1, 2).changes
    db.close()
    changes = []
    for i in range(n):
        c = real[i % len(real)]
        rep = i // len(real)
        changes.append(dataclasses.replace(c, key=c.key if rep == 0 else f"{c.key}~{rep}"))
    return ChangeSet(1, 2, changes), len(real)


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    runs, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return min(runs), runs, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="recorded data (default: ../shared/data)")
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    data = args.data or shared_data_dir()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        cs, distinct = build_changeset(data, Path(tmp), args.changes)
    timings: dict[str, dict[str, Any]] = {}
    outputs: dict[str, str] = {}
    payload = cs.to_json()
    for name, fn in (
        ("baseline json.dumps", lambda: json.dumps(payload)),
        ("json.dumps(to_json())", lambda: json.dumps(cs.to_json())),
        ("render_html (standalone page)", lambda: render_html(cs)),
        ("render_markdown", lambda: render_markdown(cs)),
        ("render_json (indented, sorted)", lambda: render_json(cs)),
    ):
        b, runs, out = best(fn, args.repeat)
        timings[name] = {"best_s": round(b, 4), "runs_s": [round(r, 4) for r in runs], "bytes": len(out.encode())}
        outputs[name] = out
    base = timings["baseline json.dumps"]["best_s"]
    for t in timings.values():
        t["ratio"] = round(t["best_s"] / base, 2)
    html_s = timings["render_html (standalone page)"]["best_s"]
    rows = outputs["render_html (standalone page)"].count('<tr class="ps-change ')
    result = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        "changes": len(cs.changes),
        "distinct_real_changes": distinct,
        "html_rows": rows,
        "timings": timings,
        "target_html_s": TARGET_S,
        "target_met": html_s < TARGET_S,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['machine']}")
        print(
            f"change set: {len(cs.changes):,} changes, taken from {distinct:,} real ones "
            f"(repeated with a key suffix when fewer); {rows:,} rows in the page"
        )
        print(f"{'renderer':<34} {'best':>9} {'ratio':>7} {'size':>11}   runs")
        for name, t in timings.items():
            print(f"{name:<34} {t['best_s']:>8.3f}s {t['ratio']:>6.2f}x {t['bytes'] / 1e6:>8.1f} MB   {t['runs_s']}")
        print(
            f"target: HTML of {len(cs.changes):,} changes in < {TARGET_S:.0f} s: "
            f"{'met' if result['target_met'] else 'MISSED'} ({html_s:.3f} s)"
        )
    return 0 if rows == len(cs.changes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
