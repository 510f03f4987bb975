"""CMS NCCI procedure-to-procedure (PTP) edit file -> :class:`PtpRecord` (DOMAIN.md §3.5,
PROVENANCE.md §2 and "Format notes: PTP txt").

``body`` is one part of one setting's quarterly table, either the CMS zip
(``medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip`` holding ``ccipra-v322r0-f1.TXT``)
or the bare txt. A practitioner table (2,633,389 rows in 2026 Q3) ships as four such zips.

**Streaming.** A part is ~650,000 rows (~50 MB of text): the member is read line by line through
``io.TextIOWrapper`` over ``ZipFile.open`` and records are yielded as they are read. Nothing holds
the whole text or a list of records; the state is the previous row (for the order check), the set of
codes seen and a cache of decoded row tails (bounded). The declared member size is checked before
reading (``parsers.archive.safe_members``) and ``ZipExtFile`` never inflates past it. Measured on
a generated full-size part (bench/generate.py, 650,113 rows) on the 2-core development machine:
1.6 s, ~400,000 rows/s, +21 MB peak memory. Of the 1.6 s, ~0.7 s is building the frozen
:class:`PtpRecord` (``frozen=True`` makes its ``__init__`` five times slower than a plain slotted
dataclass's; the same parse with a non-frozen record class takes 1.0 s).

**Chunks, for the loader** (:func:`parse_chunks`). ``sync`` does not build records for PTP: the
same checks run line by line (same errors, same counts, same line numbers), and the lines go out in
:class:`PtpChunk` batches of one ~4 MB block of text (~60,000 rows). Each row becomes the string
"column 1<TAB>column 2<TAB>n", n numbering its tail (flag, dates, indicator, rationale) decoded once
per distinct tail, and a chunk is one JSON array of those strings. ``rulebook.facts.load_chunks``
inserts a chunk with one SQL statement (``json_each`` joined to the tail rows, :data:`ROW_SQL`), on
the main thread while this generator runs on a second one. No Python object per row outlives its
block.

**File names and settings** (CMS's links, as recorded in reuven-ops/Biller
evals/fixtures/cms_ncci_ptp/ptp_page.links.excerpt.html and in several other public repositories):

* ``ccipra`` = practitioner (``...-practitioner-ptp-edits-ccipra-vNNNrN-fN.zip``), ``ccioph`` =
  outpatient hospital (``...-hospital-ptp-edits-ccioph-vNNNrN-fN.zip``), each in parts f1..f4 split at
  column-1 code boundaries. There are no Medicare DME PTP edits: CMS's PTP page lists only "Hospital
  PTP Edits" and "Practitioner PTP Edits", and the Medicaid NCCI Edit Design Manual says PTP files
  are prepared for two provider types (PRA, OPH) and MUE files for three (PRA, OPH, DME). Any other
  prefix is a :class:`ParseError`.
* The version names the quarter: ``v322r0`` is 2026 Q3 (32 = year - 1994, 2 = quarter - 1; observed
  v301 = 2024-04-01, v320..v323 = 2026 Q1..Q4). The zip name (``2026q3``), the member name and
  ``meta.release`` (``2026-07``, ``2026-07-01`` or ``2026-Q3``) must agree, or it is a
  :class:`ParseError` naming both: a zip holding another file is not read as if it were itself.

**Layout** (measured on the recorded slice ``ccipra-v322r0-f1``): Latin-1, CRLF, tab-delimited. Six
header lines, found by content rather than counted: the AMA notice and the title
("Column1/Column2 Edits") are skipped and counted as ``preamble_line``; the column header starts at
the line whose first cell is "Column 1" and is wrapped over four lines. Its cells, read down each
column, must be exactly :data:`HEADER` (whitespace aside), else :class:`LayoutChanged` naming the
column: a column that moved or changed meaning (the deletion column's ``*=no data``) must not be
read silently. Data rows start at the first line whose first cell is a five-character code. A row
is Column1, Column2, prior-1996 flag (``*`` or blank), effective YYYYMMDD, deletion YYYYMMDD or
``*``, modifier indicator 0/1/9, rationale; a row with another number of fields is a
:class:`ParseError` ("FILE line N: expected 7 tab-separated fields, found 5").

**Deletion date: the last day the edit is in force** (inclusive, as HCPCS TERM DT, and as DESIGN.md
"The rulebook" already lists it), so ``eff_end = deletion + 1 day``. Sources and evidence:

* CMS publishes edits quarterly, effective on quarter starts; every deletion date in the recorded
  slice that differs from its effective date is a quarter's last day (20181231, 20200630,
  20231231, 20260630 ...), never a quarter start. Consultation code 99241, deleted from CPT on
  2023-01-01, has its edit (0001A/99241) deleted 20221231: the last day 99241 could be billed.
* Modifier indicator 9 ("9=not applicable" in the file's own header) marks edits CMS deleted
  retroactively: "the deletion date and the effective date for the edit will be the same", edits
  that "were, essentially, never effective" (AAPC Coding Alerts "Know When to Unbundle With NCCI
  Modifier Indicators", 2005, and "Say Hello and Goodbye to Indicator '9'"). The slice has six such
  rows, all with indicator 9 (0001A/90473 ... 20220101/20220101; two 20151001/20151001).
  The first of those articles also says an edit "does not apply ... on or after the deletion date";
  the published dates above contradict that reading, and no CMS text found says which it is (the
  MLN booklet "How to Use the Medicare NCCI Tools", ICN 901346, names the column only).

  So a row whose deletion date equals its effective date was **never in force**: it is yielded with
  an empty interval, ``eff_end == eff_start`` (counted ``never_in_force``). It is still yielded, so a
  rulebook that held the edit from an older release learns that it was withdrawn from its start.
  Read as "first day out", the same rows would also be empty, but every other deletion would end the
  edit a day early (0001A/99241 would stop on 2022-12-31, a day 99241 was still valid).

Other counts: ``deletion_before_effective`` (yielded as never in force), ``retroactive_without_mi_9``
(equal dates with modifier indicator 0/1), ``mi_9_with_interval`` (indicator 9 on an edit that was in
force for some time), ``out_of_order`` (CMS sorts by column 1, column 2 as bytes; the recorded
slice is sorted), ``blank_line``, ``header_line``. The same (column 1, column 2, effective date) on
two adjacent lines is a :class:`ParseError` naming both lines; the same pair with another effective
date is an edit deleted and added again and is kept.

``locator`` is ``"<member> line N"`` (1-based line of the txt, header lines included).
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import PurePosixPath
from typing import IO, Any, TypeVar

from parsers.archive import looks_like_html, open_zip, safe_members
from parsers.errors import LayoutChanged, ParseError
from parsers.records import PtpRecord, SourceMeta

__all__ = ["HEADER", "PREFIXES", "PtpChunk", "PtpFileName", "file_name", "parse", "parse_chunks"]

#: File-name prefix -> setting.
PREFIXES = {"ccipra": "practitioner", "ccioph": "outpatient_hospital"}
_ZIP_WORDS = {"practitioner": "ccipra", "hospital": "ccioph"}
#: The column header, each column's wrapped cells read top to bottom.
HEADER = (
    "Column 1",
    "Column 2",
    "*=in existence prior to 1996",
    "Effective Date",
    "Deletion Date *=no data",
    "Modifier 0=not allowed 1=allowed 9=not applicable",
    "PTP Edit Rationale",
)
FIELDS = len(HEADER)
_MAX_PREAMBLE = 20
_CHUNK = 1 << 20  # TextIOWrapper reads this many bytes at a time (the default 8 KiB costs ~10%)

_MEMBER = re.compile(r"(?P<prefix>cci[a-z]{3})-v(?P<version>\d{3})r(?P<revision>\d+)-f(?P<part>\d+)", re.I)
_ZIP = re.compile(
    r"ncci-(?P<y>\d{4})-?q(?P<q>[1-4])-(?P<word>[a-z]+)-ptp-edits-"
    r"(?P<file>cci[a-z]{3}-v\d{3}r\d+-f\d+)",
    re.I,
)
_RELEASE_QUARTER = re.compile(r"(?P<y>\d{4})-?q(?P<q>[1-4])\b", re.I)
_RELEASE_MONTH = re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})(?:-(?P<d>\d{2}))?")
_DATA_START = re.compile(r"[A-Za-z0-9]{5}\t")
_CODE = re.compile(r"[A-Z0-9]{5}")
_MODIFIER_INDICATORS = {"0": 0, "1": 1, "9": 9}
_ONE_DAY = timedelta(days=1)
_T = TypeVar("_T")
#: A row reader: (first data line, the rest of the text, its line number, member, names, meta) -> items.
_Reader = Callable[[str, IO[str], int, str, "PtpFileName", SourceMeta], Iterator[_T]]


@dataclass(frozen=True)
class PtpFileName:
    """What ``ccipra-v322r0-f1`` says: setting, version, revision, part and (derived) quarter."""

    stem: str  # "ccipra-v322r0-f1", lower case
    prefix: str
    setting: str | None  # None for a prefix that is not a Medicare PTP table
    version: str
    revision: int
    part: int

    @property
    def quarter(self) -> tuple[int, int] | None:
        """(year, quarter) the version stands for: v322 -> (2026, 3); None if it cannot be one."""
        minor = int(self.version[2])
        return (1994 + int(self.version[:2]), minor + 1) if minor < 4 else None


def file_name(name: str) -> PtpFileName | None:
    """The PTP file name inside ``name`` (a member, a bare file or a zip name), or None."""
    found = _MEMBER.search(PurePosixPath(name).name)
    if found is None:
        return None
    prefix = found["prefix"].lower()
    return PtpFileName(
        stem=found.group(0).lower(),
        prefix=prefix,
        setting=PREFIXES.get(prefix),
        version=found["version"],
        revision=int(found["revision"]),
        part=int(found["part"]),
    )


def parse(body: bytes, meta: SourceMeta) -> Iterator[PtpRecord]:
    """Yield one :class:`PtpRecord` per edit row of a CMS PTP zip or txt, streaming."""
    # One generator between the caller and the row loop: each level of ``yield from`` costs per row.
    yield from _open(body, meta, _rows)


def parse_chunks(body: bytes, meta: SourceMeta) -> Iterator[PtpChunk]:
    """The same rows as :func:`parse`, checked the same way (same errors, same ``meta.counts``), as
    :class:`PtpChunk` batches of raw lines that SQLite turns into ``ptp_edits`` rows itself
    (``rulebook.facts.load_chunks``). No record object is built per row: the loader's hot path."""
    yield from _open(body, meta, _chunks)


