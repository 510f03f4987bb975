"""Run a source's spider in-process and get one :class:`FetchOutcome` per document request.

Twisted's reactor cannot be restarted, and ``policysync sync`` (and pytest) call :func:`run_crawl`
many times in one process. So the reactor is started once, on first use, in a daemon thread
(``installSignalHandlers=False``) and left running; each call builds a fresh ``CrawlerRunner`` inside
that thread with ``blockingCallFromThread`` and blocks until its crawl has finished. Calls from
several threads may overlap: every crawl has its own crawler, settings and :class:`CrawlContext`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from scrapy.crawler import CrawlerRunner
from scrapy.settings import Settings
from scrapy.utils.reactor import is_asyncio_reactor_installed, is_reactor_installed

from parsers.errors import UsageError
from rulebook.blobs import BlobStore

__all__ = ["CrawlContext", "FetchOutcome", "Known", "build_settings", "run_crawl"]

OUTCOMES = ("fetched", "not_modified", "error")


@dataclass
class Known:
    """What the previous fetches of a URL said (the rulebook's fetch log gives it)."""

    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None


@dataclass
class FetchOutcome:
    """One document request of one crawl: the fetch log row."""

    source: str
    url: str  # the REAL url (https://www.cms.gov/...), even under a mirror
    status: int | None  # HTTP status; None when no response
    outcome: str  # "fetched" | "not_modified" | "error"
    sha256: str | None  # of the stored bytes; for not_modified, the sha256 the previous fetch recorded
    size: int | None
    content_type: str | None
    etag: str | None
    last_modified: str | None
    release: str | None
    filename: str | None
    fetched_at: str  # ISO 8601 UTC
    error: str | None  # one line naming url and cause


@dataclass
class CrawlContext:
    """What one crawl shares between its spider, middlewares and pipeline (``spider.ctx``)."""

    source: str
    blobs: BlobStore | None = None
    known: dict[str, Known] = field(default_factory=dict)
    outcomes: list[FetchOutcome] = field(default_factory=list)


# Under the mirror everything is on loopback: politeness delays only slow the tests down.
MIRROR_SETTINGS: dict[str, Any] = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_START_DELAY": 0.01,
    "AUTOTHROTTLE_MAX_DELAY": 0.1,
    "RETRY_BACKOFF_BASE": 0.05,
    "RETRY_BACKOFF_MAX": 0.5,
    "DOWNLOAD_TIMEOUT": 30,
    # Loopback is reached directly, never through an http_proxy from the environment.
    "HTTPPROXY_ENABLED": False,
}


def build_settings(mirror: str | None = None, settings: dict[str, Any] | None = None) -> Settings:
    """``crawlers.settings``, then the mirror settings, then ``settings`` (highest priority)."""
    s = Settings()
    s.setmodule("crawlers.settings", priority="project")
    if mirror:
        s.set("MIRROR_URL", mirror.rstrip("/"), priority="project")
        s.setdict(MIRROR_SETTINGS, priority="project")
    if settings:
        s.setdict(settings, priority="cmdline")
    return s


def _installed_reactor() -> Any:
    """``twisted.internet.reactor`` (importing it installs the default reactor if none is)."""
    from twisted.internet import reactor

    return reactor


