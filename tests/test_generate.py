"""bench/generate.py at test size: both parsers read what it writes, with the counts it reports, and
the second quarter differs from the first by the churn it reports."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from parsers import cms_ncci_mue, cms_ncci_ptp
from parsers.records import PtpRecord, SourceMeta, UnitLimitRecord
from tests.conftest import REPO

PTP_ROWS = 20_000
MUE_ROWS = 600


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", REPO / "bench" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_generate"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("generated")
    hcpcs = shared_data / "hcpcs" / "quarterly_2025" / "HCPC2025_OCT_ANWEB.xlsx"
    assert _generator().main([str(out), "--small", "--hcpcs", str(hcpcs)]) == 0
    return out, json.loads((out / "generated.json").read_text())


def _mue(path: Path, release: str) -> tuple[list[UnitLimitRecord], dict[str, int]]:
    meta = SourceMeta(source="cms_ncci_mue", url="", sha256="", filename=path.name, release=release)
    return list(cms_ncci_mue.parse(path.read_bytes(), meta)), dict(meta.counts)


def _ptp(path: Path, release: str) -> Iterator[PtpRecord]:
    meta = SourceMeta(source="cms_ncci_ptp", url="", sha256="", filename=path.name, release=release)
    yield from cms_ncci_ptp.parse(path.read_bytes(), meta)
    assert set(meta.counts) <= {"preamble_line", "header_line", "never_in_force"}, meta.counts


def test_files_and_sizes(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    assert sorted(summary["quarters"]) == ["2026-07", "2026-10"]
    q3 = summary["quarters"]["2026-07"]
    assert (q3["effective"], q3["version"]) == ("2026-07-01", "v322r0")
    assert [m["file"] for m in q3["mue"]] == [
        "medicare-ncci-2026-q3-practitioner-services-mue-table.zip",
        "medicare-ncci-2026-q3-facility-outpatient-hospital-services-mue-table.zip",
        "medicare-ncci-2026-q3-dme-supplier-services-mue-table.zip",
    ]
    assert [p["file"] for p in q3["ptp"]] == [
        f"medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f{n}.zip" for n in range(1, 5)
    ]
    assert sum(p["rows"] for p in q3["ptp"]) == PTP_ROWS
    assert [m["rows"] for m in q3["mue"]] == [MUE_ROWS, round(MUE_ROWS * 0.9), round(MUE_ROWS * 0.27)]
    q4 = summary["quarters"]["2026-10"]
    assert q4["version"] == "v323r0" and q4["mue"][0]["member"] == "MCR_MUE_PractitionerServices_Eff_10-01-2026.csv"
    for release, quarter in summary["quarters"].items():
        for entry in quarter["mue"] + quarter["ptp"]:
            assert (out / release / entry["file"]).is_file()


def test_mue_tables_parse(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    real = summary["codes"]["real_hcpcs"]
    assert real > 8000 and summary["codes"]["synthetic_cpt_shaped"] == 10_000
    for release, quarter in summary["quarters"].items():
        for entry in quarter["mue"]:
            records, counts = _mue(out / release / entry["file"], release)
            assert len(records) == entry["rows"]
            # The zip holds the csv and the xlsx, as CMS's does; the csv is read.
            assert counts == {"notice_record": 1, "xlsx_copy_not_read": 1}
            assert {r.setting for r in records} == {entry["setting"]}
            assert {r.eff_start.isoformat() for r in records} == {quarter["effective"]}
            assert all(r.published and r.max_units is not None and r.mai in (1, 2, 3) for r in records)
            codes = [r.code for r in records]
            assert codes == sorted(set(codes))
            if entry["setting"] == "dme":
                assert all(c[0].isalpha() for c in codes)  # real HCPCS Level II codes only


def test_mue_xlsx_copy_matches_the_csv(generated: tuple[Path, dict[str, Any]]) -> None:
    import zipfile

    out, summary = generated
    entry = summary["quarters"]["2026-07"]["mue"][1]
    with zipfile.ZipFile(out / "2026-07" / entry["file"]) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    xlsx = entry["member"].replace(".csv", ".xlsx")
    assert sorted(members) == sorted([entry["member"], xlsx])
    from_csv, _ = _mue_member(entry["member"], members[entry["member"]])
    from_xlsx, _ = _mue_member(xlsx, members[xlsx])
    assert [(r.code, r.max_units, r.mai, r.rationale) for r in from_csv] == [
        (r.code, r.max_units, r.mai, r.rationale) for r in from_xlsx
    ]


def _mue_member(name: str, data: bytes) -> tuple[list[UnitLimitRecord], dict[str, int]]:
    meta = SourceMeta(source="cms_ncci_mue", url="", sha256="", filename=name)
    return list(cms_ncci_mue.parse(data, meta)), dict(meta.counts)


def test_ptp_parts_parse_in_order(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    for release, quarter in summary["quarters"].items():
        last = ("", "")
        for entry in quarter["ptp"]:
            records = list(_ptp(out / release / entry["file"], release))
            assert len(records) == entry["rows"]
            pairs = [(r.column1, r.column2) for r in records]
            assert pairs == sorted(pairs) and pairs[0] > last  # CMS order, across the four parts
            assert records[0].column1 > last[0]  # parts split at column-1 boundaries
            last = pairs[-1]
            assert {r.setting for r in records} == {"practitioner"}
            for r in records:
                if r.deletion_date is None:
                    assert r.eff_end is None
                elif r.deletion_date == r.eff_start:
                    assert r.modifier_indicator == 9 and r.eff_end == r.eff_start
                else:
                    assert r.eff_end is not None and r.eff_end > r.eff_start and r.eff_end.day == 1


def _ptp_quarter(out: Path, release: str, quarter: dict[str, Any]) -> dict[tuple[str, str, str], PtpRecord]:
    return {
        (r.column1, r.column2, r.eff_start.isoformat()): r
        for entry in quarter["ptp"]
        for r in _ptp(out / release / entry["file"], release)
    }


def test_churn_between_quarters(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    q3 = _ptp_quarter(out, "2026-07", summary["quarters"]["2026-07"])
    q4 = _ptp_quarter(out, "2026-10", summary["quarters"]["2026-10"])
    churn = summary["churn"]["ptp"]
    added = [k for k in q4 if k not in q3]
    assert len(added) == churn["added"] > 0 and {k[2] for k in added} == {"2026-10-01"}
    assert len([k for k in q3 if k not in q4]) == churn["dropped"]
    deleted = [k for k, r in q4.items() if k in q3 and q3[k].deletion_date is None and r.deletion_date is not None]
    retro = [k for k in deleted if q4[k].eff_end == q4[k].eff_start]
    assert len(retro) == churn["deleted_retroactively"]
    assert len(deleted) - len(retro) == churn["deleted"] > 0
    assert {q4[k].deletion_date.isoformat() for k in deleted if k not in retro} == {"2026-09-30"}
    flipped = [k for k, r in q4.items() if k in q3 and q3[k].deletion_date is None and r.deletion_date is None]
    assert (
        sum(q4[k].modifier_indicator != q3[k].modifier_indicator for k in flipped)
        == churn["modifier_indicator_changed"]
    )
    changes = sum(
        churn[k] for k in ("added", "dropped", "deleted", "deleted_retroactively", "modifier_indicator_changed")
    )
    assert 0.01 < changes / len(q3) < 0.04  # about 2 % of the edits change
    # MUE: values lowered / raised, MAI changed, codes added and removed, per table.
    for index, entry in enumerate(summary["quarters"]["2026-07"]["mue"]):
        before = {r.code: r for r in _mue(out / "2026-07" / entry["file"], "2026-07")[0]}
        later = summary["quarters"]["2026-10"]["mue"][index]
        after = {r.code: r for r in _mue(out / "2026-10" / later["file"], "2026-10")[0]}
        expected = summary["churn"]["mue"][entry["setting"]]
        both = before.keys() & after.keys()
        assert len(after.keys() - before.keys()) == expected.get("added", 0)
        assert len(before.keys() - after.keys()) == expected.get("removed", 0)
        assert sum(after[c].max_units < before[c].max_units for c in both) == expected.get("lowered", 0)
        assert sum(after[c].max_units > before[c].max_units for c in both) == expected.get("raised", 0)
        assert sum(after[c].mai != before[c].mai for c in both) == expected.get("mai_changed", 0)


def test_same_seed_same_bytes(shared_data: Path, tmp_path: Path, generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    hcpcs = shared_data / "hcpcs" / "quarterly_2025" / "HCPC2025_OCT_ANWEB.xlsx"
    again = tmp_path / "again"
    assert _generator().main([str(again), "--small", "--hcpcs", str(hcpcs)]) == 0

    def digests(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.zip")}

    assert len(digests(out)) == 14  # per quarter: 3 MUE zips and 4 PTP parts
    assert digests(again) == digests(out)  # the xlsx too: openpyxl's "now" timestamps are fixed


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = _generator()
    assert generator.main([str(tmp_path), "--hcpcs", str(tmp_path / "missing.xlsx")]) == 2
    assert "missing.xlsx: HCPCS file not found" in capsys.readouterr().err
