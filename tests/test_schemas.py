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

from compiler.packs import PTP_COLUMNS, canonical, compile_packs, pack_id_of, read_packs
from compiler.schema import errors, first_error, load_schema, validator
from parsers.errors import PackError
from parsers.records import SourceMeta
from policysync.config import init_home, resolve_home
from policysync.mirror import CMS_HOST, HCPCS_RELEASES, NCCI_FILES, MirrorServer
from policysync.pipeline import parser_for, sync
from rulebook import versions as vers
from rulebook.db import open_rulebook
from rulebook.facts import load_release
from rulebook.kinds import KINDS_BY_SOURCE
from tests.conftest import REPO, approve_pending, shared_data_dir

EXAMPLES_DIR = REPO / "compiler" / "schemas" / "examples"
SCHEMAS = ("pack", "manifest")


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES_DIR / f"{name}.example.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def schema_of(path: Path) -> str:
    """``pack.example.json`` -> ``pack``: an example names its schema by its first dotted part."""
    return path.name.split(".")[0]


# --- how the examples are made --------------------------------------------------------------------
#
# The examples are compiler output, not typed by hand: a rulebook holding only the rules picked in
# EXAMPLE_RULES, read by the real parsers from the bytes the loopback mirror serves (so every sha256,
# URL and locator is real), compiled by ``compile_packs`` for EXAMPLE_WINDOW. Regenerate them with
#     .venv/bin/python -m tests.test_schemas
# ``test_examples_are_what_the_compiler_writes`` fails when they drift from what compile writes.

EXAMPLE_WINDOW = ("2025-07-01", "2026-10-01")
EXAMPLE_HCPCS_RELEASE = "2025-10"
EXAMPLE_RULES: dict[str, tuple[str, ...]] = {
    # A billing unit (J9035), a code that ends inside the window (J2503, TERM DT 2025-09-30), a modifier.
    "cms_hcpcs": ("J2503", "J9035", "JW"),
    # MAI 2 (policy) and MAI 3 (clinical); limits 1 and 2.
    "cms_ncci_mue": ("0001U", "0009U", "0016M"),
    # An edit deleted 2026-06-30 (eff_end 2026-07-01, inside the window) and two open ones.
    "cms_ncci_ptp": ("0001U/0029U", "0001U/0030U", "0001U/0417U"),
}


def _example_key(rec: Any) -> str:
    return f"{rec.column1}/{rec.column2}" if hasattr(rec, "column1") else str(rec.code)


def build_examples(shared_data: Path, work: Path) -> dict[str, bytes]:
    """The example files (name -> bytes): the pack (indented; its manifest sha256 is that of the
    canonical bytes compile writes), the manifest as compile writes it, and the PTP companion."""
    mirror = MirrorServer(shared_data)  # never started: only the documents it serves are read
    hcpcs = next(r for r in HCPCS_RELEASES if r.release == EXAMPLE_HCPCS_RELEASE)
    documents = [("cms_hcpcs", hcpcs.path, hcpcs.release)] + [(f.source, f.path, f.release) for f in NCCI_FILES]
    out = work / "packs"
    db = open_rulebook(work / "rulebook.db")
    try:
        version = vers.begin_version(db, kind="sync", now="2026-06-01T00:00:00Z")
        with db.atomic():
            for source, path, release in documents:
                body = mirror.document(f"/{CMS_HOST}{path}").body()
                sha = hashlib.sha256(body).hexdigest()
                url = f"https://{CMS_HOST}{path}"
                name = path.rsplit("/", 1)[1]
                meta = SourceMeta(source=source, url=url, sha256=sha, filename=name, release=release)
                picked = [r for r in parser_for(source)(body, meta) if _example_key(r) in EXAMPLE_RULES[source]]
                assert sorted(map(_example_key, picked)) == sorted(EXAMPLE_RULES[source]), source
                db.table("artifacts").insert(
                    {"sha256": sha, "source": source, "url": url, "release": release, "filename": name}
                )
                (kind,) = KINDS_BY_SOURCE[source]
                rows = [kind.values(r) for r in picked]
                load_release(db, kind, rows, version=version, release=release, artifact_sha256=sha)
            vers.finish_version(
                db, version, status="committed", now="2026-06-01T00:00:00Z", summary={}, review_state="none"
            )
        compile_packs(db, start=EXAMPLE_WINDOW[0], end=EXAMPLE_WINDOW[1], scope="medicare", out_dir=out)
    finally:
        db.close()
    manifest = (out / "manifest.json").read_bytes()
    (entry,) = json.loads(manifest)["packs"]
    pack = json.loads((out / entry["file"]).read_bytes())
    files = {
        "pack.example.json": (json.dumps(_readable(pack), indent=2, ensure_ascii=False) + "\n").encode(),
        "manifest.example.json": manifest,
    }
    for companion in entry["companions"]:
        files[companion["file"]] = (out / companion["file"]).read_bytes()
    return files


