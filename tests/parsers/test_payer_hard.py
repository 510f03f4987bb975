"""Hard payer documents are reported, not guessed, and HTML policies are read.

Every document here is CONSTRUCTED in the test (fpdf2 for PDFs, literal HTML): a scan without a text
layer, an encrypted PDF, a policy whose code table cannot be found, a login wall; and a plain HTML policy
page of a payer with no layout profile (the generic profile).
"""

from __future__ import annotations

from datetime import date

import pytest
from fpdf import FPDF

from parsers.errors import ParseError
from parsers.payer import parse
from parsers.payer_records import (
    PayerCoverageRecord,
    PayerDocumentRecord,
    PayerPriorAuthRecord,
)
from parsers.records import SourceMeta


def _meta(name: str, source: str = "acme_drug_policies") -> SourceMeta:
    return SourceMeta(
        source=source, url=f"https://acme.example/{name}", sha256="0" * 64, filename=name, release="2026-05-04"
    )


def _pdf(lines: list[str], *, encrypt: bool = False, scanned: bool = False) -> bytes:
    pdf = FPDF()
    if encrypt:
        pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    if scanned:
        # A "scan": only drawn shapes, no text layer at all.
        for i in range(20):
            pdf.rect(10 + i * 5, 10 + i * 7, 80, 4, style="F")
    else:
        pdf.set_font("Helvetica", size=10)
        for line in lines:
            pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _only_doc(records: list[object]) -> PayerDocumentRecord:
    assert len(records) == 1, records
    doc = records[0]
    assert isinstance(doc, PayerDocumentRecord)
    return doc


def test_scanned_pdf_needs_review() -> None:
    meta = _meta("scan.pdf")
    doc = _only_doc(list(parse(_pdf([], scanned=True), meta)))
    assert doc.status == "needs_review"
    assert doc.reason == "scan.pdf: no text layer (0 characters on 1 pages): a scanned PDF needs OCR and review"
    assert doc.eff_start == date(2026, 5, 4)  # known from the fetch date (release), nothing guessed
    assert meta.counts[f"needs_review: {doc.reason}"] == 1


def test_encrypted_pdf_needs_review() -> None:
    doc = _only_doc(
        list(
            parse(_pdf(["Policy Number: X1", "J9035 Injection, bevacizumab, 10 mg"], encrypt=True), _meta("locked.pdf"))
        )
    )
    assert (doc.status, doc.reason) == ("needs_review", "locked.pdf: encrypted PDF (a password is required to read it)")


def test_policy_without_code_table_needs_review() -> None:
    lines = [
        "Acme Medical Policy: Bevacizumab",
        "Policy Number: AC-001",
        "Effective Date: 03/01/2026",
        "Coverage Criteria",
        "Bevacizumab is covered for colorectal cancer.",
    ]
    doc = _only_doc(list(parse(_pdf(lines), _meta("nocodes.pdf"))))
    assert (doc.status, doc.reason) == ("needs_review", "nocodes.pdf: no HCPCS code table found (layout changed?)")
    assert doc.sections == {} and doc.codes_sha256 is None


def test_login_wall_needs_review() -> None:
    page = b"""<html><head><title>Provider portal</title></head><body>
      <h1>Sign in to view this policy</h1>
      <form action="/login" method="post"><input name="user"><input type="password" name="pw"></form>
    </body></html>"""
    doc = _only_doc(list(parse(page, _meta("policy.html"))))
    assert (doc.status, doc.doc_type) == ("needs_review", "html")
    assert doc.reason == "policy.html: the page is a login wall (password form), not a policy"
    # Without a password field, a page that asks to sign in and lists no codes is a login wall too.
    page2 = b"<html><body><h1>Please log in</h1><p>Your session expired. Log in to continue.</p></body></html>"
    doc2 = _only_doc(list(parse(page2, _meta("policy2.html"))))
    assert doc2.reason == "policy2.html: the page asks to sign in and holds no policy text (login wall)"


def test_needs_review_without_release_date_is_an_error() -> None:
    meta = SourceMeta(source="acme_x", url="u", sha256="0" * 64, filename="scan.pdf", release=None)
    with pytest.raises(ParseError, match=r"^scan.pdf: needs review, and has no release date to record it under$"):
        list(parse(_pdf([], scanned=True), meta))


HTML_POLICY = b"""<!doctype html>
<!-- CONSTRUCTED test page: a plain HTML policy of a payer without a layout profile. -->
<html><head><title>Acme Health</title></head><body>
<h1>Bevacizumab Products</h1>
<p>Policy Number: AC-0042</p>
<p>Effective Date: 03/01/2026</p>
<h2>Coverage Criteria</h2>
<p>Prior authorization is required for all bevacizumab products.</p>
<ul><li>Metastatic colorectal cancer, with fluorouracil-based chemotherapy.</li></ul>
<h2>Coding</h2>
<table>
<tr><th>HCPCS</th><th>Description</th></tr>
<tr><td>J9035</td><td>Injection, bevacizumab, 10 mg</td></tr>
<tr><td>Q5107</td><td>Injection, bevacizumab-awwb, biosimilar, (mvasi), 10 mg</td></tr>
</table>
<table>
<tr><td>C18.0 - C18.9</td><td>Malignant neoplasm of colon</td></tr>
<tr><td>C20</td><td>Malignant neoplasm of rectum</td></tr>
</table>
<h2>References</h2><p>1. Avastin prescribing information.</p>
</body></html>"""


def test_html_policy_generic_profile() -> None:
    records = list(parse(HTML_POLICY, _meta("bevacizumab.html")))
    doc = next(r for r in records if isinstance(r, PayerDocumentRecord))
    assert (doc.status, doc.doc_type, doc.payer, doc.policy) == ("parsed", "html", "acme", "AC-0042")
    assert (doc.title, doc.effective_date) == ("Bevacizumab Products", date(2026, 3, 1))
    assert list(doc.sections) == ["Header", "Coverage Criteria", "Coding", "References"]
    assert doc.sections["Coverage Criteria"].startswith("Prior authorization is required")
    cov = {r.code: r for r in records if isinstance(r, PayerCoverageRecord)}
    assert {c: r.description for c, r in cov.items()} == {
        "J9035": "Injection, bevacizumab, 10 mg",
        "Q5107": "Injection, bevacizumab-awwb, biosimilar, (mvasi), 10 mg",
    }
    assert cov["J9035"].diagnosis_specs == ("C18.0-C18.9", "C20")
    assert cov["J9035"].diagnoses == (
        "C18.0",
        "C18.1",
        "C18.2",
        "C18.3",
        "C18.4",
        "C18.5",
        "C18.6",
        "C18.7",
        "C18.8",
        "C18.9",
        "C20",
    )
    assert cov["J9035"].locator == "p1:l9"  # HTML: the line of the page's text rendering
    pa = [r for r in records if isinstance(r, PayerPriorAuthRecord)]
    assert [(r.code, r.required) for r in pa] == [("J9035", True), ("Q5107", True)]
