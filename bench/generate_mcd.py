"""Full-size MCD article tables for the benchmark (a script; constructed data with real codes).

    .venv/bin/python bench/generate_mcd.py OUT_DIR [--data DIR] [--seed N]

The recorded export (``mcd/export_2026-01/current_article``) lacks its four big tables. This writes
them into ``OUT_DIR`` at the sizes of the real export (DOMAIN.md §4: TekSoft Phase 0 inventory):

* ``article.csv``: 2,002 articles, the current versions of real article ids of the recorded
  ``article_x_contractor.csv``, so contractors, group paragraphs and links join;
* ``article_x_hcpc_code.csv``: 18,158 rows, real HCPCS codes of the October 2025 HCPCS file, over the
  articles and group numbers the recorded ``article_x_hcpc_code_group.csv`` lists;
* ``article_x_icd10_covered.csv``: 431,120 rows, billable codes of the FY2026 ICD-10-CM tabular list
  in runs of consecutive codes (range B/M/E, as MACs enter ranges), over the groups of
  ``article_x_icd10_covered_group.csv``;
* ``article_x_icd10_noncovered.csv``: 45,352 rows, the same way.

Columns are those of the CMS data dictionary (``parsers.mcd_tables.DICTIONARY_COLUMNS``), cp1252, every
field quoted. The same seed gives the same files. ``summary.json`` says what was written.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from parsers import icd10cm  # noqa: E402
from parsers.mcd_tables import DICTIONARY_COLUMNS, read_table  # noqa: E402

ARTICLES = 2_002
HCPCS_ROWS = 18_158
COVERED_ROWS = 431_120
NONCOVERED_ROWS = 45_352
TS = "2025-12-22 14:31:54.650000000"


def _recorded(data: Path, name: str) -> list[dict[str, str]]:
    path = data / "mcd" / "export_2026-01" / "current_article" / "csv" / f"{name}.csv"
    return read_table(path.read_bytes(), path.name, name)[0]


def _hcpcs_codes(data: Path) -> list[str]:
    import python_calamine

    path = data / "hcpcs" / "quarterly_2025" / "HCPC2025_OCT_ANWEB.xlsx"
    wb = python_calamine.CalamineWorkbook.from_path(str(path))
    rows = wb.get_sheet_by_index(0).to_python()
    codes = []
    for row in rows:
        cell = str(row[0]).strip() if row else ""
        if len(cell) == 5 and cell[0].isalpha() and cell[1:].isalnum():
            codes.append(cell)
    return sorted(set(codes))


def _spread(total: int, keys: list[tuple[str, str, int]], rng: random.Random) -> dict[tuple[str, str, int], int]:
    """``total`` rows over ``keys``, each at least 1, skewed like real articles (a few very long lists)."""
    weights = [rng.paretovariate(1.3) for _ in keys]
    s = sum(weights)
    out = {k: max(1, int(total * w / s)) for k, w in zip(keys, weights, strict=True)}
    diff = total - sum(out.values())
    i = 0
    while diff != 0:
        k = keys[i % len(keys)]
        if diff > 0:
            out[k] += 1
            diff -= 1
        elif out[k] > 1:
            out[k] -= 1
            diff += 1
        i += 1
    return out


def _write(out: Path, name: str, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow(DICTIONARY_COLUMNS[name])
    w.writerows(rows)
    (out / f"{name}.csv").write_bytes(buf.getvalue().encode("cp1252", errors="replace"))


def generate(out: Path, data: Path, seed: int = 2026) -> dict[str, int]:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    current: dict[str, int] = {}
    for r in _recorded(data, "article_x_contractor"):
        current[r["article_id"]] = max(current.get(r["article_id"], 0), int(r["article_version"]))
    ids = sorted(current, key=int)[:ARTICLES]
    if len(ids) < ARTICLES:
        extra = [str(900_000 + i) for i in range(ARTICLES - len(ids))]
        ids += extra
        current.update({a: 1 for a in extra})
    chosen = set(ids)

    def groups_of(name: str, col: str) -> dict[str, list[int]]:
        g: dict[str, list[int]] = defaultdict(list)
        for r in _recorded(data, name):
            if r["article_id"] in chosen and int(r["article_version"]) == current[r["article_id"]]:
                g[r["article_id"]].append(int(r[col]))
        return g

    hcpc_groups = groups_of("article_x_hcpc_code_group", "hcpc_code_group")
    cov_groups = groups_of("article_x_icd10_covered_group", "icd10_covered_group")
    non_groups = groups_of("article_x_icd10_noncovered_group", "icd10_noncovered_group")
    article_rows = []
    for a in ids:
        eff = f"20{rng.randint(19, 25)}-{rng.randint(1, 12):02d}-01 00:00:00"
        article_rows.append(
            [a, str(current[a]), "6", f"Billing and Coding: generated article {a}", eff, eff, "", "<p>Generated.</p>",
             "", "", "N", "A", TS, "", "", "", "", "", "", "", "", "", "Y", "", "", ""]
        )  # fmt: skip
    _write(out, "article", article_rows)

    hcpcs = _hcpcs_codes(data)
    keys = [(a, str(current[a]), g) for a in ids for g in sorted(set(hcpc_groups.get(a, [])))]
    per = _spread(HCPCS_ROWS, keys, rng)
    rows = []
    for (a, v, g), n in per.items():
        start = rng.randrange(len(hcpcs))
        for i in range(n):
            code = hcpcs[(start + i * 7) % len(hcpcs)]
            rows.append([a, v, code, "101", str(g), "N", "", "", TS])
    _write(out, "article_x_hcpc_code", rows)
    n_hcpcs = len(rows)

    leaves = icd10cm.billable_codes()

    def icd_table(name: str, groups: dict[str, list[int]], total: int, covered: bool) -> int:
        keys = [(a, str(current[a]), g) for a in ids for g in sorted(set(groups.get(a, [])))]
        per = _spread(total, keys, rng)
        rows = []
        for (a, v, g), n in per.items():
            sort = 0
            left = n
            while left:
                run = min(left, rng.choice((1, 1, 3, 8, 20, 60)))
                start = rng.randrange(len(leaves) - run)
                for i in range(run):
                    code = leaves[start + i]
                    rng_flag = "N" if run == 1 else ("B" if i == 0 else "E" if i == run - 1 else "M")
                    sort += 1
                    row = [a, v, code, "3", str(g), rng_flag, str(sort), "", TS]
                    if covered:
                        row.append("Y" if rng.random() < 0.002 else "N")
                    rows.append(row)
                left -= run
        _write(out, name, rows)
        return len(rows)

    n_cov = icd_table("article_x_icd10_covered", cov_groups, COVERED_ROWS, True)
    n_non = icd_table("article_x_icd10_noncovered", non_groups, NONCOVERED_ROWS, False)
    summary = {
        "article": len(article_rows),
        "article_x_hcpc_code": n_hcpcs,
        "article_x_icd10_covered": n_cov,
        "article_x_icd10_noncovered": n_non,
        "seed": seed,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    default_data = os.environ.get("POLICYSYNC_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", type=Path, default=Path(default_data))
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    print(json.dumps(generate(args.out, args.data, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
