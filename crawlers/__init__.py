"""The Scrapy project: one spider per source id, one settings module, the middlewares that map
requests onto the loopback mirror, keep them on each source's allow-list and make them conditional,
and the pipeline that hands fetched documents to the artifact store.

Run a crawl with :func:`crawlers.runner.run_crawl`.
"""
