"""NCCI edits end to end (issue 3, parts 3, 4 and 7): ``sync`` of ``cms_ncci_mue`` and ``cms_ncci_ptp``
through the real crawl against the loopback mirror (the PTP files behind the AMA licence page), the
facts and their provenance, the change set between two quarters, the packs, and bad input.

Every expectation here is computed from the files themselves (the recorded excerpts in
``../shared/data``, or what ``bench/generate.py`` wrote), with ``csv`` and ``str.split``, never with
``parsers/``. The rules being checked:

* an MUE table is in force from the effective date in its file name until a later table changes or
  drops the value; a code's value is one number, its MAI the digit that starts the MAI cell;
* a PTP edit is in force from its effective date THROUGH its deletion date (``*`` = no deletion), so
  ``eff_end`` is the day after; an edit whose deletion date is not after its effective date was never
  in force (the 0001A/90473 row of the excerpt) and belongs in no pack;
* the newest release restates an edit; an edit a newer release leaves out is kept as last stated.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlite_utils

from compiler.packs import compile_packs, read_packs
from parsers import cms_ncci_ptp as ptp_parser
from parsers.errors import PackError, PolicySyncError
from policysync import pipeline
from policysync.config import Home, init_home, resolve_home
from policysync.mirror import CMS_HOST, LICENSE_PATH, NCCI_FILES, MirrorServer, build_zip
from policysync.pipeline import SyncReport, sync
from rulebook import facts
from rulebook.db import open_rulebook
from rulebook.diff import ChangeSet, diff_versions
from tests.conftest import REPO, approve_pending

SOURCES = ["cms_ncci_mue", "cms_ncci_ptp"]
MUE_FILE, PTP_FILE = NCCI_FILES
assert (MUE_FILE.source, PTP_FILE.source) == tuple(SOURCES)
MUE_PATH = f"/{CMS_HOST}{MUE_FILE.path}"  # the mirror path
PTP_PATH = f"/{CMS_HOST}{PTP_FILE.path}"
MUE_URL = f"https://{CMS_HOST}{MUE_FILE.path}"  # the real URL it stands for
PTP_URL = f"https://{CMS_HOST}{PTP_FILE.path}"
MUE_ZIP = MUE_FILE.path.rsplit("/", 1)[1]  # medicare-ncci-2026-q3-practitioner-services-mue-table.zip
PTP_ZIP = PTP_FILE.path.rsplit("/", 1)[1]  # medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip
((MUE_MEMBER, MUE_RECORDED),) = MUE_FILE.members  # MCR_MUE_..._Eff_07-01-2026.excerpt.csv in the zip
((PTP_MEMBER, PTP_RECORDED),) = PTP_FILE.members  # ccipra-v322r0-f1.excerpt.txt in the zip

# CMS's labels of the MUE Adjudication Indicators (DOMAIN.md §3.5), as the MAI cells carry them.
MAI_LABELS = {1: "Line Edit", 2: "Date of Service Edit: Policy", 3: "Date of Service Edit: Clinical"}
Q3 = ("2026-07-01", "2026-10-01")
Q4 = ("2026-10-01", "2027-01-01")
ZIP = {"Content-Type": "application/zip"}


# --- the files, read directly -------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    row: int  # 1-based CSV record number (the notice is record 1, the header record 2)
    code: str
    max_units: int
    mai: int
    rationale: str


def read_mue(data: bytes) -> list[Limit]:
    """An MUE table csv: record 1 is the AMA notice, record 2 the header, then one code a record."""
    records = list(csv.reader(io.StringIO(data.decode("cp1252"), newline="")))
    assert records[1][0].split() == ["HCPCS/", "CPT", "Code"] and records[1][2] == "MUE Adjudication Indicator"
    return [
        Limit(number, code, int(value), int(mai.split()[0]), rationale)
        for number, (code, value, mai, rationale) in enumerate(records[2:], start=3)
    ]


@dataclass(frozen=True)
class Edit:
    line: int  # 1-based line of the txt
    column1: str
    column2: str
    prior_1996: int
    eff_start: str  # ISO
    deletion: str | None  # ISO, None for "*"
    modifier_indicator: int
    rationale: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.column1, self.column2, self.eff_start

    @property
    def eff_end(self) -> str | None:
        """The day after the deletion date (the last day in force); the start itself when never in force."""
        if self.deletion is None:
            return None
        if self.deletion <= self.eff_start:
            return self.eff_start
        return (date.fromisoformat(self.deletion) + timedelta(days=1)).isoformat()

    def in_force_during(self, window: tuple[str, str]) -> bool:
        if self.deletion is not None and self.deletion <= self.eff_start:
            return False  # deleted retroactively: never in force
        return self.eff_start < window[1] and (self.deletion is None or self.deletion >= window[0])


def _iso(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}"


def read_ptp(data: bytes) -> list[Edit]:
    """A PTP txt: six header lines, then one tab-separated edit a line (CRLF)."""
    lines = data.decode("latin-1").split("\r\n")
    assert lines[2].startswith("Column 1\tColumn 2") and lines[-1] == ""
    out = []
    for number, line in enumerate(lines[6:-1], start=7):
        c1, c2, prior, eff, deletion, mi, rationale = line.split("\t")
        out.append(
            Edit(
                number,
                c1,
                c2,
                int(prior == "*"),
                _iso(eff),
                None if deletion == "*" else _iso(deletion),
                int(mi),
                rationale,
            )
        )
    return out


def member_of(path: Path, suffix: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.lower().endswith(suffix)]
        return zf.read(name)


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = resolve_home(tmp_path / "home")
    init_home(h)
    return h


@contextmanager
def rulebook(home: Home) -> Iterator[sqlite_utils.Database]:
    db = open_rulebook(home.db_path)
    try:
        yield db
    finally:
        db.close()


def ok(report: SyncReport) -> None:
    assert (report.exit_code, report.status) == (0, "committed"), report.to_json()


def source(report: SyncReport, name: str) -> Any:
    (found,) = [s for s in report.sources if s.source == name]
    return found


def compile_dir(home: Home, out: Path, window: tuple[str, str], version: int | None = None) -> dict[str, Any]:
    """Compile a medicare pack for ``window``; returns the pack (read back from disk)."""
    with rulebook(home) as db:
        if version is None:
            approve_pending(db)
        result = compile_packs(db, start=window[0], end=window[1], scope="medicare", out_dir=out, version=version)
    (entry,) = result.manifest["packs"]
    return json.loads((out / entry["file"]).read_bytes())  # type: ignore[no-any-return]


def companion_rows(out: Path, pack: dict[str, Any]) -> list[dict[str, Any]]:
    """The PTP companion of ``pack`` with rationale and source indexes resolved."""
    ptp = pack["sections"]["ptp"]
    (entry,) = ptp["files"]
    header, *lines = (out / entry["file"]).read_text(encoding="utf-8").split("\n")
    assert header.split("\t") == ptp["columns"] and lines[-1] == ""
    rows = []
    for line in lines[:-1]:
        row: dict[str, Any] = dict(zip(ptp["columns"], line.split("\t"), strict=True))
        row["rationale"] = ptp["rationales"][int(row["rationale"])]
        row["source"] = pack["sources"][int(row["source"])]["url"]
        rows.append(row)
    assert len(rows) == entry["rows"]
    return rows


def edit_row(e: Edit, url: str, member: str) -> dict[str, Any]:
    """The companion line the edit must become."""
    return {
        "column1": e.column1,
        "column2": e.column2,
        "eff_start": e.eff_start,
        "eff_end": e.eff_end or "",
        "modifier_indicator": str(e.modifier_indicator),
        "prior_1996": str(e.prior_1996),
        "rationale": e.rationale,
        "source": url,
        "locator": f"{member} line {e.line}",
    }


# --- (a) the recorded excerpts ------------------------------------------------------------------


def test_recorded_excerpts_sync_to_facts_with_provenance_and_compile_to_a_pack(
    shared_data: Path, home: Home, tmp_path: Path
) -> None:
    limits = read_mue((shared_data / MUE_RECORDED).read_bytes())
    edits = read_ptp((shared_data / PTP_RECORDED).read_bytes())
    assert (len(limits), len(edits)) == (44, 154)
    never = [e for e in edits if e.deletion is not None and e.deletion <= e.eff_start]
    with MirrorServer(shared_data, sources=SOURCES) as mirror:
        report = sync(home, sources=SOURCES, mirror=mirror.url)
        asked = [r.path for r in mirror.requests]
        mue_sha = hashlib.sha256(mirror.document(MUE_PATH).body()).hexdigest()
        ptp_sha = hashlib.sha256(mirror.document(PTP_PATH).body()).hexdigest()
    ok(report)
    mue, ptp = source(report, "cms_ncci_mue"), source(report, "cms_ncci_ptp")
    assert (mue.documents_parsed, mue.records, mue.added, mue.errors) == (1, 44, 44, [])
    assert (ptp.documents_parsed, ptp.records, ptp.added, ptp.errors) == (1, 154, 154, [])
    assert ptp.counted["never_in_force"] == len(never) == 6
    # The PTP file was fetched the way a person gets it: through the licence page, accepting it.
    assert f"{LICENSE_PATH}?file={PTP_FILE.path}" in asked and f"{PTP_PATH}?agree=yes" in asked

    with rulebook(home) as db:
        arts = {r["source"]: r for r in db.query("SELECT * FROM artifacts")}
        assert {s: (a["url"], a["sha256"], a["release"], a["parse_status"]) for s, a in arts.items()} == {
            "cms_ncci_mue": (MUE_URL, mue_sha, "2026-07", "parsed"),
            "cms_ncci_ptp": (PTP_URL, ptp_sha, "2026-07", "parsed"),
        }
        unit_limits = list(db.query("SELECT * FROM unit_limits ORDER BY code"))
        ptp_edits = list(db.query("SELECT * FROM ptp_edits ORDER BY column1, column2, eff_start"))
        (in_force_2022,) = db.execute(
            "SELECT COUNT(*) FROM ptp_edits WHERE column1 = '0001A' AND column2 = '90473' "
            "AND eff_start <= '2022-01-01' AND (eff_end IS NULL OR eff_end > '2022-01-01')"
        ).fetchone()

    # Every MUE row of the file is one fact, with its value, MAI and the row it came from.
    assert len(unit_limits) == 44
    assert [
        (r["code"], r["max_units"], r["mai"], r["rationale"], r["locator"], r["artifact_sha256"]) for r in unit_limits
    ] == [(x.code, x.max_units, x.mai, x.rationale, f"{MUE_MEMBER} row {x.row}", mue_sha) for x in limits]
    assert {
        (r["setting"], r["eff_start"], r["eff_end"], r["release"], r["v_from"], r["v_to"]) for r in unit_limits
    } == {("practitioner", "2026-07-01", None, "2026-07", report.version, None)}
    # Every PTP row is one fact: interval from the two dates, provenance to its line.
    assert len(ptp_edits) == 154
    assert [
        (r["column1"], r["column2"], r["eff_start"], r["eff_end"], r["deletion_date"], r["modifier_indicator"],
         r["prior_1996"], r["rationale"], r["locator"], r["artifact_sha256"])
        for r in ptp_edits
    ] == [
        (e.column1, e.column2, e.eff_start, e.eff_end, e.deletion, e.modifier_indicator, e.prior_1996, e.rationale,
         f"{PTP_MEMBER} line {e.line}", ptp_sha)
        for e in sorted(edits, key=lambda e: e.key)
    ]  # fmt: skip
    # 0001A/90473 (20220101 to 20220101, indicator 9): withdrawn from its start, never in force.
    (row,) = [r for r in ptp_edits if (r["column1"], r["column2"]) == ("0001A", "90473")]
    assert (row["eff_start"], row["eff_end"], row["deletion_date"], row["modifier_indicator"]) == (
        "2022-01-01", "2022-01-01", "2022-01-01", 9,
    )  # fmt: skip
    assert row["locator"] == f"{PTP_MEMBER} line 12" and in_force_2022 == 0

    # The pack for Q3 2026.
    out = tmp_path / "packs"
    pack = compile_dir(home, out, Q3)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert set(pack["sections"]) == {"unit_limits", "ptp"}  # no HCPCS source synced
    assert pack["sources"] == [
        {"source": "cms_ncci_mue", "url": MUE_URL, "sha256": mue_sha, "release": "2026-07"},
        {"source": "cms_ncci_ptp", "url": PTP_URL, "sha256": ptp_sha, "release": "2026-07"},
    ]
    assert pack["sections"]["unit_limits"] == [
        {
            "id": f"cms_ncci_mue:practitioner:{x.code}:2026-07-01",
            "code": x.code,
            "setting": "practitioner",
            "max_units": x.max_units,
            "published": True,
            "mai": x.mai,
            "mai_label": MAI_LABELS[x.mai],
            "rationale": x.rationale,
            "eff_start": "2026-07-01",
            "eff_end": None,
            "provenance": {
                "source": "cms_ncci_mue",
                "sha256": mue_sha,
                "locator": f"{MUE_MEMBER} row {x.row}",
                "release": "2026-07",
            },
        }
        for x in limits
    ]  # fmt: skip
    # The companion lists exactly the edits in force at some point in [2026-07-01, 2026-10-01).
    expected = [edit_row(e, PTP_URL, PTP_MEMBER) for e in sorted(edits, key=lambda e: e.key) if e.in_force_during(Q3)]
    assert len(expected) == 66  # the 66 edits with no deletion date; 0001U/0029U ended 2026-06-30
    rows = companion_rows(out, pack)
    assert rows == expected
    assert not any(r["column2"] == "90473" for r in rows)
    (companion,) = pack["sections"]["ptp"]["files"]
    assert companion["setting"] == "practitioner"
    companion_path = out / companion["file"]
    (entry,) = manifest["packs"]
    assert entry["sections"] == {"unit_limits": 44, "ptp": 66}
    assert entry["companions"] == [
        {"file": companion["file"], "sha256": hashlib.sha256(companion_path.read_bytes()).hexdigest()}
    ]
    assert read_packs(out) == [pack]
    # The same version and window compile to the same bytes.
    again = tmp_path / "again"
    compile_dir(home, again, Q3)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in again.iterdir()}
    # A scrubber must not load an edited companion: one modifier indicator changed, same length.
    body = companion_path.read_bytes()
    tampered = body.replace(b"0001U\t0030U\t2018-07-01\t\t1\t", b"0001U\t0030U\t2018-07-01\t\t0\t")
    assert tampered != body and len(tampered) == len(body)
    companion_path.write_bytes(tampered)
    with pytest.raises(PackError) as caught:
        read_packs(out)
    assert str(caught.value) == (
        f"{companion_path}: sha256 does not match manifest.json (the file was changed or truncated)"
    )


def test_an_edit_withdrawn_from_a_start_inside_the_window_is_in_no_pack(
    shared_data: Path, home: Home, tmp_path: Path
) -> None:
    """An edit deleted on its own effective date, 2026-08-01, strictly inside the window: stored
    (an empty interval, so that it replaces any earlier statement) but never in force, so it is in
    no pack, although its interval's two ends lie inside the window. (Constructed: one line added to
    the excerpt, in its sorted place.)"""
    recorded = (shared_data / PTP_RECORDED).read_bytes()
    line = b"0001U\t0500T\t\t20260801\t20260801\t9\tMisuse of Column Two code with Column One code"
    txt = _replace(recorded, b"\r\n0001U\t80503\t", b"\r\n" + line + b"\r\n0001U\t80503\t")
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"]) as mirror:
        mirror.override(PTP_PATH, 200, ZIP, _ptp_zip(txt))
        ok(sync(home, sources=["cms_ncci_ptp"], mirror=mirror.url))
    edits = read_ptp(txt)
    (withdrawn,) = [e for e in edits if e.column2 == "0500T"]
    assert withdrawn.line == 141 and not withdrawn.in_force_during(Q3)
    with rulebook(home) as db:
        (row,) = db.query("SELECT * FROM ptp_edits WHERE column2 = '0500T'")
    assert (row["eff_start"], row["eff_end"], row["locator"]) == ("2026-08-01", "2026-08-01", f"{PTP_MEMBER} line 141")
    out = tmp_path / "packs"
    pack = compile_dir(home, out, Q3)
    expected = [edit_row(e, PTP_URL, PTP_MEMBER) for e in sorted(edits, key=lambda e: e.key) if e.in_force_during(Q3)]
    assert companion_rows(out, pack) == expected  # the 66 of the recorded excerpt, not 0500T
    assert len(expected) == 66


# --- (b) two generated quarters with churn ------------------------------------------------------


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", REPO / "bench" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_generate"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def generated_limits(folder: Path, quarter: dict[str, Any]) -> dict[tuple[str, str], int]:
    """(setting, code) -> MUE value, from the csv in each of a quarter's MUE zips."""
    out = {}
    for entry in quarter["mue"]:
        for x in read_mue(member_of(folder / entry["file"], ".csv")):
            out[entry["setting"], x.code] = x.max_units
    return out


