"""Compiling rule packs from a rulebook version, and reading them back.

A pack holds the rules of one scope whose effective interval intersects ``[from, to)``, each with its
own interval, id and provenance. Output is canonical JSON (sorted keys, no whitespace), so the same
rulebook version and arguments give byte-identical files; ``pack_id`` is the sha256 of the pack with
``pack_id`` set to "".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlite_utils

from compiler import coverage_sections, drug_sections, payer_sections, schema_fast
from compiler.schema import SCHEMA_VERSION, SUPPORTED_MAJOR, errors, load_schema, validator
from parsers.errors import CompileArgumentError, CompileError, PackError
from rulebook import review
from rulebook import versions as vers
from rulebook.facts import as_of
from rulebook.kinds import HCPCS_CODES, PTP_EDITS, UNIT_LIMITS

# MAC jurisdictions (A/B: J5 J6 J8 J15 JE JF JH JJ JK JL JM JN; DME: JA JB JC JD).
JURISDICTIONS = {
    "J5",
    "J6",
    "J8",
    "J15",
    "JE",
    "JF",
    "JH",
    "JJ",
    "JK",
    "JL",
    "JM",
    "JN",
    "JA",
    "JB",
    "JC",
    "JD",
}
STATES = set(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
    "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR VI GU AS MP".split()
)


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pack_id_of(pack: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(pack | {"pack_id": ""})).hexdigest()


def check_scope(scope: str, payers: set[str] | frozenset[str] = frozenset()) -> None:
    if scope == "medicare":
        return
    m = re.fullmatch(r"medicare:([A-Z0-9]+)", scope)
    if m and (m.group(1) in JURISDICTIONS or m.group(1) in STATES):
        return
    m = re.fullmatch(r"payer:([a-z][a-z0-9_]*)", scope)
    if m and m.group(1) in payers:
        return
    raise CompileArgumentError(
        f"unknown scope {scope!r} (use medicare, medicare:<MAC jurisdiction> e.g. medicare:JK, "
        "medicare:<state> e.g. medicare:NY, or payer:<configured payer id>)"
    )


def check_window(start: str, end: str) -> tuple[str, str]:
    try:
        d1, d2 = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise CompileArgumentError(f"window dates must be YYYY-MM-DD ({exc})") from None
    if d1 >= d2:
        raise CompileArgumentError(
            f"empty window: --from {start} must be before --to {end} (the window is [from, to))"
        )
    return d1.isoformat(), d2.isoformat()


def _number(q: str) -> int | float:
    d = Decimal(q)
    return int(d) if d == d.to_integral_value() else float(d)


def _provenance(row: dict[str, Any], source: str = HCPCS_CODES.source) -> dict[str, Any]:
    return {
        "source": source,
        "sha256": row["artifact_sha256"],
        "locator": row["locator"],
        "release": row["release"],
    }


def code_rules(db: sqlite_utils.Database, version: int, window: tuple[str, str]) -> list[dict[str, Any]]:
    out = []
    for r in as_of(db, HCPCS_CODES, version, window=window):
        unit = None
        if r["unit_quantity"] is not None:
            unit = {"quantity": _number(r["unit_quantity"]), "unit": r["unit"]}
        out.append(
            {
                "id": f"cms_hcpcs:{r['code']}:{r['eff_start']}",
                "code": r["code"],
                "kind": r["kind"],
                "descriptor": r["long_description"],
                "short_descriptor": r["short_description"],
                "billing_unit": unit,
                "coverage_code": r["coverage_code"],
                "pricing_indicator": r["pricing_indicator"],
                "term_date": r["term_date"],
                "eff_start": r["eff_start"],
                "eff_end": r["eff_end"],
                "provenance": _provenance(r),
            }
        )
    return out


def unit_limit_rules(
    db: sqlite_utils.Database, version: int, window: tuple[str, str]
) -> list[dict[str, Any]]:
    out = []
    for r in as_of(db, UNIT_LIMITS, version, window=window):
        out.append(
            {
                "id": f"cms_ncci_mue:{r['setting']}:{r['code']}:{r['eff_start']}",
                "code": r["code"],
                "setting": r["setting"],
                "max_units": r["max_units"] if r["published"] else None,
                "published": bool(r["published"]),
                "mai": r["mai"],
                "mai_label": r["mai_label"],
                "rationale": r["rationale"],
                "eff_start": r["eff_start"],
                "eff_end": r["eff_end"],
                "provenance": _provenance(r, UNIT_LIMITS.source),
            }
        )
    out.sort(key=lambda r: (r["code"], r["setting"], r["eff_start"]))
    return out


PTP_COLUMNS = [
    "column1",
    "column2",
    "eff_start",
    "eff_end",
    "modifier_indicator",
    "prior_1996",
    "rationale",
    "source",
    "locator",
]


def _ptp_shas(db: sqlite_utils.Database, version: int, window: tuple[str, str]) -> set[str]:
    return {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT artifact_sha256 FROM ptp_edits "
            "WHERE v_from <= :v AND (v_to IS NULL OR v_to > :v) "
            "AND eff_start < :to AND (eff_end IS NULL OR (eff_end > :from AND eff_end > eff_start))",
            {"v": version, "from": window[0], "to": window[1]},
        )
    }


def write_ptp_companions(
    db: sqlite_utils.Database,
    version: int,
    window: tuple[str, str],
    out_dir: Path,
    base: str,
    source_index: dict[str, int],
) -> dict[str, Any] | None:
    """PTP edits as one tab-separated companion file per setting, streamed from the rulebook.

    2.6 million edits a setting as JSON objects would be ~500 MB a scrubber has to parse; a TSV
    sorted by (column1, column2, eff_start) loads with any CSV reader or straight into SQLite
    (``.import``), and binary search works on it as it is. Rationale texts are an index into
    ``rationales``; ``source`` is an index into the pack's ``sources``.
    """
    rationales: dict[str, int] = {}
    files = []
    settings = [r[0] for r in db.execute("SELECT DISTINCT setting FROM ptp_edits ORDER BY setting")]
    for setting in settings:
        fname = f"{base}.ptp-{setting}.tsv"
        tmp = out_dir / f".{fname}.tmp"
        digest = hashlib.sha256()
        n = 0
        with tmp.open("wb") as fh:
            header = ("\t".join(PTP_COLUMNS) + "\n").encode()
            fh.write(header)
            digest.update(header)
            buf: list[str] = []
            for r in as_of(
                db, PTP_EDITS, version, window=window, where="setting = :s", params={"s": setting}
            ):
                rid = rationales.setdefault(r["rationale"] or "", len(rationales))
                buf.append(
                    f"{r['column1']}\t{r['column2']}\t{r['eff_start']}\t{r['eff_end'] or ''}\t"
                    f"{r['modifier_indicator']}\t{r['prior_1996']}\t{rid}\t{source_index[r['artifact_sha256']]}\t"
                    f"{r['locator']}\n"
                )
                n += 1
                if len(buf) >= 20_000:
                    chunk = "".join(buf).encode()
                    fh.write(chunk)
                    digest.update(chunk)
                    buf = []
            chunk = "".join(buf).encode()
            fh.write(chunk)
            digest.update(chunk)
        if n == 0:
            tmp.unlink()
            continue
        os.replace(tmp, out_dir / fname)
        files.append({"file": fname, "sha256": digest.hexdigest(), "setting": setting, "rows": n})
    if not files:
        return None
    return {
        "format": "tsv",
        "columns": PTP_COLUMNS,
        "rationales": sorted(rationales, key=rationales.__getitem__),
        "files": files,
    }


def _sources(db: sqlite_utils.Database, shas: set[str]) -> list[dict[str, Any]]:
    out = []
    for sha in sorted(shas):
        art = db.table("artifacts").get(sha)
        out.append({"source": art["source"], "url": art["url"], "sha256": sha, "release": art["release"]})
    return sorted(out, key=lambda s: (s["source"], s["release"] or "", s["url"], s["sha256"]))


@dataclass
class CompileResult:
    version: int
    out_dir: Path
    manifest: dict[str, Any]
    review_state: str = "none"  # of the facts compiled (rulebook.review.effective_state)


def default_version(db: sqlite_utils.Database) -> int:
    """The newest committed version whose facts passed review: approved, or with no substantive
    change since an approved version (``rulebook.review.effective_state``). Pending and rejected
    versions are never picked by default."""
    if vers.latest_committed(db) is None:
        raise CompileError(
            "nothing to compile: the rulebook has no committed version (run `policysync sync`)"
        )
    found = review.compilable_default(db)
    if found is None:
        raise CompileError(
            f"nothing to compile: no approved version (pending review: {review.pending_count(db)}; "
            "see `policysync review approve`)"
        )
    return found


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def compile_packs(
    db: sqlite_utils.Database,
    *,
    start: str,
    end: str,
    scope: str,
    out_dir: Path,
    version: int | None = None,
    payers: set[str] | frozenset[str] = frozenset(),
) -> CompileResult:
    window = check_window(start, end)
    check_scope(scope, payers)
    if version is None:
        version = default_version(db)
    v = vers.get_version(db, version)
    if v.status != "committed":
        raise CompileError(f"version {version} is {v.status}, not committed: its facts cannot be compiled")
    state = review.effective_state(db, version)
    if v.review_state == "rejected":
        raise CompileError(f"version {version} was rejected in review: its facts never reach a pack")
    if state == "rejected":
        raise CompileError(
            f"version {version} carries the facts of a version rejected in review: they never reach a pack"
        )
    base = f"{scope.replace(':', '-')}_{window[0]}_{window[1]}"
    sections: dict[str, Any] = {"codes": code_rules(db, version, window)}
    if scope.startswith("medicare"):
        # NCCI edits are national Medicare rules: every Medicare scope carries them.
        sections["unit_limits"] = unit_limit_rules(db, version, window)
        # ASP payment limits and the NDC crosswalk are national Medicare Part B facts too.
        sections["prices"] = drug_sections.price_rules(db, version, window)
        sections["ndc_map"] = drug_sections.ndc_rules(db, version, window)
    if scope.startswith("medicare:"):
        # LCD/article coverage is regional: jurisdiction and state packs carry it (compiler/coverage_sections.py).
        sections["coverage"] = coverage_sections.medicare_coverage(db, version, window, scope)
    if scope.startswith("payer:"):
        # Commercial payer policies: coverage (Medicare's shape), prior auth, unit limits (compiler/payer_sections.py).
        sections.update(payer_sections.payer_sections(db, version, window, scope.partition(":")[2]))
    shas = {rule["provenance"]["sha256"] for rules in sections.values() for rule in rules}
    ptp_shas = _ptp_shas(db, version, window) if scope.startswith("medicare") else set()
    sources = _sources(db, shas | ptp_shas)
    if scope.startswith("medicare") and sections.get("prices"):
        # The drug billing rules (units, JW/JZ) travel with the Part B drug prices they apply to; they
        # come from a file kept with the compiler, not a fetch.
        sections["modifiers"], rules_source = drug_sections.modifier_rules(window)
        if sections["modifiers"]:
            sources = sorted(
                [*sources, rules_source], key=lambda s: (s["source"], s["release"] or "", s["url"], s["sha256"])
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    if ptp_shas:
        index = {s["sha256"]: i for i, s in enumerate(sources)}
        ptp = write_ptp_companions(db, version, window, out_dir, base, index)
        if ptp is not None:
            sections["ptp"] = ptp
    sections = {k: v for k, v in sections.items() if v}
    pack: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "pack_id": "",
        "scope": scope,
        "window": {"from": window[0], "to": window[1]},
        "rulebook_version": version,
        "sources": sources,
        "sections": sections,
    }
    # Serialised once: canonical() sorts keys, so the unsigned body (what pack_id_of hashes) starts with
    # the empty pack_id, which the signed body replaces.
    unsigned = canonical(pack)
    pack["pack_id"] = hashlib.sha256(unsigned).hexdigest()
    head = b'{"pack_id":""'
    body = (
        b'{"pack_id":"' + pack["pack_id"].encode() + b'"' + unsigned[len(head) :]
        if unsigned.startswith(head)
        else canonical(pack)
    )
    # Every rule against the pack schema: the same errors as compiler.schema.errors, each distinct value
    # checked once per subschema (compiler/schema_fast.py).
    problems = schema_fast.errors("pack", pack)
    if problems:
        raise CompileError(f"compiled pack fails its schema: {problems[0]} ({len(problems)} errors)")
    fname = f"{base}.json"
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "rulebook_version": version,
        "packs": [
            {
                "file": fname,
                "sha256": hashlib.sha256(body).hexdigest(),
                "pack_id": pack["pack_id"],
                "scope": scope,
                "window": pack["window"],
                "sections": {
                    k: (sum(f["rows"] for f in v["files"]) if k == "ptp" else len(v))
                    for k, v in sections.items()
                },
                "companions": [
                    {"file": f["file"], "sha256": f["sha256"]}
                    for f in sections.get("ptp", {}).get("files", [])
                ],
            }
        ],
    }
    problems = errors("manifest", manifest)
    if problems:
        raise CompileError(f"manifest fails its schema: {problems[0]}")
    _write_atomic(out_dir / fname, body)
    _write_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
    return CompileResult(version, out_dir, manifest, state)


SCHEMA_SAMPLE = 64  # items of each section validated in full by read_packs(schema="sample")


def _required_keys(schema: dict[str, Any], ref: str) -> frozenset[str]:
    """The keys a ``$defs`` rule requires, its ``allOf`` references' included."""
    d = schema["$defs"][ref.rsplit("/", 1)[-1]]
    keys = set(d.get("required", ()))
    for sub in d.get("allOf", ()):
        if "$ref" in sub:
            keys |= _required_keys(schema, sub["$ref"])
    return frozenset(keys)


