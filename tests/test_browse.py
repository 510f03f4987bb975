"""``policysync browse`` (issue 7 part 6): Datasette over the rulebook, read-only, canned queries.

The rulebook is synced from the recorded July and October 2020 HCPCS files (two versions). The real
command runs as a subprocess on 127.0.0.1; the test fetches canned queries' JSON over HTTP and stops
it. Expected values are read from the recorded October 2020 file itself.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import python_calamine
from click.testing import CliRunner

from policysync.cli import cli
from policysync.config import init_home, resolve_home
from policysync.mirror import CMS_HOST, HCPCS_RELEASES, MirrorServer, hcpcs_release_zip
from policysync.pipeline import sync

OCT_2020 = "hcpcs/quarterly_2020/HCPC2020_10_anweb.xlsx"


def run(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--home", str(home), *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def home(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = resolve_home(tmp_path_factory.mktemp("browse-home"))
    init_home(home)
    for release in ("2020-07", "2020-10"):
        with MirrorServer(shared_data, releases=[release], sources=["cms_hcpcs"]) as mirror:
            assert sync(home, sources=["cms_hcpcs"], mirror=mirror.url).status == "committed"
    return home.root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    port = free_port()
    exe = Path(sys.executable).with_name("policysync")
    proc = subprocess.Popen(
        [str(exe), "--home", str(home), "browse", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/versions.json", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"browse did not start: {proc.communicate()[1].decode()[-2000:]}") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def fetch(base: str, path: str, **params: str) -> Any:
    query = urlencode({**params, "_shape": "objects"})
    with urllib.request.urlopen(f"{base}/rulebook/{path}.json?{query}", timeout=20) as resp:
        return json.loads(resp.read())


def october_row(shared_data: Path, code: str) -> dict[str, str]:
    rows = python_calamine.CalamineWorkbook.from_path(str(shared_data / OCT_2020)).get_sheet_by_index(0).to_python()
    text = [[str(c).strip().removesuffix(".0") for c in r] for r in rows]
    header = next(i for i, r in enumerate(text) if "HCPC" in r and "RECID" in r)
    names = text[header]
    (row,) = [
        dict(zip(names, r, strict=False)) for r in text[header + 1 :] if r[0] == code and r[names.index("RECID")] == "3"
    ]
    return row


def test_drug_coverage_as_of_a_date(server: str, shared_data: Path) -> None:
    row = october_row(shared_data, "J9271")
    assert "pembrolizumab" in row["LONG DESCRIPTION"].lower()
    got = fetch(server, "drug_coverage", drug="pembrolizumab", as_of="2020-11-01", jurisdiction="")
    (medicare,) = [r for r in got["rows"] if r["payer"] == "Medicare" and r["code"] == "J9271"]
    assert medicare["jurisdiction"] == "national"
    assert medicare["coverage"] == f"HCPCS coverage code {row['COV']}"
    assert medicare["drug"].split() == row["LONG DESCRIPTION"].split()
    # Unchanged in October, so the row that states it is still July's: provenance is the July file.
    (rel,) = [r for r in HCPCS_RELEASES if r.release == "2020-07"]
    assert medicare["source_url"] == f"https://{CMS_HOST}{rel.path}"
    assert medicare["sha256"] == hashlib.sha256(hcpcs_release_zip(shared_data, "2020-07")).hexdigest()
    assert medicare["locator"].startswith("HCPC2020_JUL_ANWEB.xlsx row ")
    # By code too; and nothing before the code's rules begin.
    assert [
        r["code"] for r in fetch(server, "drug_coverage", drug="j9271", as_of="2020-11-01", jurisdiction="")["rows"]
    ] == ["J9271"]
    assert fetch(server, "drug_coverage", drug="J9271", as_of="1990-01-01", jurisdiction="")["rows"] == []


def test_what_changed_this_week(server: str, shared_data: Path) -> None:
    versions = fetch(server, "versions_this_week", since="")["rows"]
    assert [(v["version"], v["status"], v["review_state"]) for v in versions] == [
        (2, "committed", "pending_review"),
        (1, "committed", "pending_review"),
    ]
    assert versions[0]["sources"] == "cms_hcpcs=changed" and versions[0]["quarantined"] is None
    # A4226: coverage code C -> I in October 2020 (tests/test_diff_cms_trans.py). Version 2 ends the
    # July row and states the October one.
    assert october_row(shared_data, "A4226")["COV"] == "I"
    facts = fetch(server, "facts_changed_this_week", since="", code="A4226")["rows"]
    got = sorted((f["fact_table"], f["version"], f["change"], f["release"]) for f in facts)
    assert got == [
        ("hcpcs_codes", 1, "stated", "2020-07"),
        ("hcpcs_codes", 2, "stated", "2020-10"),
        ("hcpcs_codes", 2, "superseded or withdrawn", "2020-07"),
    ]
    # "This week" is relative: nothing finished after a date in the future.
    assert fetch(server, "versions_this_week", since="2999-01-01")["rows"] == []


def test_which_sources_are_stale(server: str) -> None:
    rows = {r["source"]: r for r in fetch(server, "stale_sources", as_of="")["rows"]}
    assert rows["cms_hcpcs"]["status"] == "ok" and rows["cms_hcpcs"]["cadence_days"] == 91
    assert rows["cms_hcpcs"]["last_run"] == "changed in version 2"
    # Configured but never fetched: stale.
    assert rows["cms_ncci_mue"]["status"] == "STALE" and rows["cms_ncci_mue"]["last_successful_fetch"] is None
    # A year on, HCPCS (91-day cadence) is stale too.
    later = {r["source"]: r["status"] for r in fetch(server, "stale_sources", as_of="2099-01-01T00:00:00Z")["rows"]}
    assert later["cms_hcpcs"] == "STALE"


def test_read_only(server: str) -> None:
    req = urllib.request.Request(
        f"{server}/rulebook.json?" + urlencode({"sql": "DELETE FROM versions", "_shape": "objects"})
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400
    with urllib.request.urlopen(f"{server}/-/databases.json", timeout=10) as resp:
        (db,) = json.loads(resp.read())
    assert (db["name"], db["is_mutable"]) == ("rulebook", False)


def test_dry_run_and_metadata(home: Path) -> None:
    code, out, _ = run(home, "browse", "--dry-run", "--port", "8123")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"would serve {home / 'rulebook.db'} read-only (immutable) at http://127.0.0.1:8123/rulebook"
    assert lines[1].startswith(f"  as: datasette serve -i {home / 'rulebook.db'} -h 127.0.0.1 -p 8123 ")
    names = [line.split("/rulebook/")[1].split(":")[0] for line in lines[2:]]
    assert {"drug_coverage", "facts_changed_this_week", "versions_this_week", "stale_sources"} <= set(names)
    code, out, _ = run(home, "browse", "--print-metadata")
    queries = json.loads(out)["databases"]["rulebook"]["queries"]
    assert set(queries) == set(names) and all(q["sql"] and q["title"] for q in queries.values())


def test_drug_coverage_covers_lcd_rules_and_payer_policies(home: Path, tmp_path: Path) -> None:
    """CONSTRUCTED rows (one LCD billing-article rule, its document, one payer policy row) added to a
    copy of the rulebook, queried through Datasette in-process: the jurisdiction filter."""
    import asyncio
    import shutil
    import sqlite3

    from policysync import browse as br

    src = sqlite3.connect(home / "rulebook.db")
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    shutil.copy(home / "rulebook.db", tmp_path / "rulebook.db")
    db = sqlite3.connect(tmp_path / "rulebook.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"coverage_rules", "policy_documents", "payer_coverage"} <= tables:
        pytest.skip("the coverage tables are not in this rulebook schema")
    common = {"eff_start": "2020-01-01", "v_from": 2, "artifact_sha256": "constructed", "locator": "constructed"}
    rows = {
        "coverage_rules": {
            "policy": "A99999",
            "code": "J9271",
            "dx_group": 1,
            "covered": 1,
            "jurisdictions": '["J8"]',
            "states": '["IN","MI"]',
        },
        "policy_documents": {
            "policy": "A99999",
            "version": 1,
            "doc_type": "article",
            "title": "Billing and Coding: Pembrolizumab (constructed)",
        },
        "payer_coverage": {
            "payer": "examplepayer",
            "policy": "P-1",
            "code": "J9271",
            "drug": "pembrolizumab",
            "covered": 0,
            "coverage_level": "Not Covered",
            "states": '["OH"]',
        },
    }
    for table, row in rows.items():
        row = {**row, **common}
        db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    db.commit()
    db.close()
    served = br.build(tmp_path / "rulebook.db", {"cms_hcpcs": 91})

    async def query(**params: str) -> list[tuple[str, str]]:
        ds = br.datasette_app(served)
        await ds.invoke_startup()
        resp = await ds.client.get("/rulebook/drug_coverage.json?" + urlencode({**params, "_shape": "objects"}))
        assert resp.status_code == 200, resp.text
        return sorted((r["payer"], r["coverage"]) for r in resp.json()["rows"])

    national = ("Medicare", f"HCPCS coverage code {october_row_cov(home)}")
    lcd = ("Medicare", "covered for the diagnoses of group 1")
    payer = ("examplepayer", "not covered (Not Covered)")
    assert asyncio.run(query(drug="pembrolizumab", as_of="2020-11-01", jurisdiction="")) == sorted(
        [national, lcd, payer]
    )
    assert asyncio.run(query(drug="J9271", as_of="2020-11-01", jurisdiction="mi")) == sorted([national, lcd])
    assert asyncio.run(query(drug="J9271", as_of="2020-11-01", jurisdiction="J8")) == sorted([national, lcd])
    assert asyncio.run(query(drug="J9271", as_of="2020-11-01", jurisdiction="OH")) == sorted([national, payer])
    assert asyncio.run(query(drug="J9271", as_of="2019-12-31", jurisdiction="")) == [national]


def october_row_cov(home: Path) -> str:
    """J9271's coverage code as the rulebook holds it (checked against the file in the test above)."""
    import sqlite3

    db = sqlite3.connect(home / "rulebook.db")
    try:
        (cov,) = db.execute("SELECT coverage_code FROM hcpcs_codes WHERE code = 'J9271' AND v_to IS NULL").fetchone()
    finally:
        db.close()
    return str(cov)


