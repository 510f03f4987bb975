"""The pack and manifest JSON Schemas as versioned artifacts with examples (CONVENTIONS.md 9, 10): the
schemas are valid 2020-12, every example validates with the format checker on, mutated examples fail
at the expected JSON path, and a pack compiled from a synced rulebook validates and is refused by
``read_packs`` when its bytes, schema version or file do not check out."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from compiler.packs import canonical, compile_packs, pack_id_of, read_packs
from compiler.schema import errors, first_error, load_schema, validator
from parsers.errors import PackError
from policysync.config import init_home, resolve_home
from policysync.mirror import MirrorServer
from policysync.pipeline import sync
from rulebook.db import open_rulebook
from tests.conftest import REPO

EXAMPLES_DIR = REPO / "compiler" / "schemas" / "examples"
SCHEMAS = ("pack", "manifest")


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES_DIR / f"{name}.example.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def schema_of(path: Path) -> str:
    """``pack.example.json`` -> ``pack``: an example names its schema by its first dotted part."""
    return path.name.split(".")[0]


# --- the schemas and their examples -------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_2020_12(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", SCHEMAS)
def test_validator_checks_formats(name: str) -> None:
    # Without a format checker "format": "date" is silently ignored.
    checker = validator(name).format_checker
    assert checker is not None and "date" in checker.checkers


def test_every_schema_has_an_example_and_every_example_a_schema() -> None:
    found = sorted(EXAMPLES_DIR.glob("*.json"))
    assert {schema_of(p) for p in found} == set(SCHEMAS)


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.json")), ids=lambda p: p.name)
def test_example_validates_with_the_format_checker(path: Path) -> None:
    instance = json.loads(path.read_text(encoding="utf-8"))
    assert errors(schema_of(path), instance) == []


def test_examples_are_consistent_and_readable(tmp_path: Path) -> None:
    """The example pack's id is really its content hash, and the example manifest really names it:
    written the way compile writes it, ``read_packs`` accepts the pair."""
    pack, manifest = example("pack"), example("manifest")
    assert pack_id_of(pack) == pack["pack_id"]
    entry = manifest["packs"][0]
    assert entry["pack_id"] == pack["pack_id"]
    assert entry["sha256"] == hashlib.sha256(canonical(pack)).hexdigest()
    assert entry["sections"] == {k: len(v) for k, v in pack["sections"].items()}
    (tmp_path / entry["file"]).write_bytes(canonical(pack))
    shutil.copy(EXAMPLES_DIR / "manifest.example.json", tmp_path / "manifest.json")
    assert read_packs(tmp_path) == [pack]
    j9035 = next(r for r in pack["sections"]["codes"] if r["code"] == "J9035")
    assert j9035["billing_unit"] == {"quantity": 10, "unit": "mg"}
    assert any(r["kind"] == "modifier" for r in pack["sections"]["codes"])


# --- mutated examples fail where expected ---------------------------------------------------------

DELETE = object()
J9035 = ("sections", "codes", 1)  # the example's J9035 rule


def mutate(instance: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(instance)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


# (id, schema, where to change, new value, JSON path of the one error, path best_match reports, message)
MUTATIONS: list[tuple[str, str, tuple[Any, ...], Any, str, str, str]] = [
    ("rule eff_start not a date", "pack", (*J9035, "eff_start"), "2020-13-01",
     "$.sections.codes[1].eff_start", "$.sections.codes[1].eff_start", "'2020-13-01' is not a 'date'"),
    ("window from not a date", "pack", ("window", "from"), "2020-13-01",
     "$.window.from", "$.window.from", "'2020-13-01' is not a 'date'"),
    ("manifest window not a date", "manifest", ("packs", 0, "window", "to"), "2020-13-01",
     "$.packs[0].window.to", "$.packs[0].window.to", "'2020-13-01' is not a 'date'"),
    ("missing eff_end", "pack", (*J9035, "eff_end"), DELETE,
     "$.sections.codes[1]", "$.sections.codes[1]", "'eff_end' is a required property"),
    ("unknown section", "pack", ("sections", "procedures"), [],
     "$.sections", "$.sections", "Additional properties are not allowed ('procedures' was unexpected)"),
    ("unknown rule key", "pack", (*J9035, "units_note"), "x",
     "$.sections.codes[1]", "$.sections.codes[1]",
     "Unevaluated properties are not allowed ('units_note' was unexpected)"),
    ("pack_id not hex", "pack", ("pack_id",), "z" * 64,
     "$.pack_id", "$.pack_id", "does not match '^[0-9a-f]{64}$'"),
    ("bad scope", "pack", ("scope",), "medicare:XX-bad",
     "$.scope", "$.scope", "'medicare:XX-bad' does not match"),
    ("billing unit quantity 0", "pack", (*J9035, "billing_unit", "quantity"), 0,
     "$.sections.codes[1].billing_unit", "$.sections.codes[1].billing_unit.quantity",
     "0 is less than or equal to the minimum of 0"),
    ("six-character code", "pack", (*J9035, "code"), "J90351",
     "$.sections.codes[1].code", "$.sections.codes[1].code", "'J90351' does not match"),
]


@pytest.mark.parametrize(
    ("schema", "path", "value", "error_path", "best_path", "message"),
    [m[1:] for m in MUTATIONS],
    ids=[m[0] for m in MUTATIONS],
)
def test_mutated_example_fails_at_the_expected_path(
    schema: str, path: tuple[Any, ...], value: Any, error_path: str, best_path: str, message: str
) -> None:
    bad = mutate(example(schema), path, value)
    # Exactly one error: a fault in a rule's common fields must not also surface as a spurious
    # "Unevaluated properties" error on the rule (which best_match would report instead).
    assert [e.json_path for e in validator(schema).iter_errors(bad)] == [error_path]
    best = first_error(schema, bad)
    assert best is not None and best.startswith(f"{best_path}: ") and message in best, best


def test_bad_date_is_caught_by_the_format_checker_not_the_pattern() -> None:
    bad = mutate(example("pack"), (*J9035, "eff_start"), "2020-13-01")
    assert Draft202012Validator(load_schema("pack")).is_valid(bad)  # the YYYY-MM-DD pattern lets it by
    assert not validator("pack").is_valid(bad)


# --- a pack really compiled from a synced rulebook --------------------------------------------------


@pytest.fixture(scope="module")
def compiled(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Packs compiled from one synced quarter (July 2020: one file keeps it fast)."""
    home = resolve_home(tmp_path_factory.mktemp("home"))
    init_home(home)
    with MirrorServer(shared_data, releases=["2020-07"], sources=["cms_hcpcs"]) as mirror:
        report = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
    assert report.exit_code == 0, report.to_json()
    out = tmp_path_factory.mktemp("packs")
    db = open_rulebook(home.db_path)
    try:
        compile_packs(db, start="2020-07-01", end="2020-10-01", scope="medicare", out_dir=out)
    finally:
        db.close()
    return out


