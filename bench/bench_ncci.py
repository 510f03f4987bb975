"""Benchmark of the NCCI sources at full size: PTP and MUE sync, diff, no-op re-sync, compile (a script).

    .venv/bin/python bench/bench_ncci.py [--data DIR] [--gen DIR] [--json] [--repeat N]

No whole PTP file or MUE table is recorded, so ``bench/generate.py`` writes full-size ones (quarters
2026-07 and 2026-10, 2.6 million PTP edits each) into a temporary folder, or ``--gen DIR`` reuses (or
fills, and keeps) a folder of its output. The loopback mirror runs in this process and serves them
through the AMA licence gate at their real URL paths. Every ``policysync`` command runs as a
subprocess of the CLI, so its wall time and peak RSS are that command's alone (peak RSS from
``/usr/bin/time -f %M``, else by polling ``VmHWM`` in ``/proc/PID/status``).

(1) first sync of quarter 2026-07: ``sync --source cms_ncci_ptp`` (four parts, 2.6 M edits), then
    ``sync --source cms_ncci_mue`` (three tables): wall time, peak RSS, the PTP time in the run report
    (``duration_s``: crawl + parse + load of the four parts), and, in a separate child process, the
    stored four parts parsed and loaded into a fresh rulebook in one transaction (no crawl), and
    after that parsed alone (rows discarded);
(2) the baseline: the same 2.6 M rows as CSV (written once from the generated TXT files, untimed),
    imported with ``sqlite3 fresh.db ".import --csv rows.csv ptp"``, best of N; ratios over it;
(3) 2026-10 is published on the mirror and both sources are synced again: time, RSS and the counts
    (added, deleted, modifier indicator changes...) checked against ``generated.json``'s churn;
(4) ``policysync diff V1 V2 --source cms_ncci_ptp --json -o FILE`` between the two PTP versions
    (subprocess, best of N) and ``rulebook.diff.diff_versions`` in this process (best of N);
(5) no-op re-sync of both sources against the unchanged mirror, best of N: ``documents_parsed == 0``;
(6) ``policysync compile --from 2026-07-01 --to 2026-10-01 --scope medicare``: time, RSS and the size
    of the PTP companion TSV; the pack is read back with ``compiler.packs.read_packs``.

Targets (from the issue): a PTP quarter loaded within 3x the time of SQLite's CSV import and in under
60 s on a 2-core machine; peak memory under 1 GB; the diff between two PTP quarters under 10 s; a
re-sync of unchanged files parses nothing. Timings are figures (met/missed); the exit status is 1 only
when something is wrong: a command failed, a count does not match what was generated, or a no-op
re-sync parsed a document. Everything is written to a temporary directory that is removed at the end
(except ``--gen``); results go to stdout only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make tests.conftest importable beside the installed packages

from compiler.packs import read_packs  # noqa: E402
from policysync.mirror import MirrorServer  # noqa: E402
from rulebook.db import open_rulebook  # noqa: E402
from rulebook.diff import diff_versions  # noqa: E402
from tests.conftest import shared_data_dir  # noqa: E402

Q3, Q4 = "2026-07", "2026-10"
WINDOW = ("2026-07-01", "2026-10-01")
PTP, MUE = "cms_ncci_ptp", "cms_ncci_mue"
HCPCS_FILE = Path("hcpcs") / "quarterly_2025" / "HCPC2025_OCT_ANWEB.xlsx"  # generate.py takes real codes from it
BIN = Path(sys.executable).parent
POLICYSYNC = BIN / "policysync"
SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"
GNU_TIME = "/usr/bin/time"
PTP_HEADER_LINES = 6  # the notice, the title and four lines of column headings in every ccipra TXT

TARGET_RATIO = 3.0
TARGET_LOAD_S = 60.0
TARGET_RSS_KB = 1024 * 1024  # 1 GB (GiB: ru_maxrss and VmHWM are in KiB)
TARGET_DIFF_S = 10.0

# The child that parses and loads the stored PTP parts into a fresh rulebook, as sync does for each
# document (a savepoint per document inside one transaction), without the crawl. Migrations are applied
# before the clock starts. Then it times the parse alone (rows discarded). argv: source home, fresh
# database path. Prints one JSON object.
LOAD_ONLY = r"""
import json, sys, time
from pathlib import Path
from parsers.records import SourceMeta
from policysync.config import resolve_home
from policysync.pipeline import _in_load_order, chunk_parser, load_document, parse_rows
from rulebook import versions as vers
from rulebook.blobs import BlobStore
from rulebook.db import open_rulebook
from rulebook.facts import LoadCounts

home = resolve_home(Path(sys.argv[1]))
src = open_rulebook(home.db_path)
arts = _in_load_order(src, "cms_ncci_ptp", list(src.table("artifacts").rows_where(
    "source = 'cms_ncci_ptp' AND parse_status = 'parsed'")))  # in the order sync loads them
src.close()
blobs = BlobStore(home.artifacts)

