"""The billing unit of an HCPCS drug code, read from its long descriptor (DOMAIN.md §3.7).

Drugs are billed in multiples of the dose written at the end of the long descriptor
("Injection, bevacizumab, 10 mg" -> 1 unit = 10 mg). :func:`billing_unit` reads only that trailing
dose phrase and returns ``None`` whenever the descriptor does not end in one; it never guesses.

What is read (after lower-casing and collapsing whitespace):

* the last top-level segment (commas inside parentheses and thousands separators do not split) must
  be a dose phrase: ``<qty> <unit>`` ("10 mg", "1,000 units", "0.1 mg"), ``per <qty> <unit>``
  ("per 10 ml"), ``per <unit>`` ("per vial", "per i.u.", "per milligram") or ``up to <qty> <unit>``
  ("up to 50 mg": one unit covers up to 50 mg, which bills exactly like "50 mg");
* when a last ``up to`` segment follows a ``per`` segment ("per 100 microcuries, up to 999
  microcuries"), the ``per`` phrase is the unit and the ``up to`` a cap;
* "per study dose", "per therapeutic dose", "per treatment dose", with or without a cap, are one dose;
* the segment may start with the drug's name when it holds no other number and does not end in a
  comparison ("rituximab 10 mg and hyaluronidase" gives 10 mg; a segment with two doses is a
  combination product and "less than or equal to 50 ..." is a threshold: both give ``None``);
* a few words CMS writes after the dose name what it measures and are allowed: "of <substance>",
  "vwf:rco", "immuneglobulin", "ferric iron", "vial", "ampule", "and hyaluronidase-xxxx";
* trailing qualifiers of the drug are removed first: a final parenthetical ("(for esrd on
  dialysis)", an equivalent dose in i.u., a note on self-administration), ", fda approved
  prescription, only for use as ...", ", not therapeutically equivalent to jNNNN", ", not otherwise
  specified", "for intravenous use", ", provided in <container>", ", containing nominal <content>";
* an explicit "(500 ml = 1 unit)" wins over everything else.

Only dose units are recognised: mass, volume, activity units, milliequivalents, radioactivity, skin
substitute area, vector genomes and plaque forming units (gene therapies), and after "per" the words
vial, dose, implant, instillation and treatment. So "5 inch", "per pair", "per lens" or "each" never
become a unit. Normalisation: "unit", "units", "i.u.", "iu", "usp units", "international units" ->
"units" (HCPCS uses them as one billing count; "kiu" stays "kiu"); "cc", "milliliter" -> "ml"; "gm",
"gram" -> "g"; "microgram" -> "mcg"; "millicurie" -> "mci", "microcurie" -> "uci"; "square
centimeter" -> "sq cm"; "therapeutic/study dose" -> "dose"; "single use/dose vial" -> "vial".
"million", "billion" and "5x10^15" are multiplied out so the quantity stays one exact decimal string
in the base unit ("1 million units" -> ``BillingUnit("1000000", "units")``); otherwise the quantity
is as written, without thousands separators ("1,000" -> "1000", ".5" -> "0.5").

Which codes carry a billing unit is decided by :func:`carries_billing_unit`, which
``parsers.cms_hcpcs`` applies to procedure codes (never to modifiers):

* **J** (drugs), **Q** (biosimilars Q5xxx, skin substitutes Q41xx per sq cm, contrast Q99xx per ml),
  **C** (C9 pass-through drugs and radiopharmaceuticals; among the C1/C2 device codes only a skin
  substitute, C1849, and a brachytherapy source, C2644, have a dose phrase, and both are real billing
  units) and **S** (non-Medicare drug codes that commercial payers use, e.g. S0074): every code.
* **A**: only A2 (skin substitutes, per sq cm) and A9 (radiopharmaceuticals per study dose or
  millicurie, contrast per ml). A4-A8 are supplies whose sizes describe the item, not a billing
  multiple (A4232, a syringe, ends in "3 cc").
* Every other series gives ``None``: E/K/L/V sizes are equipment, G and M codes are services (G0456
  ends in a wound-area threshold in square centimeters), and for P blood products "per unit" is a bag
  of blood, not an international unit.

On the October 2025 file 1,129 of the 1,188 J-codes get a unit. The 59 without one are NOC and
unclassified codes, combination products (two doses, or "x mg/y mg"), dose ranges (J0572-J0578),
"over 10 cc" (J1560), a concentration in mg/ml (J3265), devices and supplies sold "each" or as
implant systems, and J2150 ("25% in 50 ml"), which is left out rather than read by a rule made for
one code. tests/parsers/test_units.py lists them all.
"""