def _open(body: bytes, meta: SourceMeta, reader: _Reader[_T]) -> Iterator[_T]:
    """Open the zip's member (or the bare txt), check the names, and run ``reader`` over its lines."""
    name = meta.filename
    member = PurePosixPath(name).name
    try:
        if member.lower().endswith(".txt"):
            yield from _read(io.BytesIO(body), member, _names(member, name, meta), meta, reader)
            return
        if not (body.startswith(b"PK\x03\x04") or member.lower().endswith(".zip")):
            raise ParseError(f"{name}: not a PTP zip or txt file (unknown extension)", locator=name)
        zf = open_zip(body, name)
        path = _pick_member(safe_members(zf, name), name)
        member = PurePosixPath(path).name
        names = _names(member, name, meta)
        try:
            with zf.open(path) as raw:
                yield from _read(raw, member, names, meta, reader)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
            # BadZipFile: a CRC mismatch at the end; RuntimeError: an encrypted member.
            raise ParseError(
                f"{name}: member '{path}' cannot be read, corrupt or unsupported ({err})",
                locator=f"{name}/{path}",
            ) from err
    except ParseError as err:
        # Raised where only the file name is at hand; the caller needs source and URL too.
        err.source = err.source or meta.source
        err.url = err.url or meta.url
        raise


