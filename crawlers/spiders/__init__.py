"""One spider per source id (CONVENTIONS.md 1): ``crawlers/spiders/<id>.py`` with ``name = "<id>"``.

:data:`SPIDERS` is the registry :func:`crawlers.runner.run_crawl` looks source ids up in; a new
source adds its spider here (and its parser ``parsers/<id>.py`` and tests ``tests/parsers/test_<id>.py``).
"""

from __future__ import annotations

from scrapy import Spider

from crawlers.spiders.cms_hcpcs import CmsHcpcsSpider
from crawlers.spiders.cms_ncci_mue import CmsNcciMueSpider
from crawlers.spiders.cms_ncci_ptp import CmsNcciPtpSpider

SPIDERS: dict[str, type[Spider]] = {
    spider.name: spider for spider in (CmsHcpcsSpider, CmsNcciMueSpider, CmsNcciPtpSpider)
}

__all__ = ["SPIDERS"]
