"""The reference scrubber: checks claims against rule packs, the way a downstream scrubber would.

It reads ONLY packs (never the rulebook): every pack through :func:`compiler.packs.read_packs`, which
refuses a pack whose sha256 does not match its manifest, whose schema major version it does not
read, or whose ``pack_id`` does not match its content. A claim line whose date of service no loaded
pack's window covers is reported (``pack_window``) and not checked against rules that may not apply.

Each claim line is checked on its own date of service (DOS):

* ``code``: the HCPCS Level II code is valid on the DOS (``codes``). CPT codes (numeric) are not in
  any pack's code set and are not checked for validity.
* ``units``: the billed units equal the dose converted by the descriptor's billing unit, rounded up,
  at least one (``modifiers`` rules ``units_round_up``/``units_minimum_one``).
* ``jw_jz``: for separately payable single-dose drugs on Medicare claims: a JW line for the discarded
  amount, JZ when nothing was discarded, never both, the rounding remainder not billed as waste, and
  from 2023-10-01 a line without either is returnable. Dates and exemptions (multi-dose containers,
  RHC/FQHC, not separately payable, NGS skin substitutes) come from the pack's ``modifiers`` rules.
* ``mue``: ``unit_limits`` of the claim's setting; MAI 1 per line, MAI 2 and 3 summed over the
  claim's lines of that code on that date.
* ``ptp``: pairs of codes on the same date in the PTP companion TSV (binary search on the sorted
  file, memory-mapped: a 2.6-million-row file is not parsed to be used).
* ``diagnosis``: the ``coverage`` rules of the claim's payer (payer packs) or of its Medicare
  jurisdiction/state: at least one claim diagnosis listed as covered; a diagnosis listed as not
  covered is reported. The finding names the policy and its version.
* ``prior_auth``: a ``prior_auth`` rule of the claim's payer that requires authorization, and no
  authorization number on the claim or line.
* ``price``: expected allowed amount = units x ASP payment limit (``prices``). Compared with the
  line's ``allowed_amount``, else with its ``paid_amount`` against the allowed amount less the
  co-insurance percentage; a shortfall beyond the tolerance is reported as underpayment.
* ``ndc``: the line's NDC bills as the line's code in the ``ndc_map``.

Findings carry severity (error, warning, info), the likely denial (CARC CO-4, CO-15, CO-50, CO-97,
CO-151), the rule id, the rule's provenance and the pack it came from.
"""

from __future__ import annotations

import json
import mmap
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from compiler.packs import read_packs
from compiler.schema import first_error
from parsers.errors import PackError, UsageError

__all__ = [
    "ClaimsError",
    "Finding",
    "LoadedPacks",
    "ScrubResult",
    "billing_units",
    "load_packs",
    "read_claims",
    "scrub",
]

DEFAULT_TOLERANCE = Decimal("0.03")  # 3 %: leaves room for the 2 % Medicare sequestration on paid amounts
SETTINGS = ("practitioner", "outpatient_hospital", "dme")
# Modifiers that may bypass a PTP edit whose modifier indicator is 1 (NCCI-associated modifiers).
PTP_MODIFIERS = frozenset(
    "25 58 59 78 79 91 XE XS XP XU E1 E2 E3 E4 FA F1 F2 F3 F4 F5 F6 F7 F8 F9 LC LD LM LT RC RI RT TA "
    "T1 T2 T3 T4 T5 T6 T7 T8 T9 24 27 57".split()
)
_UNIT_ALIASES = {
    "mg": "mg",
    "milligram": "mg",
    "milligrams": "mg",
    "mcg": "mcg",
    "ug": "mcg",
    "µg": "mcg",
    "microgram": "mcg",
    "micrograms": "mcg",
    "g": "g",
    "gm": "g",
    "gram": "g",
    "grams": "g",
    "ml": "ml",
    "cc": "ml",
    "milliliter": "ml",
    "l": "l",
    "unit": "units",
    "units": "units",
    "iu": "units",
    "i.u.": "units",
    "un": "units",
}
# Factors to a base unit, per dimension.
_FACTORS: dict[str, tuple[str, Decimal]] = {
    "mg": ("mass", Decimal(1)),
    "mcg": ("mass", Decimal("0.001")),
    "g": ("mass", Decimal(1000)),
    "ml": ("volume", Decimal(1)),
    "l": ("volume", Decimal(1000)),
}
_CPT = re.compile(r"^[0-9]{4}[0-9A-Z]$")
_COLUMN2 = re.compile(rb"\n[^\t\n]+\t([^\t\n]+)\t")


class ClaimsError(UsageError):
    """The claims file cannot be read at all (not JSON, not a claims document)."""


@dataclass
class Finding:
    claim_id: str
    line: int | None
    code: str | None
    date_of_service: str | None
    check: str  # code | units | jw_jz | mue | ptp | diagnosis | prior_auth | price | ndc | pack_window
    severity: str  # error | warning | info
    denial: str | None  # likely CARC: CO-4, CO-15, CO-50, CO-97, CO-151
    rule_id: str | None
    message: str
    provenance: dict[str, Any] | None = None
    pack_id: str | None = None
    policy: str | None = None
    policy_version: Any = None


@dataclass
class ScrubResult:
    packs: list[dict[str, Any]]
    claims: int = 0
    lines: int = 0
    findings: list[Finding] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    def summary(self) -> dict[str, Any]:
        by: dict[str, int] = defaultdict(int)
        for f in self.findings:
            by[f.severity] += 1
        return {
            "claims": self.claims,
            "lines": self.lines,
            "malformed_claims": len(self.malformed),
            "findings": len(self.findings),
            "by_severity": dict(sorted(by.items())),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "packs": self.packs,
            "summary": self.summary(),
            "malformed": self.malformed,
            "findings": [asdict(f) for f in self.findings],
        }


