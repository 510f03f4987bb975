"""Constructing later versions of a recorded payer policy for tests and benchmarks.

No payer policy is recorded in two versions (PROVENANCE.md), so a "next version" is CONSTRUCTED: the
sections the parser extracted from the real PDF are re-rendered to a new PDF with fpdf2, optionally
re-dated (a cosmetic change) or with a changed code list and criterion (a substantive change). The
renderer writes every section under its heading, so the payer's own layout profile reads the result.
Text is reduced to Latin-1 (fpdf2's core fonts); every version goes through the same reduction, so
versions differ only where the test changes them.
"""

from __future__ import annotations

from collections.abc import Callable

from fpdf import FPDF

from parsers.payer_records import PayerDocumentRecord

_LATIN1 = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2022": "*",
        "\u2264": "<=",
        "\u2265": ">=",
        "\u2019": "'",
        "\u2018": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\uf0b7": "*",
        "\u25aa": "*",
        "\u2122": "(TM)",
    }
)


def latin1(text: str) -> str:
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def render_sections(sections: dict[str, str], *, heading_suffix: str = ":") -> bytes:
    """A PDF with the ``Header`` text first, then each section's heading line and its text."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", size=7)
    for title, text in sections.items():
        if title != "Header":
            pdf.cell(0, 4, latin1(title + heading_suffix), new_x="LMARGIN", new_y="NEXT")
        for line in text.splitlines():
            pdf.cell(0, 4, latin1(line), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def edited(doc: PayerDocumentRecord, **edits: Callable[[str], str]) -> dict[str, str]:
    """The document's sections with ``edits`` (section title -> text function) applied. Section titles
    with spaces or slashes are passed as a dict: ``edited(doc, **{"BILLING/CODING INFORMATION": f})``."""
    return {title: edits[title](text) if title in edits else text for title, text in doc.sections.items()}