@pytest.fixture
def pack_dir(compiled: Path, tmp_path: Path) -> Path:
    """A copy of the compiled packs each test may tamper with."""
    return Path(shutil.copytree(compiled, tmp_path / "packs"))


def only_pack(pack_dir: Path) -> tuple[dict[str, Any], Path]:
    manifest = json.loads((pack_dir / "manifest.json").read_text(encoding="utf-8"))
    (entry,) = manifest["packs"]
    return manifest, pack_dir / entry["file"]


def test_compiled_pack_and_manifest_validate(pack_dir: Path) -> None:
    manifest, path = only_pack(pack_dir)
    pack = json.loads(path.read_bytes())
    assert errors("manifest", manifest) == []
    assert errors("pack", pack) == []
    assert read_packs(pack_dir) == [pack]
    j9035 = [r for r in pack["sections"]["codes"] if r["code"] == "J9035"]
    assert [r["billing_unit"] for r in j9035] == [{"quantity": 10, "unit": "mg"}]


def rewrite_pack(pack_dir: Path, change: Callable[[dict[str, Any]], None], *, fix_id: bool = True) -> Path:
    """Change the pack (recomputing its pack_id unless told not to) and update the manifest's sha256
    to match, so that only the reader's later checks can refuse it."""
    manifest, path = only_pack(pack_dir)
    pack = json.loads(path.read_bytes())
    change(pack)
    if fix_id:
        pack["pack_id"] = pack_id_of(pack)
    body = canonical(pack)
    path.write_bytes(body)
    manifest["packs"][0]["sha256"] = hashlib.sha256(body).hexdigest()
    (pack_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


def refusal(pack_dir: Path) -> str:
    with pytest.raises(PackError) as caught:
        read_packs(pack_dir)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_read_packs_refuses_a_tampered_pack(pack_dir: Path) -> None:
    _, path = only_pack(pack_dir)
    body = path.read_bytes()
    tampered = body.replace(b'"Injection, bevacizumab, 10 mg"', b'"Injection, bevacizumab, 1 mg"')
    assert tampered != body
    path.write_bytes(tampered)
    assert refusal(pack_dir) == (
        f"{path}: sha256 does not match manifest.json (the file was changed or truncated)"
    )


def test_read_packs_refuses_another_major_schema_version(pack_dir: Path) -> None:
    path = rewrite_pack(pack_dir, lambda p: p.update(schema_version="2.0.0"))
    assert refusal(pack_dir) == f"{path}: schema_version '2.0.0' is not supported (this reader reads 1.x)"


def test_read_packs_refuses_a_pack_whose_id_is_not_its_content(pack_dir: Path) -> None:
    path = rewrite_pack(pack_dir, lambda p: p.update(scope="medicare:NY"), fix_id=False)
    assert refusal(pack_dir) == f"{path}: pack_id does not match its content"


def test_read_packs_refuses_a_manifest_naming_a_missing_file(pack_dir: Path) -> None:
    _, path = only_pack(pack_dir)
    path.unlink()
    assert refusal(pack_dir) == f"{path}: named in manifest.json but missing"
