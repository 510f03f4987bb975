"""Benchmark of the weekly job end to end (a script, not a test).

    .venv/bin/python bench/bench_weekly.py [--data DIR] [--repeat N] [--json]

Every source with recorded data is synced: the default configuration (whatever ``policysync init``
writes today) plus, as ``make demo`` does, the licence-gated ``cms_mcd`` (its export completed with the
constructed tables in tests/fixtures/cms_mcd) and the six payer sources, which are off by default. They go
through the loopback mirror (``policysync.mirror.MirrorServer``, every route builder, every recorded
file) into a fresh temporary home, by the ``policysync`` CLI as a subprocess, as cron would run it:

(1) cold: the first ``sync`` of a new home: every document is new;
(2) warm: further ``sync`` runs against the unchanged mirror (best of N): every document answers 304
    and nothing is parsed; this is what most weekly runs are.

For each: wall time and peak RSS of the command (``/usr/bin/time -f %M``, else polling ``VmHWM``, as
``bench_ncci.py`` does), the run report's total and per-source ``duration_s``, documents parsed,
records and facts added. Baselines measured in the same run:

- ``policysync --version``: interpreter start-up and imports, the floor under any run (best of N);
- a plain download of every document the cold sync fetched, from the same mirror, with urllib in one
  process, sequentially: the transfer a crawl cannot avoid.

The ratios are cold / download and warm / start-up. The exit status is 1 only when something is
wrong: a command crashed or exited 3, or a warm run parsed a document. A source that fails on the
mirror (no recorded files or routes yet) is listed with its error, not counted as a benchmark failure.
Everything is written to a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make tests.conftest importable beside the installed packages
sys.path.insert(0, str(REPO / "bench"))

from bench_ncci import GNU_TIME, Run, policysync, run_cmd, sync_report  # noqa: E402

from policysync.config import init_home, load_sources, resolve_home  # noqa: E402
from policysync.demo import _enable as enable_sources  # noqa: E402
from policysync.demo import _publish_mcd as publish_complete_mcd  # noqa: E402
from policysync.mirror import MirrorServer  # noqa: E402
from rulebook.db import open_rulebook  # noqa: E402
from tests.conftest import shared_data_dir  # noqa: E402


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def figures(run: Run) -> dict[str, Any]:
    report = sync_report(run)
    srcs = report.get("sources", [])
    return {
        "seconds": run.seconds,
        "peak_rss_kb": run.peak_rss_kb,
        "exit_code": run.returncode,
        "report_duration_s": report.get("duration_s"),
        "status": report.get("status"),
        "documents_parsed": sum(s["documents_parsed"] for s in srcs),
        "records": sum(s["records"] for s in srcs),
        "added": sum(s["added"] for s in srcs),
        "requests": sum(s["requests"] for s in srcs),
        "not_modified": sum(s["not_modified"] for s in srcs),
        "sources": {
            s["source"]: {
                "outcome": s["outcome"],
                "duration_s": s["duration_s"],
                "requests": s["requests"],
                "not_modified": s["not_modified"],
                "documents_parsed": s["documents_parsed"],
                "records": s["records"],
                "added": s["added"],
                "error": (s["errors"] or [None])[0],
            }
            for s in srcs
        },
    }


def download_baseline(db_path: Path, mirror_url: str) -> dict[str, Any]:
    """GET every URL the cold sync fetched (status 200), through the mirror mapping, in one process."""
    con = sqlite3.connect(db_path)
    urls = [r[0] for r in con.execute("SELECT DISTINCT url FROM fetches WHERE outcome = 'fetched' ORDER BY url")]
    con.close()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    total = 0
    t0 = time.perf_counter()
    for url in urls:
        mapped = mirror_url + "/" + url.split("://", 1)[1]
        try:
            with opener.open(mapped, timeout=60) as resp:
                total += len(resp.read())
        except OSError:
            pass  # a gated file answers through the licence page; the sync fetched it, the baseline skips it
    return {"seconds": time.perf_counter() - t0, "documents": len(urls), "bytes": total}


def run_bench(data: Path, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="policysync-weekly-") as tmp:
        work = Path(tmp)
        home = resolve_home(work / "home")
        init_home(home)
        startup = [run_cmd([*policysync(home.root), "--version"], work) for _ in range(repeat)]
        with MirrorServer(data) as mirror:
            # Every source with recorded data, as `make demo` runs them: the licence-gated MCD export
            # (completed with the constructed tables) and the six payer sources are off by default.
            extra = [sid for sid, cfg in load_sources(home).items() if cfg.extra.get("parser") == "payer"]
            if publish_complete_mcd(mirror, data):
                extra.insert(0, "cms_mcd")
            enable_sources(home, extra)
            sources = [s for s, cfg in load_sources(home).items() if cfg.enabled]
            cold = run_cmd([*policysync(home.root), "sync", "--mirror", mirror.url, "--json"], work)
            download = download_baseline(home.db_path, mirror.url)
            warm = [
                run_cmd([*policysync(home.root), "sync", "--mirror", mirror.url, "--json"], work) for _ in range(repeat)
            ]
        db = open_rulebook(home.db_path)
        db_mb = home.db_path.stat().st_size / 1e6
        versions = db.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
        db.close()
    best_warm = min(warm, key=lambda r: r.seconds)
    best_start = min(startup, key=lambda r: r.seconds)
    out = {
        "sources_configured": sources,
        "cold": figures(cold),
        "warm": figures(best_warm),
        "warm_runs_s": [r.seconds for r in warm],
        "warm_parsed": [figures(r)["documents_parsed"] for r in warm],
        "startup": {"seconds": best_start.seconds, "peak_rss_kb": best_start.peak_rss_kb,
                    "runs_s": [r.seconds for r in startup]},
        "download": download,
        "rulebook_mb": db_mb,
        "versions": versions,
    }
    out["ratio_cold_download"] = cold.seconds / download["seconds"] if download["seconds"] else None
    out["ratio_warm_startup"] = best_warm.seconds / best_start.seconds
    problems = []
    for name, run in [("cold", cold), *((f"warm {i + 1}", r) for i, r in enumerate(warm))]:
        if run.returncode not in (0, 1):
            problems.append(f"{name} sync exited {run.returncode}: {run.stderr.strip().splitlines()[-1:]}")
    if any(out["warm_parsed"]):
        problems.append(f"a warm sync parsed documents: {out['warm_parsed']}")
    out["problems"] = problems
    return out


def environment(data: Path) -> str:
    cpus = os.cpu_count()
    return (
        f"{cpus} CPUs {platform.machine()}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"commit {_commit()}; data: {data.name}; peak RSS by "
        + ("/usr/bin/time -f %M" if os.access(GNU_TIME, os.X_OK) else "polling VmHWM")
    )


def table(r: dict[str, Any], data: Path) -> str:
    mb = lambda kb: f"{kb / 1024:.0f} MB" if kb else "-"  # noqa: E731
    lines = [f"policysync weekly benchmark: {environment(data)}",
             f"sources configured: {', '.join(r['sources_configured'])}", ""]
    hdr = f"{'measure':<44} {'time':>8} {'peak RSS':>9}  detail"
    lines += [hdr, "-" * len(hdr)]
    c, w = r["cold"], r["warm"]
    lines.append(f"{'(1) cold sync, every source, CLI':<44} {c['seconds']:>7.2f}s {mb(c['peak_rss_kb']):>9}  "
                 f"exit {c['exit_code']}; {c['documents_parsed']} documents parsed, {c['records']:,} records, "
                 f"{c['added']:,} facts added; report {c['report_duration_s']}s")
    lines.append(f"{'(2) warm sync (nothing changed), best of ' + str(len(r['warm_runs_s'])):<44} "
                 f"{w['seconds']:>7.2f}s {mb(w['peak_rss_kb']):>9}  exit {w['exit_code']}; "
                 f"{w['not_modified']} of {w['requests']} requests 304; parsed {r['warm_parsed']}; "
                 f"runs {', '.join(f'{s:.2f}' for s in r['warm_runs_s'])}")
    s, d = r["startup"], r["download"]
    lines.append(f"{'baseline: policysync --version, best of N':<44} {s['seconds']:>7.2f}s "
                 f"{mb(s['peak_rss_kb']):>9}  interpreter start-up and imports")
    lines.append(f"{'baseline: plain download of the documents':<44} {d['seconds']:>7.2f}s {'':>9}  "
                 f"{d['documents']} documents, {d['bytes'] / 1e6:.1f} MB, urllib, one process")
    ratio = r["ratio_cold_download"]
    lines.append(f"    ratio cold sync / download: {ratio:.1f}x" if ratio else "    ratio cold sync / download: -")
    lines.append(f"    ratio warm sync / start-up: {r['ratio_warm_startup']:.1f}x")
    lines += ["", f"{'per source':<26} {'cold':>8} {'warm':>8}  cold outcome (documents parsed, records)"]
    for src in r["sources_configured"]:
        cs, ws = c["sources"].get(src, {}), w["sources"].get(src, {})
        detail = f"{cs.get('outcome')} ({cs.get('documents_parsed')}, {cs.get('records', 0):,})"
        if cs.get("error"):
            detail += f": {cs['error'][:110]}"
        lines.append(f"  {src:<24} {cs.get('duration_s', 0):>7.2f}s {ws.get('duration_s', 0):>7.2f}s  {detail}")
    lines.append(f"\nrulebook.db after {r['versions']} versions: {r['rulebook_mb']:.1f} MB")
    for p in r["problems"]:
        lines.append(f"PROBLEM: {p}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="recorded files (default: ../shared/data)")
    ap.add_argument("--repeat", type=int, default=3, help="warm syncs and start-up runs (best of N)")
    ap.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = ap.parse_args(argv)
    data = args.data or shared_data_dir()
    if not data.is_dir():
        print(f"error: {data}: recorded data not found (use --data DIR)", file=sys.stderr)
        return 2
    result = run_bench(data, max(1, args.repeat))
    print(json.dumps(result, indent=2) if args.json else table(result, data))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
