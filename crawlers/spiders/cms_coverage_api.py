"""cms_coverage_api: the weekly incremental path through the CMS Coverage API (DOMAIN.md §3.1).

The bulk exports (``cms_mcd``) carry every document; this spider fetches only what changed since the
last sync, as the OpenAPI spec v1.5 (``mcd/coverage_api_openapi_v1.5.json``) describes the calls:

1. ``metadata/local-data-schedule/``: ``data_captured_through`` (the Sunday the weekly snapshot ends).
2. ``metadata/license-agreement/``: the one-hour token (``data[0].token``) accepting the AMA/ADA/AHA
   licences, sent as ``Authorization: Bearer`` on LCD and article detail calls. It is renewed before a
   call once it is :attr:`token_max_age` old, and a call answered 401 (the token expired mid-run
   anyway) gets a fresh token and is made again (at most :attr:`renewals` times).
3. The reference lists every document's records need: ``data/contractor/``, ``metadata/states/``,
   ``metadata/contract-subtype/`` (no token needed).
4. ``reports/whats-new/local/?start_date=YYYYMMDD&end_date=YYYYMMDD`` week by week (the API refuses a
   longer range; the end day is not included) from the last sync to the day after
   ``data_captured_through``.
5. For each changed LCD or article version, its detail endpoints (``data/article/?articleid=52370&ver=128``:
   the numeric id without the ``A``/``L`` prefix, and the version the listing names).

**Since when.** ``since`` (a spider argument, ISO date) if given. Otherwise the rulebook's fetch log
says: each stored document carries as its Last-Modified the end of the window it was listed in, and
the latest of those (``ctx.known``, which the runner fills from the fetch log) is where this run
starts. With no earlier fetch, the run reads the last :attr:`lookback_days` days. A version already
fetched (its detail URL, which names the version, is in the fetch log) is not fetched again, so a
week re-read after a quiet week costs only the listing call.

**One document per version.** The detail answers of one version are stored together, as the raw text
they came in, in one JSON *bundle* (``parsers/cms_coverage_api.py`` reads it), with the reference
lists: the parser is a pure function of that one document. The bundle's URL is the version's
``data/<type>/`` call. Its release is the schedule's ``data_captured_through`` (the Sunday the snapshot ends);
``cms_mcd``'s release is its export's Last-Modified (the Thursday refresh after that Sunday). The
rulebook never lets an older release override a newer one, so an export of an older snapshot never
holds back a version the API lists later, and the export of the same snapshot restates it (with the
states the API cannot give, see ``parsers/cms_coverage_api.py``).

A detail call that still fails after the retries (400, 500, a dropped connection) makes that version
an error outcome naming the call and the status; the other versions go on, and the rulebook keeps the
facts it had. A failing schedule, token, reference or listing call fails the run (nothing to go on).
Throttling is the project's polite default (AutoThrottle, a download delay, two requests at a time);
the spec documents no rate.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from crawlers.pipelines import DocumentItem, describe_failure, error_item, utc_now
from crawlers.runner import CrawlContext

API_BASE = "https://api.coverage.cms.gov/v1/"
ARTICLE_ENDPOINTS = (
    "data/article/", "data/article/contractor", "data/article/primary-jurisdiction",
    "data/article/related-documents", "data/article/future-retire", "data/article/hcpc-code",
    "data/article/hcpc-code-group", "data/article/icd10-covered", "data/article/icd10-covered-group",
    "data/article/icd10-noncovered", "data/article/icd10-noncovered-group",
)  # fmt: skip
LCD_ENDPOINTS = (
    "data/lcd/", "data/lcd/contractor", "data/lcd/primary-jurisdiction", "data/lcd/related-documents",
    "data/lcd/future-retire",
)  # fmt: skip
REFERENCE = ("data/contractor/", "metadata/states/", "metadata/contract-subtype/")
DOC_TYPES = {"article": "article", "lcd": "lcd"}  # listing document_type (lower case) -> detail path


def api_day(value: str) -> date | None:
    """``MM/DD/YYYY`` (the API's dates), ``YYYYMMDD`` or ISO; None for ``N/A`` or anything else."""
    s = (value or "").strip()
    for fmt in ("%m/%d/%Y", "%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(s[:10], fmt).date()
        except ValueError:
            continue
    return None


def weeks(since: date, end: date, max_weeks: int) -> list[tuple[date, date]]:
    """Half-open windows of at most 7 days covering ``[since, end)``, the newest ``max_weeks``."""
    out = []
    start = since
    while start < end:
        stop = min(start + timedelta(days=7), end)
        out.append((start, stop))
        start = stop
    return out[-max_weeks:]


def _http_date(d: date) -> str:
    return email.utils.format_datetime(datetime(d.year, d.month, d.day, tzinfo=UTC), usegmt=True)


@dataclass
class Changed:
    """One changed document version the listing named."""

    doc_type: str  # "article" | "lcd"
    doc_id: str  # numeric, no prefix
    version: int
    listing: dict[str, Any]
    window_end: date
    responses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{'A' if self.doc_type == 'article' else 'L'}{self.doc_id} v{self.version}"


class CmsCoverageApiSpider(scrapy.Spider):
    name = "cms_coverage_api"
    landing_url = API_BASE  # the config's start_url: the API base
    since: str | None = None  # ISO date: read the listings from this day on
    lookback_days = 7
    max_weeks = 51  # the spec: the end date may not be more than 51 weeks back
    renewals = 2  # fresh tokens per call after a 401
    token_max_age = 3300.0  # seconds: a token is renewed before a call once it is 55 minutes old

    def __init__(self, *args: Any, ctx: CrawlContext | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ctx = ctx if ctx is not None else CrawlContext(source=self.name)
        self.base = str(self.landing_url).rstrip("/") + "/"
        self.token: str | None = None
        self.token_at = 0.0
        self.reference: dict[str, dict[str, Any]] = {}
        self.changed: dict[tuple[str, str], Changed] = {}
        self.windows: list[tuple[date, date]] = []
        self.captured: date | None = None  # the schedule's data_captured_through: every document's release

    # -- helpers --

    def url(self, endpoint: str, params: dict[str, Any] | None = None) -> str:
        return self.base + endpoint + (f"?{urlencode(params)}" if params else "")

    def api_request(self, url: str, callback: Any, meta: dict[str, Any], *, auth: bool = False) -> scrapy.Request:
        headers = {"Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.call_failed,
            headers=headers,
            meta={**meta, "handle_httpstatus_all": True, "token": self.token if auth else None},
            dont_filter=True,
        )

    def bundle_url(self, c: Changed) -> str:
        return self.url(f"data/{c.doc_type}/", {f"{c.doc_type}id": c.doc_id, "ver": c.version})

    def _since(self, end: date) -> date:
        if self.since:
            day = api_day(str(self.since))
            if day is None:
                raise ValueError(f"cms_coverage_api: since={self.since!r} is not a date (YYYY-MM-DD)")
            return day
        last: date | None = None
        for url, known in self.ctx.known.items():
            if not url.startswith(self.base + "data/") or not known.last_modified:
                continue
            try:
                day = email.utils.parsedate_to_datetime(known.last_modified).date()
            except (TypeError, ValueError):
                continue
            last = day if last is None or day > last else last
        return last if last is not None else end - timedelta(days=self.lookback_days)

    def _html(self, response: Response) -> bool:
        """An HTML page (a maintenance or error page served with 200) where JSON was expected."""
        content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1").lower()
        return content_type.startswith("text/html")

    def _retried(self, response: Response) -> str:
        """`` (after 2 retries)`` when the answer is the last of the retries, as for the other spiders."""
        n = int(response.meta.get("retry_times", 0) or 0)
        return f" (after {n} {'retry' if n == 1 else 'retries'})" if n else ""

    def _json(self, response: Response) -> Any:
        if self._html(response):
            raise ValueError("expected JSON, got an HTML page")
        try:
            return json.loads(response.text)
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"answer is not JSON ({exc})") from None

    def _fail(self, response: Response, what: str, detail: str = "") -> DocumentItem:
        message = ""
        try:
            body = json.loads(response.text)
            if isinstance(body, dict) and "message" in body:
                message = f": {body['message']}"
        except (ValueError, AttributeError):
            pass
        return error_item(
            self.name, response.meta.get("real_url") or response.url,
            f"{what}: HTTP {response.status}{message}{detail}{self._retried(response)}", status=response.status,
        )  # fmt: skip

    # -- 1. schedule --

    async def start(self) -> AsyncIterator[Any]:
        yield self.api_request(self.url("metadata/local-data-schedule/"), self.parse_schedule, {"step": "schedule"})

    def parse_schedule(self, response: Response) -> Iterator[Any]:
        if response.status != 200:
            yield self._fail(response, "local data schedule")
            return
        try:
            rows = self._json(response)["data"]
            through = api_day(rows[0]["data_captured_through"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            yield error_item(self.name, response.url, f"local data schedule: unreadable answer ({exc})")
            return
        if through is None:
            yield error_item(self.name, response.url, f"local data schedule: no date in {rows[0]!r}")
            return
        end = through + timedelta(days=1)
        self.captured = through
        try:
            since = self._since(end)
        except ValueError as exc:
            yield error_item(self.name, response.url, str(exc))
            return
        self.windows = weeks(since, end, self.max_weeks)
        if not self.windows:
            self.logger.info("%s: nothing new since %s (data captured through %s)", self.name, since, through)
            return
        yield self.token_request(self.parse_first_token, {})

    # -- 2. token --

    def token_request(self, callback: Any, meta: dict[str, Any]) -> scrapy.Request:
        return self.api_request(self.url("metadata/license-agreement/"), callback, {**meta, "step": "token"})

    def _take_token(self, response: Response) -> str | None:
        if response.status != 200:
            return None
        try:
            row = self._json(response)["data"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        token = row.get("token") or row.get("Token") if isinstance(row, dict) else None
        if not token:
            return None
        self.token, self.token_at = str(token), time.monotonic()
        return self.token

    def parse_first_token(self, response: Response) -> Iterator[Any]:
        if self._take_token(response) is None:
            detail = " (no data[0].token)" if response.status == 200 else ""
            yield self._fail(response, "license agreement token", detail)
            return
        yield self.api_request(self.url(REFERENCE[0]), self.parse_reference, {"step": "reference", "i": 0})

    # -- 3. reference lists --

    def parse_reference(self, response: Response) -> Iterator[Any]:
        i = response.meta["i"]
        if response.status != 200:
            yield self._fail(response, f"reference list {REFERENCE[i]}")
            return
        self.reference[REFERENCE[i]] = {
            "endpoint": REFERENCE[i], "url": self.url(REFERENCE[i]), "status": response.status, "body": response.text,
        }  # fmt: skip
        if i + 1 < len(REFERENCE):
            yield self.api_request(self.url(REFERENCE[i + 1]), self.parse_reference, {"step": "reference", "i": i + 1})
        else:
            yield self.listing_request(0)

    # -- 4. what's new --

    def listing_request(self, i: int) -> scrapy.Request:
        start, end = self.windows[i]
        params = {"start_date": start.strftime("%Y%m%d"), "end_date": end.strftime("%Y%m%d")}
        return self.api_request(self.url("reports/whats-new/local/", params), self.parse_listing, {"i": i})

    def parse_listing(self, response: Response) -> Iterator[Any]:
        i = response.meta["i"]
        if response.status != 200:
            yield self._fail(response, "what's-new listing")
            return
        try:
            rows = self._json(response)["data"]
        except (ValueError, KeyError, TypeError) as exc:
            yield error_item(self.name, self.url("reports/whats-new/local/"), f"what's-new listing: {exc}")
            return
        window_end = self.windows[i][1]
        for row in rows:
            doc_type = DOC_TYPES.get(str(row.get("document_type", "")).strip().lower())
            doc_id = str(row.get("document_id", "")).strip()
            try:
                version = int(str(row.get("document_version", "")).strip())
            except ValueError:
                version = -1
            if doc_type is None or not doc_id.isdigit() or version < 0:
                if getattr(self, "crawler", None) is not None:
                    self.crawler.stats.inc_value(f"{self.name}/listing_row_skipped")
                continue
            key = (doc_type, doc_id)
            if key not in self.changed or version > self.changed[key].version:
                self.changed[key] = Changed(doc_type, doc_id, version, dict(row), window_end)
        if i + 1 < len(self.windows):
            yield self.listing_request(i + 1)
            return
        for c in sorted(self.changed.values(), key=lambda c: (c.doc_type, int(c.doc_id))):
            if self.bundle_url(c) in self.ctx.known:
                # Fetched by an earlier run: not fetched again. Reported as not modified, so the
                # pipeline parses it again if it never parsed.
                yield self._not_modified(c)
                continue
            yield self.next_call(c, 0)

    # -- 5. details --

    def endpoints(self, c: Changed) -> tuple[str, ...]:
        return ARTICLE_ENDPOINTS if c.doc_type == "article" else LCD_ENDPOINTS

    def detail_request(self, c: Changed, i: int, renewed: int = 0) -> scrapy.Request:
        endpoint = self.endpoints(c)[i]
        params: dict[str, Any] = {f"{c.doc_type}id": c.doc_id}
        if not endpoint.endswith("future-retire"):  # the spec gives future-retire no ver parameter
            params["ver"] = c.version
        return self.api_request(
            self.url(endpoint, params), self.parse_detail, {"changed": c, "i": i, "renewed": renewed}, auth=True
        )

    def parse_detail(self, response: Response) -> Iterator[Any]:
        c: Changed = response.meta["changed"]
        i: int = response.meta["i"]
        endpoint = self.endpoints(c)[i]
        if response.status == 401 and response.meta["renewed"] < self.renewals:
            if self.token and self.token != response.meta.get("token"):
                yield self.detail_request(c, i, response.meta["renewed"] + 1)  # renewed meanwhile
            else:
                yield self.token_request(
                    self.parse_renewed_token, {"changed": c, "i": i, "renewed": response.meta["renewed"] + 1}
                )
            return
        if response.status != 200:
            cause = f"{endpoint}: HTTP {response.status}{self._message(response)}{self._retried(response)}"
            yield self._bundle_error(c, cause, response.status)
            return
        incomplete = self._incomplete(response)
        if incomplete:
            # A body cut short is a failed download, not a document: nothing is stored and the
            # version stays due (see closed()), so the next run asks again.
            yield self._bundle_error(c, f"{endpoint}: {incomplete}", response.status)
            return
        c.responses.append(
            {"endpoint": endpoint, "url": self._real(response), "status": response.status, "body": response.text}
        )
        if i + 1 < len(self.endpoints(c)):
            yield self.next_call(c, i + 1)
            return
        yield self._bundle(c)

    def next_call(self, c: Changed, i: int) -> scrapy.Request:
        """Detail call ``i`` of ``c``, after a fresh token when the current one is near its hour."""
        if time.monotonic() - self.token_at >= float(self.token_max_age):
            return self.token_request(self.parse_renewed_token, {"changed": c, "i": i, "renewed": 0})
        return self.detail_request(c, i)

    def parse_renewed_token(self, response: Response) -> Iterator[Any]:
        c: Changed = response.meta["changed"]
        if self._take_token(response) is None:
            cause = f"license agreement token renewal: HTTP {response.status}{self._retried(response)}"
            yield self._bundle_error(c, cause, response.status)
            return
        self.crawler.stats.inc_value(f"{self.name}/token_renewed")
        yield self.detail_request(c, response.meta["i"], response.meta["renewed"])

    def _real(self, response: Response) -> str:
        # Under the mirror the response carries the real URL again (crawlers.middlewares.MirrorMiddleware).
        return str(response.url)

    def _message(self, response: Response) -> str:
        try:
            body = json.loads(response.text)
        except (ValueError, AttributeError):
            return ""
        return f": {body['message']}" if isinstance(body, dict) and body.get("message") else ""

    def _incomplete(self, response: Response) -> str:
        """Why a 200 answer is not a whole JSON document ("" when it is)."""
        if self._html(response):
            return "expected JSON, got an HTML page"
        text = response.text
        try:
            json.loads(text)
        except ValueError as exc:
            where = getattr(exc, "pos", None)
            at = f" at char {where} of {len(text)}" if where is not None else ""
            return f"incomplete or invalid JSON body ({getattr(exc, 'msg', exc)}{at}; truncated?)"
        return ""

    def release(self, c: Changed) -> str:
        """The day the snapshot was captured through (``data_captured_through``, a Sunday). cms_mcd's
        release is its export's refresh (Last-Modified, the Thursday after): so an export of an older
        snapshot never holds back a version the API lists later, and the export of the same snapshot,
        which also carries the states the API lacks, restates it."""
        return (self.captured or c.window_end).isoformat()

    def _not_modified(self, c: Changed) -> DocumentItem:
        return DocumentItem(
            source=self.name,
            url=self.bundle_url(c),
            outcome="not_modified",
            last_modified=_http_date(c.window_end),
            release=self.release(c),
            filename=f"{c.doc_type}_{c.doc_id}_v{c.version}.json",
            fetched_at=utc_now(),
        )

    def closed(self, reason: str) -> None:
        """Hold the next run's start back to the first window with a version that failed: the
        documents of this run say (as their Last-Modified) where the next run starts, so a version
        that could not be fetched is listed, and fetched, again."""
        failed = [c.window_end for c in self.changed.values() if self.bundle_url(c) in self._failed_urls()]
        if not failed:
            return
        first = min(failed)
        start = next((a for a, b in self.windows if b == first), first - timedelta(days=7))
        for o in self.ctx.outcomes:
            if o.source == self.name and o.outcome in ("fetched", "not_modified"):
                o.last_modified = _http_date(start)

    def _failed_urls(self) -> set[str]:
        return {o.url for o in self.ctx.outcomes if o.outcome == "error"}

    def _bundle(self, c: Changed) -> DocumentItem:
        bundle = {
            "bundle": "cms_coverage_api",
            "doc_type": c.doc_type,
            "doc_id": c.doc_id,
            "version": c.version,
            "listing": c.listing,
            "responses": c.responses + [self.reference[r] for r in REFERENCE],
        }
        body = json.dumps(bundle, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return DocumentItem(
            source=self.name,
            url=self.bundle_url(c),
            outcome="fetched",
            status=200,
            body=body,
            content_type="application/json",
            last_modified=_http_date(c.window_end),
            release=self.release(c),
            filename=f"{c.doc_type}_{c.doc_id}_v{c.version}.json",
            fetched_at=utc_now(),
        )

    def _bundle_error(self, c: Changed, cause: str, status: int | None) -> DocumentItem:
        return error_item(
            self.name, self.bundle_url(c), f"{c.label}: {cause}", status=status,
            filename=f"{c.doc_type}_{c.doc_id}_v{c.version}.json",
        )  # fmt: skip

    def call_failed(self, failure: Failure) -> Iterator[DocumentItem]:
        request = getattr(failure, "request", None)
        meta = request.meta if request is not None else {}
        status, cause = describe_failure(failure)
        c = meta.get("changed")
        if isinstance(c, Changed):
            endpoint = self.endpoints(c)[meta.get("i", 0)] if meta.get("step") != "token" else "token renewal"
            yield self._bundle_error(c, f"{endpoint}: {cause}", status)
            return
        url = request.url if request is not None else self.base
        yield error_item(self.name, url, f"{meta.get('step') or 'listing'}: {cause}", status=status)
