"""The ICD-10-CM code set (FY2026, April 1 2026 update) for validity, billable leaves and range expansion.

The code set comes from the ``simple-icd-10-cm`` package, which ships the official CMS/CDC tabular list
XML (the same file as ``../shared/data/icd10cm/icd10cm_tabular_2026_April-1.xml``) together with the
official list of valid codes, including the seventh-character extensions.

- ``normalize(code)``: the dotted upper-case form (``c3490`` -> ``C34.90``), or ParseError when the text
  cannot be an ICD-10-CM code at all. A well-formed code that is not in the code set is returned as is
  (dotted); ``is_valid`` tells the two apart, so a source's unknown codes can be counted, not dropped.
- ``is_valid(code)``: a category, subcategory or extended code of the tabular list (not a chapter or block).
- ``is_billable(code)``: valid and a leaf (no children): the codes a claim may carry.
- ``expand_range(start, end)``: the billable leaves from ``start`` through ``end`` (``end`` with all of its
  descendants) in tabular order. ``C18.0–C18.9`` and ``C33–C34.92`` both work.
- ``expand(spec)``: a single code (a category gives its billable leaves) or a range.
- ``classify(code)`` and ``CodeAudit``: count billable, non-billable, unknown and malformed codes.

The tree takes about 1.5 s to load, so it is loaded on first use and kept for the process.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from parsers.errors import ParseError

RELEASE = "2026-04"  # FY2026 April 1 update, the file simple-icd-10-cm 1.5.0 ships
SOURCE = "icd10cm"

# a letter, two alphanumerics (QA0, new in April 2026, has a letter second), then up to four more (dot optional).
_SHAPE = re.compile(r"^([A-Z][0-9A-Z][0-9A-Z])\.?([0-9A-Z]{0,4})$")
# A range: two codes joined by a hyphen, en dash, em dash or minus sign (spaces allowed around it).
_RANGE = re.compile(r"^\s*(\S+?)\s*[-\u2010\u2011\u2012\u2013\u2014\u2212]\s*(\S+)\s*$")


@dataclass
class _CodeSet:
    order: dict[str, int]  # every valid code (dotted) -> its position in tabular pre-order
    codes: list[str]  # valid codes in tabular pre-order
    last_descendant: list[int]  # position -> position of its last descendant (itself for a leaf)
    leaf: list[bool]  # position -> is a billable leaf


_lock = threading.Lock()
_loaded: _CodeSet | None = None


def _codeset() -> _CodeSet:
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            import simple_icd_10_cm as icd

            # get_all_codes() is the tabular tree in pre-order (chapters, blocks, categories, subcategories,
            # seventh-character extensions). A few names are both a block and a category (``B99``): the
            # block comes first and the category right after it, so keep only category-level entries.
            codes: list[str] = []
            for code in icd.get_all_codes(with_dots=True):
                if "-" in code or code.isdigit():  # blocks ("C00-C96") and chapters ("2")
                    continue
                if code in codes[-1:]:  # the category right after its same-named block
                    continue
                codes.append(code)
            order = {c: i for i, c in enumerate(codes)}
            last = list(range(len(codes)))
            leaf = [True] * len(codes)
            for i in range(len(codes) - 1, -1, -1):
                parent = icd.get_parent(codes[i])
                p = order.get(parent) if parent else None
                if p is not None and p != i:
                    leaf[p] = False
                    if last[i] > last[p]:
                        last[p] = last[i]
            _loaded = _CodeSet(order=order, codes=codes, last_descendant=last, leaf=leaf)
    return _loaded


def normalize(code: str) -> str:
    """``code`` in dotted upper case (``c3490`` -> ``C34.90``); ParseError when it cannot be an ICD-10-CM code."""
    text = str(code).strip().upper().replace(" ", "")
    m = _SHAPE.match(text)
    if not m:
        raise ParseError(f"icd10cm: {code!r} is not an ICD-10-CM code")
    head, tail = m.groups()
    return f"{head}.{tail}" if tail else head


def _lookup(code: str) -> int | None:
    try:
        dotted = normalize(code)
    except ParseError:
        return None
    return _codeset().order.get(dotted)


def is_valid(code: str) -> bool:
    """A category, subcategory or extended code of the FY2026 tabular list (chapters and blocks are not)."""
    return _lookup(code) is not None


def is_billable(code: str) -> bool:
    """Valid and a leaf: a code a claim may carry."""
    pos = _lookup(code)
    return pos is not None and _codeset().leaf[pos]


def classify(code: str) -> str:
    """``billable`` | ``non_billable`` (a valid category or subcategory with children) | ``unknown`` | ``malformed``."""
    try:
        dotted = normalize(code)
    except ParseError:
        return "malformed"
    pos = _codeset().order.get(dotted)
    if pos is None:
        return "unknown"
    return "billable" if _codeset().leaf[pos] else "non_billable"


def _leaves(lo: int, hi: int) -> list[str]:
    cs = _codeset()
    return [cs.codes[i] for i in range(lo, hi + 1) if cs.leaf[i]]


def expand_range(start: str, end: str) -> list[str]:
    """The billable leaves from ``start`` through ``end`` and its descendants, in tabular order.

    ParseError (naming the range) when an end is not a code of the code set or the ends are reversed.
    """
    label = f"{start}\u2013{end}"
    cs = _codeset()
    positions = []
    for part in (start, end):
        try:
            dotted = normalize(part)
        except ParseError:
            raise ParseError(f"icd10cm: range {label!r}: {part!r} is not an ICD-10-CM code") from None
        pos = cs.order.get(dotted)
        if pos is None:
            raise ParseError(f"icd10cm: range {label!r}: {dotted} is not in the FY2026 ICD-10-CM code set")
        positions.append(pos)
    lo, hi = positions
    if hi < lo:
        raise ParseError(f"icd10cm: range {label!r} is reversed ({normalize(start)} comes after {normalize(end)})")
    return _leaves(lo, cs.last_descendant[hi])


def split_range(spec: str) -> tuple[str, str] | None:
    """``("C18.0", "C18.9")`` for ``"C18.0 – C18.9"``; None when ``spec`` is not a range."""
    m = _RANGE.match(spec)
    return (m.group(1), m.group(2)) if m else None


def expand(spec: str) -> list[str]:
    """A single code (a category or subcategory gives its billable leaves) or a range, as billable leaves."""
    parts = split_range(spec)
    if parts is not None:
        return expand_range(*parts)
    dotted = normalize(spec)
    cs = _codeset()
    pos = cs.order.get(dotted)
    if pos is None:
        raise ParseError(f"icd10cm: {dotted} is not in the FY2026 ICD-10-CM code set")
    return _leaves(pos, cs.last_descendant[pos])


def sort_key(code: str) -> tuple[int, str]:
    """Tabular order for dotted codes; codes not in the code set sort after them, alphabetically."""
    pos = _codeset().order.get(code)
    return (pos, "") if pos is not None else (1 << 30, code)


def order_index() -> dict[str, int]:
    """Every valid dotted code -> its position in tabular order (read-only: do not modify)."""
    return _codeset().order


def sort_codes(codes: Iterable[str]) -> list[str]:
    """Dotted codes in tabular order (codes not in the code set last, alphabetically)."""
    order = _codeset().order
    far = 1 << 30
    return sorted(codes, key=lambda c: (order.get(c, far), c))


def codes_in_order() -> list[str]:
    """Every valid code (dotted) in tabular order."""
    return list(_codeset().codes)


def billable_codes() -> list[str]:
    """Every billable leaf (dotted) in tabular order."""
    cs = _codeset()
    return [c for c, is_leaf in zip(cs.codes, cs.leaf, strict=True) if is_leaf]


@dataclass
class CodeAudit:
    """Counts of the ICD-10-CM codes a source names, by ``classify`` class, with a few examples of each
    problem class so a report can name them. An unknown or non-billable code is counted, never dropped."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 5

    def check(self, code: str) -> str:
        kind = classify(code)
        self.counts[kind] += 1
        if kind != "billable":
            ex = self.examples.setdefault(kind, [])
            if len(ex) < self.max_examples and code not in ex:
                ex.append(code)
        return kind

    def into(self, counts: Counter[str], prefix: str = "icd10") -> None:
        """Add the problem counts to a parser's ``SourceMeta.counts`` (``icd10 unknown code``...)."""
        for kind, n in self.counts.items():
            if kind != "billable":
                counts[f"{prefix} {kind.replace('_', '-')} code"] += n


def parse(body: bytes, meta: Any) -> Iterator[Any]:
    """The ``icd10cm`` source's parser (the pipeline calls ``parsers.<source>.parse``): the CMS code-set
    files as fetched, read by :mod:`parsers.icd10cm_files` (imported lazily: the code-set functions above
    do not need it)."""
    from parsers.icd10cm_files import parse as parse_files

    return parse_files(body, meta)
