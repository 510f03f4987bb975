"""Benchmark of the weekly Coverage API path: a what's-new incremental sync of 20 changed articles over
the loopback mirror (a script; issue 4 part 8).

    .venv/bin/python bench/bench_coverage_api.py [--data DIR] [--gen DIR] [--changed N] [--json]

(0) ``bench/generate_mcd.py`` writes the four big article tables at full size (2,002 articles; 431,120
    covered ICD-10 rows...) into a temporary folder (``--gen DIR`` reuses or keeps one). The mirror's
    constructed Coverage API serves them with the recorded ``mcd/export_2026-01`` tables. Every
    article is dated long ago except N chosen ones (those with HCPCS and covered ICD-10 rows), created
    in week 1 (2026-01-05).
(1) week 1: ``sync --source cms_coverage_api`` into a fresh home (untimed setup): the N versions load.
(2) week 2 (timed): version v+1 of the same N articles (each withdraws one covered diagnosis) is created
    on 2026-01-12; ``sync`` reads the schedule, the token, the reference lists and the week's listing,
    fetches the N versions' 11 detail calls each, parses and loads them as one rulebook version.
(3) baseline in the same run: the same HTTP calls made one after another with ``urllib`` (no Scrapy,
    no parse, no load): what fetching alone costs on this machine; and (4) a sync of a week in which
    nothing changed (the fixed cost: schedule, token, reference lists, one listing).

Target: (2) under 5 s. Figures, not pass/fail: the exit status is 1 only when something is wrong
(the sync failed, or did not load the N versions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.generate_mcd import generate  # noqa: E402
from crawlers.spiders.cms_coverage_api import ARTICLE_ENDPOINTS, REFERENCE  # noqa: E402
from policysync.config import init_home, resolve_home  # noqa: E402
from policysync.mirror import MirrorServer  # noqa: E402
from policysync.mirror_coverage_api import API_HOST, coverage_api, read_tables  # noqa: E402
from policysync.pipeline import sync  # noqa: E402
from rulebook.db import open_rulebook  # noqa: E402

EXPORT = "mcd/export_2026-01"
SOURCE = "cms_coverage_api"
OLD = "2024-06-03 09:00:00.000000000"
WEEK1 = "2026-01-05 09:00:00.000000000"
WEEK2 = "2026-01-12 09:00:00.000000000"
VERSIONED = (
    "article", "article_x_contractor", "article_related_documents", "article_x_hcpc_code",
    "article_x_hcpc_code_group", "article_x_icd10_covered", "article_x_icd10_covered_group",
    "article_x_icd10_noncovered", "article_x_icd10_noncovered_group", "article_x_primary_jurisdiction",
)  # fmt: skip


def choose(tables: dict[str, list[dict[str, str]]], n: int) -> list[tuple[str, str]]:
    """N articles (id, current version) with HCPCS codes and covered diagnoses in their current version."""
    current = {r["article_id"]: r["article_version"] for r in tables["article"]}
    with_codes = {(r["article_id"], r["article_version"]) for r in tables["article_x_hcpc_code"]}
    with_dx = {(r["article_id"], r["article_version"]) for r in tables["article_x_icd10_covered"]}
    both = sorted((a for a in current.items() if a in with_codes and a in with_dx), key=lambda a: int(a[0]))
    step = max(1, len(both) // n)
    return both[::step][:n]


def week1(tables: dict[str, list[dict[str, str]]], chosen: list[tuple[str, str]]) -> dict[str, list[dict[str, str]]]:
    ids = {a for a, _ in chosen}
    rows = [dict(r, last_updated=WEEK1 if r["article_id"] in ids else OLD) for r in tables["article"]]
    return {"article": rows}


def week2(tables: dict[str, list[dict[str, str]]], chosen: list[tuple[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Version v+1 of each chosen article: every row copied, the last covered diagnosis withdrawn."""
    old = {a: v for a, v in chosen}
    out: dict[str, list[dict[str, str]]] = {}
    for t in VERSIONED:
        rows = list(tables.get(t, []))
        adds: list[dict[str, str]] = []
        for r in tables.get(t, []):
            a = r.get("article_id", "").strip()
            if old.get(a) == r.get("article_version", "").strip():
                new = dict(r, article_version=str(int(old[a]) + 1))
                if "last_updated" in new:
                    new["last_updated"] = WEEK2
                adds.append(new)
        if t == "article_x_icd10_covered":
            last: dict[str, int] = {}
            for i, r in enumerate(adds):
                last[r["article_id"]] = i
            adds = [r for i, r in enumerate(adds) if i not in set(last.values())]
        out[t] = rows + adds
    return out


