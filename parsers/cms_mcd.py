"""cms_mcd: the Medicare Coverage Database bulk exports (DOMAIN.md §3.2).

``current_article.zip`` and ``current_lcd.zip`` (and the ``all_*`` history exports) nest: the
outer zip holds ``current_article_csv.zip`` (beside the ``.mdb`` and a readme), which holds
``current_article_csv/*.csv``. The parser opens both levels with the safe zip reader
(``parsers/archive.py``), reads every CSV table (``parsers/mcd_tables.py``: cp1252, HTML and line
breaks inside quoted cells, the header-less ``lcd_x_requestor_letters.csv``) and hands the rows to the
front-end-neutral builder (``parsers/mcd_build.py``), which the Coverage API front end shares.

An export that misses a table the rules need (``article_x_icd10_covered.csv``...) is refused as a
whole, naming the table: loading half an export would end every rule the missing table carries.

Which export it is comes from the tables inside (``article`` or ``lcd``), not from the file name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from parsers.archive import open_zip, read_member, safe_members
from parsers.errors import ParseError, with_context
from parsers.mcd_build import build_articles, build_lcds
from parsers.mcd_tables import Row, read_table, table_name
from parsers.records import SourceMeta

SOURCE = "cms_mcd"
# Tables the builder reads; the other tables of the export (urls, sticky notes, bill types...) are
# not read, only listed.
USED = {
    "article", "article_type_lookup", "article_x_hcpc_code", "article_x_hcpc_code_group",
    "article_x_icd10_covered", "article_x_icd10_covered_group", "article_x_icd10_noncovered",
    "article_x_icd10_noncovered_group", "article_x_contractor", "article_x_primary_jurisdiction",
    "article_related_documents", "article_future_retire", "contractor", "contractor_jurisdiction",
    "state_lookup", "dmerc_region_lookup", "contractor_subtype_lookup", "lcd", "lcd_x_contractor",
    "lcd_x_primary_jurisdiction", "lcd_related_documents", "lcd_future_retire", "lcd_x_requestor_letters",
}  # fmt: skip


def parse(body: bytes, meta: SourceMeta) -> Iterator[Any]:
    return with_context(_parse(body, meta), meta.source or SOURCE, meta.url)


def export_tables(body: bytes, filename: str) -> tuple[dict[str, list[Row]], dict[str, str]]:
    """Every used CSV table of an export zip (nested ``*_csv.zip`` opened), and each table's member path."""
    outer = open_zip(body, filename)
    tables: dict[str, list[Row]] = {}
    member_of: dict[str, str] = {}

    def take(zf: Any, members: list[str], where: str) -> None:
        for m in members:
            t = table_name(m)
            if t is None or t not in USED:
                continue
            if t in tables:
                raise ParseError(f"{where}: table {t}.csv appears twice", locator=m)
            rows, _ = read_table(read_member(zf, m, where), f"{where}/{m}", t)
            tables[t] = rows
            member_of[t] = f"{where}/{m}"

    members = safe_members(outer, filename)
    take(outer, members, filename)
    inner = [m for m in members if m.lower().endswith("_csv.zip")]
    for m in inner:
        data = read_member(outer, m, filename)
        where = f"{filename}/{m}"
        zf = open_zip(data, where)
        take(zf, safe_members(zf, where), where)
    if not tables:
        raise ParseError(
            f"{filename}: no MCD CSV tables found (expected a *_csv.zip inside, members: {', '.join(members[:5])})"
        )
    return tables, member_of


def _parse(body: bytes, meta: SourceMeta) -> Iterator[Any]:
    filename = meta.filename.rsplit("/", 1)[-1]
    tables, member_of = export_tables(body, filename)
    if "article" in tables or "article_x_hcpc_code" in tables or "article_x_contractor" in tables:
        try:
            yield from build_articles(tables, meta.counts, member_of)
        except ParseError as err:
            if "missing from the export" in str(err):
                raise ParseError(f"{filename}: {err}", locator=err.locator) from None
            raise
    elif "lcd_x_contractor" in tables or "lcd" in tables:
        try:
            yield from build_lcds(tables, meta.counts, member_of)
        except ParseError as err:
            if "missing from the export" in str(err):
                raise ParseError(f"{filename}: {err}", locator=err.locator) from None
            raise
    else:
        raise ParseError(f"{filename}: neither an article nor an LCD export (no article or lcd tables)")