# --- decimal helpers -----------------------------------------------------------------------------


def _dec(x: Any) -> Decimal:
    t = type(x)
    if t is int:
        return Decimal(x)  # exact, and without the str() round trip (most units are whole numbers)
    return x if t is Decimal else Decimal(str(x))


def _norm_unit(unit: str) -> str:
    u = unit.strip().lower()
    return _UNIT_ALIASES.get(u, u)


def convert(quantity: Decimal, unit: str, to_unit: str) -> Decimal | None:
    """``quantity`` of ``unit`` expressed in ``to_unit``, or None when they measure different things."""
    a, b = _norm_unit(unit), _norm_unit(to_unit)
    if a == b:
        return quantity
    fa, fb = _FACTORS.get(a), _FACTORS.get(b)
    if fa is None or fb is None or fa[0] != fb[0]:
        return None
    return quantity * fa[1] / fb[1]


def billing_units(dose: Decimal, per_unit: Decimal) -> int:
    """Units for ``dose`` when one unit is ``per_unit`` (same unit): rounded up to the next whole
    unit, and one unit for a dose below ``per_unit`` (Pub. 100-04 Ch. 17 §10)."""
    if dose <= 0:
        return 0
    return max(1, int((dose / per_unit).to_integral_value(rounding=ROUND_CEILING)))


# --- loaded packs --------------------------------------------------------------------------------


Interval = tuple[str, str | None, dict[str, Any], str]  # eff_start, eff_end, rule, pack_id


def _active(items: list[Interval] | None, dos: str) -> Iterator[tuple[dict[str, Any], str]]:
    for start, end, rule, pack_id in items or ():
        if start <= dos and (end is None or dos < end):
            yield rule, pack_id


def _first(items: list[Interval] | None, dos: str) -> tuple[dict[str, Any], str] | None:
    if items:
        for start, end, rule, pack_id in items:
            if start <= dos and (end is None or dos < end):
                return rule, pack_id
    return None


class PtpFile:
    """One PTP companion TSV, memory-mapped and searched by binary search on its sorted lines."""

    PARTNER_CACHE = 20_000  # column-1 codes whose partner sets are kept (more than CMS has)

    def __init__(self, path: Path, rationales: list[str], sources: list[dict[str, Any]], pack_id: str) -> None:
        self.path = path
        self.rationales = rationales
        self.sources = sources
        self.pack_id = pack_id
        self._fh = path.open("rb")
        self.mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.start = self.mm.find(b"\n") + 1  # after the header line
        self.size = len(self.mm)
        self._blocks: dict[str, tuple[int, int]] = {}
        self._partners: dict[str, dict[str, int]] = {}

    def close(self) -> None:
        self.mm.close()
        self._fh.close()

    def _lower_bound(self, key: bytes, lo: int, hi: int) -> int:
        """Offset of the first line in [lo, hi) (line starts) whose leading bytes are >= ``key``."""
        mm, size = self.mm, self.size
        n = len(key)
        while lo < hi:
            mid = (lo + hi) // 2
            s = mm.rfind(b"\n", lo, mid)
            s = lo if s < 0 else s + 1
            if mm[s : s + n] < key:
                e = mm.find(b"\n", s)
                lo = size if e < 0 else e + 1
            else:
                hi = s
        return lo

    def block(self, column1: str) -> tuple[int, int]:
        """``[lo, hi)`` byte offsets of the lines whose column 1 is ``column1`` (two binary searches,
        then cached: a practice bills the same codes over and over)."""
        found = self._blocks.get(column1)
        if found is None:
            lo = self._lower_bound(f"{column1}\t".encode(), self.start, self.size)
            hi = self._lower_bound(f"{column1}\t\x7f".encode(), lo, self.size)
            found = self._blocks[column1] = (lo, hi)
        return found

    def partners(self, column1: str) -> dict[str, int]:
        """The column-2 codes ``column1`` has edits with, each with the byte offset of its first line
        (most code pairs on a claim have none, and a dict answers that, and where the pair's lines
        start, without scanning the block). One regular-expression pass over the block, cached, bounded."""
        found = self._partners.get(column1)
        if found is None:
            lo, hi = self.block(column1)
            found = {}
            if hi > lo:
                base = lo - 1  # the newline ending the line before the block
                for m in _COLUMN2.finditer(self.mm[base:hi]):
                    found.setdefault(m.group(1).decode(), base + m.start() + 1)
            if len(self._partners) >= self.PARTNER_CACHE:
                self._partners.clear()
            self._partners[column1] = found
        return found

    def lookup(self, column1: str, column2: str) -> list[list[str]]:
        """Every line for the pair (all its intervals), as lists of the TSV fields."""
        pos = self.partners(column1).get(column2)
        if pos is None:
            return []
        mm, size = self.mm, self.size
        key = f"{column1}\t{column2}\t".encode()
        n = len(key)
        out = []
        while pos < size and mm[pos : pos + n] == key:
            e = mm.find(b"\n", pos)
            e = size if e < 0 else e
            out.append(mm[pos:e].decode("utf-8").split("\t"))
            pos = e + 1
        return out

    def edits_of(self, column1: str) -> dict[str, list[list[str]]]:
        """Every edit whose column 1 is ``column1``, by column 2 (for tests and tools)."""
        lo, hi = self.block(column1)
        out: dict[str, list[list[str]]] = {}
        for line in self.mm[lo:hi].decode("utf-8").splitlines():
            fields = line.split("\t")
            out.setdefault(fields[1], []).append(fields)
        return out


