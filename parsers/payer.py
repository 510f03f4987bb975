"""Commercial payer drug policies (PDF and HTML) -> document, coverage, prior-auth and unit-limit records.

One parser serves every configured payer source (``[sources.<payer>_<docset>]`` with ``parser = "payer"``).
The document's text is read into numbered lines (pdfplumber for PDFs, BeautifulSoup for HTML) and cut
into sections at the headings of the payer's layout profile (``parsers.payer_profiles``); the profile then
reads the header fields and the code tables from those sections. Everything carries a locator down to
the PDF page and line (``p12:l34``), or the table row (``p12:r3``).

What is not read honestly is not guessed: an encrypted PDF, a scan without a text layer, a policy whose
code table cannot be found and an HTML login wall give one ``PayerDocumentRecord`` with status
``needs_review`` and the reason, and no rules, so the previous rules of that document stay in force.

Four hashes per document version drive change detection (``parsers.payer_redline.classify``): the whole
text, the metadata (policy number, title, dates), the criteria sections and the code tables. Running
headers and footers (lines repeated on most pages, dates included) are left out of the section text, so
a re-dated but otherwise identical policy differs only in its text and metadata hashes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from parsers import icd10cm
from parsers.errors import ParseError
from parsers.payer_pdf import Line, NeedsReview, read_pdf
from parsers.payer_records import (
    PayerCoverageRecord,
    PayerDocumentRecord,
    PayerPriorAuthRecord,
    PayerUnitLimitRecord,
)
from parsers.records import SourceMeta

PayerRecord = PayerDocumentRecord | PayerCoverageRecord | PayerPriorAuthRecord | PayerUnitLimitRecord

# HCPCS Level II: a letter and four digits (J9035, Q5107, C9399, and NOC codes such as J3490, J9999).
HCPCS = r"[A-V]\d{4}"
# ICD-10-CM as payers print it (lower-case x placeholders happen: T56.0x1A).
ICD = r"[A-TV-Z]\d[0-9A-Z](?:\.[0-9A-Za-z]{1,4})?"
DASH = "-\u2010\u2011\u2012\u2013\u2014\u2212"


@dataclass
class Section:
    title: str
    category: str  # "meta" | "criteria" | "coding" | "references" | "history" | "other"
    lines: list[Line] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines)


@dataclass
class Code:
    code: str
    description: str | None
    drug: str
    locator: str
    diagnoses: tuple[str, ...] | None = None  # per-code diagnoses where the policy states them per code
    diagnosis_specs: tuple[str, ...] | None = None
    coverage_level: str | None = None
    covered: bool = True
    restrictions: str | None = None
    prior_auth: bool | None = None  # None: the policy does not say for this code


@dataclass
class Limit:
    code: str
    indication: str
    max_units: int
    per: str | None
    locator: str


@dataclass
class Extracted:
    """What a profile reads from one document."""

    policy: str | None = None
    title: str | None = None
    effective: date | None = None
    revised: date | None = None
    reviewed: date | None = None
    codes: list[Code] = field(default_factory=list)
    diagnosis_specs: list[tuple[str, str]] = field(default_factory=list)  # (spec, locator), whole document
    prior_auth: bool | None = None
    prior_auth_note: str | None = None
    limits: list[Limit] = field(default_factory=list)


@dataclass
class Doc:
    """The document as the profile sees it."""

    filename: str
    doc_type: str
    pages: int
    lines: list[Line]
    sections: list[Section]
    words: dict[int, list[dict[str, Any]]]
    body: bytes
    counts: Counter[str]

    def section(self, *titles: str) -> Section | None:
        for s in self.sections:
            if s.title in titles:
                return s
        return None

    def in_category(self, category: str) -> list[Line]:
        return [ln for s in self.sections if s.category == category for ln in s.lines]


# --- small readers shared by the profiles -----------------------------------------------------

_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}


def parse_date(text: str) -> date | None:
    """``02/01/2026``, ``01/01/26``, ``1/1/2026``, ``January 1, 2026``, ``April 2, 2026``."""
    text = text.strip()
    m = re.search(r"(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b", text)
    if m:
        mo, d, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        y = y + 2000 if y < 100 else y
        try:
            return date(y, mo, d)
        except ValueError:
            return None
    m = re.search(r"([A-Za-z]+)\s+(\d{1,2}),\s*(\d{4})", text)
    if m and m.group(1).lower() in _MONTHS:
        return date(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)))
    return None


def first_match(lines: list[Line], pattern: str, group: int = 1) -> tuple[str, Line] | None:
    rx = re.compile(pattern)
    for ln in lines:
        m = rx.search(ln.text)
        if m:
            return m.group(group).strip(), ln
    return None


_SPEC_FULL = re.compile(rf"^({ICD})\s*[{DASH}]\s*({ICD})(?:\s+(.*))?$")
_SPEC_OPEN = re.compile(rf"^({ICD})\s*[{DASH}]$")
_SPEC_ONE = re.compile(rf"^({ICD})(?:\s+(.*))?$")
_SPEC_ALONE = re.compile(rf"^({ICD})$")


def diagnosis_specs(lines: list[Line]) -> list[tuple[str, str]]:
    """ICD-10-CM codes and ranges of a diagnosis list, one per table row, as ``(spec, locator)``.

    Rows start with the code or range (``C18.0 – C18.9 Malignant neoplasm of colon``); a range may
    be split over lines (``C50.011-`` ... ``C50.929``, with the description between); description
    continuation lines start with no code and are passed over.
    """
    out: list[tuple[str, str]] = []
    pending: tuple[str, Line, int] | None = None
    for ln in lines:
        t = ln.text.strip()
        if pending is not None:
            m = _SPEC_ALONE.match(t)
            if m:
                out.append((f"{pending[0]}-{m.group(1)}", pending[1].locator))
                pending = None
            elif pending[2] >= 3:
                pending = None  # never closed: the open end is dropped, the line read afresh
            else:
                pending = (pending[0], pending[1], pending[2] + 1)
                continue
            if m:
                continue
        m = _SPEC_OPEN.match(t)
        if m:
            pending = (m.group(1), ln, 0)
            continue
        m = _SPEC_FULL.match(t)
        if m:
            out.append((f"{m.group(1)}-{m.group(2)}", ln.locator))
            continue
        m = _SPEC_ONE.match(t)
        if m and (m.group(2) is None or not re.match(r"^[a-z]", m.group(2))):
            out.append((m.group(1), ln.locator))
    return out


def expand_specs(specs: list[str], counts: Counter[str]) -> tuple[str, ...]:
    """Dotted billable ICD-10-CM codes of ``specs``, ranges and categories expanded, de-duplicated,
    in code-set order. A spec the code set does not know is counted, never guessed."""
    seen: dict[str, None] = {}
    for spec in specs:
        try:
            parts = icd10cm.split_range(spec)
            if parts is not None:
                codes = icd10cm.expand_range(parts[0].upper(), parts[1].upper())
            else:
                codes = icd10cm.expand(spec.upper())
        except ParseError:
            counts["icd10 code or range not in the FY2026 code set (kept as printed)"] += 1
            continue
        for c in codes:
            seen.setdefault(c, None)
    order = {c: i for i, c in enumerate(seen)}
    return tuple(sorted(seen, key=lambda c: order[c]))


def sha(obj: Any) -> str:
    data = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# --- turning bytes into lines and sections ----------------------------------------------------


def _boilerplate(lines: list[Line], pages: int) -> set[str]:
    """Running headers and footers: line shapes (digits masked) on more than half of the pages."""
    if pages < 3:
        return set()
    on_pages: dict[str, set[int]] = {}
    for ln in lines:
        on_pages.setdefault(_shape(ln.text), set()).add(ln.page)
    return {s for s, p in on_pages.items() if len(p) > pages / 2}


def _shape(text: str) -> str:
    return re.sub(r"\d+", "#", text.strip().lower())


def html_lines(body: bytes, filename: str) -> tuple[list[Line], set[int]]:
    """The visible text of an HTML page as numbered lines (one per block), and the numbers of the
    lines that are headings (h1-h4). Raises NeedsReview for a login wall."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "footer"]):
        tag.decompose()
    if soup.find("input", attrs={"type": "password"}) is not None:
        raise NeedsReview(f"{filename}: the page is a login wall (password form), not a policy")
    lines: list[Line] = []
    headings: set[int] = set()
    blocks = soup.find_all(["h1", "h2", "h3", "h4", "p", "li", "tr", "dt", "dd", "pre"])
    for el in blocks:
        if el.find_parent(["p", "li", "tr", "dd", "dt"]) is not None and el.name not in ("tr",):
            continue  # nested block: its text is part of its parent's line
        if el.name == "tr":
            cells = [" ".join(c.get_text(" ").split()) for c in el.find_all(["td", "th"])]
            text = " ".join(c for c in cells if c)
        else:
            text = " ".join(el.get_text(" ").split())
        if not text:
            continue
        lines.append(Line(1, len(lines) + 1, text))
        if el.name in ("h1", "h2", "h3", "h4"):
            headings.add(len(lines))
    low = " ".join(ln.text.lower() for ln in lines[:40])
    if not lines or (
        re.search(r"\b(sign in|log in|login)\b", low) and not re.search(HCPCS, " ".join(ln.text for ln in lines))
    ):
        raise NeedsReview(f"{filename}: the page asks to sign in and holds no policy text (login wall)")
    return lines, headings