def generated_edits(folder: Path, quarter: dict[str, Any]) -> dict[tuple[str, str, str], tuple[Edit, str, str]]:
    """(column1, column2, eff_start) -> (edit, real URL, member), from a quarter's PTP parts."""
    out = {}
    for entry in quarter["ptp"]:
        path = folder / entry["file"]
        with zipfile.ZipFile(path) as zf:
            (member,) = zf.namelist()
            edits = read_ptp(zf.read(member))
        assert len(edits) == entry["rows"]
        for e in edits:
            out[e.key] = (e, f"https://{CMS_HOST}/files/zip/{entry['file']}", member)
    return out


def _stated(e: Edit) -> tuple[Any, ...]:
    """What an edit states besides its key and place (a restatement of the same is no change)."""
    return e.prior_1996, e.deletion, e.modifier_indicator, e.rationale


def test_two_generated_quarters_diff_as_generated_and_packs_keep_history(shared_data: Path, tmp_path: Path) -> None:
    """Q3 then Q4 2026 as ``bench/generate.py --small`` writes them, published one after the other.

    The diff's categories against the generator's churn (``generated.json``):

    * ptp ``added`` -> ``ptp_added``; ``deleted`` (deletion date 20260930) -> ``ptp_deleted``;
      ``modifier_indicator_changed`` -> ``ptp_modifier_indicator_change``;
    * ptp ``deleted_retroactively`` -> ALSO ``ptp_deleted``: the edit gets a deletion date equal to
      its effective date AND indicator 9, so it has two categories: the deletion first (both are
      medium) and ``ptp_modifier_indicator_change`` second. It is retroactive (it ends before Q4
      starts: it never was in force). So ``ptp_deleted`` = deleted + deleted_retroactively, and the
      indicator changes by any category = changed + deleted_retroactively;
    * ptp ``dropped`` (an already deleted edit left out of the Q4 file) -> no change at all: an edit a
      newer release leaves out is kept as last stated (``absent = "retain"``), so no ``ptp_removed``;
    * ptp ``added_again`` describes Q3 alone (the same pair deleted and added again), not churn;
    * mue ``lowered``/``raised``/``mai_changed``/``added``/``removed`` -> ``limit_lowered`` (high),
      ``limit_raised`` (low), ``mai_change`` (high: the generator always changes MAI to or from 2),
      ``limit_added``, ``limit_withdrawn``, setting by setting.

    Nothing else differs.

    Packs compiled from the Q4 version: an MUE value has a history (Q3's value until 2026-10-01, then
    Q4's). A PTP edit has one row per (pair, effective date), restated by each file. So a Q3 pack from
    the Q4 version shows an indicator changed in Q4 (the file says the edit has that indicator from
    its effective date on), and it leaves out an edit deleted retroactively. An edit that Q4 restates
    unchanged keeps the Q3 file as its provenance.
    """
    out = tmp_path / "generated"
    hcpcs = shared_data / "hcpcs" / "quarterly_2025" / "HCPC2025_OCT_ANWEB.xlsx"
    assert _generator().main([str(out), "--small", "--hcpcs", str(hcpcs)]) == 0
    summary = json.loads((out / "generated.json").read_text())
    quarters = summary["quarters"]
    home = resolve_home(tmp_path / "home")
    init_home(home)
    with MirrorServer(shared_data, sources=SOURCES, extra_dirs=[out / "2026-07"]) as mirror:
        first = sync(home, sources=SOURCES, mirror=mirror.url)
        mirror.publish_dir(out / "2026-10")
        second = sync(home, sources=SOURCES, mirror=mirror.url)
    ok(first)
    ok(second)
    # The generated Q3 files replace the recorded excerpts of the same names.
    for report, release in ((first, "2026-07"), (second, "2026-10")):
        mue, ptp = source(report, "cms_ncci_mue"), source(report, "cms_ncci_ptp")
        assert (mue.documents_parsed, mue.records) == (3, sum(m["rows"] for m in quarters[release]["mue"]))
        assert (ptp.documents_parsed, ptp.records) == (4, sum(p["rows"] for p in quarters[release]["ptp"]))
    assert source(second, "cms_ncci_mue").not_modified == 3 and source(second, "cms_ncci_ptp").not_modified == 4

    churn = summary["churn"]
    ptp_churn = churn["ptp"]
    mue_churn: Counter[str] = sum((Counter(c) for c in churn["mue"].values()), Counter())
    expected = {
        "ptp_added": ptp_churn["added"],
        "ptp_deleted": ptp_churn["deleted"] + ptp_churn["deleted_retroactively"],
        "ptp_modifier_indicator_change": ptp_churn["modifier_indicator_changed"],
        "limit_lowered": mue_churn["lowered"],
        "limit_raised": mue_churn["raised"],
        "mai_change": mue_churn["mai_changed"],
        "limit_added": mue_churn["added"],
        "limit_withdrawn": mue_churn["removed"],
    }
    assert all(expected.values()) and ptp_churn["dropped"] > 0, summary["churn"]  # every kind occurs (seed 1)
    with rulebook(home) as db:
        cs: ChangeSet = diff_versions(db, first.version, second.version)
        (current_ptp,) = db.execute("SELECT COUNT(*) FROM ptp_edits WHERE v_to IS NULL").fetchone()
    assert cs.counts() == expected
    assert second.changes == expected  # what the sync itself reported
    # MUE, setting by setting.
    names = {"lowered": "limit_lowered", "raised": "limit_raised", "mai_changed": "mai_change",
             "added": "limit_added", "removed": "limit_withdrawn"}  # fmt: skip
    by_setting = Counter((c.category, c.key.split("|")[0]) for c in cs.changes if c.fact_kind == "unit_limits")
    assert by_setting == Counter(
        {(names[k], setting): n for setting, counts in churn["mue"].items() for k, n in counts.items()}
    )
    # Severities, values and flags of each kind of change.
    for c in cs.changes:
        f = c.fields
        if c.category == "limit_lowered":
            assert c.severity == "high" and f["max_units"]["after"] < f["max_units"]["before"]
        elif c.category == "limit_raised":
            assert c.severity == "low" and f["max_units"]["after"] > f["max_units"]["before"]
        elif c.category == "mai_change":
            assert c.severity == "high" and 2 in (f["mai"]["before"], f["mai"]["after"])
        elif c.category == "ptp_added":
            assert (c.severity, c.eff_start, c.eff_end, c.retroactive) == ("high", "2026-10-01", None, False)
        elif c.category == "ptp_modifier_indicator_change":
            assert c.categories == [c.category] and set(f) == {"modifier_indicator"}
            assert c.severity == ("high" if f["modifier_indicator"]["after"] == 0 else "medium")
        elif c.categories == ["ptp_deleted", "ptp_modifier_indicator_change"]:  # retroactive deletion
            assert (c.eff_end, c.retroactive, f["modifier_indicator"]["after"]) == (c.eff_start, True, 9)
        elif c.category == "ptp_deleted":
            assert c.categories == ["ptp_deleted"] and (c.eff_end, c.retroactive) == ("2026-10-01", False)
            assert f["deletion_date"] == {"before": None, "after": "2026-09-30"}
        assert c.provenance["url"].startswith(f"https://{CMS_HOST}/files/zip/medicare-ncci-2026")
    retro = [c for c in cs.changes if "ptp_modifier_indicator_change" in c.categories[1:]]
    assert len(retro) == ptp_churn["deleted_retroactively"]
    # Dropped edits are kept: every Q3 edit is still current, plus the Q4 additions.
    q4_rows = sum(p["rows"] for p in quarters["2026-10"]["ptp"])
    assert current_ptp == q4_rows + ptp_churn["dropped"] == 20_000 + ptp_churn["added"]

    # Packs compiled from the newer version: Q3 keeps the Q3 values (history), Q4 has the Q4 values.
    q3_out, q4_out = tmp_path / "q3", tmp_path / "q4"
    q3_pack = compile_dir(home, q3_out, Q3, version=second.version)
    q4_pack = compile_dir(home, q4_out, Q4, version=second.version)
    for pack, release in ((q3_pack, "2026-07"), (q4_pack, "2026-10")):
        limits = {(r["setting"], r["code"]): r["max_units"] for r in pack["sections"]["unit_limits"]}
        assert len(limits) == len(pack["sections"]["unit_limits"])  # one value per code and setting
        assert limits == generated_limits(out / release, quarters[release])
    q3_limits = {(r["setting"], r["code"]): r for r in q3_pack["sections"]["unit_limits"]}
    q4_limits = {(r["setting"], r["code"]): r for r in q4_pack["sections"]["unit_limits"]}
    lowered = [c for c in cs.changes if c.category == "limit_lowered"]
    for c in lowered:
        setting, code = c.key.split("|")
        old, new = q3_limits[setting, code], q4_limits[setting, code]
        assert (old["max_units"], old["eff_start"], old["eff_end"]) == (
            c.fields["max_units"]["before"], "2026-07-01", "2026-10-01",
        )  # fmt: skip
        assert (new["max_units"], new["eff_start"], new["eff_end"]) == (
            c.fields["max_units"]["after"],
            "2026-10-01",
            None,
        )
    # PTP: the newest statement of each edit (Q4's, else Q3's for a dropped one), in force in the window.
    # Its provenance is the first file that stated it so: Q4 restating a Q3 edit unchanged is no change.
    q3_edits = generated_edits(out / "2026-07", quarters["2026-07"])
    newest = q3_edits | generated_edits(out / "2026-10", quarters["2026-10"])
    for key, (e, _, _) in newest.items():
        if key in q3_edits and _stated(q3_edits[key][0]) == _stated(e):
            newest[key] = q3_edits[key]
    assert len(newest) == current_ptp
    for pack, folder, window in ((q3_pack, q3_out, Q3), (q4_pack, q4_out, Q4)):
        expected_rows = [
            edit_row(e, url, member) for _, (e, url, member) in sorted(newest.items()) if e.in_force_during(window)
        ]
        assert companion_rows(folder, pack) == expected_rows
        assert read_packs(folder) == [pack]
    in_q3 = {(r["column1"], r["column2"], r["eff_start"]) for r in companion_rows(q3_out, q3_pack)}
    in_q4 = {(r["column1"], r["column2"], r["eff_start"]) for r in companion_rows(q4_out, q4_pack)}
    for c in cs.changes:
        if c.fact_kind != "ptp_edits":
            continue
        c1, c2, _, start = c.key.split("|")
        if c.category == "ptp_added":
            assert (c1, c2, start) in in_q4 - in_q3
        elif c.categories == ["ptp_deleted"]:  # in force through 2026-09-30
            assert (c1, c2, start) in in_q3 - in_q4
        elif c.category == "ptp_deleted":  # deleted retroactively: never in force, in no pack
            assert (c1, c2, start) not in in_q3 | in_q4


