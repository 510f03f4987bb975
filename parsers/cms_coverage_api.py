"""cms_coverage_api: the CMS Coverage API (api.coverage.cms.gov/v1), the weekly incremental path.

One document is one changed LCD or article version as the spider assembled it (a *bundle*, JSON):
the raw text of every detail endpoint answer of that version (``data/article/``, ``contractor``,
``hcpc-code``, ``icd10-covered-group``...) and of the reference lists the records need
(``data/contractor/``, ``metadata/states/``, ``metadata/contract-subtype/``), each with its URL and
HTTP status, plus the what's-new row that named it::

    {"bundle": "cms_coverage_api", "doc_type": "article", "doc_id": "52370", "version": 128,
     "listing": {...}, "responses": [{"endpoint": "data/article/", "url": "...", "status": 200,
     "body": "{\\"meta\\": ...}"}, ...]}

The spider never decodes an answer: a truncated body is found here, named by its endpoint.

Each answer's ``data`` rows are mapped onto the MCD table columns (the API and the export share
most names; where the spec differs the mapping says so: ``article_rev_end_Date``, and ``lcd_id`` /
``lcd_version`` in the article ``primary-jurisdiction`` and ``future-retire`` answers) and handed to
``parsers.mcd_build`` — the builder the bulk export parser (``parsers/cms_mcd.py``) uses — so the
same document gives the same :class:`PolicyDocumentRecord` and :class:`CoverageRuleRecord` either
way. The API's own forms are read: ``MM/DD/YYYY`` dates, a literal ``N/A``, narrative HTML
entity-encoded twice, CRLF inside contractor names (whitespace collapsed).

What the API does not carry, and what is done about it:

* **The MAC jurisdiction of a contract** (the export's ``dmerc_rgn`` region): taken from the contract
  number, which CMS assigns by jurisdiction (the first two digits of an A/B or HHH contract: 13xxx and
  14xxx are JK; the four DME MAC contracts 16013/17013/18003/19003 are JA/JB/JC/JD). A contract
  number this rule does not know gives no jurisdiction, counted.
* **The states of a contract** (the export's ``contractor_jurisdiction``): the API has no such
  endpoint. Per the spec, a version with one contractor takes its states from its
  ``primary-jurisdiction`` answer, and those are complete. A version with several contractors gets
  no states from the API; that is counted ("states of a multi-contractor document: not in the
  Coverage API"), never guessed. State abbreviations come from the ``metadata/states`` names (the
  API gives names only) by the USPS codes and the MCD's own sub-state ids (:data:`STATE_CODES`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from parsers.errors import LayoutChanged, ParseError, with_context
from parsers.mcd_build import build_articles, build_lcds
from parsers.mcd_tables import Row
from parsers.records import SourceMeta

SOURCE = "cms_coverage_api"
BUNDLE = "cms_coverage_api"

# State (and MCD sub-state) names as metadata/states gives them -> the MCD's abbreviations:
# USPS codes, and the MCD's ids for the parts of New York, California and Missouri (DOMAIN.md §3.2).
STATE_CODES: dict[str, str] = {
    "Alaska": "AK", "Alabama": "AL", "Arkansas": "AR", "American Samoa": "AS", "Arizona": "AZ",
    "California - Entire State": "CA", "California": "CA", "Colorado": "CO", "Connecticut": "CT",
    "District of Columbia": "DC", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Guam": "GU",
    "Hawaii": "HI", "Iowa": "IA", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Massachusetts": "MA", "Maryland": "MD", "Maine": "ME",
    "Michigan": "MI", "Minnesota": "MN", "Missouri - Entire State": "MO", "Missouri": "MO", "Mississippi": "MS",
    "Montana": "MT", "North Carolina": "NC", "North Dakota": "ND", "Nebraska": "NE", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "Nevada": "NV", "New York - Entire State": "NY", "New York": "NY",
    "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA", "Puerto Rico": "PR",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Virginia": "VA", "Virgin Islands": "VI", "Vermont": "VT", "Washington": "WA",
    "Wisconsin": "WI", "West Virginia": "WV", "Wyoming": "WY", "Northern Mariana Islands": "CNMI",
    "Missouri - Northeastern & Southern": "EM", "Missouri - Northwestern": "WM", "New York - Downstate": "DN",
    "New York - Queens": "QN", "New York - Upstate": "UN", "California - Northern": "NF",
    "California - Southern": "SF",
}  # fmt: skip

# MAC contract number -> jurisdiction label. A/B and HHH contracts by their first two digits; the
# DME MAC contracts one by one (CMS "Who are the MACs"; checked against the export's regions in
# tests/parsers/test_cms_coverage_api.py).
AB_PREFIX: dict[str, str] = {
    "01": "JE", "02": "JF", "03": "JF", "04": "JH", "05": "J5", "06": "J6", "07": "JH", "08": "J8", "09": "JN",
    "10": "JJ", "11": "JM", "12": "JL", "13": "JK", "14": "JK", "15": "J15",
}  # fmt: skip
DME_CONTRACTS: dict[str, str] = {"16013": "JA", "17013": "JB", "18003": "JC", "19003": "JD"}

# endpoint -> MCD table, and the answer fields whose names differ from the table's columns.
ARTICLE_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "data/article/": ("article", {"article_rev_end_Date": "article_rev_end_date"}),
    "data/article/contractor": ("article_x_contractor", {}),
    "data/article/primary-jurisdiction": (
        "article_x_primary_jurisdiction",
        {"lcd_id": "article_id", "lcd_version": "article_version"},
    ),
    "data/article/related-documents": ("article_related_documents", {}),
    "data/article/future-retire": ("article_future_retire", {"lcd_id": "article_id"}),
    "data/article/hcpc-code": ("article_x_hcpc_code", {}),
    "data/article/hcpc-code-group": ("article_x_hcpc_code_group", {}),
    "data/article/icd10-covered": ("article_x_icd10_covered", {}),
    "data/article/icd10-covered-group": ("article_x_icd10_covered_group", {}),
    "data/article/icd10-noncovered": ("article_x_icd10_noncovered", {}),
    "data/article/icd10-noncovered-group": ("article_x_icd10_noncovered_group", {}),
}
LCD_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "data/lcd/": ("lcd", {}),
    "data/lcd/contractor": ("lcd_x_contractor", {}),
    "data/lcd/primary-jurisdiction": ("lcd_x_primary_jurisdiction", {}),
    "data/lcd/related-documents": ("lcd_related_documents", {}),
    "data/lcd/future-retire": ("lcd_future_retire", {}),
}
REFERENCE = ("data/contractor/", "metadata/states/", "metadata/contract-subtype/")
# Endpoints a bundle must hold: without them a version's rules cannot be stated whole.
ARTICLE_REQUIRED = (
    "data/article/", "data/article/contractor", "data/article/hcpc-code", "data/article/icd10-covered",
    "data/article/icd10-noncovered",
) + REFERENCE  # fmt: skip
LCD_REQUIRED = ("data/lcd/", "data/lcd/contractor") + REFERENCE

_SPACES = re.compile(r"\s+")


def jurisdiction_of(contract_number: str, part: str = "") -> str | None:
    """The MAC jurisdiction label of a contract number: ``13202`` -> ``JK``, ``19003`` -> ``JD``."""
    n = (contract_number or "").strip()
    if n in DME_CONTRACTS:
        return DME_CONTRACTS[n]
    if part == "DME" or len(n) != 5 or not n.isdigit():
        return None
    return AB_PREFIX.get(n[:2])


def parse(body: bytes, meta: SourceMeta) -> Iterator[Any]:
    return with_context(_parse(body, meta), meta.source or SOURCE, meta.url)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def _rows(data: list[Any], renames: Mapping[str, str], where: str) -> list[Row]:
    out: list[Row] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise LayoutChanged(f"{where}: data[{i}] is a {type(item).__name__}, not an object", locator=where)
        out.append({renames.get(k, k): _cell(v) for k, v in item.items()})
    return out


def answer_rows(entry: Mapping[str, Any], name: str) -> list[Any]:
    """The ``data`` list of one stored answer, or a one-line error naming the endpoint."""
    where = f"{name} ({entry.get('url', '?')})"
    status = entry.get("status")
    if status != 200:
        raise ParseError(f"{where}: HTTP {status} in the bundle (only 200 answers can be read)", locator=where)
    text = entry.get("body")
    if not isinstance(text, str):
        raise LayoutChanged(f"{where}: no answer body in the bundle", locator=where)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        # An unterminated string runs to the end of the text; other errors at the very end: cut short.
        ends_early = exc.msg.startswith("Unterminated string") or exc.pos >= len(text.rstrip()) - 1
        cut = " (the body ends early: truncated)" if ends_early else ""
        raise ParseError(
            f"{where}: answer is not valid JSON: {exc.msg} at char {exc.pos} of {len(text)}{cut}", locator=where
        ) from None
    if isinstance(doc, dict) and "data" not in doc and {"message", "code"} <= set(doc):
        raise ParseError(f"{where}: API error {doc['code']}: {doc['message']}", locator=where)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        found = f"keys: {', '.join(sorted(map(str, doc))[:6])}" if isinstance(doc, dict) else type(doc).__name__
        raise LayoutChanged(f"{where}: no 'data' list in the answer ({found})", locator=where)
    return doc["data"]  # type: ignore[no-any-return]


def read_bundle(body: bytes, filename: str) -> dict[str, Any]:
    try:
        bundle = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ParseError(f"{filename}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"{filename}: not a Coverage API bundle: invalid JSON ({exc.msg} at char {exc.pos} of {len(body)})"
        ) from None
    if not isinstance(bundle, dict) or bundle.get("bundle") != BUNDLE or not isinstance(bundle.get("responses"), list):
        raise LayoutChanged(f"{filename}: not a Coverage API bundle (no 'bundle': {BUNDLE!r} with 'responses')")
    if bundle.get("doc_type") not in ("article", "lcd"):
        raise LayoutChanged(f"{filename}: bundle doc_type {bundle.get('doc_type')!r} is neither article nor lcd")
    return bundle


def _geography(answers: Mapping[str, list[Any]], counts: Counter[str]) -> dict[str, list[Row]]:
    """The export's contractor, region, subtype and state tables, from what the API gives."""
    subtypes = _rows(answers["metadata/contract-subtype/"], {"subtype_id": "contractor_subtype_id"}, "subtypes")
    part_of = {r["contractor_subtype_id"]: r.get("description", "").strip() for r in subtypes}
    parts = {"MAC A": "A", "MAC B": "B", "HHH MAC": "HHH", "DME MAC": "DME"}
    contractors: list[Row] = []
    regions: dict[str, Row] = {}
    for r in _rows(answers["data/contractor/"], {}, "data/contractor/"):
        number = r.get("contract_number", "").strip()
        label = jurisdiction_of(number, parts.get(part_of.get(r.get("subtype_id", ""), ""), ""))
        if label is None:
            counts["contract number with no known MAC jurisdiction (none given)"] += 1
        region = label or ""
        if label and label not in regions:
            text = f"J - {label[1:]}"
            regions[label] = {"region_id": label, "mac_description": text, "super_mac_description": text}
        contractors.append(
            {
                "contractor_id": r.get("contractor_id", ""),
                "contractor_type_id": r.get("contract_type_id", ""),
                "contractor_version": r.get("contractor_version", ""),
                "contractor_number": number,
                "contractor_bus_name": _SPACES.sub(" ", r.get("contractor_name", "")).strip(),
                "dmerc_rgn": region,
                "contractor_subtype_id": r.get("subtype_id", ""),
            }
        )
    states: list[Row] = []
    for r in _rows(answers["metadata/states/"], {}, "metadata/states/"):
        name = _SPACES.sub(" ", r.get("description", "")).strip()
        code = STATE_CODES.get(name)
        if code is None:
            counts["state name with no known abbreviation (left out)"] += 1
            continue
        states.append({"state_id": r.get("state_id", ""), "state_abbrev": code, "description": name})
    return {
        "contractor": contractors,
        "dmerc_region_lookup": list(regions.values()),
        "contractor_subtype_lookup": subtypes,
        "state_lookup": states,
        "contractor_jurisdiction": [],  # not in the Coverage API (module docstring)
    }


