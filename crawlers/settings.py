"""The one settings module of the crawlers (CONVENTIONS.md 14): polite by default.

Robots obeyed, AutoThrottle, retries with exponential backoff, an identifying user agent, one
allow-list of domains per source. :func:`crawlers.runner.run_crawl` loads this module and lays the
mirror settings and the caller's settings over it.
"""

from __future__ import annotations

BOT_NAME = "policysync"
SPIDER_MODULES = ["crawlers.spiders"]
NEWSPIDER_MODULE = "crawlers.spiders"

USER_AGENT = "policysync/0.1 (+https://github.com/policysync/policysync; payer policy surveillance)"
ROBOTSTXT_OBEY = True

# A publisher's site is one slot: a few requests at a time, delays that follow its latency.
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 1.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

DOWNLOAD_TIMEOUT = 120
# The biggest file a source publishes is the PTP table (a zip of tens of MB); 1 GiB is a bomb.
DOWNLOAD_MAXSIZE = 512 * 1024 * 1024
DOWNLOAD_WARNSIZE = 128 * 1024 * 1024

# Scrapy has no backoff of its own: crawlers.middlewares.BackoffRetryMiddleware replaces the stock
# RetryMiddleware and waits RETRY_BACKOFF_BASE * 2 ** (n - 1) seconds (at most RETRY_BACKOFF_MAX)
# before retry n.
RETRY_ENABLED = True
RETRY_TIMES = 2
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
RETRY_BACKOFF_BASE = 2.0
RETRY_BACKOFF_MAX = 60.0

# Every request and every redirect target must be on its source's list (exact host names).
ALLOWED_DOMAINS: dict[str, list[str]] = {
    "cms_hcpcs": ["www.cms.gov", "cms.gov", "downloads.cms.gov"],
    "cms_ncci_mue": ["www.cms.gov", "cms.gov"],
    "cms_ncci_ptp": ["www.cms.gov", "cms.gov"],
    "cms_asp": ["www.cms.gov", "cms.gov"],
    "cms_mcd": ["www.cms.gov", "cms.gov", "downloads.cms.gov"],
    "cms_coverage_api": ["api.coverage.cms.gov"],
    "icd10cm": ["www.cms.gov", "cms.gov"],
}

# Base URL of the loopback mirror (``http://127.0.0.1:PORT``), or None for the real sites.
MIRROR_URL: str | None = None

DOWNLOADER_MIDDLEWARES = {
    # Replaced by the allow-list, which reports what it refuses instead of dropping it.
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
    "crawlers.middlewares.AllowListMiddleware": 60,
    "crawlers.middlewares.ConditionalGetMiddleware": 80,
    # Robots are judged on the real URL: the robots.txt request (https://HOST/robots.txt) is
    # mapped onto the mirror like any other, and requests already mapped are let through.
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawlers.middlewares.MirrorAwareRobotsTxtMiddleware": 100,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawlers.middlewares.BackoffRetryMiddleware": 550,
    # Last before the download handler, so every other middleware works on the real URL.
    "crawlers.middlewares.MirrorMiddleware": 950,
}

ITEM_PIPELINES = {
    "crawlers.pipelines.ArtifactPipeline": 300,
}

HTTPCACHE_ENABLED = False
COOKIES_ENABLED = False
# No in-process consoles: the telnet console and Scrapy 2.19's remote-control server (an HTTP
# endpoint that executes Python, on by default) have no place in a scheduled sync.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "WARNING"

# Scrapy 2.19 has one request fingerprinter (REQUEST_FINGERPRINTER_IMPLEMENTATION is gone); the
# default is right for us. The reactor is the asyncio one Scrapy defaults to; crawlers.runner
# installs it and runs it in one background thread for the life of the process.
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
