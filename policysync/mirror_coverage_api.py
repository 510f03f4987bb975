"""The loopback mirror's CMS Coverage API (source ``cms_coverage_api``), api.coverage.cms.gov/v1.

**Constructed.** No saved Coverage API responses exist for the article code tables (PROVENANCE.md
"Not found"), so every answer here is built on the fly from recorded tables, in the paths, query
parameters and response shapes of the CMS OpenAPI spec v1.5 (``mcd/coverage_api_openapi_v1.5.json``):

* detail endpoints (``/v1/data/article/...``, ``/v1/data/lcd/...``, ``/v1/data/contractor/``) and the
  metadata lists (``states``, ``contract-subtype``) from the MCD export tables
  (``mcd/export_2026-01``), completed by :func:`publish_tables` with the tables that recording lacks
  (the constructed ``tests/fixtures/cms_mcd`` ones, or ``bench/generate_mcd.py``'s full-size ones);
* ``/v1/reports/whats-new/local/`` from the versions those tables hold (their ``last_updated``) and the
  recorded 2025-08 report listing (``mcd/coverage_api_reports_documents_latest_2025-08.csv``, its rows
  as recorded), filtered by ``start_date`` <= day < ``end_date`` (the spec's half-open week; a range
  longer than a week is a 400, as the spec says it cannot exceed one week);
* ``/v1/metadata/license-agreement/`` issues a token valid for :attr:`CoverageApi.token_ttl` seconds
  (one hour, as the spec says); LCD and article detail calls without a live ``Authorization: Bearer``
  token get 401 ``{"message", "code"}``, the spec's error shape. Reports, metadata and contractor calls
  need no token (DOMAIN.md §3.1).

The API's quirks are reproduced: dates ``MM/DD/YYYY``, a literal ``N/A`` for an empty report date,
narrative HTML entity-encoded a second time, CRLF inside ``contractor_name_type``, and the spec's own
field names where they differ from the export (``article_rev_end_Date``; ``lcd_id``/``lcd_version`` in
the article ``primary-jurisdiction`` and ``future-retire`` answers). An ``articleid`` with its ``A``
prefix is refused with a 400, as the real API does.
"""

from __future__ import annotations

import csv
import html
import io
import json
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from parsers.mcd_tables import Row, read_table

if TYPE_CHECKING:
    from policysync.mirror import MirrorServer, MirrorSite

API_HOST = "api.coverage.cms.gov"
API_BASE = f"https://{API_HOST}/v1/"
RECORDED_EXPORT = "mcd/export_2026-01"
RECORDED_LISTING = "mcd/coverage_api_reports_documents_latest_2025-08.csv"
JSON_TYPE = "application/json; charset=utf-8"
# constructed: the schedule of the week after the recorded export (update period 1184 ends 2026-01-25)
SCHEDULE = (date(2026, 1, 25), date(2026, 1, 29))

ARTICLE_TABLES = (
    "article", "article_type_lookup", "article_x_contractor", "article_x_primary_jurisdiction",
    "article_related_documents", "article_future_retire", "article_x_hcpc_code", "article_x_hcpc_code_group",
    "article_x_icd10_covered", "article_x_icd10_covered_group", "article_x_icd10_noncovered",
    "article_x_icd10_noncovered_group", "contractor", "contractor_subtype_lookup", "contractor_type_lookup",
    "state_lookup",
)  # fmt: skip
LCD_TABLES = ("lcd", "lcd_x_contractor", "lcd_x_primary_jurisdiction", "lcd_related_documents", "lcd_future_retire")