def _pick_member(members: list[str], name: str) -> str:
    txt = [m for m in members if PurePosixPath(m).suffix.lower() == ".txt" and file_name(m)]
    if not txt:
        raise ParseError(
            f"{name}: no PTP edit file (ccipra-/ccioph-vNNNrN-fN.txt) in the zip "
            f"(members: {', '.join(members) or 'none'})",
            locator=name,
        )
    if len(txt) > 1:
        raise LayoutChanged(
            f"{name}: more than one PTP edit file ({', '.join(txt)}); cannot tell which to read", locator=name
        )
    return txt[0]


def _names(member: str, container: str, meta: SourceMeta) -> PtpFileName:
    """The member's file name, checked against the zip name and ``meta.release``."""
    names = file_name(member)
    if names is None:
        raise ParseError(
            f"{member}: no PTP file name (ccipra-vNNNrN-fN or ccioph-vNNNrN-fN) to take the setting from",
            locator=member,
        )
    if names.setting is None:
        raise ParseError(
            f"{member}: '{names.prefix}' is not a Medicare PTP table "
            "(ccipra = practitioner, ccioph = outpatient hospital)",
            locator=member,
        )
    zip_quarter = None
    found = _ZIP.search(PurePosixPath(container).name)
    if found is not None and PurePosixPath(container).name != member:
        if found["file"].lower() != names.stem:
            raise ParseError(f"{container}: the zip is named for {found['file']} but holds {member}", locator=container)
        if _ZIP_WORDS.get(found["word"].lower()) != names.prefix:
            raise ParseError(
                f"{container}: the zip is named for {found['word']} edits but holds {member} "
                f"({names.setting.replace('_', ' ')} edits)",
                locator=container,
            )
        zip_quarter = (int(found["y"]), int(found["q"]))
        if names.quarter is not None and names.quarter != zip_quarter:
            raise ParseError(
                f"{container}: the zip is named for {zip_quarter[0]} Q{zip_quarter[1]} but holds {member} "
                f"(version v{names.version} = {names.quarter[0]} Q{names.quarter[1]})",
                locator=container,
            )
    quarter = names.quarter or zip_quarter
    if meta.release and quarter is not None:
        release = _release_quarter(meta.release, member)
        if release != quarter:
            said = f"version v{names.version}" if names.quarter else f"the zip name {PurePosixPath(container).name}"
            raise ParseError(
                f"{member}: {said} is {quarter[0]} Q{quarter[1]}, but the release is {meta.release!r}",
                locator=member,
            )
    return names


