"""From MCD table rows to policy documents and coverage rules, whatever front end read them.

``build(tables, meta, where)`` takes rows keyed by the MCD column names (the bulk export CSVs, or the
Coverage API's JSON mapped onto the same names) and yields :class:`PolicyDocumentRecord` and
:class:`CoverageRuleRecord` (``parsers/mcd_records.py``).

The rules, each with its reason:

* **Which version.** The base table (``article``, ``lcd``) holds one version per document (the latest
  at export time). Join tables still carry rows of older versions; those are counted ("older
  version in join table (ignored)") and never mixed into the current version. A coverage row that
  names an article version the base table does not have at all is counted as a bad row and skipped.
* **Coverage pairs** (``parsers/mcd_pairing.py``, whose docstring has the rules in full). For each
  article version, the codes of ``article_x_hcpc_code`` group *g* pair with the ICD-10-CM codes of
  ``article_x_icd10_covered`` (and ``_noncovered``) group *g*: the same article, version and group
  (DOMAIN.md §3.2), when every diagnosis group has an HCPCS group of its number (A52370). An article
  with diagnosis groups beyond its HCPCS groups gives each drug its own group, headed by a paragraph
  naming it (A52453: one HCPCS group, 14 diagnosis groups): there a group applies to the listed codes
  its paragraph names, else to the HCPCS group of its number. A "secondary codes ... must also include
  a diagnosis from the primary list" group is no coverage list of its own: its codes become the
  ``secondary_diagnoses`` of the primary group it qualifies. Each rule records its basis
  (``pairing``: ``same_group`` | ``named_in_paragraph`` | ``same_group+named``, the last for a drug
  code of another HCPCS group that a group-for-group article's paragraph names: A52370 group 2 names
  J9035 and the biosimilars for ophthalmologic use); what cannot be paired is counted. One rule
  per code and diagnosis group and covered flag.
* **Diagnoses.** Each listed code is normalised to dotted form. Ranges are already listed code by code
  in the export (``range`` B/M/E), so a listed category or subcategory that is not billable is expanded
  to its billable leaves; an unknown code is kept as listed and counted; a malformed one is counted
  and skipped (``parsers/icd10cm.py``). Diagnoses are unique and in tabular order.
* **Notes.** The group paragraphs (code group, diagnosis group and its asterisk explanation) are kept
  as plain text: "must be billed with" (dual diagnosis) and asterisk requirements live only there.
* **Where.** Contractors come from ``article_x_contractor``; each contract's MAC jurisdiction label
  from its region (``dmerc_region_lookup``: the DME MAC label for DME contracts, e.g. "J-D" -> JD, the
  A/B label otherwise, "J - K" -> JK, "J - 05" -> J5); its states from ``contractor_jurisdiction``
  (rows whose term date is past are left out). Per the data dictionary, a version with only one
  contractor takes its states from ``article_x_primary_jurisdiction`` instead. Sub-state ids (DN, QN,
  UN for New York...) are kept and their parent state is added.
* **Valid time.** ``eff_start`` is the version's effective date (``article_eff_date``, LCD
  ``rev_eff_date``). ``eff_end`` (exclusive) is the earliest of the revision end date + 1 day (an
  inclusive last day, like every MCD end date), the retirement date and a future retirement date
  (``*_future_retire``), which are the first day the document no longer applies.
* **Supersession (MAC renumbering).** A retired document and an approved document of the same type and
  title (case and spacing aside) sharing a jurisdiction: the approved one reissues the retired one
  (the Noridian renumbering of November 2025 retired documents and issued new ids, "considered
  non-substantive", DOMAIN.md §3.9). Both records say so, so the diff shows a supersession, not a
  removal plus an addition.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta

from parsers import icd10cm, mcd_pairing
from parsers.errors import ParseError
from parsers.mcd_records import Contractor, CoverageRuleRecord, PolicyDocumentRecord
from parsers.mcd_tables import Row, html_text, parse_date, parse_int

Tables = Mapping[str, Sequence[Row]]

ARTICLE_REQUIRED = (
    "article",
    "article_x_hcpc_code",
    "article_x_icd10_covered",
    "article_x_icd10_noncovered",
    "article_x_contractor",
    "contractor",
    "contractor_jurisdiction",
    "state_lookup",
    "dmerc_region_lookup",
    "contractor_subtype_lookup",
)
LCD_REQUIRED = (
    "lcd",
    "lcd_x_contractor",
    "contractor",
    "contractor_jurisdiction",
    "state_lookup",
    "dmerc_region_lookup",
)

_PARTS = {"MAC A": "A", "MAC B": "B", "HHH MAC": "HHH", "DME MAC": "DME"}
_LABEL = re.compile(r"^J\s*-\s*0*([A-Z0-9]+)$")


def _label(text: str) -> str | None:
    m = _LABEL.match((text or "").strip().upper())
    return f"J{m.group(1)}" if m else None


class _Where:
    """The contractor -> jurisdiction -> state lookups of one export."""

    def __init__(self, tables: Tables) -> None:
        states = {r["state_id"]: r for r in tables.get("state_lookup", ())}
        self.state_abbrev = {sid: r["state_abbrev"].strip() for sid, r in states.items()}
        by_name = {r["description"].strip(): r["state_abbrev"].strip() for r in states.values()}
        self.parent: dict[str, str] = {}
        for r in states.values():
            desc = r["description"].strip()
            if " - " in desc:
                name = desc.split(" - ")[0]
                parent = by_name.get(f"{name} - Entire State") or by_name.get(name)
                abbrev = r["state_abbrev"].strip()
                if parent and parent != abbrev:
                    self.parent[abbrev] = parent
        regions = {r["region_id"]: r for r in tables.get("dmerc_region_lookup", ())}
        subtypes = {
            r["contractor_subtype_id"]: r["description"].strip() for r in tables.get("contractor_subtype_lookup", ())
        }
        self.contractors: dict[tuple[str, str, str], tuple[str, str, str, str | None]] = {}
        for r in tables.get("contractor", ()):
            part = _PARTS.get(subtypes.get(r.get("contractor_subtype_id", ""), ""), "")
            region = regions.get(r.get("dmerc_rgn", ""))
            label = None
            if region is not None:
                label = _label(region["mac_description"]) if part == "DME" else _label(region["super_mac_description"])
            key = (r["contractor_id"], r["contractor_type_id"], r["contractor_version"])
            self.contractors[key] = (r["contractor_number"].strip(), r["contractor_bus_name"].strip(), part, label)
        self.jurisdiction_states: dict[tuple[str, str, str], list[tuple[str, date | None]]] = defaultdict(list)
        for r in tables.get("contractor_jurisdiction", ()):
            key = (r["contractor_id"], r["contractor_type_id"], r["contractor_version"])
            term = parse_date(r.get("term_date"), "contractor_jurisdiction.csv term_date")
            self.jurisdiction_states[key].append((r["state_id"], term))

    def with_parents(self, abbrevs: set[str]) -> tuple[str, ...]:
        out = set(abbrevs)
        for a in abbrevs:
            if a in self.parent:
                out.add(self.parent[a])
        return tuple(sorted(out))

    def contractor(self, key: tuple[str, str, str], on: date, primary_states: list[str] | None) -> Contractor | None:
        info = self.contractors.get(key)
        if info is None:
            return None
        number, name, part, label = info
        if primary_states is not None:
            ids = primary_states
        else:
            ids = [sid for sid, term in self.jurisdiction_states.get(key, ()) if term is None or term > on]
        abbrevs = {self.state_abbrev[s] for s in ids if s in self.state_abbrev}
        return Contractor(number=number, name=name, part=part, jurisdiction=label, states=self.with_parents(abbrevs))


def _versions(rows: Sequence[Row], id_col: str, ver_col: str, where: str) -> dict[str, tuple[int, Row]]:
    out: dict[str, tuple[int, Row]] = {}
    for i, r in enumerate(rows, start=2):
        doc = r[id_col].strip()
        ver = parse_int(r[ver_col], f"{where} row {i} {ver_col}")
        if doc not in out or ver > out[doc][0]:
            out[doc] = (ver, r)
    return out


def _for_current(
    rows: Sequence[Row],
    current: Mapping[str, tuple[int, Row]],
    id_col: str,
    ver_col: str,
    table: str,
    counts: Counter[str],
    *,
    strict: bool = False,
) -> dict[str, list[tuple[int, Row]]]:
    """Rows of ``table`` by document id, only those of the document's current version (with their
    record number). Older versions are counted; with ``strict`` a row naming a version the base
    table does not have (a newer one, or a document it does not list) is a bad row, counted."""
    out: dict[str, list[tuple[int, Row]]] = defaultdict(list)
    first_bad = ""
    bad = 0
    cur_str = {doc: str(v) for doc, (v, _) in current.items()}
    older = other = 0
    for i, r in enumerate(rows, start=2):
        doc = r[id_col]
        v = r[ver_col]
        if cur_str.get(doc) == v:
            out[doc].append((i, r))
            continue
        doc = doc.strip()
        cur = current.get(doc)
        try:
            ver = int(v)
        except ValueError:
            ver = -1
        if cur is not None and ver == cur[0]:
            out[doc].append((i, r))
        elif cur is not None and 0 <= ver < cur[0]:
            older += 1
        elif strict:
            bad += 1
            if not first_bad:
                first_bad = f"{table}.csv record {i}: {doc} version {v} does not exist"
        else:
            other += 1
    if older:
        counts[f"{table}: older version in join table (ignored)"] += older
    if other:
        counts[f"{table}: row of a document not in the base table (ignored)"] += other
    if bad:
        counts[f"coverage row naming a non-existent article version (skipped; first: {first_bad})"] += bad
    return out


def _end(*candidates: date | None) -> date | None:
    present = [d for d in candidates if d is not None]
    return min(present) if present else None


def _related_ids(rows: Sequence[tuple[int, Row]]) -> set[str]:
    """The LCD (``L…``) and article (``A…``) ids a document's related-documents rows name."""
    related = set()
    for _, rr in rows:
        if rr.get("r_article_id", "").strip():
            related.add(f"A{rr['r_article_id'].strip()}")
        if rr.get("r_lcd_id", "").strip():
            related.add(f"L{rr['r_lcd_id'].strip()}")
    return related