from __future__ import annotations

import re
from decimal import Decimal

from parsers.records import BillingUnit

__all__ = ["billing_unit", "carries_billing_unit"]

# Longest alternatives first so "milligrams" is not read as "milligram" + "s".
_UNIT_ALIASES: dict[str, str] = {
    "milligrams": "mg",
    "milligram": "mg",
    "mg": "mg",
    "micrograms": "mcg",
    "microgram": "mcg",
    "mcg": "mcg",
    "grams": "g",
    "gram": "g",
    "gm": "g",
    "g": "g",
    "milliliters": "ml",
    "milliliter": "ml",
    "ml": "ml",
    "cc": "ml",
    "international units": "units",
    "international unit": "units",
    "usp units": "units",
    "usp unit": "units",
    "units": "units",
    "unit": "units",
    "i.u.": "units",
    "iu": "units",
    "kiu": "kiu",
    "milliequivalents": "meq",
    "milliequivalent": "meq",
    "meq": "meq",
    "millicuries": "mci",
    "millicurie": "mci",
    "mci": "mci",
    "microcuries": "uci",
    "microcurie": "uci",
    "uci": "uci",
    "square centimeters": "sq cm",
    "square centimeter": "sq cm",
    # CMS's own misspelling in some Q41xx skin-substitute descriptors.
    "square cenitmeter": "sq cm",
    "sq cm": "sq cm",
    "vector genomes": "vector genomes",
    "plaque forming units": "pfu",
}

# Container / dose words: only meaningful after "per" ("per vial"), never with a number in front.
_COUNT_ALIASES: dict[str, str] = {
    "therapeutic dose": "dose",
    "study dose": "dose",
    "dose": "dose",
    "single use vial": "vial",
    "single dose vial": "vial",
    "vial": "vial",
    "implant": "implant",
    "instillation": "instillation",
    "treatment": "treatment",
}