# endpoint -> (table, id column, version column, fields in spec order: (api field, export column, kind))
# kinds: i integer, s string, d date, h narrative HTML (double-encoded), n name with line breaks kept
_F = tuple[str, str, str]
ARTICLE_ENDPOINTS: dict[str, tuple[str, tuple[_F, ...]]] = {
    "": ("article", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("article_type", "article_type", "i"), ("article_type_description", "@type", "s"),
        ("title", "title", "s"), ("article_pub_date", "article_pub_date", "d"),
        ("article_eff_date", "article_eff_date", "d"), ("article_end_date", "article_end_date", "d"),
        ("description", "description", "h"), ("other_comments", "other_comments", "h"),
        ("sad_url", "sad_url", "s"), ("thirty_percent", "thirty_percent", "s"), ("status", "status", "s"),
        ("last_updated", "last_updated", "d"), ("key_article", "key_article", "s"),
        ("icd9_covered_para", "icd9_covered_para", "h"), ("icd9_noncovered_para", "icd9_noncovered_para", "h"),
        ("revenue_para", "revenue_para", "h"), ("article_rev_end_Date", "article_rev_end_date", "d"),
        ("source_article_id", "source_article_id", "i"), ("date_retired", "date_retired", "d"),
        ("keywords", "keywords", "s"), ("icd10_doc", "icd10_doc", "s"), ("add_icd10_info", "add_icd10_info", "h"),
        ("cms_cov_policy", "cms_cov_policy", "h"), ("display_id", "display_id", "i"),
        ("reference_article", "@none", "s"),
    )),
    "contractor": ("article_x_contractor", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("article_type", "article_type", "i"), ("article_type_description", "@type", "s"),
        ("contractor_id", "contractor_id", "i"), ("contractor_type_id", "contractor_type_id", "i"),
        ("contractor_version", "contractor_version", "i"), ("last_updated", "last_updated", "d"),
    )),
    # the spec names this answer's fields lcd_id / lcd_version (DataArticlePrimaryJurisdiction)
    "primary-jurisdiction": ("article_x_primary_jurisdiction", (
        ("lcd_id", "article_id", "i"), ("lcd_version", "article_version", "i"), ("state_id", "state_id", "i"),
        ("last_updated", "last_updated", "d"),
    )),
    "related-documents": ("article_related_documents", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("related_num", "related_num", "i"), ("r_article_id", "r_article_id", "i"),
        ("r_article_version", "r_article_version", "i"), ("r_lcd_id", "r_lcd_id", "i"),
        ("r_lcd_version", "r_lcd_version", "i"), ("r_contractor_id", "r_contractor_id", "i"),
        ("last_updated", "last_updated", "d"), ("url", "@url", "s"),
    )),
    # DataArticleFutureRetire: lcd_id, retire_dt (sic)
    "future-retire": ("article_future_retire", (("lcd_id", "article_id", "i"), ("retire_dt", "retire_dt", "d"))),
    "hcpc-code": ("article_x_hcpc_code", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("hcpc_code_id", "hcpc_code_id", "s"), ("hcpc_code_version", "hcpc_code_version", "i"),
        ("hcpc_code_group", "hcpc_code_group", "i"), ("long_description", "long_description", "s"),
        ("short_description", "short_description", "s"), ("range", "range", "s"),
        ("last_updated", "last_updated", "d"),
    )),
    "hcpc-code-group": ("article_x_hcpc_code_group", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("hcpc_code_group", "hcpc_code_group", "i"), ("paragraph", "paragraph", "h"),
        ("last_updated", "last_updated", "d"),
    )),
    "icd10-covered": ("article_x_icd10_covered", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("icd10_code_id", "icd10_code_id", "s"), ("icd10_code_version", "icd10_code_version", "i"),
        ("icd10_covered_group", "icd10_covered_group", "i"), ("range", "range", "s"),
        ("sort_order", "sort_order", "i"), ("description", "description", "s"), ("asterisk", "asterisk", "s"),
        ("last_updated", "last_updated", "d"),
    )),
    "icd10-covered-group": ("article_x_icd10_covered_group", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("icd10_covered_group", "icd10_covered_group", "i"), ("paragraph", "paragraph", "h"),
        ("icd10_covered_ast", "icd10_covered_ast", "h"), ("last_updated", "last_updated", "d"),
    )),
    "icd10-noncovered": ("article_x_icd10_noncovered", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("icd10_code_id", "icd10_code_id", "s"), ("icd10_code_version", "icd10_code_version", "i"),
        ("icd10_noncovered_group", "icd10_noncovered_group", "i"), ("range", "range", "s"),
        ("sort_order", "sort_order", "i"), ("description", "description", "s"),
        ("last_updated", "last_updated", "d"),
    )),
    "icd10-noncovered-group": ("article_x_icd10_noncovered_group", (
        ("article_id", "article_id", "i"), ("article_version", "article_version", "i"),
        ("icd10_noncovered_group", "icd10_noncovered_group", "i"), ("paragraph", "paragraph", "h"),
        ("last_updated", "last_updated", "d"),
    )),
}  # fmt: skip
LCD_ENDPOINTS: dict[str, tuple[str, tuple[_F, ...]]] = {
    "": ("lcd", (
        ("lcd_id", "lcd_id", "i"), ("lcd_version", "lcd_version", "i"), ("display_id", "display_id", "i"),
        ("title", "title", "s"), ("determination_number", "determination_number", "s"),
        ("cms_cov_policy", "cms_cov_policy", "h"), ("orig_det_eff_date", "orig_det_eff_date", "d"),
        ("ent_det_end_date", "ent_det_end_date", "d"), ("rev_eff_date", "rev_eff_date", "d"),
        ("rev_end_date", "rev_end_date", "d"), ("indication", "indication", "h"),
        ("diagnoses_support", "diagnoses_support", "h"), ("diagnoses_dont_support", "diagnoses_dont_support", "h"),
        ("coding_guidelines", "coding_guidelines", "h"), ("doc_reqs", "doc_reqs", "h"),
        ("source_info", "source_info", "h"), ("notice_start_dt", "notice_start_dt", "d"),
        ("notice_end_dt", "@none", "d"), ("history_exp", "history_exp", "h"), ("status", "status", "s"),
        ("last_updated", "last_updated", "d"), ("date_retired", "date_retired", "d"),
    )),
    "contractor": ("lcd_x_contractor", (
        ("lcd_id", "lcd_id", "i"), ("lcd_version", "lcd_version", "i"), ("contractor_id", "contractor_id", "i"),
        ("contractor_type_id", "contractor_type_id", "i"), ("contractor_version", "contractor_version", "i"),
        ("last_updated", "last_updated", "d"),
    )),
    "primary-jurisdiction": ("lcd_x_primary_jurisdiction", (
        ("lcd_id", "lcd_id", "i"), ("lcd_version", "lcd_version", "i"), ("state_id", "state_id", "i"),
        ("last_updated", "last_updated", "d"),
    )),
    "related-documents": ("lcd_related_documents", (
        ("lcd_id", "lcd_id", "i"), ("lcd_version", "lcd_version", "i"), ("related_num", "related_num", "i"),
        ("r_article_id", "r_article_id", "i"), ("r_article_version", "r_article_version", "i"),
        ("r_lcd_id", "r_lcd_id", "i"), ("r_lcd_version", "r_lcd_version", "i"),
        ("r_contractor_id", "r_contractor_id", "i"), ("last_updated", "last_updated", "d"), ("url", "@url", "s"),
    )),
    "future-retire": ("lcd_future_retire", (("lcd_id", "lcd_id", "i"), ("retire_dt", "retire_dt", "d"))),
}  # fmt: skip


