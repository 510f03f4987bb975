"""Benchmark of the payer parser and payer sync (a script, not a test).

    .venv/bin/python bench/bench_payer.py [--data DIR] [--json] [--repeat N]

(a) pages/s of ``parsers.payer.parse`` for each of the six recorded payer PDFs, beside a baseline
    measured in the same run: pdfplumber's plain ``extract_text`` of every page of the same PDF (the
    ratio is parse time over that baseline); best of N;
(b) Priority Health's 205-page drug list: the parser with the PDFium table engine (the default),
    with pdfplumber's table finder over both cores, and on one process (the baseline), best of N;
    target under 20 s on a 2-core machine;
(c) a sync of all six payer sources through the loopback mirror into a fresh home, then a re-sync of
    the unchanged mirror: every document must come back 304 and nothing may be parsed.

Timings are figures, not pass/fail; the exit status is 1 only when something is wrong (a document not
parsed, a re-sync that parsed something). Everything is written to a temporary directory that is
removed at the end; results go to stdout only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pdfplumber

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parsers import payer_profiles  # noqa: E402
from parsers.payer import parse  # noqa: E402
from parsers.payer_records import PayerCoverageRecord, PayerDocumentRecord  # noqa: E402
from parsers.records import SourceMeta  # noqa: E402
from policysync.mirror_payer import PAYER_DOCS  # noqa: E402


def _data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("POLICYSYNC_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _parse(body: bytes, source: str, name: str) -> list[Any]:
    meta = SourceMeta(
        source=source, url=f"https://bench.invalid/{name}", sha256="0" * 64, filename=name, release="2026-06-01"
    )
    return list(parse(body, meta))


def _baseline(body: bytes) -> int:
    with pdfplumber.open(io.BytesIO(body)) as pdf:
        for page in pdf.pages:
            page.extract_text()
            page.flush_cache()
        return len(pdf.pages)


def bench_documents(data: Path, repeat: int) -> list[dict[str, Any]]:
    from parsers import icd10cm

    icd10cm.is_valid("C18.0")  # the code set loads once per process (about 1.5 s): not a parse cost
    rows = []
    for doc in PAYER_DOCS:
        body = (data / doc.data_path).read_bytes()
        t, recs = _best(lambda body=body, doc=doc: _parse(body, doc.source, Path(doc.data_path).name), repeat)
        tb, pages = _best(lambda body=body: _baseline(body), repeat)
        d = next(r for r in recs if isinstance(r, PayerDocumentRecord))
        rows.append(
            {
                "payer": doc.payer,
                "pages": pages,
                "status": d.status,
                "coverage_rules": sum(isinstance(r, PayerCoverageRecord) for r in recs),
                "parse_s": round(t, 3),
                "pages_per_s": round(pages / t, 1),
                "baseline_s": round(tb, 3),
                "ratio": round(t / tb, 2),
            }
        )
    return rows


def bench_drug_list(data: Path, repeat: int) -> dict[str, Any]:
    """The whole parse of the list with each table engine: PDFium (the default), pdfplumber's table
    finder over the CPUs, and pdfplumber on one process (the baseline)."""
    doc = next(d for d in PAYER_DOCS if d.payer == "priority_health")
    body = (data / doc.data_path).read_bytes()
    original = payer_profiles.table_rows
    times: dict[str, float] = {}
    results: dict[str, Any] = {}
    for name, kwargs in (
        ("pdfium", {"engine": "pdfium"}),
        ("pdfplumber_parallel", {"engine": "pdfplumber"}),
        ("pdfplumber_serial", {"engine": "pdfplumber", "workers": 1}),
    ):

        def engine(b: bytes, f: str, kwargs: dict[str, Any] = kwargs, **_: Any) -> Any:
            return original(b, f, **kwargs)

        payer_profiles.table_rows = engine  # type: ignore[assignment]
        try:
            times[name], results[name] = _best(lambda: _parse(body, doc.source, "mdl.pdf"), repeat)
        finally:
            payer_profiles.table_rows = original
    rows = [sum(isinstance(r, PayerCoverageRecord) for r in recs) for recs in results.values()]
    assert len(set(rows)) == 1, f"the engines read different numbers of rows: {rows}"
    return {
        "pages": 205,
        "rows": rows[0],
        "pdfium_s": round(times["pdfium"], 2),
        "pdfplumber_parallel_s": round(times["pdfplumber_parallel"], 2),
        "pdfplumber_serial_s": round(times["pdfplumber_serial"], 2),
        "speedup_vs_serial": round(times["pdfplumber_serial"] / times["pdfium"], 1),
        "workers": min(4, os.cpu_count() or 1),
        "target_met": times["pdfium"] < 20,
    }


def bench_sync(data: Path) -> dict[str, Any]:
    from policysync.config import Home, init_home
    from policysync.mirror import MirrorServer
    from policysync.pipeline import sync

    sources = [d.source for d in PAYER_DOCS]
    with tempfile.TemporaryDirectory() as tmp, MirrorServer(data, sources=["payer"]) as mirror:
        home = Home(Path(tmp))
        init_home(home)
        t0 = time.perf_counter()
        first = sync(home, sources=sources, mirror=mirror.url)
        t1 = time.perf_counter()
        again = sync(home, sources=sources, mirror=mirror.url)
        t2 = time.perf_counter()
    return {
        "sync_s": round(t1 - t0, 2),
        "parsed": sum(s.documents_parsed for s in first.sources),
        "records": sum(s.records for s in first.sources),
        "resync_s": round(t2 - t1, 2),
        "resync_parsed": sum(s.documents_parsed for s in again.sources),
        "resync_not_modified": sum(s.not_modified for s in again.sources),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    data = _data_dir(args.data)
    out = {
        "machine": f"{os.cpu_count()} CPUs {platform.machine()}, Python {platform.python_version()}",
        "documents": bench_documents(data, args.repeat),
        "drug_list": bench_drug_list(data, args.repeat),
        "sync": bench_sync(data),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(out["machine"])
        print("(a) payer | pages | parse s | pages/s | baseline extract_text s | ratio | coverage rules | status")
        for r in out["documents"]:
            print(
                f"    {r['payer']} | {r['pages']} | {r['parse_s']} | {r['pages_per_s']} | {r['baseline_s']} | "
                f"{r['ratio']} | {r['coverage_rules']} | {r['status']}"
            )
        d = out["drug_list"]
        print(
            f"(b) drug list {d['pages']} pages, {d['rows']} rows: PDFium {d['pdfium_s']} s; pdfplumber "
            f"{d['pdfplumber_parallel_s']} s over {d['workers']} workers, {d['pdfplumber_serial_s']} s on one "
            f"process (PDFium x{d['speedup_vs_serial']}); under 20 s: {d['target_met']}"
        )
        s = out["sync"]
        print(
            f"(c) sync of 6 payer sources: {s['sync_s']} s, {s['parsed']} documents, {s['records']} records; "
            f"re-sync {s['resync_s']} s, {s['resync_not_modified']} x 304, {s['resync_parsed']} parsed"
        )
    bad = any(r["status"] != "parsed" for r in out["documents"]) or out["sync"]["resync_parsed"] != 0
    bad = bad or out["sync"]["parsed"] != len(PAYER_DOCS)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
