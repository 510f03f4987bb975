"""Full-size NCCI test data, generated in the exact layouts of the real CMS files (a script).

    .venv/bin/python bench/generate.py OUT_DIR [--ptp-rows 2600000] [--mue-rows 15000] [--seed 1]
                                               [--small] [--hcpcs FILE] [--no-xlsx]

No whole MUE table or PTP file is recorded (PROVENANCE.md "Not found"), so the parsers' speed and the
loader's behaviour at 2.6 million rows are measured on data made here. It is written to look like the
real thing byte for byte as far as the layout goes (checked against the recorded slices):

* ``OUT_DIR/2026-07/`` and ``OUT_DIR/2026-10/``, one folder per quarter (the second one is the first
  with churn, below), each with
  * the three MUE zips, named as CMS names them
    (``medicare-ncci-2026-q3-practitioner-services-mue-table.zip``,
    ``...-facility-outpatient-hospital-services-mue-table.zip``, ``...-dme-supplier-services-mue-table.zip``),
    each holding ``MCR_MUE_<Setting>Services_Eff_07-01-2026.csv`` (cp1252, CRLF, the quoted multi-line
    AMA notice record, the ``"HCPCS/\\nCPT Code"`` header cell, the setting's value column) and the same
    table as ``.xlsx`` (notice in A1, header on row 2; written with openpyxl, a test dependency), as
    the real zip does. The xlsx costs about a second per quarter at full size (``--no-xlsx`` leaves it
    out); the parser reads the csv when both are there;
  * the practitioner PTP table as four zips
    ``medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip`` .. ``f4`` (v323r0 for
    2026 Q4), each holding ``ccipra-v322r0-fN.TXT`` (upper-case extension, as CMS ships it): Latin-1,
    CRLF, the six header lines, rows sorted by (column 1, column 2) as bytes, parts split at column-1
    boundaries like CMS's (675,037 / 675,235 / 674,890 / 608,227 rows in v322r0). A full-size part
    zips to ~5 MB where CMS's are 17-20 MB: the invented rows repeat more than real ones;
* ``OUT_DIR/generated.json``: what was written, with the row counts and the churn between the two
  quarters, for tests and benchmarks to check against.

Codes: the HCPCS Level II procedure codes of the recorded October 2025 file (8,463 real codes, read
with ``parsers.cms_hcpcs``) plus **synthesised CPT-shaped codes**: five-digit numbers drawn at
random (CPT codes are AMA-licensed and not recorded; these numbers are only shaped like them, and
any that equal a real CPT code do so by chance). No descriptor text of any kind is written.

Values are invented with roughly the real proportions: MAI 3 / 2 / 1 at 62 / 37.6 / 0.4 % (2024 Q2
counts in DOMAIN.md §4), mostly small MUE values with a few 0s (not payable) and large drug-unit
values; PTP edits with modifier indicator 1 for ~80 %, ~15 % deleted on a quarter's last day, ~0.4 %
deleted retroactively (deletion date = effective date, indicator 9), a few pairs deleted and added
again, ~8 % in existence before 1996 (``*``, effective 19960101). Rationales are CMS's category
phrases: those of the recorded slices plus a few more of the same kind (no code-specific text).
Unpublished (blank or confidential) MUE values are not generated: whether real tables carry them
is not known here; tests/fixtures/cms_ncci_mue/ covers them.

Churn from 2026-07 to 2026-10 (CMS posts quarterly additions, deletions and revisions):

* PTP: ~1 % of active edits deleted (deletion date 20260930, the last day of Q3), ~1 % new edits
  (effective 20261001), ~0.05 % deleted retroactively (deletion date = effective date, indicator 9),
  ~0.2 % with the modifier indicator flipped 0/1, and ~0.2 % of already-deleted rows dropped from the
  file altogether (CMS keeps deleted edits, but the loader must cope with rows that vanish);
* MUE: ~0.5 % of values lowered, ~0.9 % raised (a value of 1 is raised, never lowered), ~0.3 % MAI
  changed, ~0.5 % codes added and ~0.3 % removed, per table.

Everything follows from ``--seed``: the same arguments give byte-identical files (zip timestamps are
fixed). Files are streamed to disk part by part; memory stays small. ``--small`` is the test size:
20,000 PTP rows and 600 MUE rows per quarter unless given. Full size (both quarters, 5.2 million
PTP rows) takes about 15 s on a 2-core machine, with under 100 MB of memory.
"""

from __future__ import annotations

