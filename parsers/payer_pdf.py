"""Reading payer PDFs with pdfplumber: text lines with page/line locators, words with positions for the
pages a layout needs them on, and ruled tables (Priority Health's drug list), read with PDFium (fast)
or pdfplumber's table finder (the reference, split over the CPUs).

Documents that cannot be read honestly raise :class:`NeedsReview` (an encrypted PDF, a scan without a
text layer); the payer parser turns that into a ``needs_review`` document record instead of guessing.
"""

from __future__ import annotations

import ctypes
import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import pdfplumber
from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdfparser import PDFSyntaxError
from pdfplumber.utils.exceptions import MalformedPDFException, PdfminerException

from parsers.errors import LayoutChanged, ParseError


class NeedsReview(LayoutChanged):
    """A valid document this parser will not guess about; ``reason`` goes into the sync report."""

    def __init__(self, reason: str, *, source: str = "", url: str = "", locator: str = "") -> None:
        super().__init__(reason, source=source, url=url, locator=locator)
        self.reason = reason


@dataclass(frozen=True)
class Line:
    page: int  # 1-based
    no: int  # 1-based line number within the page's extracted text
    text: str

    @property
    def locator(self) -> str:
        return f"p{self.page}:l{self.no}"


@dataclass
class PdfText:
    pages: int
    lines: list[Line]
    words: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # page -> pdfplumber words

    @property
    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines)


# A page with fewer characters than this is treated as having no text layer.
MIN_CHARS_PER_PAGE = 20


def _open(body: bytes, filename: str) -> Any:
    try:
        return pdfplumber.open(io.BytesIO(body))
    except (PdfminerException, MalformedPDFException, PDFPasswordIncorrect, PDFEncryptionError, PDFSyntaxError) as exc:
        # pdfplumber wraps pdfminer's errors; the cause says which it was.
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc.__cause__ or exc
        if isinstance(cause, PDFPasswordIncorrect):
            raise NeedsReview(f"{filename}: encrypted PDF (a password is required to read it)") from None
        if isinstance(cause, PDFEncryptionError):
            raise NeedsReview(f"{filename}: encrypted PDF this reader cannot decrypt ({cause})") from None
        raise ParseError(f"{filename}: not a readable PDF ({cause or type(exc).__name__})") from None


def read_pdf(body: bytes, filename: str, *, words_for: set[int] | None = None, max_pages: int | None = None) -> PdfText:
    """Every page's text as numbered lines; ``words_for`` pages (1-based, or all with ``{0}``) also
    keep their words with coordinates."""
    with _open(body, filename) as pdf:
        try:
            pages = pdf.pages
        except PDFPasswordIncorrect:
            raise NeedsReview(f"{filename}: encrypted PDF (a password is required to read it)") from None
        out = PdfText(pages=len(pages), lines=[])
        chars = 0
        for i, page in enumerate(pages, start=1):
            if max_pages is not None and i > max_pages:
                break
            text = page.extract_text() or ""
            chars += len(page.chars)
            for n, raw in enumerate(text.split("\n"), start=1):
                if raw.strip():
                    out.lines.append(Line(i, n, " ".join(raw.split())))
            if words_for is not None and (0 in words_for or i in words_for):
                out.words[i] = page.extract_words()
            page.flush_cache()
        if out.pages and chars < MIN_CHARS_PER_PAGE * min(out.pages, max_pages or out.pages):
            raise NeedsReview(
                f"{filename}: no text layer ({chars} characters on {out.pages} pages): "
                "a scanned PDF needs OCR and review"
            )
        return out


def page_words(body: bytes, filename: str, pages: set[int]) -> dict[int, list[dict[str, Any]]]:
    """pdfplumber's words (with coordinates) of the given pages (1-based) only."""
    out: dict[int, list[dict[str, Any]]] = {}
    with _open(body, filename) as pdf:
        for i in sorted(pages):
            if 1 <= i <= len(pdf.pages):
                page = pdf.pages[i - 1]
                out[i] = page.extract_words()
                page.flush_cache()
    return out


# --- ruled tables (Priority Health) ------------------------------------------------------------


def _tables_of_pages(body: bytes, first: int, last: int) -> list[tuple[int, list[list[str | None]]]]:
    """Rows of every ruled table on pages ``first..last`` (1-based, inclusive). Stops at the first page
    without a table once tables have begun (the drug index at the end of the list needs no parsing)."""
    out: list[tuple[int, list[list[str | None]]]] = []
    with pdfplumber.open(io.BytesIO(body)) as pdf:
        for i in range(first, last + 1):
            page = pdf.pages[i - 1]
            # Only pages with ruling lines hold the table; index pages have none, so they are skipped
            # without the cost of table finding.
            if not page.lines and not page.rects:
                page.flush_cache()
                continue
            for table in page.extract_tables():
                out.append((i, table))
            page.flush_cache()
    return out


def page_count(body: bytes, filename: str) -> int:
    with _open(body, filename) as pdf:
        return len(pdf.pages)


# --- the same ruled tables read with PDFium (pypdfium2, pdfplumber's own dependency) --------------
#
# pdfplumber spends nearly all of a table page's time interpreting every character into Python
# objects (about 40 ms a page here). PDFium does the same work in C: the ruling lines come from the
# page's path objects and each cell's text from the text page, bounded by the cell. The result is the
# same rows as pdfplumber's (tests/parsers/test_payer_priority_health.py compares the two engines);
# PDFium marks a hyphen at a line end as U+0002 and joins the lines, which is written back as "-\n".