class _Reactor:
    """The process's one Twisted reactor, running in a daemon thread started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def get(self) -> Any:
        from twisted.python import threadable

        with self._lock:
            if is_reactor_installed():
                reactor = _installed_reactor()
                if reactor.running:
                    if threadable.isInIOThread():
                        raise RuntimeError(
                            "run_crawl() called from the reactor thread: it would wait for itself"
                        )
                    return reactor  # ours, or one somebody else runs in another thread
            ready = threading.Event()
            failure: list[BaseException] = []

            def main() -> None:
                loop: asyncio.AbstractEventLoop | None = None
                try:
                    if not is_reactor_installed():
                        # Installed here so that its asyncio loop belongs to this thread alone.
                        from twisted.internet import asyncioreactor

                        loop = asyncio.new_event_loop()
                        asyncio.set_event_loop(loop)
                        asyncioreactor.install(eventloop=loop)
                    reactor = _installed_reactor()
                    reactor.callWhenRunning(ready.set)
                    reactor.run(installSignalHandlers=False)
                except BaseException as err:  # handed to the caller waiting on `ready`
                    failure.append(err)
                    ready.set()
                finally:
                    if loop is not None and not loop.is_running():
                        loop.close()

            self.thread = threading.Thread(target=main, name="policysync-reactor", daemon=True)
            self.thread.start()
            if not ready.wait(timeout=30) or failure:
                cause = failure[0] if failure else "timed out"
                raise RuntimeError(f"could not start the Twisted reactor in its thread: {cause}")
            atexit.register(self._stop)
            return _installed_reactor()

    def _stop(self) -> None:
        reactor = _installed_reactor()
        if self.thread is not None and reactor.running:
            reactor.callFromThread(reactor.stop)
            self.thread.join(timeout=5)


_REACTOR = _Reactor()


def _configure_logging(settings: Settings) -> None:
    # CrawlerRunner leaves logging to the application; LOG_LEVEL still bounds Scrapy's chatter
    # unless the application set a level for it itself.
    level = settings.get("LOG_LEVEL", "WARNING")
    for name in ("scrapy", "twisted", "protego"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


def run_crawl(
    source_id: str,
    *,
    blobs: BlobStore,
    mirror: str | None = None,
    known: dict[str, Known] | None = None,
    settings: dict[str, Any] | None = None,
    spider_kwargs: dict[str, Any] | None = None,
    spider: str | None = None,
) -> list[FetchOutcome]:
    """Crawl ``source_id`` and return one outcome per document request, in the order they ended.

    Fetched bytes go to ``blobs``. ``mirror`` (``http://127.0.0.1:PORT``) sends every request to the
    loopback mirror while outcomes keep the real URLs. ``known`` (by real URL) makes document
    requests conditional. ``settings`` override ``crawlers/settings.py``; ``spider_kwargs`` become
    spider attributes (``landing_url`` from the config entry). Blocks until done; may be
    called any number of times in one process.
    """
    from twisted.internet.threads import blockingCallFromThread

    from crawlers.spiders import SPIDERS

    # A shared spider (``spider="payer"``) crawls many configured sources; it gets the source id as
    # its name through ``spider_kwargs``, so outcomes and artifacts carry the source id.
    spidercls = SPIDERS.get(spider or source_id)
    if spidercls is None:
        raise UsageError(f"unknown source {source_id!r}: no spider (known: {', '.join(sorted(SPIDERS))})")
    ctx = CrawlContext(source=source_id, blobs=blobs, known=dict(known or {}))
    crawl_settings = build_settings(mirror, settings)
    hosts_of = getattr(spidercls, "allowed_hosts", None)
    if hosts_of is not None:
        # A config-driven spider (payer sources) takes its source's allow-list from the config entry.
        lists = dict(crawl_settings.getdict("ALLOWED_DOMAINS"))
        lists.setdefault(source_id, hosts_of(spider_kwargs or {}))
        crawl_settings.set("ALLOWED_DOMAINS", lists, priority="cmdline")
    _configure_logging(crawl_settings)
    reactor = _REACTOR.get()
    if not is_asyncio_reactor_installed():
        # A reactor someone else installed: crawl on it rather than refuse (nothing here needs asyncio).
        crawl_settings.set("TWISTED_REACTOR", None, priority="cmdline")

    def start() -> Any:
        return CrawlerRunner(crawl_settings).crawl(spidercls, ctx=ctx, **(spider_kwargs or {}))

    blockingCallFromThread(reactor, start)
    return list(ctx.outcomes)