def _norm_title(t: str) -> str:
    return re.sub(r"\s+", " ", t).strip().lower()


def _contractors(
    where: _Where,
    rows: list[tuple[int, Row]],
    primary: list[tuple[int, Row]],
    on: date,
    counts: Counter[str],
) -> tuple[Contractor, ...]:
    keys = sorted({(r["contractor_id"], r["contractor_type_id"], r["contractor_version"]) for _, r in rows})
    primary_states = [r["state_id"] for _, r in primary] if len(keys) == 1 and primary else None
    out = []
    for key in keys:
        c = where.contractor(key, on, primary_states)
        if c is None:
            counts["contractor not in contractor table (ignored)"] += 1
            continue
        out.append(c)
    return tuple(sorted(out, key=lambda c: c.number))


def _supersession(docs: list[PolicyDocumentRecord]) -> list[PolicyDocumentRecord]:
    """Link retired documents to the approved document of the same type and title that reissued them."""
    from dataclasses import replace

    active: dict[tuple[str, str], list[PolicyDocumentRecord]] = defaultdict(list)
    for d in docs:
        if d.status != "R" and d.retired_on is None:
            active[(d.doc_type, _norm_title(d.title))].append(d)
    successor: dict[str, str] = {}
    predecessors: dict[str, list[str]] = defaultdict(list)
    for d in docs:
        if d.status == "R" or d.retired_on is not None:
            cands = [
                a
                for a in active.get((d.doc_type, _norm_title(d.title)), ())
                if set(a.jurisdictions) & set(d.jurisdictions)
            ]
            if cands:
                ref = d.retired_on or d.eff_end or d.eff_start
                best = min(cands, key=lambda a: (abs((a.eff_start - ref).days), a.policy))
                successor[d.policy] = best.policy
                predecessors[best.policy].append(d.policy)
    return [
        replace(d, superseded_by=successor.get(d.policy), supersedes=tuple(sorted(predecessors.get(d.policy, ()))))
        for d in docs
    ]