def _heading_title(rx: re.Pattern[str], text: str) -> str:
    """The heading's title: the pattern's first group when it has one (a heading followed by
    reference numbers or running text), else the whole line, without a trailing colon."""
    m = rx.fullmatch(text.strip())
    title = m.group(1) if m is not None and rx.groups else text.strip()
    return title.strip().rstrip(":")


def split_sections(
    lines: list[Line], headings: list[tuple[re.Pattern[str], str]], boiler: set[str], html_headings: set[int]
) -> list[Section]:
    """Cut ``lines`` at the profile's heading patterns (a heading line matches one whole); the text
    before the first heading is the ``Header`` (category ``meta``). Boilerplate lines are dropped."""
    sections = [Section("Header", "meta")]
    for ln in lines:
        for rx, category in headings:
            if rx.fullmatch(ln.text.strip()):
                sections.append(Section(_heading_title(rx, ln.text), category, []))
                break
        else:
            if _shape(ln.text) in boiler or re.fullmatch(r"(page )?\d+( of \d+)?", ln.text.strip().lower()):
                continue
            if ln.page == 1 and ln.no in html_headings and len(sections) > 0 and not headings:
                sections.append(Section(ln.text.strip(), "other", []))
                continue
            sections[-1].lines.append(ln)
    # A heading that repeats (a table header on every page) continues its section.
    merged: list[Section] = []
    for s in sections:
        prev = next((m for m in merged if m.title == s.title), None)
        if prev is not None and merged[-1] is prev:
            prev.lines.extend(s.lines)
        elif prev is not None:
            merged.append(Section(s.title, s.category, s.lines))
        else:
            merged.append(s)
    return merged