def _segments(obj: Any) -> list[tuple[float, float, float, float]]:
    """The straight segments of a path object, in page coordinates."""
    import pypdfium2.raw as raw

    m = raw.FS_MATRIX()
    raw.FPDFPageObj_GetMatrix(obj.raw, m)
    x, y = ctypes.c_float(), ctypes.c_float()
    out: list[tuple[float, float, float, float]] = []
    start: tuple[float, float] | None = None
    first = (0.0, 0.0)
    for i in range(raw.FPDFPath_CountSegments(obj.raw)):
        seg = raw.FPDFPath_GetPathSegment(obj.raw, i)
        raw.FPDFPathSegment_GetPoint(seg, x, y)
        px = m.a * x.value + m.c * y.value + m.e
        py = m.b * x.value + m.d * y.value + m.f
        if raw.FPDFPathSegment_GetType(seg) == raw.FPDF_SEGMENT_MOVETO or start is None:
            first = (px, py)
        else:
            out.append((start[0], start[1], px, py))
        if raw.FPDFPathSegment_GetClose(seg):
            out.append((px, py, first[0], first[1]))
        start = (px, py)
    return out


def _cluster(values: list[float], tol: float = 2.0) -> list[float]:
    groups: list[list[float]] = []
    for v in sorted(values):
        if groups and v - groups[-1][-1] <= tol:
            groups[-1].append(v)
        else:
            groups.append([v])
    return [sum(g) / len(g) for g in groups]


def _pdfium_rows(page: Any) -> list[list[str | None]]:
    """The rows of the ruled table on one page: bands between full-width horizontal rules, cut into
    cells by the vertical rules that cross each band."""
    import pypdfium2.raw as raw

    hs: list[tuple[float, float, float]] = []
    vs: list[tuple[float, float, float]] = []
    for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_PATH]):
        for x0, y0, x1, y1 in _segments(obj):
            if abs(y0 - y1) < 1 and abs(x1 - x0) > 5:
                hs.append((min(x0, x1), max(x0, x1), (y0 + y1) / 2))
            elif abs(x0 - x1) < 1 and abs(y1 - y0) > 5:
                vs.append(((x0 + x1) / 2, min(y0, y1), max(y0, y1)))
    if not hs or not vs:
        return []  # no ruled table (the drug index pages)
    width = max(h[1] for h in hs) - min(h[0] for h in hs)
    ys = sorted(_cluster([h[2] for h in hs if h[1] - h[0] > 0.9 * width]), reverse=True)
    text = page.get_textpage()
    rows: list[list[str | None]] = []
    try:
        for top, bottom in zip(ys, ys[1:], strict=False):
            mid = (top + bottom) / 2
            xs = _cluster([v[0] for v in vs if v[1] <= mid <= v[2]])
            if len(xs) < 2:
                continue
            rows.append(
                [
                    text.get_text_bounded(left=a, bottom=bottom, right=b, top=top).replace("\x02", "-\n")
                    for a, b in zip(xs, xs[1:], strict=False)
                ]
            )
    finally:
        text.close()
    return rows


def _pdfium_table_rows(body: bytes, filename: str) -> tuple[int, list[tuple[int, list[str | None]]]]:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(body)
    except pdfium.PdfiumError as exc:
        raise ParseError(f"{filename}: not a readable PDF ({exc})") from None
    try:
        rows: list[tuple[int, list[str | None]]] = []
        for i in range(len(doc)):
            page = doc[i]
            try:
                rows.extend((i + 1, row) for row in _pdfium_rows(page))
            finally:
                page.close()
        return len(doc), rows
    finally:
        doc.close()


def table_rows(
    body: bytes, filename: str, *, engine: str = "pdfium", workers: int | None = None, parallel_from: int = 40
) -> tuple[int, list[tuple[int, list[str | None]]]]:
    """``(pages, [(page, row cells)])`` for every ruled-table row of the document, in page order.

    ``engine="pdfium"`` (the default) reads the rules and cell text with PDFium, about 20 times faster.
    ``engine="pdfplumber"`` is pdfplumber's table finder, the reference: documents of ``parallel_from``
    pages or more are split over ``workers`` processes (default: the CPUs, at most 4)."""
    if engine == "pdfium":
        return _pdfium_table_rows(body, filename)
    n = page_count(body, filename)
    w = workers if workers is not None else min(4, os.cpu_count() or 1)
    if n < parallel_from or w <= 1:
        chunks = [(1, n)]
    else:
        step = -(-n // w)
        chunks = [(a, min(n, a + step - 1)) for a in range(1, n + 1, step)]
    results: list[list[tuple[int, list[list[str | None]]]]]
    if len(chunks) == 1:
        results = [_tables_of_pages(body, 1, n)]
    else:
        # spawn, not fork: the caller may run a Twisted reactor thread (forking a threaded process
        # can deadlock).
        with ProcessPoolExecutor(max_workers=len(chunks), mp_context=get_context("spawn")) as pool:
            results = list(
                pool.map(_tables_of_pages, [body] * len(chunks), [a for a, _ in chunks], [b for _, b in chunks])
            )
    rows: list[tuple[int, list[str | None]]] = []
    for part in results:
        for page, table in part:
            rows.extend((page, row) for row in table)
    return n, rows