@dataclass
class LoadedPacks:
    """Indexes over every section of every pack loaded, by what a claim line looks up."""

    packs: list[dict[str, Any]] = field(default_factory=list)  # header of each pack (no sections)
    windows: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # scope -> (from, to, pack_id)
    codes: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    prices: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    ndc: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    limits: dict[tuple[str, str], list[Interval]] = field(default_factory=lambda: defaultdict(list))
    coverage: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    prior_auth: dict[tuple[str, str], list[Interval]] = field(default_factory=lambda: defaultdict(list))
    modifiers: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    ptp: dict[str, list[PtpFile]] = field(default_factory=lambda: defaultdict(list))
    seen_ids: set[tuple[str, str]] = field(default_factory=set)

    def close(self) -> None:
        for files in self.ptp.values():
            for f in files:
                f.close()

    def covers(self, scope: str, dos: str) -> str | None:
        for start, end, pack_id in self.windows.get(scope, ()):
            if start <= dos < end:
                return pack_id
        return None

    def window_text(self) -> str:
        return (
            "; ".join(f"{scope} [{s}, {e})" for scope, ws in sorted(self.windows.items()) for s, e, _ in ws) or "none"
        )


def _add(index: dict[Any, list[Interval]], key: Any, rule: dict[str, Any], pack_id: str) -> None:
    index[key].append((rule["eff_start"], rule["eff_end"], rule, pack_id))


def _copy(base: LoadedPacks) -> LoadedPacks:
    out = LoadedPacks()
    out.packs = list(base.packs)
    out.windows = {k: list(v) for k, v in base.windows.items()}
    for name in ("codes", "prices", "ndc", "limits", "coverage", "prior_auth", "modifiers", "ptp"):
        target = getattr(out, name)
        for k, v in getattr(base, name).items():
            target[k] = list(v)
    out.seen_ids = set(base.seen_ids)
    return out


def load_packs(
    pack_dirs: Iterable[Path], base: LoadedPacks | None = None, *, full_check: bool = False
) -> LoadedPacks:
    """Read and check every pack in ``pack_dirs`` (each with its manifest.json) and index them, on
    top of a copy of ``base`` (packs already loaded) when given.

    Every file's sha256 against the manifest, the schema major version and the ``pack_id`` are always
    checked; the rules are validated against the schema on a sample (``read_packs(schema="sample")``)
    unless ``full_check``: the compiler validated every rule before writing the pack and its sha256."""
    loaded = _copy(base) if base is not None else LoadedPacks()
    for pack_dir in pack_dirs:
        pack_dir = Path(pack_dir)
        for pack in read_packs(pack_dir, schema="full" if full_check else "sample"):
            pid = pack["pack_id"]
            scope = pack["scope"]
            window = pack["window"]
            loaded.packs.append({k: v for k, v in pack.items() if k != "sections"} | {"dir": str(pack_dir)})
            loaded.windows.setdefault(scope, []).append((window["from"], window["to"], pid))
            sections = pack["sections"]
            for r in sections.get("codes", []):
                # The same rule may come in two packs (a national and a jurisdiction pack): once is enough.
                if ("codes", r["id"]) in loaded.seen_ids:
                    continue
                loaded.seen_ids.add(("codes", r["id"]))
                _add(loaded.codes, r["code"], r, pid)
            for r in sections.get("prices", []):
                if ("prices", r["id"]) not in loaded.seen_ids:
                    loaded.seen_ids.add(("prices", r["id"]))
                    _add(loaded.prices, r["code"], r, pid)
            for r in sections.get("ndc_map", []):
                if ("ndc", r["id"]) not in loaded.seen_ids:
                    loaded.seen_ids.add(("ndc", r["id"]))
                    _add(loaded.ndc, r["ndc"], r, pid)
            for r in sections.get("unit_limits", []):
                if ("mue", r["id"]) not in loaded.seen_ids:
                    loaded.seen_ids.add(("mue", r["id"]))
                    _add(loaded.limits, (r["code"], r["setting"]), r, pid)
            for r in sections.get("coverage", []):
                if ("coverage", r["id"]) not in loaded.seen_ids:
                    loaded.seen_ids.add(("coverage", r["id"]))
                    rule = dict(r)
                    rule["_dx"] = frozenset(r.get("diagnoses") or ())
                    rule["_states"] = frozenset(r.get("states") or ())
                    _add(loaded.coverage, r["code"], rule, pid)
            for r in sections.get("prior_auth", []):
                if ("pa", r["id"]) not in loaded.seen_ids:
                    loaded.seen_ids.add(("pa", r["id"]))
                    _add(loaded.prior_auth, (r.get("payer") or "", r["code"]), r, pid)
            for r in sections.get("modifiers", []):
                if ("mod", r["id"]) not in loaded.seen_ids:
                    loaded.seen_ids.add(("mod", r["id"]))
                    _add(loaded.modifiers, r["rule"], r, pid)
            ptp = sections.get("ptp")
            if ptp:
                for f in ptp["files"]:
                    loaded.ptp[f["setting"]].append(
                        PtpFile(pack_dir / f["file"], ptp["rationales"], pack["sources"], pid)
                    )
    if not loaded.packs:
        raise PackError("no packs to scrub against (give --pack DIR with a manifest.json)")
    return loaded


# --- claims --------------------------------------------------------------------------------------


