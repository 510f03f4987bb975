"""Benchmark of cms_mcd at full size: sync of a full current_article export, parse + load, the
``sqlite-utils insert`` baseline, and compiling jurisdiction and state coverage packs (a script).

    .venv/bin/python bench/bench_mcd.py [--data DIR] [--gen DIR] [--json]

(0) ``bench/generate_mcd.py`` writes the four big article tables at full size (2,002 articles; 18,158
    HCPCS, 431,120 covered and 45,352 noncovered ICD-10 rows) into a temporary folder (``--gen DIR``
    reuses or keeps one); with the recorded tables that is one ``current_article`` export of ~557,000
    rows, zipped as CMS nests it.
(1) ``sync --source cms_mcd`` (in this process) against the loopback mirror serving that export behind
    the licence page (plus the recorded LCD export completed with the constructed ``lcd.csv``): wall
    time, and the run report's ``duration_s`` (crawl + parse + load of both exports).
(2) the stored article export parsed (``parsers.cms_mcd.parse``) and loaded (``rulebook.facts.load_release``)
    into a fresh rulebook in one transaction, parse timed alone too;
(3) baseline: every CSV of the same export inserted with the ``sqlite-utils insert DB TABLE FILE --csv
    --encoding cp1252`` CLI into a fresh database (one command per table, as a person would), total time;
(4) ``compile --scope medicare:JK`` and ``--scope medicare:NY`` for 2026-01-01..2026-04-01 (in this process;
    JK first, so it starts with nothing remembered by compiler/schema_fast.py, as a CLI compile does);
(5) the compile-time schema check of the JK pack: plain jsonschema (``compiler.schema.errors``, what compiles
    ran before, the baseline) against ``compiler.schema_fast.errors`` with nothing remembered, and again
    warm; the two error lists must be equal (exit status 1 otherwise).

Targets (issue 4 part 8): the export loaded in under 30 s; a jurisdiction coverage pack compiled in
under 5 s. Figures, not pass/fail: the exit status is 1 only when something is wrong (sync failed, no
rules loaded, a pack without coverage).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.generate_mcd import generate  # noqa: E402
from compiler import schema, schema_fast  # noqa: E402
from compiler.packs import compile_packs, read_packs  # noqa: E402
from parsers.cms_mcd import parse  # noqa: E402
from parsers.records import SourceMeta  # noqa: E402
from policysync.config import init_home, resolve_home  # noqa: E402
from policysync.mirror import MirrorServer  # noqa: E402
from policysync.mirror_mcd import export_zip, publish_export  # noqa: E402
from policysync.pipeline import sync  # noqa: E402
from rulebook.db import open_rulebook  # noqa: E402
from rulebook.facts import load_release  # noqa: E402
from rulebook.kinds import KINDS  # noqa: E402
from tests.conftest import approve_pending  # noqa: E402

EXPORT = "mcd/export_2026-01"
FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"
WINDOW = ("2026-01-01", "2026-04-01")


def _rows(csv_dirs: list[Path]) -> int:
    import csv
    import io

    tables: dict[str, Path] = {}
    for d in csv_dirs:
        for f in d.glob("*.csv"):
            tables[f.stem] = f
    n = 0
    for f in tables.values():
        n += sum(1 for _ in csv.reader(io.StringIO(f.read_bytes().decode("cp1252", "replace"), newline=""))) - 1
    return n


def _baseline(csv_dirs: list[Path], work: Path) -> float:
    tables: dict[str, Path] = {}
    for d in csv_dirs:
        for f in d.glob("*.csv"):
            tables[f.stem] = f
    db = work / "baseline.db"
    if db.exists():
        db.unlink()
    exe = Path(sys.executable).parent / "sqlite-utils"
    t0 = time.perf_counter()
    for name, f in sorted(tables.items()):
        subprocess.run(
            [str(exe), "insert", str(db), name, str(f), "--csv", "--encoding", "cp1252"],
            check=True,
            capture_output=True,
        )
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = os.environ.get("POLICYSYNC_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", type=Path, default=Path(default_data))
    ap.add_argument("--gen", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    machine = f"{os.cpu_count()} CPUs {platform.machine()}, Python {platform.python_version()}"
    out: dict[str, Any] = {"machine": f"{machine}, SQLite {sqlite3.sqlite_version}"}
    out["load_average_at_start"] = round(os.getloadavg()[0], 2)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench_mcd_") as tmp:
        work = Path(tmp)
        gen = args.gen or work / "gen"
        t0 = time.perf_counter()
        if not (gen / "summary.json").is_file():
            generate(gen, args.data)
        out["generate_s"] = round(time.perf_counter() - t0, 2)
        recorded = args.data / EXPORT / "current_article" / "csv"
        dirs = [recorded, gen]
        out["export_rows"] = _rows(dirs)
        body = export_zip("current_article", dirs)
        out["export_zip_bytes"] = len(body)
        lcd = export_zip("current_lcd", [args.data / EXPORT / "current_lcd" / "csv", FIXTURES])

        # (1) sync through the mirror
        home = resolve_home(work / "home")
        init_home(home)
        with MirrorServer(args.data, sources=["cms_mcd"]) as mirror:
            publish_export(mirror, "current_article", body)
            publish_export(mirror, "current_lcd", lcd)
            t0 = time.perf_counter()
            report = sync(home, sources=["cms_mcd"], mirror=mirror.url)
            out["sync_wall_s"] = round(time.perf_counter() - t0, 2)
        (rep,) = [s for s in report.sources if s.source == "cms_mcd"]
        out["sync_duration_s"] = round(rep.duration_s, 2)
        out["sync_records"] = rep.records
        out["sync_errors"] = rep.errors
        if report.exit_code != 0 or not rep.records:
            ok = False

        # (2) parse + load alone
        meta = SourceMeta("cms_mcd", "https://downloads.cms.gov/x/current_article.zip", "0" * 64, "current_article.zip")
        t0 = time.perf_counter()
        records = list(parse(body, meta))
        out["parse_s"] = round(time.perf_counter() - t0, 2)
        db = open_rulebook(work / "fresh.db")
        t0 = time.perf_counter()
        with db.conn:
            for name in ("policy_documents", "coverage_rules"):
                kind = KINDS[name]
                rows = [kind.values(r) for r in records if isinstance(r, kind.record_type)]
                load_release(db, kind, rows, version=1, release="2026-01-08", artifact_sha256="0" * 64)
        out["load_s"] = round(time.perf_counter() - t0, 2)
        out["parse_load_s"] = round(out["parse_s"] + out["load_s"], 2)
        out["rules"] = sum(1 for r in records if type(r).__name__ == "CoverageRuleRecord")
        db.close()

        # (3) baseline
        out["sqlite_utils_insert_s"] = round(_baseline(dirs, work), 2)
        out["ratio_sync_over_sqlite_utils"] = round(out["sync_duration_s"] / out["sqlite_utils_insert_s"], 2)
        out["ratio_parse_load_over_sqlite_utils"] = round(out["parse_load_s"] / out["sqlite_utils_insert_s"], 2)

        # (4) compile
        out["load_average_at_compile"] = round(os.getloadavg()[0], 2)
        db = open_rulebook(home.db_path)
        approve_pending(db)
        for scope in ("medicare:JK", "medicare:NY"):
            pack_dir = work / scope.replace(":", "-")
            t0, c0 = time.perf_counter(), time.process_time()
            result = compile_packs(db, start=WINDOW[0], end=WINDOW[1], scope=scope, out_dir=pack_dir)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            (entry,) = result.manifest["packs"]
            n = entry["sections"].get("coverage", 0)
            read_packs(pack_dir)
            out[f"compile_{scope}_s"] = round(secs, 2)
            out[f"compile_{scope}_cpu_s"] = round(cpu, 2)  # CPU time of this process: moves less with the load
            out[f"compile_{scope}_items"] = n
            out[f"compile_{scope}_bytes"] = (pack_dir / entry["file"]).stat().st_size
            if not n:
                ok = False
        db.close()

        # (5) the compile-time schema check of the JK pack: plain jsonschema (the baseline, what compiles
        # ran before) against compiler/schema_fast.py with nothing remembered, then remembered
        jk = work / "medicare-JK"
        (jk_entry,) = json.loads((jk / "manifest.json").read_text())["packs"]
        pack = json.loads((jk / jk_entry["file"]).read_text())
        t0 = time.perf_counter()
        plain = schema.errors("pack", pack)
        out["check_plain_jsonschema_s"] = round(time.perf_counter() - t0, 2)
        schema_fast.forget()
        t0 = time.perf_counter()
        fast = schema_fast.errors("pack", pack)
        out["check_schema_fast_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        schema_fast.errors("pack", pack)
        out["check_schema_fast_warm_s"] = round(time.perf_counter() - t0, 2)
        out["ratio_check_fast_over_plain"] = round(out["check_schema_fast_s"] / out["check_plain_jsonschema_s"], 2)
        if plain != fast:
            ok = False
        if args.gen is None:
            shutil.rmtree(gen, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:40} {v}")
        print(f"target: export loaded < 30 s: {'met' if out['sync_duration_s'] < 30 else 'missed'}; "
              f"JK pack < 5 s: {'met' if out['compile_medicare:JK_s'] < 5 else 'missed'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