def _alternation(words: dict[str, str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_QTY = r"(?P<qty>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+)"
_SCI = r"(?:\s*x\s*10\^(?P<exp>\d{1,2}))"
_MULT = r"(?:\s+(?P<mult>million|billion))"
_UNIT = rf"(?P<unit>{_alternation(_UNIT_ALIASES)})"
_COUNT = rf"(?P<count>{_alternation(_COUNT_ALIASES)})"
# Words CMS writes after the dose that name what is measured, not a different unit.
_AFTER = (
    r"(?:\s+(?:of\s+[a-z][a-z ]{0,40}|vwf:rco|immuneglobulin|ferric iron|vial|ampule"
    r"|and hyaluronidase(?:-[a-z]{4})?))?"
)

_DOSE = rf"{_QTY}{_SCI}?{_MULT}?\s*{_UNIT}(?![a-z0-9]){_AFTER}"
# An optional leading drug name holds no digit: a second number means a combination product.
# Nor may it end in a comparison: "area less than or equal to 50 square centimeters" is a threshold.
_NAME = (
    r"(?:[^0-9;]*?(?<!\bthan)(?<!\bto)(?<!\bexceed)(?<!\bexceeding)(?<!\bover)(?<!\bunder)"
    r"(?<!\bleast)(?<!\bof)(?<!\bin)(?<!\bwith)(?<!\bnominal)\s+)?"
)
_DOSE_RE = re.compile(rf"{_NAME}(?:(?:per|up to)\s+)?{_DOSE}")
_PER_COUNT_RE = re.compile(rf"{_NAME}per\s+{_COUNT}")
# "per i.u.", "per milligram", "per factor viii i.u." (the factor names what the i.u. measure).
_PER_UNIT_RE = re.compile(rf"{_NAME}per\s+(?:factor [ivx]+\s+)?{_UNIT}{_AFTER}")
_EXPLICIT_RE = re.compile(rf"\(\s*{_QTY}\s*{_UNIT}\s*=\s*1 unit\s*\)$")
_DOSE_WORD_RE = re.compile(r"(?:^|[,\s])per (?:study|treatment|therapeutic) dose(?:,?\s*up to [^,]*)?$")
_TRAILING_QUALIFIERS = (
    re.compile(r"\s*\([^()]*\)$"),
    re.compile(r",\s*fda approved prescription(?:,\s*only for use as [^,]*)?$"),
    re.compile(r",\s*not therapeutically equivalent to [a-z]\d{4}$"),
    re.compile(r",\s*not otherwise (?:specified|classified)$"),
    re.compile(r",?\s+for (?:intravenous|subcutaneous|intramuscular|intrathecal) (?:use|trial)$"),
    # "0.9 mg, provided in 1.1 mg vial": the container size is not the billing unit.
    re.compile(r",\s*provided in [^,]*$"),
    # "per ml, containing nominal 2 x 10^13 vector genomes": the content of the unit, not another one.
    re.compile(r",\s*containing nominal [^,]*$"),
    re.compile(r"\s*,$"),
)
_SPLIT_CHARS_RE = re.compile(r"[(),]")
_THOUSANDS_RE = re.compile(r"\d,\d{3}(?!\d)")
_MULTIPLIERS = {"million": Decimal(10) ** 6, "billion": Decimal(10) ** 9}


def carries_billing_unit(code: str) -> bool:
    """True for the HCPCS procedure codes whose descriptor states a billing unit (see module doc)."""
    return code[:1] in ("J", "Q", "C", "S") or code[:2] in ("A2", "A9")


def billing_unit(long_description: str) -> BillingUnit | None:
    """The billing unit stated by the trailing dose phrase of an HCPCS long descriptor, or ``None``.

    >>> billing_unit("Injection, bevacizumab, 10 mg")
    BillingUnit(quantity='10', unit='mg')
    >>> billing_unit("Injection, aprotonin, 10,000 kiu")
    BillingUnit(quantity='10000', unit='kiu')
    >>> billing_unit("Dressing for one wound") is None
    True
    """
    text = " ".join(long_description.lower().split())
    if not text:
        return None
    explicit = _EXPLICIT_RE.search(text)
    if explicit:
        return BillingUnit(_quantity(explicit["qty"], None, None), _UNIT_ALIASES[explicit["unit"]])
    text = _strip_qualifiers(text)
    if _DOSE_WORD_RE.search(text):
        return BillingUnit("1", "dose")
    head, segment = _split_last(text)
    if segment.startswith("up to ") and head:
        # "per 100 microcuries, up to 999 microcuries": the per-phrase is the unit, the cap is not.
        previous = _split_last(head)[1]
        per = _read_segment(previous) if previous.startswith("per ") else None
        if per is not None:
            return per
    return _read_segment(segment)


def _read_segment(segment: str) -> BillingUnit | None:
    match = _DOSE_RE.fullmatch(segment)
    if match:
        return BillingUnit(_quantity(match["qty"], match["mult"], match["exp"]), _UNIT_ALIASES[match["unit"]])
    match = _PER_COUNT_RE.fullmatch(segment)
    if match:
        return BillingUnit("1", _COUNT_ALIASES[match["count"]])
    match = _PER_UNIT_RE.fullmatch(segment)
    if match:
        return BillingUnit("1", _UNIT_ALIASES[match["unit"]])
    return None


def _strip_qualifiers(text: str) -> str:
    while True:
        before = text
        for pattern in _TRAILING_QUALIFIERS:
            text = pattern.sub("", text)
        if text == before:
            return text


def _split_last(text: str) -> tuple[str, str]:
    """``(head, last)`` split at the last comma that is neither inside parentheses nor a thousands
    separator."""
    depth = 0
    cut = 0
    for match in _SPLIT_CHARS_RE.finditer(text):
        ch, i = match.group(), match.start()
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0 and not (i > 0 and _THOUSANDS_RE.match(text, i - 1)):
            cut = i + 1
    return text[: max(cut - 1, 0)].strip(), text[cut:].strip()


def _quantity(qty: str, mult: str | None, exp: str | None) -> str:
    plain = qty.replace(",", "")
    if plain.startswith("."):
        plain = "0" + plain
    if mult is None and exp is None:
        return plain
    value = Decimal(plain) * (_MULTIPLIERS[mult] if mult else 1) * (Decimal(10) ** int(exp) if exp else 1)
    return format(value.normalize(), "f")