def _release_quarter(release: str, member: str) -> tuple[int, int]:
    quarter = _RELEASE_QUARTER.search(release)
    if quarter is not None:
        return int(quarter["y"]), int(quarter["q"])
    month = _RELEASE_MONTH.search(release)
    if month is not None and 1 <= int(month["m"]) <= 12:
        return int(month["y"]), (int(month["m"]) - 1) // 3 + 1
    raise ParseError(
        f"{member}: release {release!r} names no quarter (expected 2026-07, 2026-07-01 or 2026-Q3)",
        locator=member,
    )


# --- header -------------------------------------------------------------------------------------


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _check_header(lines: list[str], member: str, meta: SourceMeta) -> None:
    """Check the preamble lines (everything above the first data row)."""
    rows = [line.rstrip("\r\n").split("\t") for line in lines]
    start = next((i for i, r in enumerate(rows) if _normal(r[0]) == _normal(HEADER[0])), None)
    if start is None:
        raise LayoutChanged(
            f"{member}: no column header line (first cell 'Column 1') in lines 1-{len(lines)}",
            locator=member,
        )
    preamble = sum(1 for r in rows[:start] if any(c.strip() for c in r))
    if preamble:
        meta.counts["preamble_line"] += preamble
    header = rows[start:]
    meta.counts["header_line"] += len(header)
    where = f"lines {start + 1}-{len(lines)}" if len(header) > 1 else f"line {start + 1}"
    width = max(len(r) for r in header)
    stacked = [" ".join(r[i].strip() for r in header if i < len(r) and r[i].strip()) for i in range(width)]
    for i, expected in enumerate(HEADER):
        got = stacked[i] if i < len(stacked) else ""
        if _normal(got) != _normal(expected):
            raise LayoutChanged(
                f"{member}: header column {i + 1} ({where}) reads '{got}', expected '{expected}'",
                locator=member,
            )
    extra = [c for c in stacked[FIELDS:] if c]
    if extra:
        raise LayoutChanged(
            f"{member}: the header ({where}) has columns past the {FIELDS} expected: {', '.join(extra)}",
            locator=member,
        )