def test_changed_facts_name_the_source_of_their_artifact(home: Path, tmp_path: Path) -> None:
    """CONSTRUCTED rows added to a copy of the rulebook: two coverage rules stated by version 2, one
    from a bulk-export artifact (cms_mcd), one from a Coverage API artifact (cms_coverage_api). Both
    sources load the coverage_rules table; each row is labelled by its artifact's source, as
    rulebook/diff.py labels changes, and the HCPCS rows keep theirs."""
    import asyncio
    import shutil
    import sqlite3

    from policysync import browse as br

    src = sqlite3.connect(home / "rulebook.db")
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    shutil.copy(home / "rulebook.db", tmp_path / "rulebook.db")
    db = sqlite3.connect(tmp_path / "rulebook.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "coverage_rules" not in tables:
        pytest.skip("the coverage tables are not in this rulebook schema")
    for source, code in (("cms_mcd", "J9035"), ("cms_coverage_api", "J9271")):
        sha = hashlib.sha256(f"constructed {source}".encode()).hexdigest()
        db.execute(
            "INSERT INTO artifacts (sha256, source, url, first_fetched_at, last_fetched_at) VALUES (?, ?, ?, ?, ?)",
            [sha, source, f"https://example.invalid/{source}", "2026-01-10T00:00:00Z", "2026-01-10T00:00:00Z"],
        )
        db.execute(
            "INSERT INTO coverage_rules (policy, code, dx_group, covered, eff_start, v_from, artifact_sha256, "
            "locator) VALUES ('A52370', ?, 1, 1, '2026-01-01', 2, ?, 'constructed')",
            [code, sha],
        )
    db.commit()
    db.close()
    served = br.build(tmp_path / "rulebook.db", {"cms_hcpcs": 91})

    async def query(code: str) -> list[tuple[str, str, str]]:
        ds = br.datasette_app(served)
        await ds.invoke_startup()
        params = urlencode({"since": "", "code": code, "_shape": "objects"})
        resp = await ds.client.get(f"/rulebook/facts_changed_this_week.json?{params}")
        assert resp.status_code == 200, resp.text
        return sorted((r["fact_table"], r["source"], r["key"]) for r in resp.json()["rows"])

    assert asyncio.run(query("A52370")) == [
        ("coverage_rules", "cms_coverage_api", "A52370|J9271|1|1"),
        ("coverage_rules", "cms_mcd", "A52370|J9035|1|1"),
    ]
    assert {s for _, s, _ in asyncio.run(query("A4226"))} == {"cms_hcpcs"}
