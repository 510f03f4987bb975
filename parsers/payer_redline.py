"""Section-aware redline of two versions of a payer policy, for compliance staff.

``redline(old, new)`` compares the documents section by section (sections are matched by title, in
the new version's order, with removed sections after) and says for each what text was added, removed
or changed, line by line; it also carries the version classification of
:func:`parsers.payer_records.change_class` (cosmetic or substantive). ``render_text`` and ``render_html``
show it; the HTML is one self-contained fragment (no scripts, no external resources).

``old`` and ``new`` are :class:`parsers.payer_records.PayerDocumentRecord` objects or ``payer_documents``
rows (whose ``sections`` column is JSON).
"""

from __future__ import annotations

import difflib
import html
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from parsers.payer_records import HASHES, PayerDocumentRecord, change_class


@dataclass
class SectionRedline:
    section: str
    status: str  # "added" | "removed" | "changed" | "unchanged"
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)  # (old line, new line)


@dataclass
class Redline:
    classification: str  # see parsers.payer_records.change_class
    changed_hashes: list[str]
    old: dict[str, Any]  # policy, title, dates of each version
    new: dict[str, Any]
    sections: list[SectionRedline]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def changed_sections(self) -> list[SectionRedline]:
        return [s for s in self.sections if s.status != "unchanged"]


def _as_dict(doc: PayerDocumentRecord | dict[str, Any]) -> dict[str, Any]:
    if isinstance(doc, PayerDocumentRecord):
        d = asdict(doc)
    else:
        d = dict(doc)
    sections = d.get("sections") or {}
    if isinstance(sections, str):
        sections = json.loads(sections)
    d["sections"] = dict(sections)
    for k in ("effective_date", "revised_date", "reviewed_date"):
        if d.get(k) is not None:
            d[k] = str(d[k])
    return d


def _header(d: dict[str, Any]) -> dict[str, Any]:
    keys = ("policy", "title", "effective_date", "revised_date", "reviewed_date", "status", "reason")
    return {k: d.get(k) for k in keys}


def _section(title: str, old: str | None, new: str | None) -> SectionRedline:
    if old is None:
        return SectionRedline(title, "added", added=(new or "").splitlines())
    if new is None:
        return SectionRedline(title, "removed", removed=old.splitlines())
    a, b = old.splitlines(), new.splitlines()
    out = SectionRedline(title, "unchanged")
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "replace":
            pairs = min(i2 - i1, j2 - j1)
            out.changed.extend(zip(a[i1 : i1 + pairs], b[j1 : j1 + pairs], strict=True))
            out.removed.extend(a[i1 + pairs : i2])
            out.added.extend(b[j1 + pairs : j2])
        elif op == "delete":
            out.removed.extend(a[i1:i2])
        elif op == "insert":
            out.added.extend(b[j1:j2])
    if out.added or out.removed or out.changed:
        out.status = "changed"
    return out


def redline(old: PayerDocumentRecord | dict[str, Any], new: PayerDocumentRecord | dict[str, Any]) -> Redline:
    """What changed between two versions of one policy, per section."""
    a, b = _as_dict(old), _as_dict(new)
    cls, changed = change_class({h: a.get(h) for h in HASHES} | {"status": a.get("status")}, b)
    titles = list(b["sections"]) + [t for t in a["sections"] if t not in b["sections"]]
    sections = [_section(t, a["sections"].get(t), b["sections"].get(t)) for t in titles]
    return Redline(cls, changed, _header(a), _header(b), sections)


def render_text(rl: Redline) -> str:
    out = [f"classification: {rl.classification}" + (f" ({', '.join(rl.changed_hashes)})" if rl.changed_hashes else "")]
    for k in ("policy", "title", "effective_date", "revised_date", "reviewed_date"):
        if rl.old.get(k) != rl.new.get(k):
            out.append(f"{k}: {rl.old.get(k)} -> {rl.new.get(k)}")
    for s in rl.changed_sections:
        out.append(f"== {s.section} [{s.status}]")
        out.extend(f"- {line}" for line in s.removed)
        out.extend(f"+ {line}" for line in s.added)
        for before, after in s.changed:
            out.append(f"~ {before}")
            out.append(f"  -> {after}")
    return "\n".join(out) + "\n"


_CSS = (
    ".redline{font-family:sans-serif}.redline del{background:#fdd;text-decoration:line-through}"
    ".redline ins{background:#dfd;text-decoration:none}.redline .sec{margin:1em 0}"
    ".redline .cls-substantive{color:#a00;font-weight:bold}.redline .cls-cosmetic{color:#666}"
)


def render_html(rl: Redline) -> str:
    """One self-contained HTML fragment (a ``<section class="redline">`` with its own style)."""
    e = html.escape
    parts = [f'<section class="redline"><style>{_CSS}</style>']
    parts.append(
        f'<p>Classification: <span class="cls-{e(rl.classification)}">{e(rl.classification)}</span>'
        + (f" (changed: {e(', '.join(rl.changed_hashes))})" if rl.changed_hashes else "")
        + "</p>"
    )
    rows = [
        f"<tr><th>{e(k)}</th><td><del>{e(str(rl.old.get(k)))}</del></td><td><ins>{e(str(rl.new.get(k)))}</ins></td></tr>"
        for k in ("policy", "title", "effective_date", "revised_date", "reviewed_date")
        if rl.old.get(k) != rl.new.get(k)
    ]
    if rows:
        parts.append("<table>" + "".join(rows) + "</table>")
    for s in rl.changed_sections:
        parts.append(f'<div class="sec"><h3>{e(s.section)} <small>[{e(s.status)}]</small></h3><ul>')
        parts.extend(f"<li><del>{e(line)}</del></li>" for line in s.removed)
        parts.extend(f"<li><ins>{e(line)}</ins></li>" for line in s.added)
        parts.extend(f"<li><del>{e(a)}</del><br><ins>{e(b)}</ins></li>" for a, b in s.changed)
        parts.append("</ul></div>")
    parts.append("</section>")
    return "".join(parts)