import argparse
import bisect
import io
import itertools
import json
import random
import re
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make tests.conftest importable

from parsers.cms_hcpcs import parse as parse_hcpcs  # noqa: E402
from parsers.records import SourceMeta  # noqa: E402
from tests.conftest import shared_data_dir  # noqa: E402

HCPCS_FILE = Path("hcpcs") / "quarterly_2025" / "HCPC2025_OCT_ANWEB.xlsx"
FULL_PTP_ROWS = 2_600_000
FULL_MUE_ROWS = 15_000
SMALL_PTP_ROWS = 20_000
SMALL_MUE_ROWS = 600
SYNTHETIC_CPT_CODES = 10_000
PARTS = 4
ZIP_DATE = (2026, 6, 1, 0, 0, 0)  # fixed member timestamps: same seed, same bytes


@dataclass(frozen=True)
class Quarter:
    release: str  # "2026-07"
    effective: date
    version: str  # "v322r0"

    @property
    def q(self) -> int:
        return (self.effective.month - 1) // 3 + 1

    @property
    def mue_zip_stem(self) -> str:
        return f"medicare-ncci-{self.effective.year}-q{self.q}"

    @property
    def ptp_zip_stem(self) -> str:
        return f"medicare-ncci-{self.effective.year}q{self.q}"

    @property
    def eff_mdy(self) -> str:
        return self.effective.strftime("%m-%d-%Y")


QUARTERS = (Quarter("2026-07", date(2026, 7, 1), "v322r0"), Quarter("2026-10", date(2026, 10, 1), "v323r0"))

# --- the fixed text of the layouts (format, not data: the same in every real file of its kind) --

MUE_NOTICE = (
    "Current Procedural Terminology (CPT) codes, descriptions and other data only are copyright 2025 "
    "American Medical Association. All rights reserved. \n\nCPT\u00ae is a registered trademark of the "
    "American Medical Association.\n\nApplicable FARS/DFARS Restrictions Apply to Government Use. \n\n"
    "Fee schedules, relative value units, conversion factors and/or related components are not assigned "
    "by the AMA, are not part of CPT, and the AMA is not recommending their use.  The AMA does not directly "
    "or indirectly practice medicine or dispense medical services.  The AMA assumes no liability for the "
    "data contained or not contained herein."
)
MUE_TABLES = {  # setting -> (zip words, member word, value column)
    "practitioner": ("practitioner-services", "Practitioner", "Practitioner Services MUE Values"),
    "outpatient_hospital": (
        "facility-outpatient-hospital-services",
        "OutpatientHospital",
        "Outpatient Hospital Services MUE Values",
    ),
    "dme": ("dme-supplier-services", "DMESupplier", "DME Supplier Services MUE Values"),
}
MAI_CELLS = {1: "1 Line Edit", 2: "2 Date of Service Edit: Policy", 3: "3 Date of Service Edit: Clinical"}
MUE_RATIONALES = {
    1: ("Clinical: Data", "Nature of Service/Procedure"),
    2: ("Code Descriptor / CPT Instruction", "CMS Policy", "Anatomic Consideration", "Nature of Equipment"),
    3: (
        "Nature of Analyte",
        "Clinical: Data",
        "Nature of Service/Procedure",
        "Clinical: CMS Workgroup",
        "Prescribing Information",
        "Clinical: Society Comment",
    ),
}
PTP_HEADER = (
    "CPT only copyright 2025 American Medical Association.  All rights reserved.\t\t\t\t\t\t\r\n"
    "Column1/Column2 Edits\t\t\t\t\t\t\r\n"
    "Column 1\tColumn 2\t*=in existence\tEffective\tDeletion\tModifier\tPTP Edit Rationale\r\n"
    "\t\tprior to 1996\tDate\tDate\t0=not allowed\t\r\n"
    "\t\t\t\t*=no data\t1=allowed\t\r\n"
    "\t\t\t\t\t9=not applicable\t\r\n"
)
PTP_RATIONALES = (  # weight, text
    (30, "Misuse of Column Two code with Column One code"),
    (25, "CPT Manual or CMS manual coding instruction"),
    (15, "Standards of medical/surgical practice"),
    (8, "Mutually exclusive procedures"),
    (8, "More extensive procedure"),
    (5, "HCPCS/CPT procedure code definition"),
    (4, "Anesthesia service included in surgical procedure"),
    (3, "Laboratory panel"),
    (2, "Sequential procedure"),
)


# --- small helpers --------------------------------------------------------------------------------


