"""Reading the MCD bulk export CSV tables, and the text helpers both MCD front ends share.

The export CSVs (DOMAIN.md §3.2, checked on ``shared/data/mcd/export_2026-01``):

* cp1252 bytes (``&#174;`` is usually an entity, but raw 0x92/0xAE bytes occur);
* comma-delimited, double-quote text qualifier; narrative cells hold HTML and line breaks, so one
  record spans several physical lines: only a quote-aware reader counts records right;
* some tables quote every field, some only text fields;
* ``lcd_x_requestor_letters.csv`` has no header row: its columns come from the LCD data dictionary;
* join tables still hold rows of older document versions (``article_related_documents`` has A52370
  versions 109 to 128); the builder keeps only the version the base table holds.

The column lists of the tables the recorded export lacks (``article``, ``article_x_hcpc_code``,
``article_x_icd10_covered``, ``article_x_icd10_noncovered``, ``lcd``) are those of the CMS data
dictionaries in the same folder (``article data dictionary.pdf`` pages 4-6, 24-25, 35-38;
``lcd data dictionary.pdf`` pages 3-6 and 38). They are used only when a file has no header row.
"""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date, datetime

from parsers.errors import LayoutChanged, ParseError

# Columns in data dictionary order.
DICTIONARY_COLUMNS: dict[str, tuple[str, ...]] = {
    "article": (
        "article_id", "article_version", "article_type", "title", "article_pub_date", "article_eff_date",
        "article_end_date", "description", "other_comments", "sad_url", "thirty_percent", "status",
        "last_updated", "history_exp", "key_article", "icd9_covered_para", "icd9_noncovered_para",
        "revenue_para", "article_rev_end_date", "source_article_id", "date_retired", "keywords", "icd10_doc",
        "add_icd10_info", "cms_cov_policy", "display_id",
    ),
    "article_x_hcpc_code": (
        "article_id", "article_version", "hcpc_code_id", "hcpc_code_version", "hcpc_code_group", "range",
        "long_description", "short_description", "last_updated",
    ),
    "article_x_icd10_covered": (
        "article_id", "article_version", "icd10_code_id", "icd10_code_version", "icd10_covered_group", "range",
        "sort_order", "description", "last_updated", "asterisk",
    ),
    "article_x_icd10_noncovered": (
        "article_id", "article_version", "icd10_code_id", "icd10_code_version", "icd10_noncovered_group",
        "range", "sort_order", "description", "last_updated",
    ),
    "lcd": (
        "lcd_id", "lcd_version", "display_id", "title", "determination_number", "cms_cov_policy",
        "orig_det_eff_date", "ent_det_end_date", "rev_eff_date", "rev_end_date", "indication",
        "diagnoses_support", "icd9_dont_support_para", "icd9_dont_support_ast", "diagnoses_dont_support",
        "coding_guidelines", "doc_reqs", "appendices", "util_guide", "source_info", "adv_meeting",
        "comment_start_dt", "comment_end_dt", "notice_start_dt", "rev_hist_num", "history_exp",
        "thirty_percent", "status", "last_updated", "date_retired",
    ),
    "lcd_x_requestor_letters": (
        "lcd_id", "lcd_version", "letter_id", "requestor_name", "letter_path", "size", "sort_order",
        "last_updated",
    ),
}  # fmt: skip

_COLUMN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

Row = dict[str, str]


def table_name(member: str) -> str | None:
    """``current_article_csv/article_x_hcpc_code.csv`` -> ``article_x_hcpc_code``."""
    name = member.rsplit("/", 1)[-1]
    if not name.lower().endswith(".csv"):
        return None
    return name[:-4].lower()


def read_table(data: bytes, member: str, table: str) -> tuple[list[Row], bool]:
    """The rows of one export CSV as dicts by column name, and whether it had a header row.

    A file whose first record is not a row of column names takes the data dictionary's columns
    (``lcd_x_requestor_letters``); a header-less table the dictionary does not describe is refused.
    """
    text = data.decode("cp1252", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader)
    except StopIteration:
        return [], True
    except csv.Error as exc:
        raise ParseError(f"{member}: not a readable CSV ({exc})", locator=member) from None
    header = [c.strip().lower() for c in first]
    has_header = bool(header) and all(_COLUMN_NAME.match(c) for c in header) and not any(c.isdigit() for c in header)
    rows_raw: list[list[str]]
    if has_header:
        columns = header
        rows_raw = []
    else:
        known = DICTIONARY_COLUMNS.get(table)
        if known is None or len(known) != len(first):
            raise LayoutChanged(
                f"{member}: no header row and the data dictionary gives no {len(first)}-column layout for {table}",
                locator=member,
            )
        columns = list(known)
        rows_raw = [first]
    out: list[Row] = []
    n = len(columns)
    try:
        for raw in rows_raw:
            out.append(dict(zip(columns, raw, strict=True)))
        for i, raw in enumerate(reader, start=2 if has_header else 2):
            if not raw:
                continue
            if len(raw) != n:
                raise ParseError(
                    f"{member} record {i}: {len(raw)} fields where the header has {n}", locator=f"{member} record {i}"
                )
            out.append(dict(zip(columns, raw, strict=True)))
    except csv.Error as exc:
        raise ParseError(f"{member}: not a readable CSV ({exc})", locator=member) from None
    return out, has_header


_TAG_BREAK = re.compile(r"<\s*(br|/p|/li|/div|/tr|/h[1-6])\b[^>]*>", re.IGNORECASE)
_TAG_LI = re.compile(r"<\s*li\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_ENCODED_TAG = re.compile(r"&lt;\s*/?\s*[a-zA-Z]")


def html_text(value: str | None) -> str:
    """Plain text of an HTML cell: entities decoded (twice when the HTML itself was entity-encoded,
    as the Coverage API sends it), tags removed, one line per paragraph, spaces collapsed."""
    if not value:
        return ""
    s = value
    for _ in range(3):
        if not _ENCODED_TAG.search(s):
            break
        s = html.unescape(s)
    s = _TAG_BREAK.sub("\n", s)
    s = _TAG_LI.sub("\n- ", s)
    s = _TAG.sub("", s)
    s = html.unescape(s)
    lines = [_SPACES.sub(" ", line).strip() for line in s.replace("\r\n", "\n").split("\n")]
    return "\n".join(line for line in lines if line)


_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%m/%d/%Y", "%m/%d/%Y %H:%M:%S")


def parse_date(value: str | None, where: str) -> date | None:
    """An MCD date: ``2025-12-22 14:31:54.663000000`` (export), ``MM/DD/YYYY`` (API), empty or ``N/A``."""
    if value is None:
        return None
    s = value.strip()
    if not s or s.upper() == "N/A":
        return None
    s = s.split(".")[0] if re.match(r"^\d{4}-\d{2}-\d{2} \d", s) else s
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise ParseError(f"{where}: {value!r} is not a date", locator=where)


def parse_int(value: str | None, where: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise ParseError(f"{where}: {value!r} is not a number", locator=where) from None