# --- the parser ------------------------------------------------------------------------------


def payer_of(source: str) -> str:
    """The payer id of a source id: the longest profile id that prefixes it (``uhc_drug_policies`` ->
    ``uhc``); the source id itself when no profile matches (a plain-list payer with the generic profile)."""
    from parsers.payer_profiles import PROFILES

    best = ""
    for pid in PROFILES:
        if (source == pid or source.startswith(pid + "_")) and len(pid) > len(best):
            best = pid
    return best or source.split("_")[0]


def _release_date(meta: SourceMeta) -> date:
    """The date a document was fetched (the payer spider's release), which is as far as a document
    that needs review can be dated."""
    try:
        return date.fromisoformat((meta.release or "")[:10])
    except ValueError:
        raise ParseError(f"{meta.filename}: needs review, and has no release date to record it under") from None


def _needs_review(meta: SourceMeta, payer: str, reason: str, doc_type: str, pages: int = 0) -> PayerDocumentRecord:
    meta.counts[f"needs_review: {reason}"] += 1
    known_from = _release_date(meta)
    return PayerDocumentRecord(
        payer=payer,
        url=meta.url,
        status="needs_review",
        reason=reason,
        policy=None,
        title=None,
        doc_type=doc_type,
        effective_date=None,
        revised_date=None,
        reviewed_date=None,
        pages=pages,
        text_sha256=None,
        meta_sha256=None,
        criteria_sha256=None,
        codes_sha256=None,
        sections={},
        eff_start=known_from,
        locator="p1:l1",
    )


def parse(body: bytes, meta: SourceMeta, *, options: dict[str, Any] | None = None) -> Iterator[PayerRecord]:
    """Records of one payer document. ``options`` are the source's config keys (lines of business,
    states, profile) where the pipeline passes them."""
    from parsers.payer_profiles import GENERIC, PROFILES

    opts = options or {}
    payer = str(opts.get("payer") or payer_of(meta.source))
    profile = PROFILES.get(str(opts.get("profile") or payer), GENERIC)
    is_pdf = body.lstrip()[:5] == b"%PDF-"
    doc_type = "pdf" if is_pdf else "html"
    filename = meta.filename or meta.url
    html_heads: set[int] = set()
    try:
        if is_pdf:
            text = read_pdf(body, filename, words_for=profile.words_for, max_pages=profile.max_text_pages)
            lines, pages, words = text.lines, text.pages, text.words
        else:
            lines, html_heads = html_lines(body, filename)
            pages, words = 1, {}
        boiler = _boilerplate(lines, pages)
        sections = split_sections(lines, profile.headings, boiler, html_heads)
        doc = Doc(filename, doc_type, pages, lines, sections, words, body, meta.counts)
        ex = profile.extract(doc)
        if not ex.codes:
            raise NeedsReview(f"{filename}: no HCPCS code table found (layout changed?)")
    except NeedsReview as exc:
        yield _needs_review(meta, payer, exc.reason, doc_type)
        return
    yield from _records(meta, payer, doc, ex, opts)


