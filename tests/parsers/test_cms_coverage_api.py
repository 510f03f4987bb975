"""parsers.cms_coverage_api: Coverage API answers (as the spider bundles them) to the same records as
the bulk export parser, the API's own forms, and bad input.

The answers come from the loopback mirror's constructed API (``policysync/mirror_coverage_api.py``),
called directly, over the recorded ``mcd/export_2026-01`` tables completed with the constructed
``tests/fixtures/cms_mcd`` tables (see its README). Expected values are read from those CSV files here
with ``csv``, or from the recorded export through the export parser for the "same records" check.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crawlers.spiders.cms_coverage_api import ARTICLE_ENDPOINTS, LCD_ENDPOINTS, REFERENCE
from parsers import cms_coverage_api, cms_mcd
from parsers.cms_coverage_api import STATE_CODES, jurisdiction_of, parse
from parsers.errors import LayoutChanged, ParseError
from parsers.mcd_build import _Where
from parsers.mcd_records import CoverageRuleRecord, PolicyDocumentRecord
from parsers.mcd_tables import read_table
from parsers.records import SourceMeta
from policysync.mirror_coverage_api import API_BASE, API_HOST, CoverageApi, read_tables, recorded_listing
from policysync.mirror_mcd import export_zip
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"
EXPORT = "mcd/export_2026-01"


def folders(shared_data: Path) -> list[Path]:
    return [shared_data / EXPORT / "current_article" / "csv", shared_data / EXPORT / "current_lcd" / "csv", FIXTURES]


@pytest.fixture(scope="module")
def api(shared_data: Path) -> CoverageApi:
    return CoverageApi(
        lambda: read_tables(folders(shared_data)),
        lambda: recorded_listing(shared_data / "mcd" / "coverage_api_reports_documents_latest_2025-08.csv"),
    )


def call(api: CoverageApi, endpoint: str, query: str = "", token: str | None = None) -> tuple[int, bytes]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = api.handle(f"/{API_HOST}/v1/{endpoint}", query, headers)
    assert answer is not None
    return answer[0], answer[2]


def answers(api: CoverageApi, doc_type: str, doc_id: str, version: int) -> list[dict[str, Any]]:
    token = api.issue_token()
    out = []
    for endpoint in ARTICLE_ENDPOINTS if doc_type == "article" else LCD_ENDPOINTS:
        query = f"{doc_type}id={doc_id}" + ("" if endpoint.endswith("future-retire") else f"&ver={version}")
        status, body = call(api, endpoint, query, token)
        out.append({"endpoint": endpoint, "url": f"{API_BASE}{endpoint}?{query}", "status": status,
                    "body": body.decode("utf-8")})  # fmt: skip
    for endpoint in REFERENCE:
        status, body = call(api, endpoint)
        out.append({"endpoint": endpoint, "url": f"{API_BASE}{endpoint}", "status": status, "body": body.decode()})
    return out


def bundle(doc_type: str, doc_id: str, version: int, responses: list[dict[str, Any]]) -> bytes:
    """A bundle as crawlers/spiders/cms_coverage_api.py writes it."""
    doc = {"bundle": "cms_coverage_api", "doc_type": doc_type, "doc_id": doc_id, "version": version,
           "listing": {}, "responses": responses}  # fmt: skip
    return json.dumps(doc, sort_keys=True).encode()


def meta(name: str = "article_52370_v128.json") -> SourceMeta:
    return SourceMeta("cms_coverage_api", f"{API_BASE}data/article/?x", "0" * 64, name, "2025-12-22")


def with_answer(responses: list[dict[str, Any]], endpoint: str, **change: Any) -> list[dict[str, Any]]:
    return [dict(r, **change) if r["endpoint"] == endpoint else r for r in responses]


def table(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("cp1252"), newline="")))


@pytest.fixture(scope="module")
def a52370(api: CoverageApi) -> list[dict[str, Any]]:
    return answers(api, "article", "52370", 128)


def without_geography(rec: Any) -> Any:
    """A record with the provenance locator and the state lists blanked: the API has no contractor ->
    state table (module docstring of parsers/cms_coverage_api.py)."""
    rec = replace(rec, locator="", states=())
    if isinstance(rec, PolicyDocumentRecord):
        rec = replace(rec, contractors=tuple(replace(c, states=()) for c in rec.contractors))
    return rec


def test_same_records_as_the_export_for_a52370(shared_data: Path, a52370: list[dict[str, Any]]) -> None:
    m = meta()
    from_api = list(parse(bundle("article", "52370", 128, a52370), m))
    zipped = export_zip("current_article", [shared_data / EXPORT / "current_article" / "csv", FIXTURES])
    from_csv = [
        r
        for r in cms_mcd.parse(zipped, SourceMeta("cms_mcd", "u", "0" * 64, "current_article.zip", "2026-01-08"))
        if r.policy == "A52370"
    ]
    # what the constructed hcpc table says A52370 v128 holds: one rule per code and group side, and one
    # per drug code its group 2 paragraph names (C9142, C9257, J9035, Q5107, Q5118, Q5126, Q5129, Q5160)
    hcpc = [r for r in table(FIXTURES / "article_x_hcpc_code.csv") if (r["article_id"], r["article_version"]) ==
            ("52370", "128")]  # fmt: skip
    assert len(from_api) == len(from_csv) == 1 + len(hcpc) + 8
    assert [without_geography(r) for r in from_api] == [without_geography(r) for r in from_csv]
    doc = from_api[0]
    assert isinstance(doc, PolicyDocumentRecord) and (doc.policy, doc.version) == ("A52370", 128)
    assert doc.jurisdictions == from_csv[0].jurisdictions == ("J6", "JK")
    assert doc.related == ("L33394",)
    # the gap, stated: 22 contractors, so the API gives no states, and says so in the counts
    assert len(doc.contractors) == 22 and doc.states == ()
    assert m.counts["states of a multi-contractor document: not in the Coverage API (none given)"] == 1
    j9035 = [r for r in from_api if isinstance(r, CoverageRuleRecord) and r.code == "J9035"]
    assert [(r.group, r.covered, r.pairing) for r in j9035] == [(1, True, "same_group"), (2, True, "same_group+named")]
    assert "C34.90" in j9035[0].diagnoses and j9035[0].eff_start.isoformat() == "2026-01-01"


def test_api_forms_are_read(a52370: list[dict[str, Any]]) -> None:
    by = {r["endpoint"]: json.loads(r["body"])["data"] for r in a52370}
    root = by["data/article/"][0]
    assert root["article_eff_date"] == "01/01/2026"  # MM/DD/YYYY
    assert "article_rev_end_Date" in root  # the spec's spelling
    para = by["data/article/hcpc-code-group"][0]["paragraph"]
    assert para.startswith("&lt;p&gt;Effective 01/01/2026")  # double-encoded HTML
    assert "&amp;#174;" in " ".join(p["paragraph"] for p in by["data/article/hcpc-code-group"])
    rules = [r for r in parse(bundle("article", "52370", 128, a52370), meta()) if isinstance(r, CoverageRuleRecord)]
    notes = "\n".join(rules[0].notes)
    assert "(Vegzelma\u00ae)" in notes and "&#" not in notes and "<p>" not in notes


def test_crlf_in_contractor_names_and_single_contractor_states(a52370: list[dict[str, Any]]) -> None:
    by = {r["endpoint"]: json.loads(r["body"]) for r in a52370}
    contractors = by["data/article/contractor"]
    contractors["data"] = contractors["data"][9:10]  # one contract: 13202 (NGS, JK, Part B)
    refs = by["data/contractor/"]
    for c in refs["data"]:
        c["contractor_name"] = c["contractor_name"].replace(" Services, ", " Services,\r\n")
    states = {s["description"]: s["state_id"] for s in by["metadata/states/"]["data"]}
    pj = {"meta": {}, "data": [{"lcd_id": 52370, "lcd_version": 128, "state_id": states["New York - Downstate"],
                                "last_updated": "12/22/2025"}]}  # fmt: skip
    responses = with_answer(a52370, "data/article/contractor", body=json.dumps(contractors))
    responses = with_answer(responses, "data/contractor/", body=json.dumps(refs))
    responses = with_answer(responses, "data/article/primary-jurisdiction", body=json.dumps(pj))
    m = meta()
    doc = next(iter(parse(bundle("article", "52370", 128, responses), m)))
    assert isinstance(doc, PolicyDocumentRecord)
    (c,) = doc.contractors
    assert (c.number, c.name, c.part, c.jurisdiction) == ("13202", "National Government Services, Inc.", "B", "JK")
    assert c.states == ("DN", "NY") and doc.states == ("DN", "NY")  # the sub-state id and its state
    assert "states of a multi-contractor document: not in the Coverage API (none given)" not in m.counts


def test_contract_number_rule_agrees_with_the_export_regions(shared_data: Path) -> None:
    csv_dir = shared_data / EXPORT / "current_article" / "csv"
    tables = {}
    for name in ("contractor", "dmerc_region_lookup", "contractor_subtype_lookup", "state_lookup"):
        tables[name], _ = read_table((csv_dir / f"{name}.csv").read_bytes(), name, name)
    where = _Where(tables)
    assert len(where.contractors) >= 100
    for number, _name, part, label in where.contractors.values():
        assert jurisdiction_of(number, part) == label, number


def test_state_names_cover_the_export_state_table(shared_data: Path) -> None:
    rows = table(shared_data / EXPORT / "current_article" / "csv" / "state_lookup.csv")
    assert {r["description"]: r["state_abbrev"] for r in rows}.items() <= STATE_CODES.items()


def test_lcd_bundle(api: CoverageApi) -> None:
    lcd = next(r for r in table(FIXTURES / "lcd.csv"))
    responses = answers(api, "lcd", lcd["lcd_id"], int(lcd["lcd_version"]))
    (doc,) = list(parse(bundle("lcd", lcd["lcd_id"], int(lcd["lcd_version"]), responses), meta("lcd.json")))
    assert (doc.policy, doc.version, doc.doc_type) == (f"L{lcd['lcd_id']}", int(lcd["lcd_version"]), "lcd")
    assert doc.title == lcd["title"]
    assert doc.eff_start.isoformat() == lcd["rev_eff_date"][:10]


# --- bad input -------------------------------------------------------------------------------------


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_truncated_answer_is_one_line_naming_the_endpoint(a52370: list[dict[str, Any]]) -> None:
    body = next(r["body"] for r in a52370 if r["endpoint"] == "data/article/icd10-covered")
    responses = with_answer(a52370, "data/article/icd10-covered", body=body[: len(body) // 2])
    with pytest.raises(ParseError) as info:
        list(parse(bundle("article", "52370", 128, responses), meta()))
    text = one_line(info.value)
    assert text.startswith("article_52370_v128.json data/article/icd10-covered (")
    assert "not valid JSON" in text and "truncated" in text
    assert info.value.source == "cms_coverage_api"


def test_error_answers_and_missing_parts(a52370: list[dict[str, Any]]) -> None:
    err = json.dumps({"message": "Internal Server Error", "code": 500})
    cases: list[tuple[list[dict[str, Any]], str]] = [
        (with_answer(a52370, "data/article/hcpc-code", body=err), "API error 500: Internal Server Error"),
        (with_answer(a52370, "data/article/hcpc-code", status=400), "HTTP 400 in the bundle"),
        ([r for r in a52370 if r["endpoint"] != "data/article/icd10-covered"],
         "bundle lacks the data/article/icd10-covered answer(s)"),
    ]  # fmt: skip
    for responses, expected in cases:
        with pytest.raises(ParseError) as info:
            list(parse(bundle("article", "52370", 128, responses), meta()))
        assert expected in one_line(info.value)
    with pytest.raises(ParseError) as info:
        list(parse(bundle("article", "52370", 129, a52370), meta()))
    assert "has no article 52370 version 129 (found: 52370 v128)" in one_line(info.value)


def test_not_a_bundle() -> None:
    with pytest.raises(ParseError) as info:
        list(parse(b'{"bundle": "cms_coverage_api", "responses": [', meta("x.json")))
    assert one_line(info.value).startswith("x.json: not a Coverage API bundle: invalid JSON")
    with pytest.raises(LayoutChanged):
        list(parse(b'{"data": []}', meta("x.json")))


def test_the_a_prefix_is_refused_by_the_api(api: CoverageApi) -> None:
    status, body = call(api, "data/article/", "articleid=A52370", api.issue_token())
    assert status == 400 and "numeric" in json.loads(body)["message"]
    status, body = call(api, "data/article/", "articleid=52370")
    assert status == 401 and json.loads(body)["code"] == 401


def test_module_names_follow_the_source_id() -> None:
    assert cms_coverage_api.SOURCE == "cms_coverage_api"


def test_the_mirrors_whats_new_listing(api: CoverageApi) -> None:
    def listed(query: str) -> list[dict[str, Any]]:
        status, body = call(api, "reports/whats-new/local/", query)
        assert status == 200
        return json.loads(body)["data"]  # type: ignore[no-any-return]

    week = listed("start_date=20251222&end_date=20251229")
    a52370 = next(r for r in week if r["document_display_id"] == "A52370")
    assert a52370["document_version"] == 128 and a52370["updated_on"] == "12/22/2025"
    assert a52370["retirement_date"] == "N/A" and "\r\n(" in a52370["contractor_name_type"]
    assert not listed("start_date=20251223&end_date=20251229")  # the 22nd is not in [23rd, 29th)
    by_269 = listed("start_date=20251222&end_date=20251229&contractor_id=269")  # both fixture articles name 269
    assert {r["document_id"] for r in by_269} == {"52370", "52369"}
    assert not listed("start_date=20251222&end_date=20251229&contractor_id=999999")
    recorded = listed("start_date=20250807&end_date=20250808")  # the recorded report rows of that day
    assert ("52370", 122) in {(r["document_id"], r["document_version"]) for r in recorded}
    for query in ("start_date=20251201&end_date=20251229", "start_date=20251229&end_date=20251222", "start_date=x"):
        status, body = call(api, "reports/whats-new/local/", query)
        assert status == 400 and json.loads(body)["code"] == 400, query


def test_an_answer_without_a_data_list_is_a_layout_change(a52370: list[dict[str, Any]]) -> None:
    for body, found in (('{"meta": {}, "rows": []}', "keys: meta, rows"), ("[1, 2]", "list")):
        responses = with_answer(a52370, "data/article/hcpc-code", body=body)
        with pytest.raises(LayoutChanged) as info:
            list(parse(bundle("article", "52370", 128, responses), meta()))
        assert one_line(info.value).endswith(f"no 'data' list in the answer ({found})")