# --- (c) bad input ------------------------------------------------------------------------------

# Every variant below is the recorded file as served, with one change a good corrected file would
# also have (so that a row staged before the problem would show if it leaked) plus the problem.


def _mue_early_change(data: bytes) -> bytes:
    """0002M (row 4): 1 -> 3 units, a raised limit."""
    changed = data.replace(b"\r\n0002M,1,", b"\r\n0002M,3,")
    assert changed != data
    return changed


def _ptp_early_change(data: bytes) -> bytes:
    """0001U/81110 (line 150): modifier indicator 1 -> 0."""
    changed = data.replace(b"\r\n0001U\t81110\t\t20180101\t*\t1\t", b"\r\n0001U\t81110\t\t20180101\t*\t0\t")
    assert changed != data
    return changed


def _mue_zip(csv_bytes: bytes, member: str = MUE_MEMBER) -> bytes:
    return build_zip([(member, csv_bytes)], MUE_FILE.published)


def _ptp_zip(txt: bytes, member: str = PTP_MEMBER) -> bytes:
    return build_zip([(member, txt)], PTP_FILE.published)


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


def _drop_rationale_column(data: bytes) -> bytes:
    """The header without 'MUE Rationale', and every row without its last cell."""
    data = _replace(data, b",MUE Rationale\r\n", b"\r\n")
    return re.sub(rb"(?m)^([0-9A-Z]{5},[^,\r\n]*,[^,\r\n]*),[^\r\n]*\r$", rb"\1\r", data)