def _records(meta: SourceMeta, payer: str, doc: Doc, ex: Extracted, opts: dict[str, Any]) -> Iterator[PayerRecord]:
    start = ex.effective or ex.revised or ex.reviewed
    if start is None:
        raise ParseError(f"{doc.filename}: no effective, revised or review date found on the document")
    policy = ex.policy or "policy"
    states = tuple(opts.get("states") or ())
    all_specs = [s for s, _ in ex.diagnosis_specs]
    shared = expand_specs(all_specs, doc.counts) if all_specs else ()
    body_sections = {s.title: s.text for s in doc.sections}
    code_table = [
        [
            c.code,
            c.drug,
            c.description,
            c.coverage_level,
            c.covered,
            c.restrictions,
            c.prior_auth,
            list(c.diagnosis_specs or ()),
        ]
        for c in ex.codes
    ]
    code_table_sig = {
        "codes": code_table,
        "diagnoses": all_specs,
        "limits": [[lim.code, lim.indication, lim.max_units, lim.per] for lim in ex.limits],
        "prior_auth": ex.prior_auth,
    }
    meta_sig = [ex.policy, ex.title, str(ex.effective), str(ex.revised), str(ex.reviewed)]
    criteria = "\n\n".join(s.text for s in doc.sections if s.category == "criteria")
    yield PayerDocumentRecord(
        payer=payer,
        url=meta.url,
        status="parsed",
        reason=None,
        policy=ex.policy,
        title=ex.title,
        doc_type=doc.doc_type,
        effective_date=ex.effective,
        revised_date=ex.revised,
        reviewed_date=ex.reviewed,
        pages=doc.pages,
        text_sha256=sha("\n".join(ln.text for ln in doc.lines)),
        meta_sha256=sha(meta_sig),
        criteria_sha256=sha(criteria),
        codes_sha256=sha(code_table_sig),
        sections=body_sections,
        lines_of_business=tuple(opts.get("lines_of_business") or ()),
        states=states,
        eff_start=start,
        locator=doc.lines[0].locator if doc.lines else "p1:l1",
    )
    pa_seen: set[str] = set()
    repeats: Counter[tuple[str, str]] = Counter()
    for c in ex.codes:
        # The same code and drug twice (two strengths of one product in a drug list) stay two rules.
        repeats[(c.code, c.drug)] += 1
        if repeats[(c.code, c.drug)] > 1:
            c.drug = f"{c.drug} ({repeats[(c.code, c.drug)]})"
        if c.diagnoses is not None:
            diags, specs = c.diagnoses, c.diagnosis_specs or ()
        else:
            diags, specs = shared, tuple(all_specs)
        yield PayerCoverageRecord(
            payer=payer,
            policy=policy,
            code=c.code,
            drug=c.drug,
            covered=c.covered,
            coverage_level=c.coverage_level,
            description=c.description,
            diagnoses=diags,
            diagnosis_specs=specs,
            restrictions=c.restrictions,
            eff_start=start,
            locator=c.locator,
            states=states,
        )
        required = c.prior_auth if c.prior_auth is not None else ex.prior_auth
        if required is not None and c.code not in pa_seen:
            pa_seen.add(c.code)
            yield PayerPriorAuthRecord(
                payer=payer,
                policy=policy,
                code=c.code,
                required=required,
                note=ex.prior_auth_note if c.prior_auth is None else c.restrictions,
                eff_start=start,
                locator=c.locator,
            )
    for lim in ex.limits:
        yield PayerUnitLimitRecord(
            payer=payer,
            policy=policy,
            code=lim.code,
            indication=lim.indication,
            max_units=lim.max_units,
            per=lim.per,
            eff_start=start,
            locator=lim.locator,
        )


def main(argv: list[str] | None = None) -> int:
    """Print the parser's current output for a document, one JSON record per line, for review of the
    expected values in the tests: ``python -m parsers.payer SOURCE_ID FILE``."""
    import sys
    from dataclasses import asdict
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m parsers.payer SOURCE_ID FILE", file=sys.stderr)
        return 2
    path = Path(args[1])
    meta = SourceMeta(source=args[0], url=path.as_uri(), sha256="", filename=path.name, release=None)
    for rec in parse(path.read_bytes(), meta):
        row = asdict(rec)
        if isinstance(rec, PayerDocumentRecord):
            row["sections"] = {k: len(v) for k, v in rec.sections.items()}  # sizes, not the text
        print(json.dumps({"record": type(rec).__name__, **row}, default=str, ensure_ascii=False))
    for reason, n in sorted(meta.counts.items()):
        print(json.dumps({"counted": reason, "n": n}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