def quarter_starts(first: date, last: date) -> list[date]:
    out, d = [], first
    while d <= last:
        out.append(d)
        d = date(d.year + (d.month == 10), (d.month + 2) % 12 + 1, 1)
    return out


def expand(weighted: Sequence[tuple[int, str]]) -> list[str]:
    """A list in which each value appears ``weight`` times: ``lst[int(r * len)]`` picks by weight."""
    return [text for weight, text in weighted for _ in range(weight)]


def zinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def load_codes(hcpcs: Path, rng: random.Random) -> tuple[list[str], list[str]]:
    """(every code sorted as bytes, the real HCPCS Level II codes among them)."""
    meta = SourceMeta(source="cms_hcpcs", url="", sha256="", filename=hcpcs.name)
    real = sorted({r.code for r in parse_hcpcs(hcpcs.read_bytes(), meta) if r.kind == "procedure"})
    synthetic = {f"{n:05d}" for n in rng.sample(range(100, 100_000), SYNTHETIC_CPT_CODES)}
    return sorted(set(real) | synthetic), real


# --- MUE ------------------------------------------------------------------------------------------


@dataclass
class MueRow:
    code: str
    value: int
    mai: int
    rationale: str


def mue_value(rng: random.Random, code: str) -> int:
    r = rng.random()
    if r < 0.005:
        return 0  # not payable (V5364 has MUE 0)
    if code[0] in "JQ" and r < 0.5:
        return rng.choice((10, 20, 50, 100, 150, 200, 300, 500, 1000, 2000, 9999))  # drug units
    return rng.choice((1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 4, 4, 6, 8, 10, 12, 24, 30, 50))


def mue_mai(rng: random.Random) -> int:
    r = rng.random()
    return 3 if r < 0.62 else (2 if r < 0.996 else 1)


def mue_table(rng: random.Random, codes: Sequence[str], n: int) -> list[MueRow]:
    rows = []
    for code in sorted(rng.sample(list(codes), min(n, len(codes)))):
        mai = mue_mai(rng)
        rows.append(MueRow(code, mue_value(rng, code), mai, rng.choice(MUE_RATIONALES[mai])))
    return rows