# Key order of the indented example (canonical JSON sorts keys; a reader of the example wants the
# header first and each rule's id and code before its details). Keys not listed go last, sorted.
_KEY_ORDER = (
    "schema_version pack_id scope window from to rulebook_version sources sections codes unit_limits ptp "
    "format columns rationales files file id code kind setting descriptor short_descriptor billing_unit "
    "quantity unit max_units published mai mai_label coverage_code pricing_indicator term_date rationale "
    "eff_start eff_end provenance source url sha256 locator release rows"
).split()


def _readable(value: Any) -> Any:
    if isinstance(value, dict):
        rank = {k: i for i, k in enumerate(_KEY_ORDER)}
        keys = sorted(value, key=lambda k: (rank.get(k, len(rank)), k))
        return {k: _readable(value[k]) for k in keys}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    return value


def example_files() -> dict[str, bytes]:
    """What is in the examples folder now (the README aside)."""
    return {p.name: p.read_bytes() for p in sorted(EXAMPLES_DIR.iterdir()) if p.name != "README.md"}


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
    """The example pack's id is really its content hash, and the example manifest really names it
    and its PTP companion: written the way compile writes them, ``read_packs`` accepts the set."""
    pack, manifest = example("pack"), example("manifest")
    assert pack_id_of(pack) == pack["pack_id"]
    entry = manifest["packs"][0]
    assert entry["pack_id"] == pack["pack_id"]
    assert entry["sha256"] == hashlib.sha256(canonical(pack)).hexdigest()
    sections = pack["sections"]
    assert set(sections) == {"codes", "unit_limits", "ptp"}
    assert entry["sections"] == {
        k: (sum(f["rows"] for f in v["files"]) if k == "ptp" else len(v)) for k, v in sections.items()
    }
    (companion,) = sections["ptp"]["files"]
    assert entry["companions"] == [{"file": companion["file"], "sha256": companion["sha256"]}]
    tsv = (EXAMPLES_DIR / companion["file"]).read_bytes()
    assert hashlib.sha256(tsv).hexdigest() == companion["sha256"]
    header, *lines = tsv.decode("utf-8").splitlines()
    assert header.split("\t") == sections["ptp"]["columns"] and len(lines) == companion["rows"]
    rows = [dict(zip(sections["ptp"]["columns"], line.split("\t"), strict=True)) for line in lines]
    edits = {(r["column1"], r["column2"]): r for r in rows}
    deleted = edits["0001U", "0029U"]  # deleted 20260630: in force through June 30 (eff_end the day after)
    assert [deleted[c] for c in ("eff_start", "eff_end", "modifier_indicator")] == ["2018-07-01", "2026-07-01", "1"]
    assert edits["0001U", "0030U"]["eff_end"] == ""  # open
    source = pack["sources"][int(deleted["source"])]
    assert (source["source"], source["release"]) == ("cms_ncci_ptp", "2026-07")
    assert sections["ptp"]["rationales"][int(deleted["rationale"])] == "Misuse of Column Two code with Column One code"
    (tmp_path / entry["file"]).write_bytes(canonical(pack))
    shutil.copy(EXAMPLES_DIR / "manifest.example.json", tmp_path / "manifest.json")
    shutil.copy(EXAMPLES_DIR / companion["file"], tmp_path / companion["file"])
    assert read_packs(tmp_path) == [pack]
    j9035 = next(r for r in sections["codes"] if r["code"] == "J9035")
    assert j9035["billing_unit"] == {"quantity": 10, "unit": "mg"}
    assert any(r["kind"] == "modifier" for r in sections["codes"])
    limits = {r["code"]: (r["max_units"], r["mai"], r["setting"]) for r in sections["unit_limits"]}
    assert limits == {"0001U": (1, 2, "practitioner"), "0009U": (2, 3, "practitioner"), "0016M": (2, 3, "practitioner")}


def test_examples_are_what_the_compiler_writes(shared_data: Path, tmp_path: Path) -> None:
    """The examples are compile's output for the picked rules of the recorded files, byte for byte
    (regenerate with ``.venv/bin/python -m tests.test_schemas`` after a deliberate change)."""
    built = build_examples(shared_data, tmp_path)
    present = example_files()
    assert sorted(present) == sorted(built)
    for name, data in built.items():
        assert present[name] == data, f"{name} is stale: run .venv/bin/python -m tests.test_schemas"


# --- mutated examples fail where expected ---------------------------------------------------------