def _sample_indexes(n: int, k: int = SCHEMA_SAMPLE) -> list[int]:
    """Up to ``k`` indexes spread evenly over ``range(n)``, first and last included (deterministic)."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def sampled_schema_errors(pack: dict[str, Any]) -> list[str]:
    """The schema check of ``read_packs(schema="sample")``: everything but the section items in full
    (header, window, sources, the PTP section), a sample of each section's items in full (first, last
    and evenly spread, :data:`SCHEMA_SAMPLE` of them), and every item for the keys its rule requires.
    Error paths name the item's index in the whole section."""
    schema = load_schema("pack")
    sections = pack.get("sections")
    if not isinstance(sections, dict):
        return errors("pack", pack)
    reduced: dict[str, Any] = {}
    picked: dict[str, list[int]] = {}
    problems: list[str] = []
    props = schema["properties"]["sections"]["properties"]
    for name, items in sections.items():
        if not isinstance(items, list):
            reduced[name] = items  # the PTP section (an object) or a wrong type: validated whole
            continue
        ref = (props.get(name) or {}).get("items", {}).get("$ref")
        if ref:
            need = _required_keys(schema, ref)
            for i, item in enumerate(items):
                if type(item) is not dict or not need <= item.keys():
                    missing = sorted(need - item.keys()) if type(item) is dict else ["(not an object)"]
                    problems.append(f"$.sections.{name}[{i}]: missing required {', '.join(missing)}")
                    break
        picked[name] = _sample_indexes(len(items))
        reduced[name] = [items[i] for i in picked[name]]
    for e in validator("pack").iter_errors(pack | {"sections": reduced}):
        path = list(e.absolute_path)
        if len(path) >= 3 and path[0] == "sections" and path[1] in picked and isinstance(path[2], int):
            path[2] = picked[path[1]][path[2]]
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        problems.append(f"{where}: {e.message}")
    return problems