# --- rows ---------------------------------------------------------------------------------------


def _read(raw: IO[bytes], member: str, names: PtpFileName, meta: SourceMeta, reader: _Reader[_T]) -> Iterator[_T]:
    """Read and check the header lines now; return the reader's generator over the rest of the stream."""
    text = io.TextIOWrapper(raw, encoding="latin-1", newline="")
    text._CHUNK_SIZE = _CHUNK  # type: ignore[attr-defined]  # CPython's read size; not in typeshed
    preamble: list[str] = []
    first: str | None = None
    for line in text:
        if not preamble and looks_like_html(line.encode("latin-1")):
            raise ParseError(f"{member}: expected a PTP edit file, got an HTML page", locator=member)
        if _DATA_START.match(line):
            first = line
            break
        preamble.append(line)
        if len(preamble) > _MAX_PREAMBLE:
            raise LayoutChanged(
                f"{member}: no edit row (a line starting with a five-character code) in the first "
                f"{_MAX_PREAMBLE} lines",
                locator=member,
            )
    _check_header(preamble, member, meta)
    if first is None:
        raise ParseError(f"{member}: the PTP file has a header but no edit rows", locator=member)
    return reader(first, text, len(preamble) + 1, member, names, meta)


def _rows(
    first_line: str, text: IO[str], first: int, member: str, names: PtpFileName, meta: SourceMeta
) -> Iterator[PtpRecord]:
    """The hot loop, one record per line.

    Building the frozen record is ~1.1 µs of the ~2.4 µs a row takes, so the rest avoids work: the row's
    tail (flag, dates, indicator, rationale) is decoded once per distinct tail and looked up as one
    string; codes are checked once per distinct code; both codes being five characters (checked),
    the line starts "<column 1>\t<column 2>\t" and is sliced, not split. Anything unusual (a blank
    line, a wrong field count, a bad code) goes to :func:`_slow_row`, which raises or counts."""
    setting = names.setting
    assert setting is not None  # checked by _names
    prefix = f"{member} line "
    states: dict[str, _State] = {}
    codes: set[str] = set()
    counts: Counter[str] = Counter()
    pc1 = pc2 = ""
    pstart = date.min
    number = first - 1
    try:
        for number, line in enumerate(itertools.chain((first_line,), text), first):  # noqa: B007
            tail = line[12:]
            state = states.get(tail)
            if state is None or line[5:12:6] != "\t\t":
                state = _slow_row(line, f"{prefix}{number}", counts)
                if state is None:
                    continue
                if len(states) >= _MAX_STATES:  # bounded memory whatever the file holds
                    states.clear()
                states[tail] = state
            c1 = line[:5]
            c2 = line[6:11]
            prior_1996, start, end, deleted, indicator, anomalies, rationale = state
            # Order and duplicates: CMS sorts by column 1, column 2 as bytes.
            if c1 != pc1:
                if c1 not in codes:
                    _check_code(c1, "column 1", line, f"{prefix}{number}", codes)
                if c1 < pc1:
                    counts["out_of_order"] += 1
                pc1 = c1
                pc2 = ""
            elif c2 <= pc2:
                if c2 != pc2:
                    counts["out_of_order"] += 1
                elif start == pstart:
                    locator = f"{prefix}{number}"
                    raise ParseError(
                        f"{locator}: edit {c1}/{c2} effective {start:%Y%m%d} appears twice "
                        f"(lines {number - 1} and {number})",
                        locator=locator,
                    )
            if c2 not in codes:
                _check_code(c2, "column 2", line, f"{prefix}{number}", codes)
            pc2 = c2
            pstart = start
            if anomalies:
                counts.update(anomalies)
            yield PtpRecord(c1, c2, setting, prior_1996, start, end, deleted, indicator, rationale, f"{prefix}{number}")
    finally:
        # Merged once, also when the caller stops early: a Counter update per row costs ~5 %.
        meta.counts.update(counts)
    if number - first + 1 == counts["blank_line"]:  # every line was blank (the only lines skipped)
        raise ParseError(f"{member}: the PTP file has a header but no edit rows", locator=member)


