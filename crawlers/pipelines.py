"""What spiders hand over, and the pipeline that hands it to the artifact store.

A spider yields one :class:`DocumentItem` per document request, whatever happened to it: fetched,
not modified (304) or failed. The helpers below build those items from a response or a failure,
so every spider reports the same way. :class:`ArtifactPipeline` stores fetched bytes in the
:class:`~rulebook.blobs.BlobStore` (content-addressed: the same bytes twice are one blob) and
records a :class:`~crawlers.runner.FetchOutcome` per item in the crawl's context.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from scrapy.exceptions import DownloadFailedError, DownloadTimeoutError, IgnoreRequest, ResponseDataLossError
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.response import response_status_message
from twisted.internet.error import ConnectionLost

from crawlers.runner import FetchOutcome
from rulebook.blobs import sha256_hex

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response
    from twisted.python.failure import Failure

__all__ = [
    "ArtifactPipeline",
    "DocumentItem",
    "describe_failure",
    "document_item",
    "error_item",
    "failure_item",
    "filename_of",
    "utc_now",
]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def filename_of(url: str) -> str | None:
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    return name or None


def _header(response: Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value is not None else None


@dataclass
class DocumentItem:
    """One document request's result, as a spider reports it."""

    source: str
    url: str  # the real URL the spider asked for
    outcome: str  # "fetched" | "not_modified" | "error"
    status: int | None = None
    body: bytes | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    release: str | None = None
    filename: str | None = None
    error: str | None = None
    fetched_at: str = ""


def document_item(source: str, response: Response) -> DocumentItem:
    """The item for a document response: 304 -> "not_modified", anything else that reached the
    callback -> "fetched". ``response.meta`` carries ``doc_url`` and ``release``."""
    meta = response.meta
    url = meta.get("doc_url") or response.url
    base = DocumentItem(
        source=source,
        url=url,
        outcome="fetched",
        status=response.status,
        content_type=_header(response, "Content-Type"),
        etag=_header(response, "ETag"),
        last_modified=_header(response, "Last-Modified"),
        release=meta.get("release"),
        filename=meta.get("filename") or filename_of(url),
        fetched_at=utc_now(),
    )
    if response.status == 304:
        base.outcome = "not_modified"
        base.content_type = None
    else:
        base.body = response.body
    return base


def error_item(
    source: str,
    url: str,
    cause: str,
    *,
    status: int | None = None,
    release: str | None = None,
    filename: str | None = None,
) -> DocumentItem:
    """An error outcome whose one-line message names the URL and the cause."""
    return DocumentItem(
        source=source,
        url=url,
        outcome="error",
        status=status,
        release=release,
        filename=filename,
        error=" ".join(f"{url}: {cause}".split()),
        fetched_at=utc_now(),
    )


def describe_failure(failure: Failure) -> tuple[int | None, str]:
    """(HTTP status or None, one-line cause) for a request's errback."""
    exc = failure.value
    request: Request | None = getattr(failure, "request", None)
    retried = int(request.meta.get("retry_times", 0)) if request is not None else 0
    after = f" (after {retried} {'retry' if retried == 1 else 'retries'})" if retried else ""
    if isinstance(exc, HttpError):
        status = exc.response.status
        return status, f"HTTP {response_status_message(status)}{after}"
    if isinstance(exc, IgnoreRequest):
        message = str(exc)
        if message == "Forbidden by robots.txt":
            return None, "disallowed by robots.txt"
        if message == "max redirections reached" and request is not None:
            hops = request.meta.get("redirect_times", "too many")
            return None, f"redirect loop: still redirected after {hops} redirects (REDIRECT_MAX_TIMES)"
        return None, message or f"request ignored ({type(exc).__name__})"
    # Scrapy's download errors name the mirror URL and Twisted's failure reprs: say what happened.
    if isinstance(exc, DownloadTimeoutError):
        limit = request.meta.get("download_timeout") if request is not None else None
        within = f" within {limit:g} s" if isinstance(limit, int | float) else ""
        return None, f"timed out: no complete response{within} (DOWNLOAD_TIMEOUT){after}"
    if isinstance(exc, ResponseDataLossError):
        return None, f"connection closed before the whole body was received (shorter than its Content-Length){after}"
    if isinstance(exc, DownloadFailedError) and "ConnectionLost" in str(exc) or isinstance(exc, ConnectionLost):
        return None, f"connection reset or lost before a complete response{after}"
    name = type(exc).__name__
    text = str(exc).strip()
    return None, f"{name}: {text}{after}" if text else f"{name}{after}"


def failure_item(source: str, failure: Failure, *, url: str | None = None, prefix: str = "") -> DocumentItem:
    """The error item for a failed request (HTTP error, DNS, connection, refused, robots...)."""
    request: Request | None = getattr(failure, "request", None)
    meta = request.meta if request is not None else {}
    real = url or meta.get("doc_url") or meta.get("real_url") or (request.url if request is not None else "?")
    status, cause = describe_failure(failure)
    return error_item(
        source,
        real,
        f"{prefix}{cause}",
        status=status,
        release=meta.get("release"),
        filename=meta.get("filename") or (filename_of(real) if meta.get("doc_url") else None),
    )


class ArtifactPipeline:
    """Store fetched bytes (sha256) and record one FetchOutcome per document item."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ArtifactPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, DocumentItem):
            return item
        ctx = getattr(self.crawler.spider, "ctx", None)
        blobs = getattr(ctx, "blobs", None)
        known = getattr(ctx, "known", None) or {}
        sha256 = size = None
        if item.outcome == "fetched" and item.body is not None:
            sha256 = blobs.put(item.body) if blobs is not None else sha256_hex(item.body)
            size = len(item.body)
        elif item.outcome == "not_modified":
            prev = known.get(item.url)
            if prev is not None:
                # A 304 need not repeat the validators; keep the previous ones for the next crawl.
                sha256 = prev.sha256
                item.etag = item.etag or prev.etag
                item.last_modified = item.last_modified or prev.last_modified
        outcome = FetchOutcome(
            source=item.source,
            url=item.url,
            status=item.status,
            outcome=item.outcome,
            sha256=sha256,
            size=size,
            content_type=item.content_type,
            etag=item.etag,
            last_modified=item.last_modified,
            release=item.release,
            filename=item.filename,
            fetched_at=item.fetched_at or utc_now(),
            error=item.error,
        )
        if ctx is not None:
            ctx.outcomes.append(outcome)
        item.body = None  # the bytes are in the store now; do not keep them alive
        return item