def api_date(value: str | None, empty: str = "") -> str:
    """An export date (``2025-12-22 14:31:54.650000000``) as the API writes it, ``12/22/2025``."""
    s = (value or "").strip()
    if not s:
        return empty
    try:
        d = datetime.strptime(s[:10], "%Y-%m-%d").date()
    except ValueError:
        return s
    return d.strftime("%m/%d/%Y")


def _day(value: str | None) -> date | None:
    s = (value or "").strip()
    for fmt, n in (("%Y-%m-%d", 10), ("%m/%d/%Y", 10)):
        try:
            return datetime.strptime(s[:n], fmt).date()
        except ValueError:
            continue
    return None


def _sort_stamp(value: str | None) -> str:
    s = (value or "").strip()
    digits = "".join(ch for ch in s[:19] if ch.isdigit())
    return digits.ljust(14, "0")[:14] if digits else ""


def _value(row: Row, column: str, kind: str, extra: Mapping[str, str]) -> Any:
    if column.startswith("@"):
        raw = extra.get(column, "")
    else:
        raw = row.get(column, "")
    if kind == "i":
        s = (raw or "").strip()
        return int(s) if s.lstrip("-").isdigit() else None
    if kind == "d":
        return api_date(raw)
    if kind == "h":
        # The API sends narrative HTML entity-encoded once more than the export stores it.
        return html.escape(raw or "", quote=False)
    return raw or ""