#: (prior_1996, eff_start, eff_end, deletion_date, modifier_indicator, counts to add, rationale)
_State = tuple[bool, date, "date | None", "date | None", int, tuple[str, ...], str]
_MAX_STATES = 200_000


def _slow_row(line: str, locator: str, counts: Counter[str]) -> _State | None:
    """A line the fast path has not seen the like of: None for a blank line (counted), else the
    decoded tail of a well-formed row, else the :class:`ParseError` that names the problem."""
    fields = line.split("\t")
    if len(fields) != FIELDS:
        if not line.strip():
            counts["blank_line"] += 1
            return None
        raise ParseError(f"{locator}: expected {FIELDS} tab-separated fields, found {len(fields)}", locator=locator)
    c1, c2, prior, eff, deletion, mi, rationale = fields
    for code, column in ((c1, "column 1"), (c2, "column 2")):
        if not _CODE.fullmatch(code):
            raise ParseError(f"{locator}: {column} {code!r} is not a HCPCS/CPT code", locator=locator)
    if prior not in ("", "*"):
        raise ParseError(f"{locator}: prior-1996 flag {prior!r} for {c1}/{c2} is not '*' or blank", locator=locator)
    start = _day(eff, "effective date", locator)
    indicator = _MODIFIER_INDICATORS.get(mi)
    if indicator is None:
        raise ParseError(f"{locator}: modifier indicator {mi!r} for {c1}/{c2} is not 0, 1 or 9", locator=locator)
    text = rationale.strip()  # the last field still ends in CRLF
    if deletion == "*":
        return prior == "*", start, None, None, indicator, ("mi_9_with_interval",) * (indicator == 9), text
    deleted = _day(deletion, "deletion date", locator)
    if deleted > start:
        # In force from the effective date through the deletion date, inclusive.
        anomalies = ("mi_9_with_interval",) * (indicator == 9)
        return prior == "*", start, deleted + _ONE_DAY, deleted, indicator, anomalies, text
    # Deleted retroactively: never in force. An empty interval, still yielded, so that an older
    # release's statement of the edit is replaced rather than kept.
    if deleted < start:
        anomalies = ("deletion_before_effective",)
    else:
        anomalies = ("never_in_force",) + ("retroactive_without_mi_9",) * (indicator != 9)
    return prior == "*", start, start, deleted, indicator, anomalies, text


def _check_code(code: str, column: str, line: str, locator: str, codes: set[str]) -> None:
    if not _CODE.fullmatch(code):
        _slow_row(line, locator, Counter())  # a field-count problem says more than a bad code
        raise ParseError(f"{locator}: {column} {code!r} is not a HCPCS/CPT code", locator=locator)
    codes.add(code)


def _day(text: str, what: str, locator: str) -> date:
    day = _DAYS.get(text)
    if day is not None:
        return day
    if len(text) == 8 and text.isdigit():
        try:
            day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            pass
        else:
            if len(_DAYS) < 100_000:  # a few thousand distinct dates in a national table
                _DAYS[text] = day
            return day
    raise ParseError(f"{locator}: {what} {text!r} is not a YYYYMMDD date", locator=locator)


_DAYS: dict[str, date] = {}


# --- chunks: the loader's hot path ------------------------------------------------------------------