def meta(art):
    return SourceMeta(source=art["source"], url=art["url"], sha256=art["sha256"],
                      filename=art["filename"] or art["url"], release=art["release"])

db = open_rulebook(Path(sys.argv[2]))
total, records = LoadCounts(), 0
t0, c0 = time.perf_counter(), time.process_time()
with db.atomic():
    version = vers.begin_version(db, kind="sync", now="2026-07-01T00:00:00Z")
    for art in arts:
        with db.atomic():
            counts, n = load_document(db, art, blobs.get(art["sha256"]), meta(art), version)
            total.merge(counts)
            records += n
    before_commit, cpu_before_commit = time.perf_counter() - t0, time.process_time() - c0
seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
# Then the parse alone, the rows discarded: where the time goes. After the load, so that the load
# runs in a fresh interpreter as in sync. The parser sync uses for PTP
# (parse_chunks: the same checks, the rows as JSON chunks), then the record parser for comparison.
parsed = 0
t0 = time.perf_counter()
chunked = chunk_parser("cms_ncci_ptp")
for art in arts:
    for chunk in chunked(blobs.get(art["sha256"]), meta(art)):
        parsed += chunk.count
parse_s = time.perf_counter() - t0
records_parsed = 0
t0 = time.perf_counter()
for art in arts:
    for rows in parse_rows(art, blobs.get(art["sha256"]), meta(art)).values():
        for _ in rows:
            records_parsed += 1
parse_records_s = time.perf_counter() - t0

stored = db.execute("SELECT count(*) FROM ptp_edits").fetchone()[0]
print(json.dumps({"seconds": seconds, "commit_s": seconds - before_commit, "load_s": before_commit,
                  "load_cpu_before_commit_s": cpu_before_commit, "parse_only_s": parse_s,
                  "parse_records_s": parse_records_s, "load_cpu_s": cpu_s, "parsed": parsed,
                  "records_parsed": records_parsed, "documents": len(arts), "records": records,
                  "added": total.added, "stored": stored}))