def mue_churn(rng: random.Random, rows: list[MueRow], universe: Sequence[str]) -> tuple[list[MueRow], Counter[str]]:
    out: list[MueRow] = []
    churn: Counter[str] = Counter()
    for row in rows:
        r = rng.random()
        if r < 0.003:
            churn["removed"] += 1
            continue
        new = MueRow(row.code, row.value, row.mai, row.rationale)
        if r < 0.010 and row.value > 1:
            new.value = max(1, row.value // 2)
            churn["lowered"] += 1
        elif r < 0.017:
            new.value = row.value * 2 + 1
            churn["raised"] += 1
        elif r < 0.020:
            new.mai = 2 if row.mai != 2 else 3
            new.rationale = rng.choice(MUE_RATIONALES[new.mai])
            churn["mai_changed"] += 1
        out.append(new)
    present = {r.code for r in rows}
    candidates = [c for c in universe if c not in present]
    for code in rng.sample(candidates, min(len(candidates), max(1, round(len(rows) * 0.005)))):
        mai = mue_mai(rng)
        out.append(MueRow(code, mue_value(rng, code), mai, rng.choice(MUE_RATIONALES[mai])))
        churn["added"] += 1
    out.sort(key=lambda r: r.code)
    return out, churn


def mue_csv(rows: Sequence[MueRow], value_column: str) -> bytes:
    def q(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if any(ch in cell for ch in ',"\n') else cell

    lines = [f"{q(MUE_NOTICE)},,,", f'"HCPCS/\nCPT Code",{value_column},MUE Adjudication Indicator,MUE Rationale']
    lines += [f"{r.code},{r.value},{MAI_CELLS[r.mai]},{q(r.rationale)}" for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def mue_xlsx(rows: Sequence[MueRow], value_column: str) -> bytes:
    import openpyxl  # only the generator writes xlsx; the parsers read it with python_calamine

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Sheet1")
    sheet.append([MUE_NOTICE])
    sheet.append(["HCPCS/\nCPT Code", value_column, "MUE Adjudication Indicator", "MUE Rationale"])
    for r in rows:
        sheet.append([r.code, r.value, MAI_CELLS[r.mai], r.rationale])
    out = io.BytesIO()
    workbook.save(out)
    return reproducible_xlsx(out.getvalue())


def reproducible_xlsx(data: bytes) -> bytes:
    """The workbook with fixed member timestamps and document dates: openpyxl writes "now" into both,
    and the same seed must give the same bytes."""
    stamp = date(*ZIP_DATE[:3]).isoformat() + "T00:00:00Z"
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            body = source.read(info)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), body)
            target.writestr(zinfo(info.filename), body)
    return out.getvalue()


def write_mue(folder: Path, quarter: Quarter, setting: str, rows: Sequence[MueRow], xlsx: bool) -> dict:
    words, member_word, value_column = MUE_TABLES[setting]
    member = f"MCR_MUE_{member_word}Services_Eff_{quarter.eff_mdy}"
    path = folder / f"{quarter.mue_zip_stem}-{words}-mue-table.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zinfo(f"{member}.csv"), mue_csv(rows, value_column))
        if xlsx:
            zf.writestr(zinfo(f"{member}.xlsx"), mue_xlsx(rows, value_column))
    return {"file": path.name, "member": f"{member}.csv", "setting": setting, "rows": len(rows)}


# --- PTP ------------------------------------------------------------------------------------------


@dataclass
class PtpStats:
    rows: list[int] = field(default_factory=lambda: [0] * PARTS)
    files: list[str] = field(default_factory=list)
    churn: Counter[str] = field(default_factory=Counter)


def pair_counts(rng: random.Random, n_codes: int, total: int, cap: int) -> list[int]:
    """Edits per column-1 code: heavy-tailed (a few codes have thousands), summing to ``total``."""
    weights = [min(rng.paretovariate(1.3), 60.0) for _ in range(n_codes)]
    scale = total / sum(weights)
    counts = [max(1, min(cap, round(w * scale))) for w in weights]
    diff = total - sum(counts)
    i = 0
    while diff and i < 20 * n_codes:  # spread the rounding difference one by one
        j = i % n_codes
        if diff > 0 and counts[j] < cap:
            counts[j] += 1
            diff -= 1
        elif diff < 0 and counts[j] > 1:
            counts[j] -= 1
            diff += 1
        i += 1
    return counts


class PtpWriter:
    """Both quarters' parts, written side by side (each quarter's f1 is open at the same time)."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = folders
        self.zips: list[zipfile.ZipFile] = []
        self.members: list[Any] = []
        self.buffers: list[list[str]] = [[] for _ in folders]
        self.sizes = [0] * len(folders)
        self.names: list[list[str]] = [[] for _ in folders]

    def open(self, part: int) -> None:
        self.close()
        for folder, quarter, names in zip(self.folders, QUARTERS, self.names, strict=True):
            stem = f"ccipra-{quarter.version}-f{part}"
            path = folder / f"{quarter.ptp_zip_stem}-practitioner-ptp-edits-{stem}.zip"
            zf = zipfile.ZipFile(path, "w", compresslevel=6)
            member = zf.open(zinfo(f"{stem}.TXT"), "w")
            member.write(PTP_HEADER.encode("latin-1"))
            self.zips.append(zf)
            self.members.append(member)
            names.append(path.name)

    def write(self, index: int, lines: list[str]) -> None:
        self.buffers[index].extend(lines)
        self.sizes[index] += len(lines)
        if self.sizes[index] > 20_000:
            self.flush(index)

    def flush(self, index: int) -> None:
        if self.buffers[index]:
            self.members[index].write("".join(self.buffers[index]).encode("latin-1"))
            self.buffers[index].clear()
            self.sizes[index] = 0

    def close(self) -> None:
        for index in range(len(self.members)):
            self.flush(index)
            self.members[index].close()
            self.zips[index].close()
        self.members, self.zips = [], []


def generate_ptp(
    rng: random.Random, codes: Sequence[str], total: int, folders: Sequence[Path]
) -> tuple[PtpStats, PtpStats]:
    q3, q4 = QUARTERS
    starts = quarter_starts(date(1996, 4, 1), q3.effective)
    # Later quarters carry more new edits: weight quarter i by i + 8.
    eff_pool = [d.strftime("%Y%m%d") for i, d in enumerate(starts) for _ in range(i + 8)]
    ends = [d - timedelta(days=1) for d in quarter_starts(date(1996, 7, 1), q3.effective)]  # quarter ends
    end_text = [d.strftime("%Y%m%d") for d in ends]
    rationales = expand(PTP_RATIONALES)
    q3_last_day = (q4.effective - timedelta(days=1)).strftime("%Y%m%d")  # 20260930
    q4_start = q4.effective.strftime("%Y%m%d")
    n_codes = len(codes)
    n_col1 = min(n_codes, max(40, total // 150))
    col1 = sorted(rng.sample(range(n_codes), n_col1))
    counts = pair_counts(rng, n_col1, total, cap=n_codes - 2)
    # Parts start at column-1 boundaries, each as close to a quarter of the rows as the codes allow.
    cumulative = list(itertools.accumulate(counts))
    starts_at = [0]
    for p in range(1, PARTS):
        at = bisect.bisect_left(cumulative, round(total * p / PARTS)) + 1
        starts_at.append(min(max(at, starts_at[-1] + 1), n_col1 - (PARTS - p)))
    part_starts = set(starts_at)
    stats = (PtpStats(), PtpStats())
    writer = PtpWriter(folders)
    part = 0
    rand = rng.random
    for position, (c1_index, k) in enumerate(zip(col1, counts, strict=True)):
        if position in part_starts:
            part += 1
            writer.open(part)
        c1 = codes[c1_index]
        picks = rng.sample(range(n_codes), min(n_codes, k + 1))
        chosen = sorted(i for i in picks if i != c1_index)[:k]
        lines3: list[str] = []
        lines4: list[str] = []
        for c2_index in chosen:
            if len(lines3) >= k:  # a pair added again took a line: k lines, so the total is exact
                break
            c2 = codes[c2_index]
            r = rand()
            if r < 0.08:
                p96, eff = "*", "19960101"
            else:
                p96, eff = "", eff_pool[int(rand() * len(eff_pool))]
            mi = "1" if rand() < 0.8 else "0"
            rationale = rationales[int(rand() * len(rationales))]
            r = rand()
            if r < 0.004:
                deletion, mi = eff, "9"
            elif r < 0.154 and eff < end_text[-1]:
                first = bisect.bisect_left(end_text, eff)
                deletion = end_text[first + int(rand() * (len(end_text) - first))]
            else:
                deletion = "*"
            row3 = f"{c1}\t{c2}\t{p96}\t{eff}\t{deletion}\t{mi}\t{rationale}\r\n"
            lines3.append(row3)
            # The same row one quarter later.
            r = rand()
            if deletion == "*":
                if r < 0.01:
                    row4 = f"{c1}\t{c2}\t{p96}\t{eff}\t{q3_last_day}\t{mi}\t{rationale}\r\n"
                    stats[1].churn["deleted"] += 1
                elif r < 0.0105:
                    row4 = f"{c1}\t{c2}\t{p96}\t{eff}\t{eff}\t9\t{rationale}\r\n"
                    stats[1].churn["deleted_retroactively"] += 1
                elif r < 0.0125:
                    flipped = "0" if mi == "1" else "1"
                    row4 = f"{c1}\t{c2}\t{p96}\t{eff}\t*\t{flipped}\t{rationale}\r\n"
                    stats[1].churn["modifier_indicator_changed"] += 1
                else:
                    row4 = row3
            elif r < 0.002:
                stats[1].churn["dropped"] += 1
                row4 = ""
            else:
                row4 = row3
            if row4:
                lines4.append(row4)
            if deletion not in ("*", eff) and rand() < 0.02 and deletion < end_text[-2] and len(lines3) < k:
                # Deleted and added again later: the same pair on the next line, a later start.
                again = date(int(deletion[:4]), int(deletion[4:6]), int(deletion[6:])) + timedelta(days=1)
                row = f"{c1}\t{c2}\t\t{again.strftime('%Y%m%d')}\t*\t{mi}\t{rationale}\r\n"
                lines3.append(row)
                lines4.append(row)
                stats[0].churn["added_again"] += 1
        # New edits of the quarter: pairs this column-1 code had none of.
        taken = set(chosen)
        taken.add(c1_index)
        adds = sum(1 for _ in range(len(chosen)) if rand() < 0.01)
        if adds:
            new = sorted(i for i in rng.sample(range(n_codes), min(n_codes, adds + 8)) if i not in taken)[:adds]
            for c2_index in new:
                mi = "1" if rand() < 0.8 else "0"
                rationale = rationales[int(rand() * len(rationales))]
                lines4.append(f"{c1}\t{codes[c2_index]}\t\t{q4_start}\t*\t{mi}\t{rationale}\r\n")
                stats[1].churn["added"] += 1
            # By (column 1, column 2) only, stably: a pair deleted and added again keeps its two rows' order.
            lines4.sort(key=lambda line: line[:11])
        writer.write(0, lines3)
        writer.write(1, lines4)
        stats[0].rows[part - 1] += len(lines3)
        stats[1].rows[part - 1] += len(lines4)
    writer.close()
    for stat, names in zip(stats, writer.names, strict=True):
        stat.files = names
    return stats


# --- main -----------------------------------------------------------------------------------------


def generate(out: Path, *, ptp_rows: int, mue_rows: int, seed: int, hcpcs: Path, xlsx: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    rng = random.Random(seed)
    codes, real = load_codes(hcpcs, rng)
    folders = [out / q.release for q in QUARTERS]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "seed": seed,
        "codes": {"real_hcpcs": len(real), "synthetic_cpt_shaped": len(codes) - len(real)},
        "quarters": {},
    }
    # MUE: practitioner ~15,000 rows; outpatient hospital and DME about 0.9x and 0.27x of it (the three
    # tables had 32,202 rows together in 2024 Q2, DOMAIN.md §4). DME lists HCPCS Level II codes only.
    sizes = {"practitioner": mue_rows, "outpatient_hospital": round(mue_rows * 0.9), "dme": round(mue_rows * 0.27)}
    pools = {"practitioner": codes, "outpatient_hospital": codes, "dme": real}
    mue: dict[str, list[dict]] = {q.release: [] for q in QUARTERS}
    churn: dict[str, Any] = {"mue": {}}
    for setting in MUE_TABLES:
        first = mue_table(rng, pools[setting], sizes[setting])
        second, changes = mue_churn(rng, first, pools[setting])
        churn["mue"][setting] = dict(changes)
        for quarter, folder, rows in zip(QUARTERS, folders, (first, second), strict=True):
            mue[quarter.release].append(write_mue(folder, quarter, setting, rows, xlsx))
    q3_ptp, q4_ptp = generate_ptp(rng, codes, ptp_rows, folders)
    churn["ptp"] = dict(q4_ptp.churn)
    churn["ptp"]["added_again"] = q3_ptp.churn["added_again"]
    for quarter, stats in zip(QUARTERS, (q3_ptp, q4_ptp), strict=True):
        summary["quarters"][quarter.release] = {
            "effective": quarter.effective.isoformat(),
            "version": quarter.version,
            "mue": mue[quarter.release],
            "ptp": [
                {"file": name, "setting": "practitioner", "rows": rows}
                for name, rows in zip(stats.files, stats.rows, strict=True)
            ],
        }
    summary["churn"] = churn
    summary["seconds"] = round(time.perf_counter() - started, 2)
    (out / "generated.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write into (created if missing)")
    parser.add_argument("--ptp-rows", type=int, default=None, help=f"PTP rows per quarter ({FULL_PTP_ROWS:,})")
    parser.add_argument("--mue-rows", type=int, default=None, help=f"practitioner MUE rows ({FULL_MUE_ROWS:,})")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--small", action="store_true", help=f"test size: {SMALL_PTP_ROWS:,} PTP and {SMALL_MUE_ROWS} MUE rows"
    )
    parser.add_argument("--hcpcs", type=Path, default=None, help="HCPCS file to take real codes from")
    parser.add_argument("--no-xlsx", action="store_true", help="leave the xlsx copy out of the MUE zips")
    args = parser.parse_args(argv)
    ptp_rows = args.ptp_rows or (SMALL_PTP_ROWS if args.small else FULL_PTP_ROWS)
    mue_rows = args.mue_rows or (SMALL_MUE_ROWS if args.small else FULL_MUE_ROWS)
    hcpcs = args.hcpcs or shared_data_dir() / HCPCS_FILE
    if not hcpcs.is_file():
        print(f"error: {hcpcs}: HCPCS file not found (set POLICYSYNC_SHARED_DATA or pass --hcpcs)", file=sys.stderr)
        return 2
    if ptp_rows < PARTS * 10 or mue_rows < 10:
        print("error: --ptp-rows must be at least 40 and --mue-rows at least 10", file=sys.stderr)
        return 2
    summary = generate(
        args.out, ptp_rows=ptp_rows, mue_rows=mue_rows, seed=args.seed, hcpcs=hcpcs, xlsx=not args.no_xlsx
    )
    for release, quarter in summary["quarters"].items():
        ptp = sum(p["rows"] for p in quarter["ptp"])
        mue = ", ".join(f"{m['setting']} {m['rows']:,}" for m in quarter["mue"])
        print(f"{release}: PTP {ptp:,} rows in {len(quarter['ptp'])} parts; MUE {mue}")
    print(f"wrote {args.out} in {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