#: Text read per block, and so per :class:`PtpChunk` (~60,000 rows; a few are in memory at once).
_BLOCK_CHARS = 1 << 22
_EOL = re.compile("\r\n|\r|\n")  # what io.TextIOWrapper(newline="") ends a line at
#: The columns of a tail row: what everything after "column 1<TAB>column 2<TAB>" decodes to, once per
#: distinct tail, under a number the chunk's lines carry instead of the tail.
TAIL_COLUMNS = ("id", "prior_1996", "eff_start", "deletion_date", "modifier_indicator", "rationale", "eff_end")
#: How SQLite makes each ``ptp_edits`` row column from a chunk: ``j`` is ``json_each`` over
#: :attr:`PtpChunk.lines` (``j.value`` is "column 1<TAB>column 2<TAB>tail id", ``j.key`` its index)
#: and ``t`` its tail row; the named parameters are :meth:`PtpChunk.params`. The same values as
#: ``rulebook.kinds.ptp_values`` gives for the record (checked by tests/test_facts.py).
ROW_SQL = {
    "column1": "substr(j.value, 1, 5)",
    "column2": "substr(j.value, 7, 5)",
    "setting": ":setting",
    "eff_start": "t.eff_start",
    "deletion_date": "t.deletion_date",
    "modifier_indicator": "t.modifier_indicator",
    "prior_1996": "t.prior_1996",
    "rationale": "t.rationale",
    "eff_end": "t.eff_end",
    "locator": ":prefix || (j.key + :first)",
}
TAIL_JOIN = "t.id = CAST(substr(j.value, 13) AS INTEGER)"


@dataclass
class PtpChunk:
    """Consecutive, already checked edit rows of one PTP file, for a set-based insert.

    Every line has passed the checks :func:`parse` makes (seven fields, five-character codes, dates,
    indicator, order), so both codes sit at fixed places; the rest of the line (its tail: flag,
    dates, indicator, rationale) is replaced by the number of its tail row, one of those sent so far
    (:attr:`tails` holds the ones first sent with this chunk)."""

    lines: str  # JSON array: per line "column 1<TAB>column 2<TAB>tail id"
    count: int
    first_line: int  # line number of lines[0]; the lines are consecutive (a blank line ends a chunk)
    setting: str
    locator_prefix: str  # "<member> line "
    tails: list[tuple[Any, ...]]  # new tail rows, in TAIL_COLUMNS order
    lo: tuple[str, str]  # (column 1, column 2) of the first line
    hi: tuple[str, str]  # ... and of the last
    # True when every row so far in the file (this chunk included) came in CMS's order with no key
    # (pair, effective date) twice: then the chunk's keys are unique, ascending from lo to hi, and
    # after every earlier chunk's. Once False, False for the rest of the file.
    ordered: bool
    row_sql: dict[str, str]
    tail_columns: tuple[str, ...] = TAIL_COLUMNS
    tail_join: str = TAIL_JOIN

    @property
    def fixed(self) -> dict[str, Any]:
        return {"setting": self.setting}

    def params(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "setting": self.setting,
            "prefix": self.locator_prefix,
            "first": self.first_line,
        }


def _split(block: str) -> list[str]:
    """``block`` (ending on a line end, or at the end of the file) as lines without their ends."""
    ended = block.endswith(("\n", "\r"))
    if "\r" not in block:
        lines = block.split("\n")
    elif block.count("\r") == block.count("\r\n") == block.count("\n"):
        lines = block.split("\r\n")
    else:
        lines = _EOL.split(block)
    if ended:
        lines.pop()
    return lines


def _blocks(first_line: str, text: IO[str]) -> Iterator[list[str]]:
    block = first_line
    while True:
        more = text.read(_BLOCK_CHARS)
        if not more:
            if block:
                yield _split(block)
            return
        yield _split(block + more + text.readline())
        block = ""