def raw_fetch(base: str, chosen: list[tuple[str, str]]) -> tuple[float, int]:
    """The same calls as a week-2 sync, one after another with urllib: (seconds, calls)."""
    api = f"{base}/{API_HOST}/v1/"
    t0 = time.perf_counter()
    calls = 0

    def get(path: str, token: str | None = None) -> bytes:
        nonlocal calls
        calls += 1
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with urllib.request.urlopen(urllib.request.Request(api + path, headers=headers)) as r:  # noqa: S310 - loopback
            return r.read()  # type: ignore[no-any-return]

    get("metadata/local-data-schedule/")
    token = json.loads(get("metadata/license-agreement/"))["data"][0]["token"]
    for ref in REFERENCE:
        get(ref)
    get("reports/whats-new/local/?start_date=20260112&end_date=20260119")
    for a, v in chosen:
        for ep in ARTICLE_ENDPOINTS:
            q = f"articleid={a}" + ("" if ep.endswith("future-retire") else f"&ver={int(v) + 1}")
            get(f"{ep}?{q}", token)
    return time.perf_counter() - t0, calls


def main() -> int:
    default_data = os.environ.get("POLICYSYNC_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(default_data))
    ap.add_argument("--gen", type=Path, default=None, help="folder for the generated tables (kept; reused)")
    ap.add_argument("--changed", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {"machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}"}
    with tempfile.TemporaryDirectory() as tmp:
        gen = args.gen or Path(tmp) / "gen"
        if not (gen / "article_x_icd10_covered.csv").is_file():
            generate(gen, args.data)
        base = args.data / EXPORT
        with MirrorServer(args.data, sources=[SOURCE]) as m:
            api = coverage_api(m)
            t0 = time.perf_counter()
            tables = read_tables([base / "current_article" / "csv", base / "current_lcd" / "csv", gen])
            out["tables_rows"] = sum(len(v) for v in tables.values())
            chosen = choose(tables, args.changed)
            api.publish(tables | week1(tables, chosen))
            api.warm()
            out["mirror_setup_s"] = round(time.perf_counter() - t0, 2)
            home = resolve_home(Path(tmp) / "home")
            init_home(home)
            api.schedule = (date(2026, 1, 11), date(2026, 1, 15))
            first = sync(home, sources=[SOURCE], mirror=m.url)
            (rep1,) = first.sources
            out["week1"] = {"documents": rep1.documents_parsed, "records": rep1.records, "s": rep1.duration_s}

            api.publish(week2(api.tables(), chosen))
            api.warm()
            api.schedule = (date(2026, 1, 18), date(2026, 1, 22))
            requests_before = len(m.requests)
            t0 = time.perf_counter()
            second = sync(home, sources=[SOURCE], mirror=m.url)
            incremental = time.perf_counter() - t0
            (rep2,) = second.sources
            calls = len(m.requests) - requests_before
            raw_s, raw_calls = raw_fetch(m.url, chosen)

            api.schedule = (date(2026, 1, 25), date(2026, 1, 29))
            t0 = time.perf_counter()
            third = sync(home, sources=[SOURCE], mirror=m.url)
            quiet = time.perf_counter() - t0
            with_db = open_rulebook(home.db_path)
            try:
                loaded = with_db.execute(
                    "SELECT COUNT(*) FROM policy_documents WHERE v_from = ? AND v_to IS NULL", [second.version]
                ).fetchone()[0]
            finally:
                with_db.close()
    out["incremental"] = {
        "changed_articles": len(chosen),
        "documents_parsed": rep2.documents_parsed,
        "records": rep2.records,
        "facts_added": rep2.added,
        "facts_removed": rep2.removed,
        "facts_modified": rep2.modified,
        "http_calls": calls,
        "wall_s": round(incremental, 3),
        "report_duration_s": second.duration_s,
        "target_s": 5.0,
    }
    out["baseline_raw_urllib"] = {"http_calls": raw_calls, "wall_s": round(raw_s, 3)}
    out["ratio_sync_vs_raw_fetch"] = round(incremental / raw_s, 2) if raw_s else None
    out["quiet_week_sync_s"] = round(quiet, 3)
    out["ratio_sync_vs_quiet_week"] = round(incremental / quiet, 2) if quiet else None
    ok = (
        second.status == "committed"
        and rep2.documents_parsed == len(chosen)
        and loaded == len(chosen)
        and not rep2.errors
        and third.status == "committed"
    )
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        inc = out["incremental"]
        print(f"machine: {out['machine']}")
        print(f"mirror tables: {out['tables_rows']:,} rows (setup {out['mirror_setup_s']} s)")
        print(f"week 1 load: {out['week1']['documents']} articles, {out['week1']['records']:,} records")
        print(
            f"incremental sync of {inc['changed_articles']} changed articles: {inc['wall_s']} s "
            f"({inc['http_calls']} HTTP calls, {inc['records']:,} records, "
            f"+{inc['facts_added']} -{inc['facts_removed']} ~{inc['facts_modified']} facts; target < 5 s)"
        )
        print(f"baseline, the same calls with urllib one by one: {raw_s:.3f} s ({raw_calls} calls)")
        print(f"ratio sync / raw fetch: {out['ratio_sync_vs_raw_fetch']}x")
        print(f"a quiet week's sync (nothing changed): {quiet:.3f} s; ratio: {out['ratio_sync_vs_quiet_week']}x")
        if not ok:
            print(f"PROBLEM: {rep2.errors[:3]} loaded={loaded}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
