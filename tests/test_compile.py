"""Compiling rule packs (DESIGN.md "Rule packs"): arguments refused with one clear line, MAC
jurisdiction and state scopes accepted, byte-identical output for the same inputs, pack_id the sha256
of the canonical content, and a manifest that lists each file with its sha256."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from compiler.packs import compile_packs, read_packs
from compiler.schema import errors
from parsers.errors import CompileError
from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.pipeline import sync
from rulebook.db import open_rulebook
from tests.conftest import approve_pending

Q3_2020 = ("2020-07-01", "2020-10-01")


@pytest.fixture(scope="module")
def db(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite_utils.Database]:
    """A rulebook synced from the mirror with one quarter (July 2020), which keeps it fast."""
    home = resolve_home(tmp_path_factory.mktemp("home"))
    init_home(home)
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        report = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
    assert report.exit_code == 0, report.to_json()
    rulebook = open_rulebook(home.db_path)
    approve_pending(rulebook)
    yield rulebook
    rulebook.close()


def compile_q3(db: sqlite_utils.Database, out: Path, scope: str = "medicare") -> dict[str, Any]:
    return compile_packs(db, start=Q3_2020[0], end=Q3_2020[1], scope=scope, out_dir=out).manifest


@pytest.fixture(scope="module")
def compiled(db: sqlite_utils.Database, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The national pack for Q3 2020, compiled once (validating ~6,500 rules takes seconds); read only."""
    out = tmp_path_factory.mktemp("compiled")
    compile_q3(db, out)
    return out


def one_line_refusal(
    db: sqlite_utils.Database,
    out: Path,
    *,
    start: str = Q3_2020[0],
    end: str = Q3_2020[1],
    scope: str = "medicare",
) -> str:
    with pytest.raises(CompileError) as caught:
        compile_packs(db, start=start, end=end, scope=scope, out_dir=out)
    assert not out.exists(), "a refused compile must write nothing"
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("start", "end"), [("2020-10-01", "2020-07-01"), ("2020-07-01", "2020-07-01")])
def test_refuses_an_empty_window(db: sqlite_utils.Database, tmp_path: Path, start: str, end: str) -> None:
    assert one_line_refusal(db, tmp_path / "out", start=start, end=end) == (
        f"empty window: --from {start} must be before --to {end} (the window is [from, to))"
    )


@pytest.mark.parametrize(
    "scope", ["medicare:XX", "medicare:jk", "medicare:JZ", "medicaid", "payer:nobody", ""]
)
def test_refuses_an_unknown_scope(db: sqlite_utils.Database, tmp_path: Path, scope: str) -> None:
    assert one_line_refusal(db, tmp_path / "out", scope=scope) == (
        f"unknown scope {scope!r} (use medicare, medicare:<MAC jurisdiction> e.g. medicare:JK, "
        "medicare:<state> e.g. medicare:NY, or payer:<configured payer id>)"
    )


@pytest.mark.parametrize("scope", ["medicare", "medicare:JK", "medicare:NY"])
def test_accepts_national_jurisdiction_and_state_scopes(
    db: sqlite_utils.Database, tmp_path: Path, scope: str
) -> None:
    manifest = compile_q3(db, tmp_path, scope)
    (entry,) = manifest["packs"]
    assert entry["scope"] == scope
    assert entry["file"] == f"{scope.replace(':', '-')}_2020-07-01_2020-10-01.json"
    (pack,) = read_packs(tmp_path)  # which validates it against the schema
    assert pack["scope"] == scope
    assert pack["window"] == {"from": "2020-07-01", "to": "2020-10-01"}
    assert entry["sections"]["codes"] == len(pack["sections"]["codes"]) > 0


def test_same_inputs_give_byte_identical_output(
    db: sqlite_utils.Database, compiled: Path, tmp_path: Path
) -> None:
    first, second = compiled, tmp_path / "second"
    compile_q3(db, second)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert len(names) == 2  # the pack and manifest.json
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_pack_id_is_the_sha256_of_the_canonical_content(compiled: Path) -> None:
    manifest = json.loads((compiled / "manifest.json").read_text(encoding="utf-8"))
    body = (compiled / manifest["packs"][0]["file"]).read_bytes()
    pack = json.loads(body)
    # Recomputed here from the documented rule, not with compiler.packs: sorted keys, no whitespace,
    # UTF-8, pack_id set to "".
    def canonical_bytes(obj: Any) -> bytes:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    assert body == canonical_bytes(pack), "the file itself is the canonical form"
    assert pack["pack_id"] == hashlib.sha256(canonical_bytes(pack | {"pack_id": ""})).hexdigest()
    assert manifest["packs"][0]["pack_id"] == pack["pack_id"]


def test_manifest_lists_each_file_with_its_sha256(compiled: Path) -> None:
    manifest = json.loads((compiled / "manifest.json").read_text(encoding="utf-8"))
    assert errors("manifest", manifest) == []
    listed = {entry["file"]: entry["sha256"] for entry in manifest["packs"]}
    assert set(listed) == {p.name for p in compiled.iterdir()} - {"manifest.json"}
    for name, sha in listed.items():
        assert hashlib.sha256((compiled / name).read_bytes()).hexdigest() == sha