def bundle_tables(
    bundle: Mapping[str, Any], filename: str, counts: Counter[str]
) -> tuple[dict[str, list[Row]], dict[str, str]]:
    """The MCD tables of one bundle, and each table's answer URL (for locators)."""
    doc_type = bundle["doc_type"]
    endpoints = ARTICLE_TABLES if doc_type == "article" else LCD_TABLES
    required = ARTICLE_REQUIRED if doc_type == "article" else LCD_REQUIRED
    answers: dict[str, list[Any]] = {}
    urls: dict[str, str] = {}
    for i, entry in enumerate(bundle["responses"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("endpoint"), str):
            raise LayoutChanged(f"{filename}: responses[{i}] names no endpoint")
        name = entry["endpoint"]
        if name in answers:
            raise ParseError(f"{filename}: endpoint {name} answered twice in the bundle")
        answers[name] = answer_rows(entry, f"{filename} {name}")
        urls[name] = str(entry.get("url") or name)
    missing = [e for e in required if e not in answers]
    if missing:
        raise ParseError(
            f"{filename}: bundle lacks the {', '.join(missing)} answer(s); the version cannot be read whole"
        )
    tables = _geography(answers, counts)
    member_of: dict[str, str] = {}
    for name, (table, renames) in endpoints.items():
        if name in answers:
            tables[table] = _rows(answers[name], renames, f"{filename} {name}")
            member_of[table] = urls[name]
    if doc_type == "article":
        types = {
            r["article_type"]: r.get("article_type_description", "") for r in tables["article"] if r.get("article_type")
        }
        tables["article_type_lookup"] = [{"article_type_id": k, "description": v} for k, v in types.items()]
    return tables, member_of


def _parse(body: bytes, meta: SourceMeta) -> Iterator[Any]:
    filename = meta.filename.rsplit("/", 1)[-1]
    bundle = read_bundle(body, filename)
    counts = meta.counts
    tables, member_of = bundle_tables(bundle, filename, counts)
    doc_type, doc_id = bundle["doc_type"], str(bundle.get("doc_id", "")).strip()
    base = tables["article" if doc_type == "article" else "lcd"]
    id_col, ver_col = ("article_id", "article_version") if doc_type == "article" else ("lcd_id", "lcd_version")
    version = str(bundle.get("version", "")).strip()
    if not any(r.get(id_col, "").strip() == doc_id and r.get(ver_col, "").strip() == version for r in base):
        found = ", ".join(sorted({f"{r.get(id_col)} v{r.get(ver_col)}" for r in base})) or "nothing"
        raise ParseError(
            f"{filename}: the data/{doc_type}/ answer has no {doc_type} {doc_id} version {version} (found: {found})"
        )
    links = tables["article_x_contractor" if doc_type == "article" else "lcd_x_contractor"]
    if len({(r.get("contractor_id"), r.get("contractor_type_id")) for r in links}) > 1:
        counts["states of a multi-contractor document: not in the Coverage API (none given)"] += 1
    if doc_type == "article":
        yield from build_articles(tables, counts, member_of)
    else:
        yield from build_lcds(tables, counts, member_of)