def envelope(data: list[dict[str, Any]], fields: Iterable[str] = ()) -> bytes:
    body = {
        "meta": {
            "status": {"id": 200, "message": "OK"},
            "notes": "Constructed by the policysync loopback mirror from recorded MCD tables.",
            "fields": list(fields),
            "children": [],
        },
        "data": data,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": JSON_TYPE}, json.dumps({"message": message, "code": status}).encode()


class CoverageApi:
    """The constructed API over a set of MCD tables (module docstring). Thread-safe."""

    def __init__(
        self,
        loader: Callable[[], dict[str, list[Row]]],
        listing: Callable[[], list[dict[str, str]]] = list,
        *,
        token_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        schedule: tuple[date, date] = SCHEDULE,
    ) -> None:
        self._loader = loader
        self._listing_loader = listing
        self._tables: dict[str, list[Row]] | None = None
        self._extra: dict[str, list[Row]] = {}
        self._index: dict[str, dict[str, list[Row]]] = {}
        self._listing: list[dict[str, str]] | None = None
        self.token_ttl = token_ttl
        self.clock = clock
        self.schedule = schedule
        self.tokens: dict[str, float] = {}  # token -> expiry (clock seconds)
        self.expire_after: int | None = None  # expire every token after this many authorised calls
        self.authorised_calls = 0
        self.tokens_issued = 0
        self.rejected_tokens = 0
        self._lock = threading.RLock()

    # -- tables --

    def publish(self, tables: Mapping[str, list[Row]]) -> None:
        """Replace (or add) whole tables: "this week's" versions of the documents they hold."""
        with self._lock:
            self._extra.update({k: list(v) for k, v in tables.items()})
            self._tables = None
            self._listing = None

    def tables(self) -> dict[str, list[Row]]:
        with self._lock:
            if self._tables is None:
                tables = dict(self._loader())
                tables.update(self._extra)
                self._tables = tables
                self._index = {}
            return self._tables

    def _by_doc(self, table: str, id_col: str) -> dict[str, list[Row]]:
        key = f"{table}:{id_col}"
        with self._lock:
            tables = self.tables()
            if key not in self._index:
                idx: dict[str, list[Row]] = defaultdict(list)
                for r in tables.get(table, ()):
                    idx[(r.get(id_col) or "").strip()].append(r)
                self._index[key] = idx
            return self._index[key]

    def warm(self) -> None:
        """Read the tables and build every index now rather than on the first request (benchmarks)."""
        with self._lock:
            self.tables()
            self.listing()
            for endpoints, id_col in ((ARTICLE_ENDPOINTS, "article_id"), (LCD_ENDPOINTS, "lcd_id")):
                for table, _ in endpoints.values():
                    self._by_doc(table, id_col)

    # -- tokens --

    def issue_token(self) -> str:
        with self._lock:
            token = secrets.token_hex(16)
            self.tokens[token] = self.clock() + self.token_ttl
            self.tokens_issued += 1
            return token

    def expire_all(self) -> None:
        """Every token issued so far is expired from now on (a run that outlives its hour)."""
        with self._lock:
            now = self.clock()
            self.tokens = {t: min(exp, now - 1) for t, exp in self.tokens.items()}

    def _authorised(self, headers: Mapping[str, str]) -> str | None:
        """None when the call may go on, else the 401 message."""
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return "Unauthorized: this endpoint needs the license agreement token (Authorization: Bearer)"
        token = auth[7:].strip()
        with self._lock:
            expiry = self.tokens.get(token)
            if expiry is None:
                self.rejected_tokens += 1
                return "Unauthorized: unknown token"
            if self.clock() >= expiry:
                self.rejected_tokens += 1
                return "Unauthorized: token expired"
            self.authorised_calls += 1
            if self.expire_after is not None and self.authorised_calls >= self.expire_after:
                self.expire_after = None
                self.expire_all()
        return None

    # -- answering --

    def handle(self, path: str, query: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes] | None:
        prefix = f"/{API_HOST}/v1/"
        if not path.startswith(prefix):
            return None
        route = path[len(prefix) :]
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            if route == "metadata/license-agreement/":
                return 200, {"Content-Type": JSON_TYPE}, envelope([{"token": self.issue_token()}], ["token"])
            if route == "metadata/local-data-schedule/":
                through, refreshed = self.schedule
                row = {
                    "data_captured_through": through.strftime("%m/%d/%Y"),
                    "refreshed_on_date": refreshed.strftime("%m/%d/%Y"),
                }
                return 200, {"Content-Type": JSON_TYPE}, envelope([row], row)
            if route == "metadata/states/":
                return self._states(params)
            if route == "metadata/contract-subtype/":
                return self._subtypes(params)
            if route == "data/contractor/":
                return self._contractors(params)
            if route == "reports/whats-new/local/":
                return self._whats_new(params)
            for kind, endpoints, id_param in (
                ("article", ARTICLE_ENDPOINTS, "articleid"),
                ("lcd", LCD_ENDPOINTS, "lcdid"),
            ):
                base = f"data/{kind}/"
                if route.startswith(base) and route[len(base) :].strip("/") in endpoints:
                    denied = self._authorised(headers)
                    if denied is not None:
                        return error(401, denied)
                    return self._detail(kind, route[len(base) :].strip("/"), endpoints, id_param, params)
        except ValueError as exc:
            return error(400, str(exc))
        return error(400, "Hello MCIM API Users! This endpoint does not exist.")

    def _states(self, params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        want = params.get("state_id")
        rows = [
            {"state_id": int(r["state_id"]), "description": r["description"]}
            for r in self.tables().get("state_lookup", ())
            if want in (None, "", r["state_id"])
        ]
        return 200, {"Content-Type": JSON_TYPE}, envelope(rows, ["state_id", "description"])

    def _subtypes(self, params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        want = params.get("subtype_id")
        rows = [
            {"subtype_id": int(r["contractor_subtype_id"]), "description": r["description"]}
            for r in self.tables().get("contractor_subtype_lookup", ())
            if want in (None, "", r["contractor_subtype_id"])
        ]
        return 200, {"Content-Type": JSON_TYPE}, envelope(rows, ["subtype_id", "description"])

    def _contractors(self, params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        cid, cver = params.get("contractor_id") or None, params.get("contractor_version") or None
        for name, value in (("contractor_id", cid), ("contractor_version", cver)):
            if value is not None and not value.isdigit():
                raise ValueError(f"{name} must be an integer")
        rows = []
        for r in self.tables().get("contractor", ()):
            if cid is not None and r["contractor_id"] != cid or cver is not None and r["contractor_version"] != cver:
                continue
            sub = (r.get("contractor_subtype_id") or "").strip()
            rows.append(
                {
                    "contractor_id": int(r["contractor_id"]),
                    "contract_type_id": int(r["contractor_type_id"]),
                    "subtype_id": int(sub) if sub.isdigit() else None,
                    "contractor_version": int(r["contractor_version"]),
                    "contract_number": r["contractor_number"],
                    "contractor_name": r["contractor_bus_name"],
                }
            )
        return 200, {"Content-Type": JSON_TYPE}, envelope(rows, list(rows[0]) if rows else [])

    def _detail(
        self,
        kind: str,
        endpoint: str,
        endpoints: Mapping[str, tuple[str, tuple[_F, ...]]],
        id_param: str,
        params: Mapping[str, str],
    ) -> tuple[int, dict[str, str], bytes]:
        doc = (params.get(id_param) or "").strip()
        if not doc:
            raise ValueError(f"{id_param} is required")
        if not doc.isdigit():
            raise ValueError(f"{id_param} must be the numeric document id, without its prefix ({doc!r})")
        ver = (params.get("ver") or "").strip()
        if ver and not ver.isdigit():
            raise ValueError(f"ver must be a number ({ver!r})")
        table, fields = endpoints[endpoint]
        id_col, ver_col = ("article_id", "article_version") if kind == "article" else ("lcd_id", "lcd_version")
        base_rows = self._by_doc(kind, id_col).get(doc, [])
        latest = max((int(r[ver_col]) for r in base_rows if r[ver_col].strip().isdigit()), default=None)
        rows = self._by_doc(table, id_col).get(doc, [])
        if latest is None:  # no base row (the recorded export lacks the base tables): the table's newest
            latest = max((int(r[ver_col]) for r in rows if (r.get(ver_col) or "").strip().isdigit()), default=None)
        want = int(ver) if ver else latest
        if endpoint != "future-retire":
            rows = [r for r in rows if (r.get(ver_col) or "").strip() == str(want)]
        types = {r["article_type_id"]: r["description"] for r in self.tables().get("article_type_lookup", ())}
        out = []
        for r in rows:
            extra = {
                "@type": types.get((r.get("article_type") or "").strip(), ""),
                "@url": _related_url(r),
            }
            out.append({api: _value(r, col, k, extra) for api, col, k in fields})
        return 200, {"Content-Type": JSON_TYPE}, envelope(out, [f[0] for f in fields])

    # -- what's new --

    def listing(self) -> list[dict[str, str]]:
        with self._lock:
            if self._listing is None:
                self._listing = self._build_listing()
            return self._listing

    def _build_listing(self) -> list[dict[str, str]]:
        tables = self.tables()
        contractors = {
            (r["contractor_id"], r["contractor_type_id"], r["contractor_version"]): r
            for r in tables.get("contractor", ())
        }
        ctypes = {r["contractor_type_id"]: r["description"] for r in tables.get("contractor_type_lookup", ())}
        out: list[dict[str, str]] = []
        seen: set[tuple[str, str, str]] = set()
        for kind, id_col, ver_col, link_table, prefix, doc_type, page in (
            ("article", "article_id", "article_version", "article_x_contractor", "A", "Article", "article"),
            ("lcd", "lcd_id", "lcd_version", "lcd_x_contractor", "L", "LCD", "lcd"),
        ):
            links = self._by_doc(link_table, id_col)
            for r in tables.get(kind, ()):
                doc, ver = r[id_col].strip(), r[ver_col].strip()
                names: dict[str, list[str]] = {}
                ids: set[str] = set()
                for c in links.get(doc, ()):
                    if c[ver_col].strip() != ver:
                        continue
                    ids.add(c["contractor_id"].strip())
                    info = contractors.get((c["contractor_id"], c["contractor_type_id"], c["contractor_version"]))
                    if info is None:
                        continue
                    names.setdefault(info["contractor_bus_name"].strip(), []).append(
                        ctypes.get(c["contractor_type_id"], "")
                    )
                name_type = "\r\n".join(
                    f"{n}\r\n({', '.join(sorted(set(t for t in ts if t)))})" for n, ts in sorted(names.items())
                )
                eff = r.get("article_eff_date") if kind == "article" else r.get("rev_eff_date")
                seen.add((doc_type, doc, ver))
                out.append(
                    {
                        "document_id": doc,
                        "document_version": ver,
                        "document_display_id": f"{prefix}{doc}",
                        "document_type": doc_type,
                        "note": "",
                        "title": r.get("title", ""),
                        "contractor_name_type": name_type,
                        "updated_on": api_date(r.get("last_updated"), "N/A"),
                        "updated_on_sort": _sort_stamp(r.get("last_updated")),
                        "effective_date": api_date(eff, "N/A"),
                        "retirement_date": api_date(r.get("date_retired"), "N/A"),
                        "url": f"https://www.cms.gov/medicare-coverage-database/view/{page}.aspx?{page}id={doc}&ver={ver}",
                        "_contractor_ids": " ".join(sorted(ids)),
                    }
                )
        for row in self._listing_loader():
            key = (row.get("document_type", ""), row.get("document_id", ""), row.get("document_version", ""))
            if key not in seen:
                out.append(dict(row))
        return out

    def _whats_new(self, params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        through = self.schedule[0]
        start_s, end_s = params.get("start_date") or "", params.get("end_date") or ""
        if not start_s and not end_s:
            start, end = through - timedelta(days=6), through + timedelta(days=1)
        else:
            try:
                start = datetime.strptime(start_s, "%Y%m%d").date()
                end = datetime.strptime(end_s, "%Y%m%d").date()
            except ValueError:
                raise ValueError("start_date and end_date must both be given as YYYYMMDD") from None
        if end <= start:
            raise ValueError("end_date must be after start_date")
        if (end - start).days > 7:
            raise ValueError("The selected date range cannot exceed one week of data")
        contractor = params.get("contractor_id")
        rows = []
        for row in self.listing():
            day = _day(row.get("updated_on"))
            if day is None or not start <= day < end:
                continue
            if contractor and contractor not in row.get("_contractor_ids", "").split():
                continue  # the recorded report rows name no contractor id: only constructed rows match
            rows.append(_typed_listing_row(row))
        rows.sort(key=lambda r: (r["updated_on_sort"], r["document_display_id"]), reverse=True)
        fields = list(rows[0]) if rows else []
        return 200, {"Content-Type": JSON_TYPE}, envelope(rows, fields)


def _typed_listing_row(row: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in row.items() if not k.startswith("_")}
    for k in ("document_version",):
        v = str(out.get(k, "")).strip()
        out[k] = int(v) if v.isdigit() else v
    return out


def _related_url(r: Row) -> str:
    if (r.get("r_lcd_id") or "").strip():
        return f"https://www.cms.gov/medicare-coverage-database/view/lcd.aspx?lcdid={r['r_lcd_id'].strip()}"
    if (r.get("r_article_id") or "").strip():
        aid = r["r_article_id"].strip()
        return f"https://www.cms.gov/medicare-coverage-database/view/article.aspx?articleid={aid}"
    return ""


def read_tables(folders: Iterable[Path], names: Iterable[str] = ARTICLE_TABLES + LCD_TABLES) -> dict[str, list[Row]]:
    """The tables ``names`` found as ``<name>.csv`` in ``folders`` (a later folder's table wins)."""
    wanted = set(names)
    out: dict[str, list[Row]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.csv")):
            t = path.stem.lower()
            if t in wanted:
                out[t], _ = read_table(path.read_bytes(), path.name, t)
    return out


def recorded_listing(path: Path) -> list[dict[str, str]]:
    """The recorded 2025-08 report rows, as recorded (a line break inside a name sent as CRLF)."""
    if not path.is_file():
        return []
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    rows = []
    for r in csv.DictReader(io.StringIO(text, newline="")):
        r = dict(r)
        name = r.get("contractor_name_type", "")
        r["contractor_name_type"] = name.replace("\r\n", "\n").replace("\n", "\r\n")
        rows.append(r)
    return rows


_APIS: dict[int, CoverageApi] = {}


class _Handler:
    """The site handler (``MirrorSite.handlers``); it wants the request headers (the token)."""

    wants_headers = True

    def __init__(self, api: CoverageApi) -> None:
        self.api = api

    def __call__(
        self, path: str, query: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes] | None:
        return self.api.handle(path, query, headers or {})


def cms_coverage_api_routes(site: MirrorSite, data_dir: Path, releases: Iterable[str] | None = None) -> None:
    """The constructed Coverage API over the recorded export tables and report listing."""
    base = Path(data_dir) / RECORDED_EXPORT
    folders = [base / "current_article" / "csv", base / "current_lcd" / "csv"]
    api = CoverageApi(
        lambda: read_tables([f for f in folders if f.is_dir()]),
        lambda: recorded_listing(Path(data_dir) / RECORDED_LISTING),
    )
    _APIS[id(site)] = api
    site.handlers["cms_coverage_api"] = _Handler(api)  # type: ignore[assignment]


def coverage_api(mirror: MirrorServer) -> CoverageApi:
    """The API a running mirror serves (to publish tables, expire tokens, count calls)."""
    api = _APIS.get(id(mirror.site))
    if api is None:
        raise KeyError("the mirror does not serve the Coverage API (source cms_coverage_api)")
    return api


def publish_tables(mirror: MirrorServer, tables: Mapping[str, list[Row]]) -> None:
    """Serve ``tables`` (whole tables by name, e.g. the constructed ``article``) from now on."""
    coverage_api(mirror).publish(tables)