def _claim_ok(claim: Any) -> bool:
    """The claim schema's checks, hand-written for speed (50,000 lines a second). When it says no,
    the claim is validated with jsonschema for the exact message; tests check both agree."""
    if type(claim) is not dict or type(claim.get("claim_id")) is not str or not claim["claim_id"]:
        return False
    allowed = _CLAIM_KEYS
    if not allowed.issuperset(claim):
        return False
    if type(claim.get("payer")) is not str or not _PAYER.match(claim["payer"]):
        return False
    dx = claim.get("diagnoses", [])
    if type(dx) is not list or not all(type(d) is str and _DX.match(d) for d in dx):
        return False
    for k in ("jurisdiction", "state", "prior_auth", "facility_type"):
        if k in claim and type(claim[k]) is not str:
            return False
    if "jurisdiction" in claim and not _JUR.match(claim["jurisdiction"]):
        return False
    if "state" in claim and not _STATE.match(claim["state"]):
        return False
    if "setting" in claim and claim["setting"] not in SETTINGS:
        return False
    lines = claim.get("lines")
    if type(lines) is not list or not lines:
        return False
    for line in lines:
        if type(line) is not dict or not _LINE_KEYS.issuperset(line):
            return False
        code, units, dos = line.get("code"), line.get("units"), line.get("date_of_service")
        if type(code) is not str or not _CODE.match(code):
            return False
        if not isinstance(units, (int, float)) or isinstance(units, bool) or units < 0:
            return False
        if type(dos) is not str or not _DATE.match(dos):
            return False
        if type(line.get("line")) is not int:
            return False
        mods = line.get("modifiers", [])
        if type(mods) is not list or not all(type(m) is str and _MOD.match(m) for m in mods):
            return False
        for k in ("dose", "discarded"):
            if k in line:
                q = line[k]
                if type(q) is not dict or set(q) != {"quantity", "unit"} or type(q["unit"]) is not str or not q["unit"]:
                    return False
                if type(q["quantity"]) not in (int, float) or q["quantity"] < 0 or (k == "dose" and q["quantity"] == 0):
                    return False
        for k in ("allowed_amount", "paid_amount"):
            if k in line and (type(line[k]) not in (int, float) or line[k] < 0):
                return False
        if "container" in line and line["container"] not in ("single_dose", "multi_dose"):
            return False
        if "separately_payable" in line and type(line["separately_payable"]) is not bool:
            return False
        for k in ("ndc", "prior_auth"):
            if k in line and (type(line[k]) is not str or not line[k]):
                return False
        ldx = line.get("diagnoses", [])
        if type(ldx) is not list or not all(type(d) is str and _DX.match(d) for d in ldx):
            return False
    return True


_CLAIM_KEYS = frozenset(
    ("claim_id", "payer", "jurisdiction", "state", "setting", "facility_type", "diagnoses", "prior_auth", "lines")
)
_LINE_KEYS = frozenset(
    (
        "line",
        "code",
        "modifiers",
        "units",
        "date_of_service",
        "dose",
        "discarded",
        "container",
        "separately_payable",
        "ndc",
        "diagnoses",
        "prior_auth",
        "allowed_amount",
        "paid_amount",
    )
)
_PAYER = re.compile(r"^[a-z][a-z0-9_]*$")
_DX = re.compile(r"^[A-Z][0-9][0-9A-Z]\.?[0-9A-Z]{0,4}$")
_JUR = re.compile(r"^J[A-Z0-9]{1,2}$")
_STATE = re.compile(r"^[A-Z]{2}$")
_CODE = re.compile(r"^[A-Z0-9]{5}$")
_MOD = re.compile(r"^[A-Z0-9]{2}$")
_DATE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")