def _chunks(
    first_line: str, text: IO[str], first: int, member: str, names: PtpFileName, meta: SourceMeta
) -> Iterator[PtpChunk]:
    """:func:`_rows`' checks, line for line, without building records: see :class:`PtpChunk`."""
    setting = names.setting
    assert setting is not None  # checked by _names
    prefix = f"{member} line "
    states: dict[str, tuple[date, tuple[str, ...], str]] = {}
    tail_ids = itertools.count(1)
    codes: set[str] = set()
    counts: Counter[str] = Counter()
    pc1 = pc2 = ""
    pstart = date.min
    pair: tuple[str, str] | None = None
    pair_starts: set[date] = set()
    ordered = True
    number = first - 1
    rows: list[str] = []
    tails: list[tuple[Any, ...]] = []
    start_line = first

    def chunk() -> PtpChunk:
        head = rows[0]
        return PtpChunk(
            # JSON by hand: each row is "<code>\t<code>\t<digits>" with checked codes, so a tab is
            # the one character to escape (json.dumps costs ~4x as much).
            '["' + '","'.join(rows).replace("\t", "\\t") + '"]',
            len(rows),
            start_line,
            setting,
            prefix,
            tails,
            (head[:5], head[6:11]),
            (pc1, pc2),
            ordered,
            ROW_SQL,
        )

    get = states.get
    add = rows.append
    try:
        # A chunk is a block of the file (~4 MB of text), or less where a blank line cuts it.
        for block in _blocks(first_line, text):
            start_line = number + 1
            for number, line in enumerate(block, start_line):  # noqa: B007 (number is read after the loop)
                tail = line[12:]
                state = get(tail)
                if state is None or line[5:12:6] != "\t\t":
                    full = _slow_row(line, f"{prefix}{number}", counts)
                    if full is None:  # a blank line (counted) ends the chunk: its lines are consecutive
                        if rows:
                            yield chunk()
                            rows, tails = [], []
                            add = rows.append
                        start_line = number + 1
                        continue
                    if state is None:
                        if len(states) >= _MAX_STATES:  # bounded memory whatever the file holds
                            states.clear()
                        prior_1996, start, end, deleted, indicator, anomalies, rationale = full
                        ref = next(tail_ids)
                        tails.append(
                            (
                                ref,
                                int(prior_1996),
                                start.isoformat(),
                                deleted.isoformat() if deleted else None,
                                indicator,
                                rationale,
                                end.isoformat() if end else None,
                            )
                        )
                        state = states[tail] = (start, anomalies, str(ref))
                c1 = line[:5]
                c2 = line[6:11]
                start, anomalies, ref_text = state
                # Order and duplicates, as in _rows; a key seen twice also makes the rest unordered.
                if c1 != pc1:
                    if c1 not in codes:
                        _check_code(c1, "column 1", line, f"{prefix}{number}", codes)
                    if c1 < pc1:
                        counts["out_of_order"] += 1
                        ordered = False
                    pc1 = c1
                    pc2 = ""
                elif c2 <= pc2:
                    if c2 != pc2:
                        counts["out_of_order"] += 1
                        ordered = False
                    elif start == pstart:
                        locator = f"{prefix}{number}"
                        raise ParseError(
                            f"{locator}: edit {c1}/{c2} effective {start:%Y%m%d} appears twice "
                            f"(lines {number - 1} and {number})",
                            locator=locator,
                        )
                    else:  # the same pair again with another effective date (deleted, added again)
                        if pair != (c1, c2):
                            pair, pair_starts = (c1, c2), {pstart}
                        if start in pair_starts:
                            ordered = False
                        pair_starts.add(start)
                if c2 not in codes:
                    _check_code(c2, "column 2", line, f"{prefix}{number}", codes)
                pc2 = c2
                pstart = start
                if anomalies:
                    counts.update(anomalies)
                add(line[:12] + ref_text)
            if rows:
                yield chunk()
                rows, tails = [], []
                add = rows.append
    finally:
        meta.counts.update(counts)
    if number - first + 1 == counts["blank_line"]:
        raise ParseError(f"{member}: the PTP file has a header but no edit rows", locator=member)