class _Codes:
    """Each distinct listed ICD-10-CM code classified and expanded once (431,000 rows name ~57,000 codes).
    Diagnoses are kept as tabular positions, so putting a group's codes in order is an integer sort."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.audit = icd10cm.CodeAudit()
        self.kinds: Counter[str] = Counter()
        self.seen: dict[str, tuple[str, tuple[int, ...], tuple[str, ...]]] = {}
        self.order = icd10cm.order_index()
        self.all_codes = icd10cm.codes_in_order()
        self.reversed = 0
        self.first_reversed = ""

    def _classify(self, raw: str) -> tuple[str, tuple[int, ...], tuple[str, ...]]:
        kind = self.audit.check(raw)  # records the first examples of each problem
        self.audit.counts[kind] -= 1  # counted per row in diagnoses()
        if kind == "malformed":
            hit: tuple[str, tuple[int, ...], tuple[str, ...]] = (kind, (), ())
        elif kind == "unknown":
            hit = (kind, (), (icd10cm.normalize(raw),))
        else:
            listed = icd10cm.expand(icd10cm.normalize(raw)) if kind == "non_billable" else [icd10cm.normalize(raw)]
            hit = (kind, tuple(self.order[c] for c in listed), ())
        self.seen[raw] = hit
        return hit

    def diagnoses(self, rows: list[tuple[int, Row]], code_col: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        seen = self.seen
        kinds = self.kinds
        positions: set[int] = set()
        unknown: set[str] = set()
        star_pos: set[int] = set()
        star_unknown: set[str] = set()
        ends: list[tuple[int, str, int, str]] = []  # range ends: (sort order, B|E, position, code)
        for i, r in rows:
            raw = r[code_col]
            hit = seen.get(raw) or self._classify(raw)
            kinds[hit[0]] += 1
            positions.update(hit[1])
            unknown.update(hit[2])
            if r.get("asterisk") in ("Y", "y"):
                star_pos.update(hit[1])
                star_unknown.update(hit[2])
            flag = r.get("range")
            if (flag == "B" or flag == "E") and hit[1]:
                order = r.get("sort_order") or "0"
                ends.append((int(order) if order.isdigit() else i, flag, hit[1][0], raw))
        if ends:
            self._check_ranges(ends, rows[0][1].get("article_id", "?"))
        return self._ordered(positions, unknown), self._ordered(star_pos, star_unknown)

    def _check_ranges(self, ends: list[tuple[int, str, int, str]], article: str) -> None:
        """A range the MAC entered is listed code by code between a B and an E row. Ends in reverse
        tabular order mean the listing is not the range it says: counted (the codes stay as listed)."""
        start: tuple[int, str, int, str] | None = None
        for end in sorted(ends):
            if end[1] == "B":
                start = end
            elif start is not None:
                if end[2] < start[2]:
                    self.reversed += 1
                    self.first_reversed = self.first_reversed or f"A{article} {start[3]}\u2013{end[3]}"
                start = None

    def _ordered(self, positions: set[int], unknown: set[str]) -> tuple[str, ...]:
        codes = self.all_codes
        return tuple([codes[p] for p in sorted(positions)] + sorted(unknown))

    def finish(self) -> None:
        self.audit.counts.update(self.kinds)
        self.counts["icd10 non-billable code expanded to its billable codes"] += self.kinds["non_billable"]
        if not self.counts["icd10 non-billable code expanded to its billable codes"]:
            del self.counts["icd10 non-billable code expanded to its billable codes"]
        self.audit.into(self.counts)
        if self.reversed:
            key = f"icd10 range with reversed ends (codes kept as listed; first: {self.first_reversed})"
            self.counts[key] += self.reversed


def build_articles(tables: Tables, counts: Counter[str], member_of: Mapping[str, str]) -> Iterator[object]:
    """Policy documents and coverage rules of the articles in ``tables``.

    A front end that reads one article at a time (the Coverage API) passes that article's rows plus the
    lookup tables (``contractor``, ``contractor_jurisdiction``, ``state_lookup``, ``dmerc_region_lookup``,
    ``contractor_subtype_lookup``), which it may take from the latest bulk export when it has none of its own.
    """
    for t in ARTICLE_REQUIRED:
        if t not in tables:
            raise ParseError(f"table {t}.csv missing from the export", locator=t)
    where = _Where(tables)
    current = _versions(tables["article"], "article_id", "article_version", member_of.get("article", "article.csv"))
    if not current:
        raise ParseError("article.csv: no articles in the export", locator="article.csv")
    types = {r["article_type_id"]: r["description"].strip() for r in tables.get("article_type_lookup", ())}

    def rows_of(table: str, strict: bool = False) -> dict[str, list[tuple[int, Row]]]:
        return _for_current(
            tables.get(table, ()), current, "article_id", "article_version", table, counts, strict=strict
        )

    contractor_rows = rows_of("article_x_contractor")
    primary_rows = rows_of("article_x_primary_jurisdiction")
    related_rows = rows_of("article_related_documents")
    hcpc_rows = rows_of("article_x_hcpc_code", strict=True)
    cov_rows = rows_of("article_x_icd10_covered", strict=True)
    non_rows = rows_of("article_x_icd10_noncovered", strict=True)
    hcpc_group_rows = rows_of("article_x_hcpc_code_group")
    cov_group_rows = rows_of("article_x_icd10_covered_group")
    non_group_rows = rows_of("article_x_icd10_noncovered_group")
    future = {}
    for r in tables.get("article_future_retire", ()):
        future[r["article_id"].strip()] = parse_date(r.get("retire_dt"), "article_future_retire.csv retire_dt")

    docs: list[PolicyDocumentRecord] = []
    for doc_id, (ver, r) in sorted(current.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
        label = f"{member_of.get('article', 'article.csv')} A{doc_id} v{ver}"
        eff = (
            parse_date(r.get("article_eff_date"), label)
            or parse_date(r.get("article_pub_date"), label)
            or parse_date(r.get("last_updated"), label)
        )
        if eff is None:
            counts["article without any effective, publication or update date (skipped)"] += 1
            continue
        retired = parse_date(r.get("date_retired"), label)
        rev_end = parse_date(r.get("article_rev_end_date"), label) or parse_date(r.get("article_end_date"), label)
        eff_end = _end(rev_end + timedelta(days=1) if rev_end else None, retired, future.get(doc_id))
        contractors = _contractors(where, contractor_rows.get(doc_id, []), primary_rows.get(doc_id, []), eff, counts)
        related = _related_ids(related_rows.get(doc_id, []))
        docs.append(
            PolicyDocumentRecord(
                policy=f"A{doc_id}",
                doc_type="article",
                version=ver,
                article_type=types.get(r.get("article_type", "").strip(), r.get("article_type", "").strip() or None),
                title=html_text(r.get("title")) or f"A{doc_id}",
                status=(r.get("status") or "").strip().upper() or "A",
                eff_start=eff,
                eff_end=eff_end,
                retired_on=retired,
                contractors=contractors,
                jurisdictions=tuple(sorted({c.jurisdiction for c in contractors if c.jurisdiction})),
                states=where.with_parents({s for c in contractors for s in c.states}),
                related=tuple(sorted(related)),
                supersedes=(),
                superseded_by=None,
                locator=label,
            )
        )
    docs = _supersession(docs)
    codes = _Codes(counts)
    pairing_audit = mcd_pairing.PairingAudit()
    hcpc_member = member_of.get("article_x_hcpc_code", "article_x_hcpc_code.csv")
    for d in docs:
        yield d
        doc_id = d.policy[1:]
        groups: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for i, hr in hcpc_rows.get(doc_id, []):
            code = hr["hcpc_code_id"].strip().upper()
            if not re.fullmatch(r"[A-Z0-9]{5}", code):
                counts["article_x_hcpc_code: not a 5-character code (skipped)"] += 1
                continue
            groups[parse_int(hr["hcpc_code_group"], f"{hcpc_member} record {i} hcpc_code_group")].append((i, code))
        if not groups:
            if cov_rows.get(doc_id) or non_rows.get(doc_id):
                counts["article with diagnosis codes but no HCPCS codes (no rules)"] += 1
            continue
        covered = _group_rows(cov_rows.get(doc_id, []), "icd10_covered_group")
        noncovered = _group_rows(non_rows.get(doc_id, []), "icd10_noncovered_group")
        hpara = _paragraphs(hcpc_group_rows.get(doc_id, []), "hcpc_code_group", ("paragraph",))
        cpara = _paragraphs(cov_group_rows.get(doc_id, []), "icd10_covered_group", ("paragraph", "icd10_covered_ast"))
        npara = _paragraphs(non_group_rows.get(doc_id, []), "icd10_noncovered_group", ("paragraph",))
        pairs, by_number = mcd_pairing.plan(
            d.policy,
            groups,
            {g: "\n".join(cpara.get(g, ())) for g in covered},
            {g: "\n".join(npara.get(g, ())) for g in noncovered},
            pairing_audit,
        )
        if by_number:
            for g in sorted(groups):
                if not covered.get(g) and not noncovered.get(g):
                    counts["HCPCS group without a diagnosis group of the same number (no rules)"] += 1
        dx_of: dict[tuple[bool, int], tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for p in pairs:
            for key in ((p.covered, p.group), *((True, s) for s in p.secondary)):
                if key not in dx_of:
                    dx_of[key] = codes.diagnoses((covered if key[0] else noncovered)[key[1]], "icd10_code_id")
            dx, starred = dx_of[(p.covered, p.group)]
            notes = hpara.get(p.hcpcs_group, ()) + (cpara if p.covered else npara).get(p.group, ())
            secondary: tuple[str, ...] = ()
            if p.secondary:
                primary = set(dx)
                extra = {c for s in p.secondary for c in dx_of[(True, s)][0] if c not in primary}
                secondary = _in_order(codes, extra)
                starred = _in_order(codes, set(starred) | {c for s in p.secondary for c in dx_of[(True, s)][1]})
                notes += tuple(n for s in p.secondary for n in cpara.get(s, ()))
            yield CoverageRuleRecord(
                policy=d.policy,
                policy_version=d.version,
                code=p.code,
                group=p.group,
                covered=p.covered,
                diagnoses=dx,
                asterisk=starred,
                notes=tuple(n for n in notes if n),
                jurisdictions=d.jurisdictions,
                states=d.states,
                superseded_by=d.superseded_by,
                supersedes=d.supersedes,
                eff_start=d.eff_start,
                eff_end=d.eff_end,
                locator=f"{hcpc_member} record {p.record}",
                pairing=p.pairing,
                secondary_diagnoses=secondary,
            )
    codes.finish()
    pairing_audit.into(counts)


def _in_order(codes: _Codes, found: set[str]) -> tuple[str, ...]:
    """Codes in tabular order (codes the tabular list does not have last, sorted)."""
    end = len(codes.all_codes)
    return tuple(sorted(found, key=lambda c: (codes.order.get(c, end), c)))


def _group_rows(rows: list[tuple[int, Row]], col: str) -> dict[int, list[tuple[int, Row]]]:
    out: dict[int, list[tuple[int, Row]]] = defaultdict(list)
    for i, r in rows:
        g = r[col]
        out[int(g) if g.isdigit() else parse_int(g, f"record {i} {col}")].append((i, r))
    return out


def _paragraphs(rows: list[tuple[int, Row]], col: str, text_cols: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    out: dict[int, tuple[str, ...]] = {}
    for i, r in rows:
        texts = tuple(t for t in (html_text(r.get(c)) for c in text_cols) if t)
        out[parse_int(r[col], f"record {i} {col}")] = texts
    return out


def build_lcds(tables: Tables, counts: Counter[str], member_of: Mapping[str, str]) -> Iterator[PolicyDocumentRecord]:
    """Policy documents of the LCDs in ``tables`` (the LCD export). DME MAC LCDs keep their HCPCS codes
    (DOMAIN.md §3.3) but carry no ICD-10-CM lists, so an LCD gives no coverage rule here."""
    for t in LCD_REQUIRED:
        if t not in tables:
            raise ParseError(f"table {t}.csv missing from the export", locator=t)
    where = _Where(tables)
    current = _versions(tables["lcd"], "lcd_id", "lcd_version", member_of.get("lcd", "lcd.csv"))
    contractor_rows = _for_current(
        tables["lcd_x_contractor"], current, "lcd_id", "lcd_version", "lcd_x_contractor", counts
    )
    primary_rows = _for_current(
        tables.get("lcd_x_primary_jurisdiction", ()),
        current,
        "lcd_id",
        "lcd_version",
        "lcd_x_primary_jurisdiction",
        counts,
    )
    related_rows = _for_current(
        tables.get("lcd_related_documents", ()), current, "lcd_id", "lcd_version", "lcd_related_documents", counts
    )
    _for_current(
        tables.get("lcd_x_requestor_letters", ()), current, "lcd_id", "lcd_version", "lcd_x_requestor_letters", counts
    )
    future = {
        r["lcd_id"].strip(): parse_date(r.get("retire_dt"), "lcd_future_retire.csv")
        for r in tables.get("lcd_future_retire", ())
    }
    docs = []
    for doc_id, (ver, r) in sorted(current.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
        label = f"{member_of.get('lcd', 'lcd.csv')} L{doc_id} v{ver}"
        eff = parse_date(r.get("rev_eff_date"), label) or parse_date(r.get("orig_det_eff_date"), label)
        if eff is None:
            counts["lcd without an effective date (skipped)"] += 1
            continue
        retired = parse_date(r.get("date_retired"), label)
        rev_end = parse_date(r.get("rev_end_date"), label) or parse_date(r.get("ent_det_end_date"), label)
        contractors = _contractors(where, contractor_rows.get(doc_id, []), primary_rows.get(doc_id, []), eff, counts)
        related = _related_ids(related_rows.get(doc_id, []))
        docs.append(
            PolicyDocumentRecord(
                policy=f"L{doc_id}",
                doc_type="lcd",
                version=ver,
                article_type=None,
                title=html_text(r.get("title")) or f"L{doc_id}",
                status=(r.get("status") or "").strip().upper() or "A",
                eff_start=eff,
                eff_end=_end(rev_end + timedelta(days=1) if rev_end else None, retired, future.get(doc_id)),
                retired_on=retired,
                contractors=contractors,
                jurisdictions=tuple(sorted({c.jurisdiction for c in contractors if c.jurisdiction})),
                states=where.with_parents({s for c in contractors for s in c.states}),
                related=tuple(sorted(related)),
                supersedes=(),
                superseded_by=None,
                locator=label,
            )
        )
    yield from _supersession(docs)