"""


# --- running a command --------------------------------------------------------------------------


@dataclass
class Run:
    """One subprocess: wall time (s), peak RSS (KiB) of that command alone, exit code and output."""

    cmd: list[str]
    seconds: float
    peak_rss_kb: int
    returncode: int
    stdout: str
    stderr: str
    cpu_s: float | None = None  # user + system CPU of the command (/usr/bin/time), every thread

    def summary(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "peak_rss_kb": self.peak_rss_kb, "returncode": self.returncode,
                "cpu_s": self.cpu_s}


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_cmd(cmd: list[str], work: Path) -> Run:
    """Run ``cmd`` and measure it. Not ``getrusage(RUSAGE_CHILDREN)`` or ``wait4`` on the command
    itself: subprocess starts children with vfork, so their ru_maxrss includes this process's own
    peak (the mirror holds the served zips). ``/usr/bin/time`` forks a small process first."""
    out, err, rss_file = work / "cmd.stdout", work / "cmd.stderr", work / "cmd.rss"
    timed = os.access(GNU_TIME, os.X_OK)
    full = [GNU_TIME, "-f", "%U %S %M", "-o", str(rss_file), *cmd] if timed else cmd
    peak = 0
    cpu = None
    with out.open("wb") as fo, err.open("wb") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=fo, stderr=fe)
        if timed:
            proc.wait()
        else:
            while proc.poll() is None:
                peak = max(peak, _vm_hwm(proc.pid))
                time.sleep(0.02)
        seconds = time.perf_counter() - t0
    if timed:
        # "Command exited with non-zero status N" may come first; the figures are on the last line.
        user, system, rss = rss_file.read_text().split()[-3:]
        peak, cpu = int(rss), float(user) + float(system)
    return Run(cmd, seconds, peak, proc.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"),
               cpu)


def policysync(home: Path, *args: str) -> list[str]:
    return [str(POLICYSYNC), "--home", str(home), *args]


def sync_report(run: Run) -> dict[str, Any]:
    """The ``sync --json`` run report (``{}`` if the command printed none)."""
    try:
        report: dict[str, Any] = json.loads(run.stdout)
        return report
    except ValueError:
        return {}


def source_of(report: dict[str, Any], source: str) -> dict[str, Any]:
    for s in report.get("sources", []):
        if s["source"] == source:
            return dict(s)
    return {}


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


def timed_best(n: int, fn: Callable[[], Any]) -> tuple[float, list[float], Any]:
    runs, result = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return min(runs), runs, result


# --- data ---------------------------------------------------------------------------------------


def ensure_generated(gen: Path | None, data: Path, work: Path) -> tuple[Path, Run | None]:
    """The folder of generated quarters: ``--gen`` as is when it holds ``generated.json``, else
    written by ``bench/generate.py`` (into ``--gen``, kept, or into the temporary folder)."""
    if gen is not None and (gen / "generated.json").is_file():
        return gen, None
    out = gen or work / "gen"
    cmd = [sys.executable, str(REPO / "bench" / "generate.py"), str(out), "--hcpcs", str(data / HCPCS_FILE)]
    run = run_cmd(cmd, work)
    if run.returncode != 0:
        raise SystemExit(f"bench/generate.py failed ({run.returncode}): {run.stderr.strip()}")
    return out, run


def write_csv(quarter_dir: Path, out: Path) -> int:
    """The PTP rows of the quarter's ccipra TXT files (header lines skipped) as one CSV with a header
    row, so ``.import`` creates the table with named columns. Untimed."""
    n = 0
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["column1", "column2", "prior_1996", "effective", "deletion", "modifier_indicator",
                         "rationale"])
        for part in sorted(quarter_dir.glob("*-ptp-edits-*.zip")):
            with zipfile.ZipFile(part) as zf:
                for name in zf.namelist():
                    with zf.open(name) as raw:
                        text = io.TextIOWrapper(raw, encoding="latin-1", newline="")
                        for i, line in enumerate(text):
                            if i >= PTP_HEADER_LINES:
                                writer.writerow(line.rstrip("\r\n").split("\t"))
                                n += 1
    return n


def sqlite_import(csv_path: Path, work: Path, repeat: int) -> dict[str, Any]:
    """The baseline: ``sqlite3 fresh.db ".import --csv rows.csv ptp"``, a fresh database each run."""
    runs: list[Run] = []
    stored = []
    for i in range(repeat):
        db_path = work / f"sqlite_import_{i}.db"
        run = run_cmd([SQLITE3, str(db_path), f".import --csv {csv_path} ptp"], work)
        if run.returncode != 0:
            raise SystemExit(f"sqlite3 .import failed: {run.stderr.strip()}")
        with sqlite3.connect(db_path) as conn:
            stored.append(conn.execute("SELECT count(*) FROM ptp").fetchone()[0])
        db_path.unlink()
        runs.append(run)
    b = best(runs)
    return {"best_s": b.seconds, "runs_s": [r.seconds for r in runs], "peak_rss_kb": b.peak_rss_kb,
            "cpu_s": min((r.cpu_s for r in runs if r.cpu_s is not None), default=None),
            "stored": stored, "csv_bytes": csv_path.stat().st_size}


# --- the benchmark ------------------------------------------------------------------------------


def expected(summary: dict[str, Any]) -> dict[str, Any]:
    """What the syncs and the diff must report, from ``generated.json``."""
    q = summary["quarters"]
    ptp, mue = summary["churn"]["ptp"], summary["churn"]["mue"]

    def mue_sum(*names: str) -> int:
        return sum(c.get(n, 0) for c in mue.values() for n in names)

    deleted = ptp.get("deleted", 0) + ptp.get("deleted_retroactively", 0)
    return {
        "ptp_rows": {r: sum(p["rows"] for p in q[r]["ptp"]) for r in (Q3, Q4)},
        "mue_rows": {r: sum(m["rows"] for m in q[r]["mue"]) for r in (Q3, Q4)},
        "ptp_parts": {r: len(q[r]["ptp"]) for r in (Q3, Q4)},
        "mue_tables": {r: len(q[r]["mue"]) for r in (Q3, Q4)},
        # CMS keeps deleted edits with their deletion date: a deletion or a modifier indicator change
        # is a changed row; a row dropped from the file is kept in force as last stated (not removed).
        "ptp_second": {"added": ptp.get("added", 0), "removed": 0,
                       "modified": deleted + ptp.get("modifier_indicator_changed", 0)},
        "ptp_diff": {"ptp_added": ptp.get("added", 0), "ptp_deleted": deleted,
                     "ptp_modifier_indicator_change": ptp.get("modifier_indicator_changed", 0)},
        "ptp_retroactive": ptp.get("deleted_retroactively", 0),
        "mue_second": {"added": mue_sum("added"), "removed": mue_sum("removed"),
                       "modified": mue_sum("lowered", "raised", "mai_changed")},
    }


def sync_figures(run: Run, source: str) -> dict[str, Any]:
    report = sync_report(run)
    s = source_of(report, source)
    return {
        **run.summary(),
        "status": report.get("status"),
        "exit_code": report.get("exit_code"),
        "version": report.get("version"),
        "report_duration_s": s.get("duration_s"),
        **{k: s.get(k) for k in ("requests", "not_modified", "new_documents", "documents_parsed", "records",
                                 "added", "removed", "modified", "counted", "errors")},
        "changes": report.get("changes", {}),
        "stderr": run.stderr.strip()[-2000:] if run.returncode else "",
    }


def run_bench(data: Path, gen_arg: Path | None, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="policysync-bench-ncci-") as tmp:
        work = Path(tmp)
        gen, gen_run = ensure_generated(gen_arg, data, work)
        summary = json.loads((gen / "generated.json").read_text())
        exp = expected(summary)

        # (2) the baseline, first: the CSV is removed before the syncs fill the disk.
        csv_path = work / "rows.csv"
        csv_rows = write_csv(gen / Q3, csv_path)
        LOAD_SEEN["baseline"] = os.getloadavg()[0]
        baseline = sqlite_import(csv_path, work, repeat)
        baseline["rows"] = csv_rows
        csv_path.unlink()

        home = work / "home"
        init = run_cmd(policysync(home, "init"), work)
        if init.returncode != 0:
            raise SystemExit(f"policysync init failed: {init.stderr.strip()}")
        with MirrorServer(data, sources=[MUE, PTP], extra_dirs=[gen / Q3]) as mirror:
            url = mirror.url
            # (1) first sync of 2026-07, one source at a time.
            LOAD_SEEN["first_ptp_sync"] = os.getloadavg()[0]
            first_ptp = sync_figures(run_cmd(policysync(home, "sync", "--source", PTP, "--mirror", url, "--json"),
                                             work), PTP)
            first_mue = sync_figures(run_cmd(policysync(home, "sync", "--source", MUE, "--mirror", url, "--json"),
                                             work), MUE)
            load_avg = os.getloadavg()[0]
            load_run = run_cmd([sys.executable, "-c", LOAD_ONLY, str(home), str(work / "load_only.db")], work)
            (work / "load_only.db").unlink(missing_ok=True)
            try:
                # The child's own "seconds" (load and commit) must not be overwritten by the process's
                # wall time, which also covers start-up and the parse-alone passes.
                load_only = {**json.loads(load_run.stdout), "process_seconds": load_run.seconds,
                             "process_cpu_s": load_run.cpu_s, "peak_rss_kb": load_run.peak_rss_kb,
                             "returncode": load_run.returncode, "load_average": load_avg}
            except ValueError:
                load_only = {**load_run.summary(), "stderr": load_run.stderr.strip()[-2000:]}
            # (3) 2026-10 published; second sync.
            mirror.publish_dir(gen / Q4)
            second_ptp = sync_figures(run_cmd(policysync(home, "sync", "--source", PTP, "--mirror", url, "--json"),
                                              work), PTP)
            second_mue = sync_figures(run_cmd(policysync(home, "sync", "--source", MUE, "--mirror", url, "--json"),
                                              work), MUE)
            # (5) no-op re-syncs.
            noop_runs = [run_cmd(policysync(home, "sync", "--source", PTP, "--source", MUE, "--mirror", url,
                                            "--json"), work) for _ in range(repeat)]
        noops = [(r, sync_report(r)) for r in noop_runs]
        noop = {
            "best_s": best(noop_runs).seconds,
            "runs_s": [r.seconds for r in noop_runs],
            "peak_rss_kb": max(r.peak_rss_kb for r in noop_runs),
            "returncodes": [r.returncode for r in noop_runs],
            "documents_parsed": [sum(s["documents_parsed"] for s in rep.get("sources", [])) for _, rep in noops],
            "new_documents": [sum(s["new_documents"] for s in rep.get("sources", [])) for _, rep in noops],
            "requests": [sum(s["requests"] for s in rep.get("sources", [])) for _, rep in noops],
            "not_modified": [sum(s["not_modified"] for s in rep.get("sources", [])) for _, rep in noops],
            "status": [rep.get("status") for _, rep in noops],
        }

        # (4) the diff between the two PTP versions.
        v1, v2 = first_ptp["version"], second_ptp["version"]
        diff_file = work / "diff.json"
        diff_runs = [run_cmd(policysync(home, "diff", str(v1), str(v2), "--source", PTP, "--json", "-o",
                                        str(diff_file)), work) for _ in range(repeat)]
        diff_counts: dict[str, int] = {}
        retroactive = -1
        diff_bytes = 0
        if diff_file.is_file():
            diff_bytes = diff_file.stat().st_size
            cs = json.loads(diff_file.read_text())
            diff_counts = cs["counts"]
            retroactive = sum(1 for c in cs["changes"] if c["retroactive"])
            del cs
        db = open_rulebook(home.joinpath("rulebook.db"))
        inproc_s, inproc_runs, changeset = timed_best(repeat, lambda: diff_versions(db, v1, v2, sources=[PTP]))
        inproc_changes = len(changeset.changes)
        del changeset
        db.close()
        diff = {
            "v1": v1, "v2": v2,
            "cli_best_s": best(diff_runs).seconds,
            "cli_runs_s": [r.seconds for r in diff_runs],
            "cli_peak_rss_kb": max(r.peak_rss_kb for r in diff_runs),
            "cli_returncodes": [r.returncode for r in diff_runs],
            "json_bytes": diff_bytes,
            "counts": diff_counts,
            "changes": sum(diff_counts.values()),
            "retroactive": retroactive,
            "in_process_best_s": inproc_s,
            "in_process_runs_s": inproc_runs,
            "in_process_changes": inproc_changes,
            "stderr": diff_runs[-1].stderr.strip()[-2000:] if diff_runs[-1].returncode else "",
        }

        # (6) compile a Medicare pack for Q3 2026 with its PTP companion. compile uses approved
        # versions only: the syncs above are approved first, oldest first, as a reviewer would.
        db = open_rulebook(home.joinpath("rulebook.db"))
        pending = [r[0] for r in db.execute(
            "SELECT id FROM versions WHERE status = 'committed' AND review_state = 'pending_review' ORDER BY id")]
        db.close()
        for v in pending:
            approve = run_cmd(policysync(home, "review", "approve", str(v), "--by", "bench_ncci",
                                         "--note", "benchmark run"), work)
            if approve.returncode != 0:
                raise SystemExit(f"policysync review approve {v} failed: {approve.stderr.strip()}")
        pack_dir = work / "pack"
        comp_run = run_cmd(policysync(home, "compile", "--from", WINDOW[0], "--to", WINDOW[1], "--scope", "medicare",
                                      "-o", str(pack_dir), "--json"), work)
        compiled: dict[str, Any] = {**comp_run.summary(),
                                    "stderr": comp_run.stderr.strip()[-2000:] if comp_run.returncode else ""}
        if comp_run.returncode == 0:
            manifest = json.loads(comp_run.stdout)
            entry = manifest["packs"][0]
            companions = [pack_dir / c["file"] for c in entry.get("companions", [])]
            try:
                read_packs(pack_dir)
                read_back = "ok"
            except Exception as exc:  # noqa: BLE001 - reported, and fails the check
                read_back = f"{type(exc).__name__}: {exc}"
            compiled |= {
                "pack_file": entry["file"],
                "pack_bytes": (pack_dir / entry["file"]).stat().st_size,
                "sections": entry["sections"],
                "companions": [{"file": p.name, "bytes": p.stat().st_size} for p in companions],
                "companion_bytes": sum(p.stat().st_size for p in companions),
                "read_back": read_back,
            }
        db_bytes = home.joinpath("rulebook.db").stat().st_size

    return assemble(data, gen, gen_arg, gen_run, summary, exp, baseline, first_ptp, first_mue, load_only,
                    second_ptp, second_mue, noop, diff, compiled, db_bytes)


def assemble(
    data: Path, gen: Path, gen_arg: Path | None, gen_run: Run | None, summary: dict[str, Any],
    exp: dict[str, Any], baseline: dict[str, Any], first_ptp: dict[str, Any], first_mue: dict[str, Any],
    load_only: dict[str, Any], second_ptp: dict[str, Any], second_mue: dict[str, Any], noop: dict[str, Any],
    diff: dict[str, Any], compiled: dict[str, Any], db_bytes: int,
) -> dict[str, Any]:
    base = baseline["best_s"]
    ratios = {
        "report_ptp_duration_over_sqlite_import": (first_ptp["report_duration_s"] or 0) / base,
        "sync_command_over_sqlite_import": first_ptp["seconds"] / base,
        "parse_load_only_over_sqlite_import": load_only.get("seconds", 0) / base,
        # CPU time (user + system, all threads) does not grow when other processes take the CPUs.
        "sync_command_cpu_over_sqlite_import_cpu": (first_ptp.get("cpu_s") or 0) / (baseline.get("cpu_s") or 1e-9),
    }
    rss = {
        "sync 2026-07 PTP": first_ptp["peak_rss_kb"],
        "sync 2026-07 MUE": first_mue["peak_rss_kb"],
        "sync 2026-10 PTP": second_ptp["peak_rss_kb"],
        "sync 2026-10 MUE": second_mue["peak_rss_kb"],
        "no-op re-sync": noop["peak_rss_kb"],
        "diff (CLI)": diff["cli_peak_rss_kb"],
        "compile": compiled["peak_rss_kb"],
    }
    got_second_ptp = {k: second_ptp[k] for k in ("added", "removed", "modified")}
    got_second_mue = {k: second_mue[k] for k in ("added", "removed", "modified")}
    targets = {
        "ptp_load_within_3x_sqlite_import": ratios["report_ptp_duration_over_sqlite_import"] <= TARGET_RATIO,
        "ptp_load_under_60s": first_ptp["seconds"] < TARGET_LOAD_S,
        "peak_rss_under_1gb": max(rss.values()) < TARGET_RSS_KB,
        "ptp_diff_under_10s": diff["cli_best_s"] < TARGET_DIFF_S,
    }
    checks = {
        "first_ptp_sync_loaded_every_row": (
            first_ptp["returncode"] == 0 and first_ptp["status"] == "committed" and not first_ptp["errors"]
            and first_ptp["documents_parsed"] == exp["ptp_parts"][Q3]
            and first_ptp["records"] == first_ptp["added"] == exp["ptp_rows"][Q3]
        ),
        "first_mue_sync_loaded_every_row": (
            first_mue["returncode"] == 0 and first_mue["status"] == "committed" and not first_mue["errors"]
            and first_mue["documents_parsed"] == exp["mue_tables"][Q3]
            and first_mue["records"] == first_mue["added"] == exp["mue_rows"][Q3]
        ),
        "baseline_imported_every_row": all(n == exp["ptp_rows"][Q3] for n in baseline["stored"])
        and baseline["rows"] == exp["ptp_rows"][Q3],
        "parse_load_only_loaded_every_row": (
            load_only.get("stored") == load_only.get("added") == load_only.get("parsed") == exp["ptp_rows"][Q3]
        ),
        "second_ptp_sync_matches_churn": (
            second_ptp["returncode"] == 0 and second_ptp["status"] == "committed" and not second_ptp["errors"]
            and second_ptp["documents_parsed"] == exp["ptp_parts"][Q4]
            and second_ptp["records"] == exp["ptp_rows"][Q4] and got_second_ptp == exp["ptp_second"]
        ),
        "second_mue_sync_matches_churn": (
            second_mue["returncode"] == 0 and second_mue["status"] == "committed" and not second_mue["errors"]
            and second_mue["documents_parsed"] == exp["mue_tables"][Q4]
            and second_mue["records"] == exp["mue_rows"][Q4] and got_second_mue == exp["mue_second"]
        ),
        "ptp_diff_matches_churn": (
            all(rc == 0 for rc in diff["cli_returncodes"]) and diff["counts"] == exp["ptp_diff"]
            and diff["retroactive"] == exp["ptp_retroactive"] and diff["in_process_changes"] == diff["changes"]
        ),
        "noop_resync_parses_nothing": all(rc == 0 for rc in noop["returncodes"])
        and all(n == 0 for n in noop["documents_parsed"]) and all(n == 0 for n in noop["new_documents"]),
        "pack_compiled_and_read_back": compiled["returncode"] == 0 and compiled.get("read_back") == "ok"
        and compiled.get("sections", {}).get("ptp", 0) > 0,
    }
    return {
        "environment": environment(data, gen, gen_arg),
        "generated": {
            "seconds": gen_run.seconds if gen_run else None,
            "peak_rss_kb": gen_run.peak_rss_kb if gen_run else None,
            "ptp_rows": exp["ptp_rows"], "mue_rows": exp["mue_rows"], "churn": summary["churn"],
        },
        "expected": exp,
        "first_sync_ptp": first_ptp,
        "first_sync_mue": first_mue,
        "parse_load_only_ptp": load_only,
        "sqlite_import": baseline,
        "ratios": ratios,
        "second_sync_ptp": second_ptp,
        "second_sync_mue": second_mue,
        "diff_ptp": diff,
        "noop_resync": noop,
        "compile": compiled,
        "rulebook_bytes": db_bytes,
        "peak_rss_kb": rss,
        "targets": targets,
        "checks": checks,
    }


def environment(data: Path, gen: Path, gen_arg: Path | None) -> dict[str, Any]:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    cli = subprocess.run([SQLITE3, "--version"], capture_output=True, text=True).stdout.split()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {
        "python": platform.python_version(),
        "sqlite_library": sqlite3.sqlite_version,
        "sqlite3_cli": cli[0] if cli else "?",
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory": first("/proc/meminfo", "MemTotal"),
        "commit": commit or "?",
        "peak_rss_by": "/usr/bin/time -f %M" if os.access(GNU_TIME, os.X_OK) else "polling VmHWM",
        "data": os.path.relpath(data, REPO),  # relative: figures pasted into docs name no machine path
        "generated": str(gen) if gen_arg else "temporary (bench/generate.py, removed afterwards)",
        # The machine is shared: the 1-minute load average when each timed step began.
        "load_average": dict(LOAD_SEEN),
    }


#: 1-minute load average at the start of the baseline and of the first PTP sync (the ratio's parts).
LOAD_SEEN: dict[str, float] = {}


# --- output -------------------------------------------------------------------------------------


def _mb(kb: int | None) -> str:
    return f"{(kb or 0) / 1024:,.0f} MB"


def table(r: dict[str, Any]) -> str:
    env, exp = r["environment"], r["expected"]
    p1, m1, lo, b = r["first_sync_ptp"], r["first_sync_mue"], r["parse_load_only_ptp"], r["sqlite_import"]
    p2, m2, d, n, c = r["second_sync_ptp"], r["second_sync_mue"], r["diff_ptp"], r["noop_resync"], r["compile"]
    ratios, t, ch = r["ratios"], r["targets"], r["checks"]
    runs = len(b["runs_s"])
    met = {True: "MET ", False: "MISS"}
    ok = {True: "PASS", False: "FAIL"}

    def row(label: str, seconds: float | None, rss: str, detail: str) -> str:
        s = f"{seconds:>8.2f}s" if seconds is not None else f"{'':>9}"
        return f"{label:<54} {s} {rss:>9}  {detail}"

    def counts(x: dict[str, Any]) -> str:
        return f"+{x['added']:,} added, {x['modified']:,} modified, {x['removed']:,} removed"

    gen = r["generated"]
    lines = [
        f"policysync NCCI benchmark: {env['cpus']} CPUs {env['machine']} ({env['cpu']}, {env['memory']}), "
        f"Python {env['python']}, SQLite {env['sqlite_library']} (sqlite3 CLI {env['sqlite3_cli']}), "
        f"commit {env['commit']}",
        f"data: {env['data']}; generated: {env['generated']}"
        + (f" in {gen['seconds']:.1f}s" if gen["seconds"] else "")
        + f"; PTP rows {exp['ptp_rows'][Q3]:,} ({Q3}) / {exp['ptp_rows'][Q4]:,} ({Q4}); peak RSS by "
        f"{env['peak_rss_by']}",
        "1-minute load average (the 2 CPUs are shared) at the baseline: "
        + ", at the first PTP sync: ".join(f"{v:.1f}" for v in env.get("load_average", {}).values()),
        "",
        f"{'measure':<54} {'time':>9} {'peak RSS':>9}  detail",
        f"{'-' * 54} {'-' * 9} {'-' * 9}  {'-' * 50}",
        row(f"(1) sync {Q3} PTP (4 parts), CLI", p1["seconds"], _mb(p1["peak_rss_kb"]),
            f"{p1['records']:,} edits, {p1['added']:,} added, {p1['documents_parsed']} documents parsed"),
        row("    PTP time in the run report (duration_s)", p1["report_duration_s"], "",
            "crawl + parse + load of the 4 parts"),
        row("    parse + load only (stored parts, fresh rulebook)", lo.get("seconds"), _mb(lo.get("peak_rss_kb")),
            f"{lo.get('records', 0):,} edits, {lo.get('records', 0) / max(lo.get('seconds', 0), 1e-9):,.0f} rows/s;"
            f" separate process, no crawl; of which the commit {lo.get('commit_s', 0):.2f}s;"
            f" CPU {lo.get('load_cpu_s') or 0:.2f}s (both threads); load average {lo.get('load_average', 0):.1f};"
            f" the whole child process, with start-up and the parses below: {lo.get('process_seconds') or 0:.2f}s"),
        # duration_s stops before the commit: this is the child's figure to set beside it.
        row("    the same before the commit (cf. duration_s)", lo.get("load_s"), "",
            f"CPU {lo.get('load_cpu_before_commit_s') or 0:.2f}s (both threads),"
            f" {(lo.get('load_cpu_before_commit_s') or 0) / max(lo.get('load_s') or 0, 1e-9):.2f} CPUs busy"),
        row("    parse alone (same child, after the load)", lo.get("parse_only_s"), "",
            f"{lo.get('parsed', 0):,} edits, {lo.get('parsed', 0) / max(lo.get('parse_only_s', 0), 1e-9):,.0f}"
            " rows/s (parse_chunks, as sync)"),
        row("    record parse alone, for comparison", lo.get("parse_records_s"), "",
            f"{lo.get('records_parsed', 0):,} edits as PtpRecord rows (parse + kind.values)"),
        row(f"(1) sync {Q3} MUE (3 tables), CLI", m1["seconds"], _mb(m1["peak_rss_kb"]),
            f"{m1['records']:,} limits, {m1['added']:,} added"),
        row(f"(2) sqlite3 .import --csv, same rows, best of {runs}", b["best_s"], _mb(b["peak_rss_kb"]),
            f"{b['rows']:,} rows, {b['csv_bytes'] / 1e6:,.0f} MB CSV, runs "
            + ", ".join(f"{s:.2f}" for s in b["runs_s"])),
        row("    ratio: report's PTP time / sqlite3 import", None, "",
            f"{ratios['report_ptp_duration_over_sqlite_import']:.2f}x"),
        row("    ratio: whole sync command / sqlite3 import", None, "",
            f"{ratios['sync_command_over_sqlite_import']:.2f}x"),
        row("    ratio: parse + load only / sqlite3 import", None, "",
            f"{ratios['parse_load_only_over_sqlite_import']:.2f}x"),
        row("    CPU time: whole sync command / sqlite3 import", None, "",
            f"{p1.get('cpu_s') or 0:.2f}s / {b.get('cpu_s') or 0:.2f}s = "
            f"{ratios['sync_command_cpu_over_sqlite_import_cpu']:.2f}x (user + system, all threads)"),
        row(f"(3) sync {Q4} PTP after publishing, CLI", p2["seconds"], _mb(p2["peak_rss_kb"]),
            f"{p2['records']:,} edits parsed: {counts(p2)} (report: {p2['report_duration_s']:.2f}s)"),
        row("    expected from generated.json churn", None, "", counts(exp["ptp_second"])),
        row(f"(3) sync {Q4} MUE after publishing, CLI", m2["seconds"], _mb(m2["peak_rss_kb"]),
            f"{m2['records']:,} limits parsed: {counts(m2)}"),
        row("    expected from generated.json churn", None, "", counts(exp["mue_second"])),
        row(f"(4) diff {d['v1']} {d['v2']} --source {PTP}, CLI, best of {runs}", d["cli_best_s"],
            _mb(d["cli_peak_rss_kb"]),
            f"--json -o FILE: {d['changes']:,} changes ({d['json_bytes'] / 1e6:,.1f} MB), "
            f"{d['retroactive']:,} retroactive"),
        row("    counts", None, "", ", ".join(f"{k} {v:,}" for k, v in d["counts"].items())),
        row(f"    diff_versions in process, best of {runs}", d["in_process_best_s"], "",
            f"{d['in_process_changes']:,} changes"),
        row(f"(5) no-op re-sync, PTP + MUE, best of {runs}", n["best_s"], _mb(n["peak_rss_kb"]),
            f"documents parsed {n['documents_parsed']}, 304s {n['not_modified']} of {n['requests']} requests"),
        row(f"(6) compile medicare [{WINDOW[0]}, {WINDOW[1]})", c["seconds"], _mb(c["peak_rss_kb"]),
            (f"PTP companion {c['companion_bytes'] / 1e6:,.0f} MB ({c['sections'].get('ptp', 0):,} edits), "
             f"pack {c['pack_bytes'] / 1e6:,.1f} MB ({c['sections'].get('unit_limits', 0):,} unit limits); "
             f"read back: {c['read_back']}") if c["returncode"] == 0 else f"failed: {c['stderr']}"),
        f"rulebook.db after all syncs: {r['rulebook_bytes'] / 1e6:,.0f} MB",
        "",
        f"{met[t['ptp_load_within_3x_sqlite_import']]}  target: PTP quarter loaded within {TARGET_RATIO:g}x "
        f"SQLite's CSV import ({ratios['report_ptp_duration_over_sqlite_import']:.2f}x by the run report; "
        f"{ratios['sync_command_over_sqlite_import']:.2f}x for the whole command)",
        f"{met[t['ptp_load_under_60s']]}  target: PTP quarter loaded in < {TARGET_LOAD_S:g} s "
        f"({p1['seconds']:.1f} s, whole sync command)",
        f"{met[t['peak_rss_under_1gb']]}  target: peak memory < 1 GB (highest: "
        f"{max(r['peak_rss_kb'].values()) / 1024:,.0f} MB, "
        f"{max(r['peak_rss_kb'], key=r['peak_rss_kb'].get)})",
        f"{met[t['ptp_diff_under_10s']]}  target: diff between two PTP quarters < {TARGET_DIFF_S:g} s "
        f"({d['cli_best_s']:.2f} s CLI; {d['in_process_best_s']:.2f} s in process)",
        f"{ok[ch['noop_resync_parses_nothing']]}  target: a re-sync of unchanged files parses nothing "
        f"(documents_parsed == 0)",
    ]
    labels = {
        "first_ptp_sync_loaded_every_row": f"first PTP sync loaded all {exp['ptp_rows'][Q3]:,} edits",
        "first_mue_sync_loaded_every_row": f"first MUE sync loaded all {exp['mue_rows'][Q3]:,} limits",
        "baseline_imported_every_row": "sqlite3 imported every row",
        "parse_load_only_loaded_every_row": "parse (alone) and parse + load only saw every row",
        "second_ptp_sync_matches_churn": "second PTP sync counts match generated.json churn",
        "second_mue_sync_matches_churn": "second MUE sync counts match generated.json churn",
        "ptp_diff_matches_churn": "PTP diff counts match churn ("
        + ", ".join(f"{k} {v:,}" for k, v in exp["ptp_diff"].items())
        + f"; {exp['ptp_retroactive']:,} retroactive)",
        "pack_compiled_and_read_back": "pack compiled with a PTP companion and read back",
    }
    lines += [f"{ok[ch[k]]}  check: {label}" for k, label in labels.items()]
    for name, x in (("first PTP sync", p1), ("first MUE sync", m1), ("second PTP sync", p2),
                    ("second MUE sync", m2), ("diff", d), ("parse + load only", lo)):
        if x.get("stderr"):
            lines += ["", f"{name} stderr:", x["stderr"]]
        if x.get("errors"):
            lines += ["", f"{name} errors:", *(f"  {e}" for e in x["errors"])]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="recorded data folder (default: $POLICYSYNC_SHARED_DATA or ../shared/data)")
    ap.add_argument("--gen", type=Path, default=None,
                    help="bench/generate.py output to reuse (generated into it, and kept, if it has no "
                         "generated.json; default: a temporary folder)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of the baseline, the diff and the no-op re-sync; the best one counts (default 3)")
    args = ap.parse_args(argv)
    data = args.data or shared_data_dir()
    if not (data / HCPCS_FILE).is_file():
        ap.error(f"{data}: no {HCPCS_FILE} here (pass --data DIR or set POLICYSYNC_SHARED_DATA)")
    if not POLICYSYNC.is_file():
        ap.error(f"{POLICYSYNC}: no policysync CLI beside this Python (run from the project venv)")
    if not Path(SQLITE3).is_file():
        ap.error(f"{SQLITE3}: the sqlite3 command-line shell is needed for the baseline")
    results = run_bench(data, args.gen, max(1, args.repeat))
    print(json.dumps(results, indent=2, default=str) if args.json else table(results))
    return 0 if all(results["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
