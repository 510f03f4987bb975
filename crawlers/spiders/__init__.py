"""One spider per source id (CONVENTIONS.md 1): ``crawlers/spiders/<id>.py`` with ``name = "<id>"``.

:data:`SPIDERS` is the registry :func:`crawlers.runner.run_crawl` looks source ids up in; a new
source adds its spider here (and its parser ``parsers/<id>.py`` and tests ``tests/parsers/test_<id>.py``).
"""

from __future__ import annotations

from scrapy import Spider

from crawlers.spiders.cms_asp import CmsAspSpider
from crawlers.spiders.cms_coverage_api import CmsCoverageApiSpider
from crawlers.spiders.cms_hcpcs import CmsHcpcsSpider
from crawlers.spiders.cms_mcd import CmsMcdSpider
from crawlers.spiders.cms_ncci_mue import CmsNcciMueSpider
from crawlers.spiders.cms_ncci_ptp import CmsNcciPtpSpider
from crawlers.spiders.icd10cm import CmsIcd10cmSpider
from crawlers.spiders.payer import PayerSpider

SPIDERS: dict[str, type[Spider]] = {
    spider.name: spider for spider in (CmsHcpcsSpider, CmsNcciMueSpider, CmsNcciPtpSpider, CmsAspSpider)
}
# The payer spider serves every configured `<payer>_<docset>` source (config key `parser = "payer"`).
SPIDERS[PayerSpider.name] = PayerSpider
SPIDERS[CmsMcdSpider.name] = CmsMcdSpider
SPIDERS[CmsCoverageApiSpider.name] = CmsCoverageApiSpider
SPIDERS[CmsIcd10cmSpider.name] = CmsIcd10cmSpider

__all__ = ["SPIDERS"]
