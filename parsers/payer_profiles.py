"""Per-layout profiles of the payer parser: where each payer prints its headings, header fields and
code tables. Read off the recorded documents in ``../shared/data/payer`` (see PROVENANCE.md).

A profile is small on purpose: the section headings (a heading line matches a pattern whole), and one
``extract`` function that reads the policy number, title, dates, codes, diagnoses, prior authorization
and unit limits from the sections. A payer whose pages are plain policy text with a code list can use
``GENERIC``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from parsers.payer import (
    DASH,
    HCPCS,
    ICD,
    Code,
    Doc,
    Extracted,
    Limit,
    diagnosis_specs,
    expand_specs,
    first_match,
    parse_date,
)
from parsers.payer_pdf import Line, NeedsReview, page_words, table_rows


@dataclass(frozen=True)
class Profile:
    id: str
    headings: list[tuple[re.Pattern[str], str]]
    extract: Callable[[Doc], Extracted]
    words_for: set[int] | None = None  # pages whose word positions the profile needs ({0} = all)
    max_text_pages: int | None = None  # read the text of only the first N pages (the rest is a table)


def _h(*pairs: tuple[str, str]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(p, re.IGNORECASE), c) for p, c in pairs]


_CODE_LINE = re.compile(rf"^[•\-\s]*({HCPCS})\b\s*(?:[{DASH}]\s*)?(.*)$")


def code_lines(lines: list[Line], *, drug: str = "") -> list[Code]:
    """HCPCS rows of a coding section: a line that starts with the code, then its descriptor."""
    out: list[Code] = []
    for ln in lines:
        m = _CODE_LINE.match(ln.text)
        if m:
            out.append(Code(m.group(1), m.group(2).strip() or None, drug, ln.locator))
    return out


def _pa_statement(doc: Doc, pattern: str) -> tuple[bool | None, str | None]:
    hit = first_match(doc.in_category("criteria") + doc.in_category("meta"), pattern, 0)
    return (True, hit[0]) if hit else (None, None)


# --- Cigna ------------------------------------------------------------------------------------


def _cigna(doc: Doc) -> Extracted:
    head = doc.lines[:12]
    ex = Extracted()
    hit = first_match(head, r"Coverage Policy Number\W*([A-Z]{2}\d{4})")
    ex.policy = hit[0] if hit else None
    hit = first_match(head, r"Effective Date\W*(\d\d/\d\d/\d{4})")
    ex.effective = parse_date(hit[0]) if hit else None
    for i, ln in enumerate(head):
        m = re.match(r"Policy Title\W*(.+)$", ln.text)
        if m:
            ex.title = f"{m.group(1).strip()} {head[i + 1].text.strip()}" if i + 1 < len(head) else m.group(1)
    coding = doc.section("Coding Information")
    ex.codes = code_lines(coding.lines if coding else [])
    ex.prior_auth, ex.prior_auth_note = _pa_statement(doc, r"Prior Authorization is required[^.]*\.")
    return ex


CIGNA = Profile(
    "cigna",
    _h(
        (r"OVERVIEW", "other"),
        (r"Guidelines", "other"),
        (r"Coverage Policy", "criteria"),
        (r"POLICY STATEMENT", "criteria"),
        (r"Conditions Not Covered", "criteria"),
        (r"Coding Information", "coding"),
        (r"References", "references"),
        (r"Revision Details", "history"),
    ),
    _cigna,
)


# --- UnitedHealthcare -------------------------------------------------------------------------


def _rows_of(words: list[dict[str, object]], tol: float = 2.0) -> list[list[dict[str, object]]]:
    rows: list[list[dict[str, object]]] = []
    for w in sorted(words, key=lambda w: (float(w["top"]), float(w["x0"]))):  # type: ignore[arg-type]
        if rows and abs(float(rows[-1][0]["top"]) - float(w["top"])) <= tol:  # type: ignore[arg-type]
            rows[-1].append(w)
        else:
            rows.append([w])
    return [sorted(r, key=lambda w: float(w["x0"])) for r in rows]  # type: ignore[arg-type]


def uhc_matrix(doc: Doc, pages: set[int]) -> dict[str, list[tuple[str, str]]]:
    """The "Applies to HCPCS Code" matrix: for each HCPCS column, the diagnosis rows marked X, as
    ``code -> [(icd, locator)]``. Columns are told apart by the x position of the header codes."""
    out: dict[str, list[tuple[str, str]]] = {}
    icd = re.compile(rf"^{ICD}$")
    missing = {p for p in pages if p not in doc.words}
    if missing:
        # Word positions are read for the matrix pages only (a second pass over a few pages).
        doc.words.update(page_words(doc.body, doc.filename, missing))
    for page in sorted(pages):
        columns: list[tuple[float, str]] = []
        for row in _rows_of(doc.words.get(page, [])):
            texts = [str(w["text"]) for w in row]
            if len(texts) >= 2 and all(re.fullmatch(HCPCS, t) for t in texts):
                columns = [((float(w["x0"]) + float(w["x1"])) / 2, str(w["text"])) for w in row]  # type: ignore[arg-type]
                continue
            if not columns or not icd.match(texts[0]):
                continue
            line = next((ln for ln in doc.lines if ln.page == page and ln.text.startswith(texts[0] + " ")), None)
            loc = line.locator if line else f"p{page}"
            for w in row[1:]:
                if w["text"] != "X":
                    continue
                x = (float(w["x0"]) + float(w["x1"])) / 2  # type: ignore[arg-type]
                cx, code = min(columns, key=lambda c: abs(c[0] - x))
                if abs(cx - x) <= 20:
                    out.setdefault(code, []).append((texts[0], loc))
    return out


def _uhc(doc: Doc) -> Extracted:
    head = doc.lines[:10]
    ex = Extracted()
    hit = first_match(head, r"Policy Number:\s*(\S+)")
    ex.policy = hit[0] if hit else None
    hit = first_match(head, r"Effective Date:\s*([A-Z][a-z]+ \d{1,2}, \d{4})")
    ex.effective = parse_date(hit[0]) if hit else None
    for i, ln in enumerate(head):
        if ln.text.endswith("Medical Benefit Drug Policy") and i + 1 < len(head):
            ex.title = head[i + 1].text
            break
    coding = doc.section("Applicable Codes")
    lines = coding.lines if coding else []
    codes: list[Code] = []
    for ln in lines:
        if ln.text.startswith("Applies to HCPCS Code"):
            break
        m = re.match(rf"^({HCPCS}) (.+?) (\S+)$", ln.text)
        if m:
            codes.append(Code(m.group(1), m.group(2), m.group(3), ln.locator))
    matrix = uhc_matrix(doc, {ln.page for ln in lines})
    for c in codes:
        marked = matrix.get(c.code, [])
        specs = tuple(s for s, _ in marked)
        c.diagnosis_specs = specs
        c.diagnoses = expand_specs(list(specs), doc.counts)
    ex.codes = codes
    ex.diagnosis_specs = [x for c in codes for x in matrix.get(c.code, [])]
    return ex


UHC = Profile(
    "uhc",
    _h(
        (r"Coverage Rationale", "criteria"),
        (r"Applicable Codes", "coding"),
        (r"Background", "other"),
        (r"Benefit Considerations", "criteria"),
        (r"Clinical Evidence", "other"),
        (r"U\.S\. Food and Drug Administration", "other"),
        (r"Centers for Medicare and Medicaid Services", "other"),
        (r"References", "references"),
        (r"Policy History/Revision Information", "history"),
        (r"Instructions for Use", "other"),
    ),
    _uhc,
    # Words of every page in the same pass: on pages pdfplumber has already read they cost little,
    # while reading the matrix pages again later costs as much as the first read.
    words_for={0},
)


# --- Florida Blue -----------------------------------------------------------------------------


def _florida_blue(doc: Doc) -> Extracted:
    head = doc.lines[:12]
    ex = Extracted()
    hit = first_match(head[:2], r"^(\d\d-[A-Z]\d{4}-\d+)$")
    ex.policy = hit[0] if hit else None
    for label, attr in (("Reviewed", "reviewed"), ("Revised", "revised")):
        hit = first_match(head, rf"^{label}:\s*(\S+)")
        setattr(ex, attr, parse_date(hit[0]) if hit else None)
    title: list[str] = []
    for ln in head:
        if ln.text.startswith("Subject:"):
            title.append(ln.text.removeprefix("Subject:").strip())
        elif title and not ln.text.startswith("THIS MEDICAL COVERAGE"):
            title.append(ln.text)
        elif title:
            break
    ex.title = " ".join(title) or None
    billing = doc.section("BILLING/CODING INFORMATION")
    lines = billing.lines if billing else []
    split = next((i for i, ln in enumerate(lines) if ln.text.startswith("ICD-10")), len(lines))
    ex.codes = code_lines(lines[:split])
    ex.diagnosis_specs = diagnosis_specs(lines[split + 1 :])
    return ex


FLORIDA_BLUE = Profile(
    "florida_blue",
    _h(
        (r"DESCRIPTION:", "other"),
        (r"POSITION STATEMENT:", "criteria"),
        (r"DOSAGE/ADMINISTRATION:", "other"),
        (r"PRECAUTIONS:", "other"),
        (r"BILLING/CODING INFORMATION:", "coding"),
        (r"REIMBURSEMENT INFORMATION:", "criteria"),
        (r"PROGRAM EXCEPTIONS:", "criteria"),
        (r"DEFINITIONS:", "other"),
        (r"RELATED GUIDELINES:", "other"),
        (r"OTHER:", "other"),
        (r"REFERENCES:", "references"),
        (r"COMMITTEE APPROVAL:", "other"),
        (r"GUIDELINE UPDATE INFORMATION:", "history"),
    ),
    _florida_blue,
)


# --- EmblemHealth (Prime Therapeutics) ----------------------------------------------------------

_EMBLEM_INDICATION = re.compile(
    r"(Osteoporosis|Giant Cell Tumor of Bone & Hypercalcemia of Malignancy|Bone metastases from solid tumors)"
)


def _emblem_limits(doc: Doc, codes: list[Code]) -> list[Limit]:
    """ "II. Dosing Limits": billable units per indication. Each denosumab code is billed for one
    osteoporosis product and one oncology product (J0897 = Prolia & Xgeva, Q5136 = Jubbonti & Wyost,
    ...), so every limit the section states applies to every code of the policy."""
    sec = doc.section("II. Dosing Limits")
    if sec is None:
        return []
    found: dict[tuple[str, int, str], str] = {}
    indication, phase = "", ""
    for ln in sec.lines:
        t = ln.text
        m = _EMBLEM_INDICATION.search(t)
        if m:
            indication, phase = m.group(1), ""
            if indication.startswith("Bone metastases"):
                indication = "Bone metastases from solid tumors, Multiple Myeloma, & Systemic Mastocytosis"
        p = re.search(r"[−-] (Loading Dose|Maintenance):", t)
        if p:
            phase = p.group(1)
        u = re.search(r"•\s*(\d+) billable units (.+)$", t)
        if u and indication:
            label = f"{indication} ({phase.lower()})" if phase and indication.startswith("Giant") else indication
            found.setdefault((label, int(u.group(1)), u.group(2).strip()), ln.locator)
    return [Limit(c.code, ind, units, per, loc) for c in codes for (ind, units, per), loc in found.items()]


def _emblem(doc: Doc) -> Extracted:
    head = doc.lines[:20]
    ex = Extracted()
    hit = first_match(head, r"Document Number:\s*(\S+)")
    ex.policy = hit[0] if hit else None
    hit = first_match(head, r"Last Review Date:\s*(\S+)")
    ex.reviewed = parse_date(hit[0]) if hit else None
    title: list[str] = []
    for ln in head:
        if ln.text.startswith("Document Number"):
            break
        title.append(ln.text)
    ex.title = " ".join(title) or None
    billing = doc.section("VI. Billing Code/Availability Information")
    lines = billing.lines if billing else []
    codes: list[Code] = []
    drug = ""
    for ln in lines:
        if ln.text.startswith("NDC"):
            break
        m = _CODE_LINE.match(ln.text)
        if m and ln.text.lstrip().startswith("•"):
            desc = m.group(2).strip() or None
            codes.append(Code(m.group(1), desc, drug, ln.locator))
        elif codes and re.fullmatch(r"[a-z][\w ]*", ln.text) and codes[-1].description:
            # The descriptor ran on to the next line ("... 1 billable unit = 1" / "mg").
            codes[-1].description = f"{codes[-1].description} {ln.text}"
        elif not ln.text.startswith(("•", "(")) and "&" in ln.text:
            drug = ln.text
    ex.codes = codes
    appendix = doc.section("Appendix 1 – Covered Diagnosis Codes")
    ex.diagnosis_specs = diagnosis_specs(appendix.lines if appendix else [])
    ex.prior_auth, ex.prior_auth_note = _pa_statement(doc, r"Prior authorization validity[^.:]*")
    ex.limits = _emblem_limits(doc, codes)
    return ex


EMBLEMHEALTH = Profile(
    "emblemhealth_prime",
    _h(
        (r"(I\. Length of Authorization)[\d ,-]*", "criteria"),
        (r"(II\. Dosing Limits)[\d ,-]*", "criteria"),
        (r"(III\. Initial Approval Criteria)[\d ,-]*", "criteria"),
        (r"(IV\. Renewal Criteria)[\d ,-]*", "criteria"),
        (r"(V\. Dosage/Administration)[\d ,-]*", "other"),
        (r"(VI\. Billing Code/Availability Information)[\d ,-]*", "coding"),
        (r"(VII\. References)[\d ,-]*", "references"),
        (r"(Appendix A – .*)", "other"),
        (r"(Appendix 1 – Covered Diagnosis Codes)", "coding"),
        (r"(Appendix \d – .*)", "other"),
    ),
    _emblem,
)


# --- Blue Cross NC ----------------------------------------------------------------------------


def _brand(text: str) -> str | None:
    m = re.match(r"^\*?([A-Z][A-Za-z]+(?: [A-Z][a-z]+)?)®", text)
    return m.group(1) if m else None


def _bcbs_nc(doc: Doc) -> Extracted:
    ex = Extracted()
    hit = first_match(doc.lines[:2], r"^Corporate Medical Policy:\s*(.+)$")
    ex.title = hit[0] if hit else None
    ex.policy = re.sub(r"[^a-z0-9]+", "-", ex.title.lower()).strip("-") if ex.title else None
    hit = first_match(doc.lines, r"Policy notification given \S+ for effective date (\d{1,2}/\d{1,2}/\d{4})")
    ex.effective = parse_date(hit[0]) if hit else None
    restricted: set[str] = set()
    header = doc.section("Header")
    for ln in header.lines if header else []:
        m = re.match(r"^• (.+?)®", ln.text)
        if m:
            restricted.add(m.group(1))
    drug = ""
    codes: list[Code] = []
    limits: list[Limit] = []
    for ln in doc.in_category("coding"):
        name = _brand(ln.text)
        if name:
            drug = name
        for m in re.finditer(rf"(?:^|\s)({HCPCS})(\*\*)?(?:\s+(\d{{1,5}}))?(?=\s|$)", ln.text):
            code, noc, units = m.group(1), bool(m.group(2)), m.group(3)
            if not drug:
                continue
            note = "non-specific (NOC) code: submit the product NDC" if noc else None
            codes.append(Code(code, None, drug, ln.locator, restrictions=note, prior_auth=drug in restricted))
            if units:
                limits.append(Limit(code, drug, int(units), None, ln.locator))
    ex.codes = codes
    ex.limits = limits
    return ex


BCBS_NC = Profile(
    "bcbs_nc",
    _h(
        (r"FDA Approved Use:", "other"),
        (r"Criteria for Medical Necessity:", "criteria"),
        (r"NOTE:", "criteria"),
        (r"FDA Label Reference", "coding"),
        (r"(References):.*", "references"),
        (r"(Policy Implementation/Update Information):.*", "history"),
    ),
    _bcbs_nc,
)


# --- Priority Health medical drug list ----------------------------------------------------------

NOT_COVERED_LEVELS = {"Not Covered", "Pharmacy Only", "Not Separately Payable"}
CPT = re.compile(r"^\d{4}[0-9A-Z]$")


def _priority_health(doc: Doc) -> Extracted:
    ex = Extracted(policy="medical-drug-list")
    hit = first_match(doc.lines, r"Last Updated ([A-Z][a-z]+ \d{1,2}, \d{4})")
    ex.revised = parse_date(hit[0]) if hit else None
    ex.title = " ".join(ln.text for ln in doc.lines if ln.page == 1) or None
    pages, rows = table_rows(doc.body, doc.filename)
    doc.pages = pages
    per_page: dict[int, int] = {}
    for page, raw in rows:
        cells = [c for c in raw if c is not None] if len(raw) != 5 else list(raw)
        per_page[page] = per_page.get(page, 0) + 1
        code = " ".join((raw[0] or "").split())
        if not (re.fullmatch(HCPCS, code) or CPT.match(code)):
            continue  # header rows and therapeutic-class headings
        if len(cells) != 5:
            doc.counts["drug list row with an unexpected number of cells (skipped)"] += 1
            continue
        drug, desc, level, notes = (" ".join((c or "").split()) for c in cells[1:])
        level = level.replace("Non- ", "Non-")
        is_cpt = bool(CPT.match(code))
        if is_cpt:
            doc.counts["CPT code row (descriptor not kept: AMA licence)"] += 1
        pa = bool(re.match(r"^PA\b", notes))
        ex.codes.append(
            Code(
                code,
                None if is_cpt else (desc or None),
                drug,
                f"p{page}:r{per_page[page]}",
                coverage_level=level or None,
                covered=bool(level) and level not in NOT_COVERED_LEVELS,
                restrictions=notes or None,
                prior_auth=pa,
            )
        )
    if not ex.codes:
        raise NeedsReview(f"{doc.filename}: no drug table rows found (layout changed?)")
    return ex


PRIORITY_HEALTH = Profile("priority_health", [], _priority_health, max_text_pages=3)


# --- generic: a plain policy page with a code list ---------------------------------------------


def _generic(doc: Doc) -> Extracted:
    ex = Extracted()
    hit = first_match(doc.lines[:30], r"(?:Policy|Document)\s*(?:Number|No\.?|#)\s*[:.]*\s*([A-Z0-9][\w.-]+)")
    ex.policy = hit[0] if hit else None
    ex.title = doc.lines[0].text if doc.lines else None
    for label, attr in (("Effective", "effective"), ("Revised", "revised"), ("Review", "reviewed")):
        hit = first_match(doc.lines[:40], rf"{label}[^:]*:\s*(.+)$")
        setattr(ex, attr, parse_date(hit[0]) if hit else None)
    ex.codes = code_lines(doc.lines)
    icd_lines = [ln for ln in doc.lines if re.match(rf"^{ICD}\b", ln.text)]
    ex.diagnosis_specs = diagnosis_specs(icd_lines)
    ex.prior_auth, ex.prior_auth_note = _pa_statement(doc, r"[Pp]rior [Aa]uthorization is required[^.]*")
    if ex.prior_auth is None:
        ex.prior_auth, ex.prior_auth_note = (
            (True, hit2[0])
            if (hit2 := first_match(doc.lines, r"[Pp]rior [Aa]uthorization is required[^.]*", 0))
            else (None, None)
        )
    return ex


GENERIC = Profile(
    "generic",
    _h(
        (r"(Coverage|Policy|Criteria|Coverage Criteria|Policy Statement|Position Statement)", "criteria"),
        (r"(Coding|Coding Information|Billing/Coding|Applicable Codes|HCPCS Codes?)", "coding"),
        (r"References", "references"),
        (r"(History|Revision History|Policy History)", "history"),
    ),
    _generic,
)

PROFILES: dict[str, Profile] = {p.id: p for p in (CIGNA, UHC, FLORIDA_BLUE, EMBLEMHEALTH, BCBS_NC, PRIORITY_HEALTH)}