def read_claims(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The claims of ``path`` that are well formed, and one line per malformed claim naming its id and
    the field (``claims.json: claim C7: $.lines[0].units: 'x' is not of type 'number'``)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise ClaimsError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ClaimsError(f"{path}: not valid JSON ({exc})") from None
    if type(data) is not dict or type(data.get("claims")) is not list:
        raise ClaimsError(
            f'{path}: not a claims document (expected {{"claims": [...]}}, see compiler/schemas/claims.schema.json)'
        )
    name = Path(path).name
    good, bad = [], []
    for i, claim in enumerate(data["claims"]):
        if _claim_ok(claim):
            good.append(claim)
            continue
        err = first_error("claims", {"claims": [claim]}) or "$: does not match the claim schema"
        err = err.replace("$.claims[0]", "$", 1)
        cid = claim.get("claim_id") if isinstance(claim, dict) else None
        who = f"claim {cid}" if isinstance(cid, str) and cid else f"claim #{i + 1} (no claim_id)"
        bad.append(f"{name}: {who}: {err}")
    return good, bad


def _dx_norm(code: str) -> str:
    c = code.replace(".", "").upper()
    return c if len(c) <= 3 else f"{c[:3]}.{c[3:]}"


# --- checking ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    raw: dict[str, Any]
    number: int
    code: str
    dos: str
    units: Decimal
    mods: frozenset[str]


class _Scrubber:
    def __init__(self, packs: LoadedPacks, tolerance: Decimal) -> None:
        self.p = packs
        self.tolerance = tolerance
        self.out: list[Finding] = []
        self._mods: dict[tuple[str, str], tuple[dict[str, Any], str] | None] = {}
        self._covers: dict[tuple[tuple[str, ...], str], str | None] = {}
        self._applicable: dict[tuple[Any, ...], list[tuple[dict[str, Any], str]]] = {}
        self._dx_cache: dict[str, str] = {}
        self._excl: dict[str, list[Any]] = {}

    # -- helpers

    def _f(
        self,
        claim: dict[str, Any],
        line: _Line | None,
        check: str,
        severity: str,
        denial: str | None,
        rule: dict[str, Any] | None,
        message: str,
        pack_id: str | None,
        **extra: Any,
    ) -> None:
        self.out.append(
            Finding(
                claim_id=claim["claim_id"],
                line=line.number if line else None,
                code=line.code if line else None,
                date_of_service=line.dos if line else None,
                check=check,
                severity=severity,
                denial=denial,
                rule_id=rule["id"] if rule else None,
                message=message,
                provenance=rule.get("provenance") if rule else None,
                pack_id=pack_id,
                **extra,
            )
        )

    def _mod_rule(self, name: str, dos: str) -> tuple[dict[str, Any], str] | None:
        key = (name, dos)
        if key not in self._mods:
            self._mods[key] = _first(self.p.modifiers.get(name), dos)
        return self._mods[key]

    # -- one claim

    def claim(self, claim: dict[str, Any]) -> int:
        payer = claim["payer"]
        medicare = payer == "medicare"
        setting = claim.get("setting", "practitioner")
        lines = [
            _Line(
                raw=ln,
                number=ln["line"],
                code=ln["code"],
                dos=ln["date_of_service"],
                units=_dec(ln["units"]),
                mods=frozenset(ln.get("modifiers", ())),
            )
            for ln in claim["lines"]
        ]
        checked: list[_Line] = []
        # A commercial payer's claim is checked when the national Medicare pack (code set, drug billing
        # rules) or the payer's own pack covers its date.
        scopes = ("medicare",) if medicare else ("medicare", f"payer:{payer}")
        regional = self._regional_scopes(claim)
        for ln in lines:
            key = (scopes, ln.dos)
            covered = self._covers.get(key, "")
            if covered == "":
                covered = self._covers[key] = next(
                    (pid for pid in (self.p.covers(sc, ln.dos) for sc in scopes) if pid is not None), None
                )
            if covered is None:
                self._f(
                    claim,
                    ln,
                    "pack_window",
                    "error",
                    None,
                    None,
                    f"no national Medicare pack{'' if medicare else f' or payer:{payer} pack'} covers date of "
                    f"service {ln.dos} (loaded: {self.p.window_text()}); line not checked",
                    None,
                )
                continue
            checked.append(ln)
            self._code(claim, ln)
            if regional:
                self._regional_window(claim, ln, regional)
        groups: dict[tuple[str, str], list[_Line]] = defaultdict(list)
        for ln in checked:
            groups[(ln.dos, ln.code)].append(ln)
        for (dos, code), group in groups.items():
            self._units_and_waste(claim, dos, code, group, medicare)
            if medicare:
                self._mue(claim, code, setting, group)
        if medicare:
            by_date: dict[str, list[_Line]] = defaultdict(list)
            for ln in checked:
                by_date[ln.dos].append(ln)
            for same_day in by_date.values():
                if len({ln.code for ln in same_day}) > 1:
                    self._ptp(claim, setting, same_day)
        for ln in checked:
            self._coverage(claim, ln)
            self._prior_auth(claim, ln)
            if medicare:
                self._price(claim, ln)
            if "ndc" in ln.raw:
                self._ndc(claim, ln)
        return len(lines)

    # -- checks

    def _regional_scopes(self, claim: dict[str, Any]) -> list[str]:
        """The jurisdiction, state or payer scopes of this claim that some loaded pack has."""
        if claim["payer"] == "medicare":
            scopes = [f"medicare:{claim[k]}" for k in ("jurisdiction", "state") if k in claim]
        else:
            scopes = [f"payer:{claim['payer']}"]
        return [sc for sc in scopes if sc in self.p.windows]

    def _regional_window(self, claim: dict[str, Any], ln: _Line, scopes: list[str]) -> None:
        """A jurisdiction, state or payer pack is loaded for this claim but none covers the date:
        its coverage and prior-authorization rules would be silently missing, so say so."""
        for scope in scopes:
            if self.p.covers(scope, ln.dos) is None:
                spans = ", ".join(f"[{a}, {b})" for a, b, _ in self.p.windows[scope])
                self._f(
                    claim,
                    ln,
                    "pack_window",
                    "warning",
                    None,
                    None,
                    f"the {scope} pack(s) loaded cover {spans}, not {ln.dos}: its coverage and prior "
                    "authorization rules were not checked",
                    None,
                )

    def _code(self, claim: dict[str, Any], ln: _Line) -> None:
        items = self.p.codes.get(ln.code)
        if _first(items, ln.dos) is not None:
            return
        if _CPT.match(ln.code):
            return  # CPT: packs carry no CPT code set (AMA licence), so validity is not checked
        if items:
            rule, pid = items[-1][2], items[-1][3]
            spans = ", ".join(f"[{s}, {e or 'open'})" for s, e, _, _ in items)
            self._f(
                claim, ln, "code", "error", "CO-4", rule, f"{ln.code} is not valid on {ln.dos} (valid {spans})", pid
            )
        else:
            self._f(
                claim, ln, "code", "error", "CO-4", None, f"{ln.code} is not an HCPCS Level II code in the pack", None
            )

    def _exclusions(
        self, dos: str
    ) -> list[tuple[str, frozenset[str], frozenset[str], bool, frozenset[str], tuple[str, ...], bool]]:
        """The exclusion rules in force on ``dos``, unpacked once per date."""
        found = self._excl.get(dos)
        if found is None:
            found = []
            for rule, _ in _active(self.p.modifiers.get("exclusion"), dos):
                params = rule["params"]
                found.append(
                    (
                        rule["id"],
                        frozenset(params.get("containers", ())),
                        frozenset(params.get("facility_types", ())),
                        "separately_payable" in params,
                        frozenset(params.get("jurisdictions") or ()),
                        tuple(params.get("code_prefixes", ())),
                        rule.get("modifier") == "JZ",
                    )
                )
            self._excl[dos] = found
        return found

    def _exempt(self, claim: dict[str, Any], ln: _Line, code: str) -> str | None:
        """Why JW/JZ do not apply to this line, from the pack's exclusion rules, or None; "" when only
        the JZ requirement is lifted (NGS skin substitutes)."""
        raw = ln.raw
        for rule_id, containers, facilities, sp, jurisdictions, prefixes, jz_only in self._exclusions(ln.dos):
            if containers and raw.get("container") in containers:
                return f"{raw['container'].replace('_', '-')} container ({rule_id})"
            if facilities and claim.get("facility_type") in facilities:
                return f"{claim['facility_type'].upper()} ({rule_id})"
            if sp and raw.get("separately_payable") is False:
                return f"not separately payable ({rule_id})"
            if jurisdictions and jz_only and claim.get("jurisdiction") in jurisdictions and code.startswith(prefixes):
                return ""  # JZ not required here; JZ or JW on the line are still fine
        return None

    def _units_and_waste(self, claim: dict[str, Any], dos: str, code: str, group: list[_Line], medicare: bool) -> None:
        code_rule = _first(self.p.codes.get(code), dos)
        bu = code_rule[0].get("billing_unit") if code_rule else None
        waste_lines = [ln for ln in group if "JW" in ln.mods]
        admin_lines = [ln for ln in group if "JW" not in ln.mods]
        for ln in group:
            if "JW" in ln.mods and "JZ" in ln.mods:
                r = self._mod_rule("jw_jz_not_both", dos)
                if r:
                    self._f(
                        claim,
                        ln,
                        "jw_jz",
                        r[0]["severity"],
                        r[0]["denial"],
                        r[0],
                        "JW and JZ on the same line: one or the other",
                        r[1],
                    )
        expected_admin: int | None = None
        expected_jw: int | None = None
        per_unit: Decimal | None = None
        for ln in admin_lines:
            dose = ln.raw.get("dose")
            if dose is None or bu is None:
                continue
            per_unit = _dec(bu["quantity"])
            qty = convert(_dec(dose["quantity"]), dose["unit"], bu["unit"])
            if qty is None:
                self._f(
                    claim,
                    ln,
                    "units",
                    "info",
                    None,
                    code_rule[0] if code_rule else None,
                    f"dose in {dose['unit']} cannot be converted to the billing unit of {code} "
                    f"({bu['quantity']} {bu['unit']})",
                    code_rule[1] if code_rule else None,
                )
                continue
            expected_admin = billing_units(qty, per_unit)
            name = "units_minimum_one" if qty < per_unit else "units_round_up"
            r = self._mod_rule(name, dos)
            billed = ln.units
            if billed != expected_admin:
                how = (
                    f"{_fmt(dose['quantity'])} {dose['unit']} at {_fmt(bu['quantity'])} {bu['unit']} per unit = "
                    f"{expected_admin} units"
                )
                if billed > expected_admin:
                    self._f(
                        claim,
                        ln,
                        "units",
                        r[0]["severity"] if r else "error",
                        r[0]["denial"] if r else "CO-151",
                        r[0] if r else None,
                        f"{code} billed x {_fmt(billed)} but {how}",
                        r[1] if r else None,
                    )
                else:
                    self._f(
                        claim,
                        ln,
                        "units",
                        "warning",
                        None,
                        r[0] if r else None,
                        f"{code} billed x {_fmt(billed)}, fewer than {how} (revenue left unbilled)",
                        r[1] if r else None,
                    )
            discarded = ln.raw.get("discarded")
            if discarded is not None:
                dq = convert(_dec(discarded["quantity"]), discarded["unit"], bu["unit"])
                if dq is not None:
                    total = int(((qty + dq) / per_unit).to_integral_value(rounding=ROUND_FLOOR))
                    expected_jw = max(0, total - expected_admin)
        if not medicare or bu is None:
            return
        self._jw_jz(claim, dos, code, group, admin_lines, waste_lines, expected_jw)

    def _jw_jz(
        self,
        claim: dict[str, Any],
        dos: str,
        code: str,
        group: list[_Line],
        admin_lines: list[_Line],
        waste_lines: list[_Line],
        expected_jw: int | None,
    ) -> None:
        if _first(self.p.prices.get(code), dos) is None and self.p.prices:
            return  # no ASP payment limit: not a separately payable Part B drug this quarter
        exempt = self._exempt(claim, group[0], code)
        if exempt == "":
            return
        if exempt is not None:
            for ln in group:
                if ln.mods & {"JW", "JZ"}:
                    self._f(claim, ln, "jw_jz", "info", None, None, f"JW/JZ not applicable: {exempt}", None)
            return
        jw_rule = self._mod_rule("jw_discarded", dos)
        jz_rule = self._mod_rule("jz_no_discard", dos)
        req_rule = self._mod_rule("jw_jz_required", dos)
        round_rule = self._mod_rule("rounding_not_waste", dos)
        jw_billed = sum((ln.units for ln in waste_lines), Decimal(0))
        if waste_lines and jw_rule is None:
            return  # before JW existed
        if expected_jw is not None and waste_lines:
            if jw_billed > expected_jw:
                rule = round_rule if expected_jw == 0 and round_rule else jw_rule
                assert rule is not None
                why = (
                    "the rounding remainder is not waste"
                    if expected_jw == 0
                    else f"the discarded amount is {expected_jw} units"
                )
                self._f(
                    claim,
                    waste_lines[0],
                    "jw_jz",
                    "error",
                    rule[0]["denial"] if rule is round_rule else "CO-151",
                    rule[0],
                    f"{code}-JW billed x {_fmt(jw_billed)} but {why}",
                    rule[1],
                )
            elif jw_billed < expected_jw:
                self._f(
                    claim,
                    waste_lines[0],
                    "jw_jz",
                    "warning",
                    None,
                    jw_rule[0] if jw_rule else None,
                    f"{code}-JW billed x {_fmt(jw_billed)} but {expected_jw} units were discarded "
                    "(revenue left unbilled)",
                    jw_rule[1] if jw_rule else None,
                )
        if expected_jw and not waste_lines and jw_rule:
            self._f(
                claim,
                admin_lines[0] if admin_lines else group[0],
                "jw_jz",
                "warning",
                None,
                jw_rule[0],
                f"{expected_jw} discarded units of {code} not billed: add a {code}-JW line x {expected_jw}",
                jw_rule[1],
            )
        for ln in admin_lines:
            has_jz = "JZ" in ln.mods
            if has_jz and (waste_lines or expected_jw):
                rule = jz_rule or req_rule
                self._f(
                    claim,
                    ln,
                    "jw_jz",
                    "error",
                    "CO-4",
                    rule[0] if rule else None,
                    f"{code}-JZ says nothing was discarded, but "
                    + ("the claim has a JW line" if waste_lines else f"{expected_jw} units were discarded"),
                    rule[1] if rule else None,
                )
            if has_jz or waste_lines:
                continue
            if req_rule is not None:
                self._f(
                    claim,
                    ln,
                    "jw_jz",
                    req_rule[0]["severity"],
                    req_rule[0]["denial"],
                    req_rule[0],
                    f"{code} from a single-dose container without JW or JZ: returnable as unprocessable from "
                    f"{req_rule[0]['eff_start']}",
                    req_rule[1],
                )
            elif jz_rule is not None:
                self._f(
                    claim,
                    ln,
                    "jw_jz",
                    jz_rule[0]["severity"],
                    jz_rule[0]["denial"],
                    jz_rule[0],
                    f"{code} without JZ (required from {jz_rule[0]['eff_start']} when nothing is discarded)",
                    jz_rule[1],
                )

    def _mue(self, claim: dict[str, Any], code: str, setting: str, group: list[_Line]) -> None:
        dos = group[0].dos
        found = _first(self.p.limits.get((code, setting)), dos)
        if found is None:
            return
        rule, pid = found
        limit = rule["max_units"]
        if limit is None:
            return  # unpublished
        if rule["mai"] == 1:
            for ln in group:
                if ln.units > limit:
                    self._f(
                        claim,
                        ln,
                        "mue",
                        "error",
                        "CO-151",
                        rule,
                        f"{code} x {_fmt(ln.units)} on one line exceeds the MUE of {limit} (MAI 1, line edit)",
                        pid,
                    )
            return
        total = sum((ln.units for ln in group), Decimal(0))
        if total > limit:
            label = "policy, absolute" if rule["mai"] == 2 else "clinical, appealable with documentation"
            self._f(
                claim,
                group[-1],
                "mue",
                "error",
                "CO-151",
                rule,
                f"{code} x {_fmt(total)} on {dos} across {len(group)} line(s) exceeds the MUE of {limit} "
                f"(MAI {rule['mai']}, date of service edit: {label})",
                pid,
            )

    def _ptp(self, claim: dict[str, Any], setting: str, same_day: list[_Line]) -> None:
        files = self.p.ptp.get(setting)
        if not files:
            return
        codes = {ln.code: ln for ln in same_day}
        dos = same_day[0].dos
        for f in files:
            for c1 in codes:
                partners = f.partners(c1)
                if not partners:
                    continue
                for c2 in sorted(partners.keys() & codes.keys()):
                    if c1 == c2:
                        continue
                    ln2 = codes[c2]
                    for row in f.lookup(c1, c2):
                        start, end, mi = row[2], row[3] or None, row[4]
                        if not (start <= dos and (end is None or dos < end)) or mi == "9":
                            continue
                        rule_id = f"cms_ncci_ptp:{setting}:{c1}:{c2}:{start}"
                        src = f.sources[int(row[7])]
                        prov = {
                            "source": src["source"],
                            "sha256": src["sha256"],
                            "locator": row[8],
                            "release": src["release"],
                        }
                        rule = {"id": rule_id, "provenance": prov}
                        rationale = f.rationales[int(row[6])] if row[6] else ""
                        if mi == "0":
                            self._f(
                                claim,
                                ln2,
                                "ptp",
                                "error",
                                "CO-97",
                                rule,
                                f"{c2} is not paid with {c1} on the same date (PTP edit, modifier "
                                f"indicator 0: no modifier allowed; {rationale})",
                                f.pack_id,
                            )
                        elif not (ln2.mods & PTP_MODIFIERS):
                            self._f(
                                claim,
                                ln2,
                                "ptp",
                                "error",
                                "CO-97",
                                rule,
                                f"{c2} is bundled into {c1} on the same date (PTP edit, modifier indicator 1: an "
                                f"NCCI-associated modifier such as 59/XU is needed if distinct; {rationale})",
                                f.pack_id,
                            )

    def _diagnoses(self, claim: dict[str, Any], ln: _Line) -> set[str]:
        cache = self._dx_cache
        out = set()
        for d in ln.raw.get("diagnoses") or claim.get("diagnoses") or ():
            n = cache.get(d)
            if n is None:
                if len(cache) >= 100_000:
                    cache.clear()
                n = cache[d] = _dx_norm(d)
            out.add(n)
        return out

    def _coverage(self, claim: dict[str, Any], ln: _Line) -> None:
        items = self.p.coverage.get(ln.code)
        if not items:
            return
        payer = claim["payer"]
        state, jur = claim.get("state"), claim.get("jurisdiction")
        key = (ln.code, ln.dos, payer, state, jur)
        applicable = self._applicable.get(key)
        if applicable is None:
            applicable = []
            for rule, pid in _active(items, ln.dos):
                if payer == "medicare":
                    if rule.get("payer"):
                        continue
                    if not ((jur and rule.get("jurisdiction") == jur) or (state and state in rule["_states"])):
                        continue
                elif rule.get("payer") != payer:
                    continue
                applicable.append((rule, pid))
            if len(self._applicable) >= 100_000:
                self._applicable.clear()
            self._applicable[key] = applicable
        if not applicable:
            return
        dx = self._diagnoses(claim, ln)
        for rule, pid in applicable:
            if not rule["covered"] and dx & rule["_dx"]:
                bad = ", ".join(sorted(dx & rule["_dx"]))
                self._f(
                    claim,
                    ln,
                    "diagnosis",
                    "error",
                    "CO-50",
                    rule,
                    f"{ln.code}: diagnosis {bad} is listed as not covered by {rule['policy']} "
                    f"version {rule.get('policy_version')}",
                    pid,
                    policy=rule["policy"],
                    policy_version=rule.get("policy_version"),
                )
        covering = [(r, p) for r, p in applicable if r["covered"]]
        # A covering policy that lists no diagnoses leaves coverage to its criteria (policy text):
        # nothing to check the claim's diagnoses against.
        if covering and all(r["_dx"] for r, _ in covering) and not any(dx & r["_dx"] for r, _ in covering):
            rule, pid = covering[0]
            policies = sorted({f"{r['policy']} v{r.get('policy_version')}" for r, _ in covering})
            self._f(
                claim,
                ln,
                "diagnosis",
                "error",
                "CO-50",
                rule,
                f"{ln.code}: no claim diagnosis ({', '.join(sorted(dx)) or 'none'}) is among those covered by "
                f"{'; '.join(policies)}",
                pid,
                policy=rule["policy"],
                policy_version=rule.get("policy_version"),
            )

    def _prior_auth(self, claim: dict[str, Any], ln: _Line) -> None:
        items = self.p.prior_auth.get((claim["payer"], ln.code))
        if not items or ln.raw.get("prior_auth") or claim.get("prior_auth"):
            return
        for rule, pid in _active(items, ln.dos):
            if rule.get("required"):
                self._f(
                    claim,
                    ln,
                    "prior_auth",
                    "error",
                    "CO-15",
                    rule,
                    f"{ln.code}: prior authorization required by {claim['payer']} policy {rule.get('policy')} "
                    "and none on the claim",
                    pid,
                    policy=rule.get("policy"),
                    policy_version=rule.get("policy_version"),
                )
                return

    def _price(self, claim: dict[str, Any], ln: _Line) -> None:
        allowed, paid = ln.raw.get("allowed_amount"), ln.raw.get("paid_amount")
        if allowed is None and paid is None:
            return
        found = _first(self.p.prices.get(ln.code), ln.dos)
        if found is None:
            return
        rule, pid = found
        limit = rule["payment_limit"]
        if limit is None:
            return
        expected = ln.units * _dec(limit)
        if allowed is not None:
            got, what, target = _dec(allowed), "allowed", expected
        else:
            coins = _dec(rule.get("coinsurance_pct") or 20) / 100
            got, what, target = _dec(paid), "paid", expected * (1 - coins)
        target = target.quantize(Decimal("0.01"))
        if got < target * (1 - self.tolerance) - Decimal("0.005"):
            self._f(
                claim,
                ln,
                "price",
                "warning",
                None,
                rule,
                f"{ln.code} x {_fmt(ln.units)} {what} ${got:,.2f}, expected ${target:,.2f} "
                f"(units x ASP payment limit ${_fmt(limit)}"
                + ("" if allowed is not None else f", less {_fmt(rule.get('coinsurance_pct') or 20)}% co-insurance")
                + f"): underpaid by ${target - got:,.2f}",
                pid,
            )

    def _ndc(self, claim: dict[str, Any], ln: _Line) -> None:
        ndc = ln.raw["ndc"]
        rows = list(_active(self.p.ndc.get(ndc), ln.dos))
        if not rows or not self.p.ndc:
            return
        if not any(r["code"] == ln.code for r, _ in rows):
            rule, pid = rows[0]
            codes = ", ".join(sorted({r["code"] for r, _ in rows}))
            self._f(claim, ln, "ndc", "error", "CO-4", rule, f"NDC {ndc} bills as {codes}, not {ln.code}", pid)


def _fmt(x: Any) -> str:
    return f"{_dec(x).normalize():f}"


def scrub(
    claims_path: Path,
    pack_dirs: Iterable[Path],
    *,
    tolerance: Decimal = DEFAULT_TOLERANCE,
    packs: LoadedPacks | None = None,
    full_check: bool = False,
) -> ScrubResult:
    """Check every claim of ``claims_path`` against the packs in ``pack_dirs`` (or ``packs`` already
    loaded; ``full_check``: see :func:`load_packs`)."""
    loaded = packs if packs is not None else load_packs(pack_dirs, full_check=full_check)
    try:
        claims, bad = read_claims(claims_path)
        result = ScrubResult(
            packs=[{k: p[k] for k in ("pack_id", "scope", "window", "rulebook_version", "dir")} for p in loaded.packs]
        )
        result.malformed = bad
        s = _Scrubber(loaded, tolerance)
        for claim in claims:
            result.lines += s.claim(claim)
            result.claims += 1
        result.findings = s.out
        return result
    finally:
        if packs is None:
            loaded.close()


def scrub_claims(
    claims: list[dict[str, Any]], loaded: LoadedPacks, tolerance: Decimal = DEFAULT_TOLERANCE
) -> list[Finding]:
    """The checks over claims already read and validated (the benchmark's hot loop)."""
    s = _Scrubber(loaded, tolerance)
    for claim in claims:
        s.claim(claim)
    return s.out
