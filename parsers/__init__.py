"""Pure parsers: ``parse(body: bytes, meta: SourceMeta) -> Iterator[Record]``, one module per source id.

Parsers never touch the network, Scrapy, the database or the clock.
"""