DELETE = object()
J9035 = ("sections", "codes", 1)  # the example's J9035 rule
MUE_0001U = ("sections", "unit_limits", 0)  # the example's 0001U unit limit (MAI 2)
PTP = ("sections", "ptp")


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
    # unit_limits: the example's 0001U rule (MAI 2)
    ("MAI 4", "pack", (*MUE_0001U, "mai"), 4,
     "$.sections.unit_limits[0].mai", "$.sections.unit_limits[0].mai", "4 is not one of [1, 2, 3, None]"),
    ("unit limit setting inpatient", "pack", (*MUE_0001U, "setting"), "inpatient",
     "$.sections.unit_limits[0].setting", "$.sections.unit_limits[0].setting",
     "'inpatient' is not one of ['practitioner', 'outpatient_hospital', 'dme']"),
    ("negative MUE value", "pack", (*MUE_0001U, "max_units"), -1,
     "$.sections.unit_limits[0].max_units", "$.sections.unit_limits[0].max_units",
     "-1 is less than the minimum of 0"),
    ("MUE value as text", "pack", (*MUE_0001U, "max_units"), "1",
     "$.sections.unit_limits[0].max_units", "$.sections.unit_limits[0].max_units",
     "'1' is not of type 'integer', 'null'"),
    ("unit limit eff_start not a date", "pack", (*MUE_0001U, "eff_start"), "2026-13-01",
     "$.sections.unit_limits[0].eff_start", "$.sections.unit_limits[0].eff_start", "'2026-13-01' is not a 'date'"),
    ("unit limit without mai", "pack", (*MUE_0001U, "mai"), DELETE,
     "$.sections.unit_limits[0]", "$.sections.unit_limits[0]", "'mai' is a required property"),
    ("unit limit unknown key", "pack", (*MUE_0001U, "per_day"), True,
     "$.sections.unit_limits[0]", "$.sections.unit_limits[0]",
     "Unevaluated properties are not allowed ('per_day' was unexpected)"),
    # ptp: the section describing the companion TSV
    ("PTP columns altered", "pack", (*PTP, "columns"), [*PTP_COLUMNS[:4], "modifier", *PTP_COLUMNS[5:]],
     "$.sections.ptp.columns", "$.sections.ptp.columns", "was expected"),
    ("PTP columns reordered", "pack", (*PTP, "columns"), [PTP_COLUMNS[1], PTP_COLUMNS[0], *PTP_COLUMNS[2:]],
     "$.sections.ptp.columns", "$.sections.ptp.columns", "was expected"),
    ("PTP format csv", "pack", (*PTP, "format"), "csv",
     "$.sections.ptp.format", "$.sections.ptp.format", "'tsv' was expected"),
    ("PTP setting inpatient", "pack", (*PTP, "files", 0, "setting"), "inpatient",
     "$.sections.ptp.files[0].setting", "$.sections.ptp.files[0].setting",
     "'inpatient' is not one of ['practitioner', 'outpatient_hospital', 'dme']"),
    ("PTP companion outside the pack folder", "pack", (*PTP, "files", 0, "file"), "../practitioner.tsv",
     "$.sections.ptp.files[0].file", "$.sections.ptp.files[0].file", "does not match '^[A-Za-z0-9_.:-]+\\\\.tsv$'"),
    ("PTP companion not a .tsv", "pack", (*PTP, "files", 0, "file"), "medicare.ptp-practitioner.json",
     "$.sections.ptp.files[0].file", "$.sections.ptp.files[0].file", "does not match"),
    ("PTP companion without sha256", "pack", (*PTP, "files", 0, "sha256"), DELETE,
     "$.sections.ptp.files[0]", "$.sections.ptp.files[0]", "'sha256' is a required property"),
    ("PTP companion with no rows", "pack", (*PTP, "files", 0, "rows"), 0,
     "$.sections.ptp.files[0].rows", "$.sections.ptp.files[0].rows", "0 is less than the minimum of 1"),
    ("PTP section without files", "pack", (*PTP, "files"), [],
     "$.sections.ptp.files", "$.sections.ptp.files", "should be non-empty"),
    ("manifest companion in a subfolder", "manifest", ("packs", 0, "companions", 0, "file"), "ptp/practitioner.tsv",
     "$.packs[0].companions[0].file", "$.packs[0].companions[0].file", "does not match '^[A-Za-z0-9_.:-]+$'"),
    ("manifest companion sha256 not hex", "manifest", ("packs", 0, "companions", 0, "sha256"), "Z" * 64,
     "$.packs[0].companions[0].sha256", "$.packs[0].companions[0].sha256", "does not match '^[0-9a-f]{64}$'"),
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
        approve_pending(db)
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


if __name__ == "__main__":
    import tempfile

    # Rewrite the examples from the recorded files (see "how the examples are made" above).
    with tempfile.TemporaryDirectory() as tmp:
        built = build_examples(shared_data_dir(), Path(tmp))
    for stale in set(example_files()) - set(built):
        (EXAMPLES_DIR / stale).unlink()
    for name, data in built.items():
        (EXAMPLES_DIR / name).write_bytes(data)
        print(f"wrote {EXAMPLES_DIR / name} ({len(data)} bytes)")
