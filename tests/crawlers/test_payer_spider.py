"""The payer spider's callback on a CONSTRUCTED index page (a plain list of policy links, plus links the
config's patterns and document kinds must leave out), offline."""

from __future__ import annotations

from scrapy import Request
from scrapy.http import HtmlResponse

from crawlers.pipelines import DocumentItem
from crawlers.spiders.payer import PayerSpider

INDEX = "https://www.acme-health.example/providers/drug-policies"
PAGE = b"""<html><body><h1>Drug policies (constructed)</h1><ul>
<li><a href="/policies/drug/bevacizumab.pdf">Bevacizumab</a></li>
<li><a href="https://www.acme-health.example/policies/drug/rituximab.pdf">Rituximab</a></li>
<li><a href="/policies/drug/denosumab.html">Denosumab (web page)</a></li>
<li><a href="/policies/drug/bevacizumab.pdf">Bevacizumab again</a></li>
<li><a href="/news/2026-update.pdf">Newsletter</a></li>
<li><a href="mailto:policies@acme-health.example">Contact</a></li>
</ul></body></html>"""


def _spider(**config: object) -> PayerSpider:
    base = {"index_urls": [INDEX], "link_patterns": [r"/policies/drug/[^/]+$"], "document_kinds": ["pdf"]}
    return PayerSpider(name="acme_drug_policies", config={**base, **config})


def _parse(spider: PayerSpider) -> list[object]:
    response = HtmlResponse(INDEX, body=PAGE, request=Request(INDEX, meta={"index_url": INDEX}))
    return list(spider.parse(response))


def test_links_matching_the_patterns_and_kinds() -> None:
    spider = _spider()
    assert spider.name == "acme_drug_policies"  # the source id, which outcomes and artifacts carry
    out = _parse(spider)
    assert [r.url for r in out if isinstance(r, Request)] == [
        "https://www.acme-health.example/policies/drug/bevacizumab.pdf",
        "https://www.acme-health.example/policies/drug/rituximab.pdf",
    ]
    release = out[0].meta["release"]  # type: ignore[attr-defined]
    assert len(release) == 10 and release[4] == "-"  # the fetch date, YYYY-MM-DD


def test_html_documents_when_configured() -> None:
    urls = [r.url for r in _parse(_spider(document_kinds=["pdf", "html"])) if isinstance(r, Request)]
    assert "https://www.acme-health.example/policies/drug/denosumab.html" in urls and len(urls) == 3


def test_an_index_without_policy_links_is_reported() -> None:
    out = _parse(_spider(link_patterns=[r"/nothing-matches/"]))
    assert len(out) == 1 and isinstance(out[0], DocumentItem)
    assert out[0].outcome == "error"
    assert out[0].error == f"{INDEX}: no policy document links found on the landing page"


def test_allowed_hosts_come_from_the_config() -> None:
    kwargs = {"config": {"index_urls": [INDEX], "allowed_domains": ["static.acme-cdn.example"]}}
    assert PayerSpider.allowed_hosts(kwargs) == ["static.acme-cdn.example", "www.acme-health.example"]
