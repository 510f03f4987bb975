"""Downloader middlewares: mirror mapping, domain allow-list, conditional GET, robots, retry backoff.

Order (``crawlers/settings.py``), from the engine to the download handler::

    AllowListMiddleware 60      every request and redirect target on the source's allow-list
    ConditionalGetMiddleware 80 If-None-Match / If-Modified-Since from the previous fetch
    RobotsTxtMiddleware 100     Scrapy's, made mirror-aware: judged on the real URL
    BackoffRetryMiddleware 550  Scrapy's retry, waiting longer before each retry
    RedirectMiddleware 600      Scrapy's
    MirrorMiddleware 950        https://HOST/PATH -> MIRROR/HOST/PATH, and back on the response

Everything before the mirror middleware works on real URLs. The mirror middleware answers a real
request with its mapped copy (which Scrapy schedules and sends through the chain again: the
allow-list and robots middlewares let mapped URLs through, since their real URL already passed),
and rewrites each response so that ``response.url`` and any redirect ``Location`` are real URLs again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Request, Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import task

from parsers.errors import FetchError

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = [
    "AllowListMiddleware",
    "BackoffRetryMiddleware",
    "ConditionalGetMiddleware",
    "MirrorAwareRobotsTxtMiddleware",
    "MirrorMap",
    "MirrorMiddleware",
    "RefusedRequest",
]

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class RefusedRequest(IgnoreRequest, FetchError):
    """A request or redirect target that is not on its source's allow-list.

    An ``IgnoreRequest`` so Scrapy drops it quietly and calls the request's errback, where the
    spider turns it into an "error" fetch outcome; a ``FetchError`` so callers see it in the one
    exception hierarchy.
    """

    def __init__(self, message: str, *, source: str = "", url: str = "") -> None:
        FetchError.__init__(self, message, source=source, url=url)


class MirrorMap:
    """The mirror mapping of DESIGN.md: ``https://HOST/PATH?Q`` <-> ``BASE/HOST/PATH?Q``."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ValueError(f"mirror URL {base!r} is not of the form http://127.0.0.1:PORT")
        self.base = f"{parts.scheme}://{parts.netloc}"

    def is_mapped(self, url: str) -> bool:
        return url.startswith(self.base + "/")

    def to_mirror(self, real_url: str) -> str:
        parts = urlsplit(real_url)
        mapped = f"{self.base}/{parts.hostname}{parts.path or '/'}"
        return f"{mapped}?{parts.query}" if parts.query else mapped

    def to_real(self, mirror_url: str, scheme: str = "https") -> str:
        """The real URL a mirror URL stands for. The mapping drops the scheme; real sites are https."""
        rest = mirror_url[len(self.base) + 1 :]
        return f"{scheme}://{rest}"

    def real_location(self, location: str, mirror_url: str, real_url: str) -> str:
        """A redirect ``Location`` sent by the mirror for ``mirror_url``, as an absolute real URL.

        ``/evil.example/x.zip`` on the mirror is ``https://evil.example/x.zip``; an absolute URL to
        another host stays what it is.
        """
        if location.startswith("//"):
            location = f"{urlsplit(real_url).scheme}:{location}"
        joined = urljoin(mirror_url, location)
        return self.to_real(joined) if self.is_mapped(joined) else joined


def _mirror_map(crawler: Crawler) -> MirrorMap | None:
    base = crawler.settings.get("MIRROR_URL")
    return MirrorMap(base) if base else None


class MirrorMiddleware:
    """Send every request to the loopback mirror, keeping the real URL (``meta["real_url"]``)."""

    def __init__(self, mirror: MirrorMap) -> None:
        self.mirror = mirror

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorMiddleware:
        mirror = _mirror_map(crawler)
        if mirror is None:
            raise NotConfigured("no MIRROR_URL")
        return cls(mirror)

    def process_request(self, request: Request) -> Request | None:
        if self.mirror.is_mapped(request.url):
            return None
        mapped = request.replace(url=self.mirror.to_mirror(request.url), dont_filter=True)
        mapped.meta["real_url"] = request.url
        return mapped

    def process_response(self, request: Request, response: Response) -> Response:
        if not self.mirror.is_mapped(request.url):
            return response
        real_url = request.meta.get("real_url") or self.mirror.to_real(request.url)
        headers = response.headers.copy()
        location = response.headers.get(b"Location")
        if response.status in REDIRECT_CODES and location:
            headers[b"Location"] = self.mirror.real_location(
                location.decode("latin-1"), request.url, real_url
            ).encode("latin-1")
        return response.replace(url=real_url, headers=headers)


class MirrorAwareRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, judging each request on its real URL.

    It runs before the mirror mapping, so it asks for ``https://HOST/robots.txt`` (which the mirror
    middleware maps to ``MIRROR/HOST/robots.txt``) and checks the real path against it. A request
    already mapped onto the mirror was judged before it was mapped, and is let through.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._mirror = _mirror_map(crawler)

    async def process_request(self, request: Request, spider: Any = None) -> None:
        if self._mirror is not None and self._mirror.is_mapped(request.url):
            return
        await super().process_request(request)


class AllowListMiddleware:
    """Refuse (and report) any request or redirect target off the source's ``ALLOWED_DOMAINS``.

    The list is per source id (the spider name) and holds exact host names. A refusal raises
    :class:`RefusedRequest`, which reaches the request's errback, so the spider records it as an
    error outcome rather than the request silently disappearing.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.lists: dict[str, Any] = crawler.settings.getdict("ALLOWED_DOMAINS")
        self.mirror = _mirror_map(crawler)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AllowListMiddleware:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        if self.mirror is not None and self.mirror.is_mapped(request.url):
            return  # mapped by the mirror middleware after its real URL passed here
        spider = self.crawler.spider
        source = spider.name if spider is not None else "?"
        host = (urlparse_cached(request).hostname or "").lower()
        what = "redirect to" if request.meta.get("redirect_urls") else "request to"
        allowed = self.lists.get(source)
        if allowed is None:
            raise RefusedRequest(
                f"{what} {request.url} refused: no allow-list for {source} "
                "(ALLOWED_DOMAINS in crawlers/settings.py)",
                source=source,
                url=request.url,
            )
        if host not in {d.lower() for d in allowed}:
            raise RefusedRequest(
                f"{what} {request.url} refused: {host or '(no host)'} is not on the allow-list for {source}",
                source=source,
                url=request.url,
            )


class ConditionalGetMiddleware:
    """Make document requests conditional on what the previous fetch of the same URL said.

    A document request names its real URL in ``meta["doc_url"]``; the spider's ``ctx.known``
    (:class:`crawlers.runner.Known` by URL) gives the ETag and Last-Modified to send. A 304 is let
    through to the spider callback, which records it as "not_modified".
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ConditionalGetMiddleware:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        doc_url = request.meta.get("doc_url")
        if not doc_url or request.meta.get("unconditional"):
            return
        ctx = getattr(self.crawler.spider, "ctx", None)
        known = getattr(ctx, "known", None) or {}
        prev = known.get(doc_url)
        if prev is None:
            return
        sent = False
        if prev.etag:
            request.headers.setdefault(b"If-None-Match", prev.etag.encode("latin-1"))
            sent = True
        if prev.last_modified:
            request.headers.setdefault(b"If-Modified-Since", prev.last_modified.encode("latin-1"))
            sent = True
        if sent:
            codes = list(request.meta.get("handle_httpstatus_list", ()))
            if 304 not in codes:
                request.meta["handle_httpstatus_list"] = [*codes, 304]


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry middleware with exponential backoff (Scrapy 2.19 has none built in).

    Retry ``n`` (1, 2, ...) of a request waits ``RETRY_BACKOFF_BASE * 2 ** (n - 1)`` seconds, at
    most ``RETRY_BACKOFF_MAX``, before it is sent. The wait holds only that request back.
    """

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE", 2.0)
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX", 60.0)

    def backoff_delay(self, retry_times: int) -> float:
        if retry_times <= 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_base * 2 ** (retry_times - 1)))

    async def process_request(self, request: Request) -> None:
        retry_times = int(request.meta.get("retry_times", 0))
        if retry_times <= 0 or request.meta.get("backoff_waited") == retry_times:
            return
        request.meta["backoff_waited"] = retry_times
        delay = self.backoff_delay(retry_times)
        if delay > 0:
            from twisted.internet import reactor

            await maybe_deferred_to_future(task.deferLater(reactor, delay))