def read_packs(pack_dir: Path, *, schema: str = "full") -> list[dict[str, Any]]:
    """Load every pack a manifest names, refusing any whose bytes, schema version or id do not check out.

    Always: the manifest against its schema, the sha256 of every pack and companion file against the
    manifest, the schema major version, ``pack_id`` against the content. ``schema="full"`` (compile
    time, tests, ``policysync scrub --full-check``) validates every rule against the pack schema;
    ``schema="sample"`` (the scrubber's default load) validates :func:`sampled_schema_errors`: a pack
    that passed the full check when it was compiled cannot have changed without its sha256 changing.
    """
    if schema not in ("full", "sample"):
        raise ValueError(f"schema must be 'full' or 'sample', not {schema!r}")
    mpath = pack_dir / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackError(f"{mpath}: no manifest.json (is {pack_dir} a pack directory?)") from None
    except json.JSONDecodeError as exc:
        raise PackError(f"{mpath}: not valid JSON ({exc})") from None
    problems = errors("manifest", manifest)
    if problems:
        raise PackError(f"{mpath}: {problems[0]}")
    packs = []
    for entry in manifest["packs"]:
        path = pack_dir / entry["file"]
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            raise PackError(f"{path}: named in manifest.json but missing") from None
        if hashlib.sha256(body).hexdigest() != entry["sha256"]:
            raise PackError(
                f"{path}: sha256 does not match manifest.json (the file was changed or truncated)"
            )
        pack = json.loads(body)
        major = str(pack.get("schema_version", "")).split(".")[0]
        if major != str(SUPPORTED_MAJOR):
            raise PackError(
                f"{path}: schema_version {pack.get('schema_version')!r} is not supported (this reader reads "
                f"{SUPPORTED_MAJOR}.x)"
            )
        problems = schema_fast.errors("pack", pack) if schema == "full" else sampled_schema_errors(pack)
        if problems:
            raise PackError(f"{path}: {problems[0]}")
        if pack_id_of(pack) != pack["pack_id"]:
            raise PackError(f"{path}: pack_id does not match its content")
        for comp in entry.get("companions", []):
            cpath = pack_dir / comp["file"]
            digest = hashlib.sha256()
            try:
                with cpath.open("rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):  # noqa: B023
                        digest.update(chunk)
            except FileNotFoundError:
                raise PackError(f"{cpath}: companion named in manifest.json but missing") from None
            if digest.hexdigest() != comp["sha256"]:
                raise PackError(
                    f"{cpath}: sha256 does not match manifest.json (the file was changed or truncated)"
                )
        packs.append(pack)
    return packs