def _five_fields_at_line_158(data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    assert lines[157].startswith(b"0001U\t81164\t")  # line 158 of 160
    lines[157] = b"\t".join(lines[157].split(b"\t")[:5])
    return b"\r\n".join(lines)


DME_FIXTURE = (
    REPO / "tests" / "fixtures" / "cms_ncci_mue" / "MCR_MUE_DMESupplierServices_Eff_07-01-2026.constructed.csv"
)
HEADER_FOUND = "HCPCS/ CPT Code, Practitioner Services MUE Values"


@dataclass(frozen=True)
class Bad:
    source: str
    path: str
    body: Callable[[bytes], bytes]  # the recorded member, early change applied -> the served bad zip
    error: str
    staged: int  # rows already in the loader's stage table when the problem is found (CHUNK = 10)


BAD_INPUT = {
    "MUE column renamed": Bad(
        "cms_ncci_mue",
        MUE_PATH,
        lambda d: _mue_zip(_replace(d, b",MUE Adjudication Indicator,", b",MUE Adj. Indicator,")),
        f"{MUE_MEMBER}: no column 'MUE Adjudication Indicator' in header row 2 "
        f"(found: {HEADER_FOUND}, MUE Adj. Indicator, MUE Rationale)",
        0,
    ),
    "MUE column missing": Bad(
        "cms_ncci_mue",
        MUE_PATH,
        lambda d: _mue_zip(_drop_rationale_column(d)),
        f"{MUE_MEMBER}: no column 'MUE Rationale' in header row 2 (found: {HEADER_FOUND}, MUE Adjudication Indicator)",
        0,
    ),
    "MUE value not a number": Bad(
        "cms_ncci_mue",
        MUE_PATH,
        lambda d: _mue_zip(_replace(d, b"\r\n0040U,1,", b"\r\n0040U,N/A,")),
        f"{MUE_MEMBER} row 45: MUE value 'N/A' for 0040U is not a number",
        40,  # rows 3-44 were read, 42 codes: four batches of ten are in the stage table
    ),
    "MUE code twice in one table": Bad(
        "cms_ncci_mue",
        MUE_PATH,
        lambda d: _mue_zip(_replace(d, b"\r\n0041U,1,", b"\r\n0009U,3,")),
        f"{MUE_MEMBER} row 46: 0009U appears twice in the practitioner services table (rows 14 and 46)",
        40,
    ),
    "MUE zip holding the DME table": Bad(
        "cms_ncci_mue",
        MUE_PATH,
        lambda d: _mue_zip(DME_FIXTURE.read_bytes(), DME_FIXTURE.name),
        f"{MUE_ZIP}: the zip is named for the practitioner services MUE table but holds "
        f"{DME_FIXTURE.name} (DME supplier services)",
        0,
    ),
    "PTP row with 5 fields late in the file": Bad(
        "cms_ncci_ptp",
        PTP_PATH,
        lambda d: _ptp_zip(_five_fields_at_line_158(d)),
        f"{PTP_MEMBER} line 158: expected 7 tab-separated fields, found 5",
        151,  # lines 7-157 were read, 151 edits, each its own chunk here: all are in the stage table
    ),
    "PTP zip holding the hospital file": Bad(
        "cms_ncci_ptp",
        PTP_PATH,
        lambda d: _ptp_zip(d, PTP_MEMBER.replace("ccipra", "ccioph")),
        f"{PTP_ZIP}: the zip is named for ccipra-v322r0-f1 but holds {PTP_MEMBER.replace('ccipra', 'ccioph')}",
        0,
    ),
}


def state(home: Home) -> dict[str, Any]:
    """What "every previous fact is still in force" is checked on: row counts and samples."""
    with rulebook(home) as db:
        counts = {
            t: db.execute(f"SELECT COUNT(*), SUM(v_to IS NULL) FROM {t}").fetchone()
            for t in ("unit_limits", "ptp_edits")
        }
        samples = {
            "0002M": list(db.query("SELECT * FROM unit_limits WHERE code = '0002M'")),
            "0040U": list(db.query("SELECT * FROM unit_limits WHERE code = '0040U'")),
            "0001U/81110": list(db.query("SELECT * FROM ptp_edits WHERE column1 = '0001U' AND column2 = '81110'")),
            "0001U/81164": list(db.query("SELECT * FROM ptp_edits WHERE column1 = '0001U' AND column2 = '81164'")),
        }
    return {"counts": counts, "samples": samples}


def committed(home: Home) -> list[int]:
    with rulebook(home) as db:
        return [r["id"] for r in db.query("SELECT id FROM versions WHERE status = 'committed' ORDER BY id")]


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_fails_the_source_keeps_every_fact_and_the_next_good_sync_loads(
    shared_data: Path, home: Home, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = BAD_INPUT[case]
    recorded = shared_data / (MUE_RECORDED if bad.source == "cms_ncci_mue" else PTP_RECORDED)
    early = _mue_early_change if bad.source == "cms_ncci_mue" else _ptp_early_change
    body = bad.body(early(recorded.read_bytes()))
    corrected = (_mue_zip if bad.source == "cms_ncci_mue" else _ptp_zip)(early(recorded.read_bytes()))
    other = next(s for s in SOURCES if s != bad.source)

    # Small stage batches, so that rows before a late problem really are in the database (in the
    # loader's stage table, inside the document's savepoint) when it is found; at the real 50,000 a
    # 154-row file would still be in a Python list. Spies record what was staged and what is left
    # once the savepoint is rolled back, in the same transaction.
    # PTP loads through parse_chunks/load_chunks: a block of one character makes every line its own
    # chunk (a block ends at the next line end), each inserted before the next is checked.
    monkeypatch.setattr(facts, "CHUNK", 10)
    monkeypatch.setattr(ptp_parser, "_BLOCK_CHARS", 1)
    staged: list[int] = []
    left: list[tuple[list[str], int]] = []
    real_load, real_chunks, real_artifact = pipeline.load_release, pipeline.load_chunks, pipeline._load_artifact

    def staged_rows(db: sqlite_utils.Database, kind: Any) -> int:
        if db.execute("SELECT 1 FROM sqlite_temp_master WHERE name = ?", [f"stage_{kind.name}"]).fetchone():
            return int(db.execute(f"SELECT COUNT(*) FROM temp.[stage_{kind.name}]").fetchone()[0])
        return 0  # the problem came before the first row (chunks create the stage table lazily)

    def load_spy(db: sqlite_utils.Database, kind: Any, rows: Any, **kw: Any) -> Any:
        try:
            return (real_chunks if kw.pop("chunked", False) else real_load)(db, kind, rows, **kw)
        except PolicySyncError:
            staged.append(staged_rows(db, kind))
            raise

    def artifact_spy(db: sqlite_utils.Database, blobs: Any, version: int, art: dict[str, Any], *a: Any) -> None:
        real_artifact(db, blobs, version, art, *a)
        if db.table("artifacts").get(art["sha256"])["parse_status"] == "failed":
            stages = [r[0] for r in db.execute("SELECT name FROM sqlite_temp_master WHERE name LIKE 'stage_%'")]
            table = "unit_limits" if bad.source == "cms_ncci_mue" else "ptp_edits"
            rows = db.execute(f"SELECT COUNT(*) FROM {table} WHERE artifact_sha256 = ?", [art["sha256"]]).fetchone()[0]
            left.append((stages, rows))

    monkeypatch.setattr(pipeline, "load_release", load_spy)
    monkeypatch.setattr(pipeline, "load_chunks", lambda *a, **kw: load_spy(*a, chunked=True, **kw))
    monkeypatch.setattr(pipeline, "_load_artifact", artifact_spy)

    with MirrorServer(shared_data, sources=SOURCES) as mirror:
        ok(sync(home, sources=SOURCES, mirror=mirror.url))
        good, good_versions = state(home), committed(home)
        mirror.override(bad.path, 200, ZIP, body)
        # Both sources: the other one is committed (unchanged), this one failed: exit 1.
        both = sync(home, sources=SOURCES, mirror=mirror.url)
        assert state(home) == good
        # This source alone, the bad bytes again (same sha256, not new, yet tried again): exit 3.
        alone = sync(home, sources=[bad.source], mirror=mirror.url)
        assert state(home) == good
        # A corrected file at the same URL: loaded, the early change is the only change.
        mirror.override(bad.path, 200, ZIP, corrected)
        fixed = sync(home, sources=SOURCES, mirror=mirror.url)

    assert (both.exit_code, both.status, both.changes) == (1, "committed", {}), both.to_json()
    assert source(both, other).outcome == "unchanged" and source(both, other).errors == []
    assert (alone.exit_code, alone.status, alone.changes) == (3, "failed", {}), alone.to_json()
    for report in (both, alone):
        src = source(report, bad.source)
        assert (src.outcome, src.documents_parsed, src.records, src.added, src.modified) == ("failed", 0, 0, 0, 0)
        assert src.errors == [bad.error]
    assert (source(both, bad.source).new_documents, source(alone, bad.source).new_documents) == (1, 0)
    assert committed(home)[: len(good_versions) + 1] == good_versions + [both.version]
    assert alone.version not in committed(home)
    # Rows were staged before the problem was found, and the rollback left nothing of them.
    assert staged == [bad.staged, bad.staged]
    assert left == [([], 0), ([], 0)]
    bad_sha = hashlib.sha256(body).hexdigest()
    with rulebook(home) as db:
        art = db.table("artifacts").get(bad_sha)
    assert (art["url"], art["parse_status"], art["parse_error"], art["record_count"]) == (
        MUE_URL if bad.source == "cms_ncci_mue" else PTP_URL, "failed", bad.error, None,
    )  # fmt: skip

    ok(fixed)
    src = source(fixed, bad.source)
    assert (src.outcome, src.documents_parsed, src.errors) == ("changed", 1, [])
    after = state(home)
    if bad.source == "cms_ncci_mue":
        assert fixed.changes == {"limit_raised": 1}
        (old, new) = after["samples"]["0002M"]
        assert (old["max_units"], old["v_to"], new["max_units"], new["v_from"]) == (1, fixed.version, 3, fixed.version)
        assert after["counts"]["unit_limits"] == (45, 44)
    else:
        assert fixed.changes == {"ptp_modifier_indicator_change": 1}
        (old, new) = after["samples"]["0001U/81110"]
        assert (old["modifier_indicator"], new["modifier_indicator"], new["v_from"]) == (1, 0, fixed.version)
        assert after["counts"]["ptp_edits"] == (155, 154)
    unchanged = {"0040U", "0001U/81164"} | ({"0001U/81110"} if bad.source == "cms_ncci_mue" else {"0002M"})
    assert {k: v for k, v in after["samples"].items() if k in unchanged} == {
        k: v for k, v in good["samples"].items() if k in unchanged
    }
