"""The loopback mirror: the recorded files of ``shared/data`` served at their real URL paths on 127.0.0.1.

Mirror mapping (DESIGN.md): a request for ``https://HOST/PATH?QUERY`` is sent to
``http://127.0.0.1:PORT/HOST/PATH?QUERY``. So this server's paths are ``/HOST/PATH``, and the same
spiders run against CMS on the internet and against this mirror on loopback.

What it serves is a route table, ``path -> Route`` (a function returning a :class:`Document`), built
by one route builder per source (:data:`ROUTE_BUILDERS`); adding a source means adding a builder.
For ``cms_hcpcs`` it serves:

* ``/www.cms.gov/robots.txt``: constructed, allows everything;
* the constructed landing page (``policysync/mirror_pages/cms_hcpcs_quarterly_update.html``, rendered
  with the links of the files currently served, so :meth:`MirrorServer.put` can "publish" a quarter);
* the 2017-2019 annual zips, byte for byte as recorded, with their companion files (corrections,
  NOC codes, record layout zips, index and table-of-drugs PDFs) under
  ``/www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/``;
* the 2020 April/July/October and 2025 October xlsx, and the 2026 October csv excerpt, wrapped into a
  zip on the fly under ``/www.cms.gov/files/zip/<month>-<year>-alpha-numeric-hcpcs-file.zip``. These
  zips are STORED (no compression, so no zlib version enters the bytes) with fixed timestamps and
  attributes: the same data gives byte-identical zips, so their sha256 is stable.

For ``cms_ncci_mue`` and ``cms_ncci_ptp`` (DOMAIN.md §3.5) it serves constructed MUE and PTP landing
pages, the recorded MUE practitioner excerpt and PTP ``ccipra`` f1 excerpt zipped on the fly under
their real names, and CMS's AMA licence gate in front of the PTP files (see the NCCI section below).
``extra_dirs`` adds generated full-size MUE and PTP zips, mapped onto the right page by their real
file names, so a benchmark can crawl files of the real size through the mirror.

Every document carries a strong ETag (its sha256) and a Last-Modified, and conditional requests
(If-None-Match, else If-Modified-Since) are answered with 304. ``overrides`` inject faults by path.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import io
import re
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from string import Template
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from policysync.mirror_faults import Fault

__all__ = [
    "CMS_HOST",
    "DEFAULT_PORT",
    "HCPCS_LANDING_PATH",
    "HCPCS_RELEASES",
    "LICENSE_PATH",
    "MUE_LANDING_PATH",
    "NCCI_FILES",
    "PTP_LANDING_PATH",
    "ROUTE_BUILDERS",
    "Document",
    "HcpcsRelease",
    "Link",
    "MirrorServer",
    "MirrorSite",
    "NcciFile",
    "SeenRequest",
    "build_zip",
    "cms_ncci_mue_routes",
    "cms_ncci_ptp_routes",
    "generated_ncci_file",
    "hcpcs_release_zip",
    "license_href",
    "mirror_path",
    "ncci_extra_routes",
    "serve_forever",
]

DEFAULT_PORT = 8765
CMS_HOST = "www.cms.gov"
HCPCS_LANDING_PATH = (
    f"/{CMS_HOST}/medicare/coding-billing/healthcare-common-procedure-system/quarterly-update"
)
_ANNUAL_DIR = "/Medicare/Coding/HCPCSReleaseCodeSets/Downloads"
_PAGES_DIR = Path(__file__).resolve().parent / "mirror_pages"

Route = Callable[[], "Document"]
#: A response given as is: (status, headers, body).
Answer = tuple[int, dict[str, str], bytes]
#: Answers a request by (path, query) before the route table is consulted, or passes (None).
Handler = Callable[[str, str], "Answer | None"]


def mirror_path(real_url: str) -> str:
    """``https://HOST/PATH?QUERY`` -> ``/HOST/PATH?QUERY`` (the path this mirror serves it at)."""
    parts = urlsplit(real_url)
    path = f"/{parts.hostname}{parts.path or '/'}"
    return f"{path}?{parts.query}" if parts.query else path


def _http_date(dt: datetime) -> str:
    return email.utils.format_datetime(dt.astimezone(UTC), usegmt=True)


@dataclass
class Document:
    """One served resource. ``load`` is called once, on first use, so big files are read lazily."""

    load: Callable[[], bytes]
    content_type: str
    last_modified: datetime
    _body: bytes | None = field(default=None, repr=False)
    _etag: str | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, body: bytes, content_type: str, last_modified: datetime) -> Document:
        return cls(lambda: body, content_type, last_modified, body)

    def body(self) -> bytes:
        with self._lock:
            if self._body is None:
                self._body = self.load()
            return self._body

    @property
    def etag(self) -> str:
        # Hashed once: the generated PTP files are tens of MB and every request needs the ETag.
        if self._etag is None:
            self._etag = f'"{hashlib.sha256(self.body()).hexdigest()}"'
        return self._etag


@dataclass(frozen=True)
class Link:
    """A link on a constructed landing page: ``href`` as written in the page (site-relative)."""

    href: str
    text: str


@dataclass(frozen=True)
class SeenRequest:
    """What the mirror was asked: tests check conditional headers and retry counts with it."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class MirrorSite:
    """What the route builders fill in: routes by path, and the links of each landing page.

    ``gated`` maps the mirror path of a licence-gated file to the site-relative href of its licence
    page; ``handlers`` (by name) answer requests the route table cannot, such as the licence page
    whose content depends on the query.
    """

    routes: dict[str, Route] = field(default_factory=dict)
    links: dict[str, list[Link]] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)


def _add_cms_robots(site: MirrorSite) -> None:
    robots = Document.of(
        b"# Constructed for the policysync loopback mirror; not a copy of the CMS robots.txt.\n"
        b"User-agent: *\nAllow: /\n",
        "text/plain; charset=utf-8",
        datetime(2016, 1, 1, tzinfo=UTC),
    )
    site.routes.setdefault(f"/{CMS_HOST}/robots.txt", _static(robots))


# --- cms_hcpcs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HcpcsRelease:
    """One HCPCS Alpha-Numeric file as the mirror publishes it.

    ``recorded`` is served byte for byte; otherwise the zip is built from ``members``
    (name inside the zip, path relative to the data folder). ``published`` is constructed
    (the first day of the month two months before the release): it is the Last-Modified
    and the timestamp of every member of a zip built here.
    """

    release: str  # "2020-04"
    path: str  # real path on www.cms.gov
    text: str  # link text on the landing page
    published: datetime
    recorded: str | None = None
    members: tuple[tuple[str, str], ...] = ()
    extras: str | None = None  # folder of companion files (annual releases)


def _static(doc: Document) -> Route:
    return lambda: doc


def _published(release: str) -> datetime:
    year, month = (int(x) for x in release.split("-"))
    month -= 2
    if month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC)


def _annual(year: int) -> HcpcsRelease:
    release = f"{year}-01"
    return HcpcsRelease(
        release=release,
        path=f"{_ANNUAL_DIR}/{year}-Alpha-Numeric-HCPCS-File.zip",
        text=f"{year} Alpha-Numeric HCPCS File (ZIP)",
        published=_published(release),
        recorded=f"hcpcs/annual_{year}/{year}-Alpha-Numeric-HCPCS-File.zip",
        extras=f"hcpcs/annual_{year}",
    )


_MONTHS = {"01": ("january", "JAN"), "04": ("april", "APR"), "07": ("july", "JUL"), "10": ("october", "OCT")}


def _quarterly(release: str, members: tuple[tuple[str, str], ...]) -> HcpcsRelease:
    year, month = release.split("-")
    name, _ = _MONTHS[month]
    return HcpcsRelease(
        release=release,
        path=f"/files/zip/{name}-{year}-alpha-numeric-hcpcs-file.zip",
        text=f"{name.capitalize()} {year} Alpha-Numeric HCPCS File (ZIP)",
        published=_published(release),
        members=members,
    )


def _q2020(mm: str) -> HcpcsRelease:
    # Recorded as HCPC2020_<MM>_anweb.xlsx (renamed by the repository they came from); inside the
    # zip they get the CMS-style names (HCPC2020_APR_ANWEB.xlsx, like HCPC2025_OCT_ANWEB.xlsx).
    mon = _MONTHS[mm][1]
    return _quarterly(
        f"2020-{mm}",
        (
            (f"HCPC2020_{mon}_ANWEB.xlsx", f"hcpcs/quarterly_2020/HCPC2020_{mm}_anweb.xlsx"),
            (f"HCPC2020_{mon}_Trans_Alpha.xlsx", f"hcpcs/quarterly_2020/HCPC2020_{mm}_trans_alpha.xlsx"),
        ),
    )


#: Every HCPCS release the mirror can serve, oldest first. The 2026 file is a 35-row excerpt
#: (PROVENANCE.md §1, G-slice): its zip has the real name shape, and the member keeps ".excerpt"
#: in its name so nobody mistakes it for the whole file.
HCPCS_RELEASES: tuple[HcpcsRelease, ...] = (
    _annual(2017),
    _annual(2018),
    _annual(2019),
    _q2020("04"),
    _q2020("07"),
    _q2020("10"),
    _quarterly("2025-10", (("HCPC2025_OCT_ANWEB.xlsx", "hcpcs/quarterly_2025/HCPC2025_OCT_ANWEB.xlsx"),)),
    _quarterly(
        "2026-10",
        (("HCPC2026_OCT_ANWEB.excerpt.csv", "hcpcs/quarterly_2026/HCPC2026_OCT_ANWEB.excerpt.csv"),),
    ),
)

_CONTENT_TYPES = {".zip": "application/zip", ".pdf": "application/pdf", ".txt": "text/plain; charset=utf-8"}


def build_zip(members: Iterable[tuple[str, bytes]], date_time: datetime) -> bytes:
    """A zip of ``members`` whose bytes depend only on names, contents and ``date_time``."""
    stamp = (
        date_time.year,
        date_time.month,
        date_time.day,
        date_time.hour,
        date_time.minute,
        date_time.second,
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 0
            info.create_version = 20
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return out.getvalue()


def _find_release(release: str) -> HcpcsRelease:
    for rel in HCPCS_RELEASES:
        if rel.release == release:
            return rel
    known = ", ".join(r.release for r in HCPCS_RELEASES)
    raise KeyError(f"no recorded HCPCS release {release!r} (known: {known})")


def hcpcs_release_zip(data_dir: Path, release: str) -> bytes:
    """The bytes the mirror serves for ``release`` ("2020-04"): the recorded zip or the one built here."""
    rel = _find_release(release)
    data_dir = Path(data_dir)
    if rel.recorded:
        return (data_dir / rel.recorded).read_bytes()
    return build_zip(((name, (data_dir / src).read_bytes()) for name, src in rel.members), rel.published)


def _extra_text(name: str) -> str:
    p = PurePosixPath(name)
    words = " ".join(w for w in p.stem.replace("_", "-").split("-") if w)
    return f"{words} ({p.suffix.lstrip('.').upper()})"


def cms_hcpcs_routes(site: MirrorSite, data_dir: Path, releases: Iterable[str] | None = None) -> None:
    """Add robots.txt, the landing page and the HCPCS files (all, or only ``releases``) to ``site``."""
    wanted = None if releases is None else set(releases)
    if wanted is not None:
        unknown = wanted - {r.release for r in HCPCS_RELEASES}
        if unknown:
            raise KeyError(
                f"no recorded HCPCS release {sorted(unknown)} (known: "
                f"{', '.join(r.release for r in HCPCS_RELEASES)})"
            )
    _add_cms_robots(site)
    links = site.links.setdefault(HCPCS_LANDING_PATH, [])
    site.routes[HCPCS_LANDING_PATH] = lambda: _render_landing(site, HCPCS_LANDING_PATH)

    data_dir = Path(data_dir)
    for rel in HCPCS_RELEASES:
        if wanted is not None and rel.release not in wanted:
            continue
        doc = Document(
            partial(hcpcs_release_zip, data_dir, rel.release),
            "application/zip",
            rel.published,
        )
        site.routes[f"/{CMS_HOST}{rel.path}"] = _static(doc)
        links.append(Link(rel.path, rel.text))
        if rel.extras:
            folder = data_dir / rel.extras
            for extra in sorted(folder.iterdir()) if folder.is_dir() else []:
                if not extra.is_file() or extra.name == PurePosixPath(rel.path).name:
                    continue
                path = f"{_ANNUAL_DIR}/{extra.name}"
                ctype = _CONTENT_TYPES.get(extra.suffix.lower(), "application/octet-stream")
                extra_doc = Document(extra.read_bytes, ctype, rel.published)
                site.routes[f"/{CMS_HOST}{path}"] = _static(extra_doc)
                links.append(Link(path, _extra_text(extra.name)))


def _render_landing(
    site: MirrorSite,
    page: str,
    template_name: str = "cms_hcpcs_quarterly_update.html",
    order: Callable[[list[Link]], list[Link]] | None = None,
) -> Document:
    template = Template((_PAGES_DIR / template_name).read_text(encoding="utf-8"))
    # Newest first, as CMS lists its files: links are kept in publication order, so reverse them.
    links = list(site.links.get(page, []))
    ordered = order(links) if order is not None else list(reversed(links))
    items = [f'<li><a href="{html.escape(link.href)}">{html.escape(link.text)}</a></li>' for link in ordered]
    body = template.substitute(links="\n".join(items)).encode("utf-8")
    return Document.of(body, "text/html; charset=utf-8", datetime(2026, 1, 1, tzinfo=UTC))


# --- cms_ncci_mue and cms_ncci_ptp ---------------------------------------------------------------
#
# The MUE page links its quarterly table zips directly. The PTP page links each edit file part
# through CMS's AMA licence page, exactly as shared/data/pages/cms/ncci_ptp_page.links.excerpt.html
# records: ``<a href="/license/ama?file=/files/zip/<name>.zip">Practitioner PTP Edits v322r0 ...``.
# The licence page (``/license/ama?file=...``, constructed) shows an Accept button: a GET form that
# asks for the file with ``?agree=yes``, which is how public scrapers of the page describe the real
# one. The mirror also answers a request for a gated file WITHOUT ``agree=yes`` with a redirect to
# its licence page, so a crawl can only get the file by accepting. Whether cms.gov itself enforces
# that is not known (one public scraper fetches the unwrapped URL directly); the mirror is strict
# on purpose.

NCCI_DIR = f"/{CMS_HOST}/medicare/coding-billing/national-correct-coding-initiative-ncci-edits"
MUE_LANDING_PATH = f"{NCCI_DIR}/medicare-ncci-medically-unlikely-edits-mues"
PTP_LANDING_PATH = f"{NCCI_DIR}/medicare-ncci-procedure-procedure-ptp-edits"
LICENSE_PATH = f"/{CMS_HOST}/license/ama"

_MUE_SETTING_WORDS = {
    "practitioner-services": ("practitioner", "Practitioner Services"),
    "facility-outpatient-hospital-services": ("outpatient_hospital", "Facility Outpatient Hospital Services"),
    "dme-supplier-services": ("dme", "DME Supplier Services"),
}
_PTP_SETTINGS = {"ccipra": ("practitioner", "Practitioner"), "ccioph": ("outpatient_hospital", "Hospital")}
_SETTING_ORDER = ("practitioner", "outpatient_hospital", "dme")
_MONTH_NAMES = {1: "January", 4: "April", 7: "July", 10: "October"}

# The real file names (DOMAIN.md §3.5; public scrapers of the two pages):
# medicare-ncci-2026-q3-practitioner-services-mue-table.zip,
# medicare-ncci-2026-q2-facility-outpatient-hospital-services-mue-table.zip,
# medicare-ncci-2026-q2-dme-supplier-services-mue-table.zip;
# medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip,
# medicare-ncci-2026q2-hospital-ptp-edits-ccioph-v321r0-f1.zip.
_MUE_NAME = re.compile(
    r"medicare-ncci-(\d{4})-q([1-4])-(practitioner-services|facility-outpatient-hospital-services"
    r"|dme-supplier-services)-mue-table\.zip"
)
_PTP_NAME = re.compile(
    r"medicare-ncci-(\d{4})-?q([1-4])-(practitioner|hospital)-ptp-edits-(ccipra|ccioph)-(v\d{3}r\d+)"
    r"-f(\d+)\.zip"
)


@dataclass(frozen=True)
class NcciFile:
    """One MUE table zip or PTP edit file part as the mirror publishes it.

    Built from ``members`` (name inside the zip, path relative to the data folder) like the
    HCPCS quarterly zips, or served byte for byte from ``file`` (a generated zip).
    ``published`` is constructed (two months before the release, as for HCPCS).
    """

    source: str  # "cms_ncci_mue" | "cms_ncci_ptp"
    release: str  # "2026-07"
    setting: str  # "practitioner" | "outpatient_hospital" | "dme"
    path: str  # real path on www.cms.gov: /files/zip/<name>.zip
    text: str  # link text on the landing page
    published: datetime
    members: tuple[tuple[str, str], ...] = ()
    file: Path | None = None
    part: int | None = None  # PTP: 1 for -f1

    @property
    def gated(self) -> bool:
        return self.source == "cms_ncci_ptp"

    def load(self, data_dir: Path) -> bytes:
        if self.file is not None:
            return self.file.read_bytes()
        members = ((name, (data_dir / src).read_bytes()) for name, src in self.members)
        return build_zip(members, self.published)


def license_href(path: str) -> str:
    """``/files/zip/x.zip`` -> ``/license/ama?file=/files/zip/x.zip`` (the link the PTP page has)."""
    return f"/license/ama?file={quote(path, safe='/')}"


def _ncci_file_from_name(name: str, file: Path | None = None) -> NcciFile | None:
    """The :class:`NcciFile` a real-shaped MUE or PTP zip name stands for, or None."""
    m = _MUE_NAME.fullmatch(name)
    if m:
        year, quarter, words = int(m.group(1)), int(m.group(2)), m.group(3)
        release = f"{year:04d}-{1 + 3 * (quarter - 1):02d}"
        setting, label = _MUE_SETTING_WORDS[words]
        when = f"{_MONTH_NAMES[1 + 3 * (quarter - 1)]} 1, {year}"
        text = f"{label} MUE Table - Effective {when} (ZIP)"
        return NcciFile(
            "cms_ncci_mue", release, setting, f"/files/zip/{name}", text, _published(release), file=file
        )
    m = _PTP_NAME.fullmatch(name)
    if m:
        year, quarter = int(m.group(1)), int(m.group(2))
        code, version, part = m.group(4), m.group(5), m.group(6)
        release = f"{year:04d}-{1 + 3 * (quarter - 1):02d}"
        setting, label = _PTP_SETTINGS[code]
        text = f"{label} PTP Edits {version} (file {part})"
        return NcciFile(
            "cms_ncci_ptp",
            release,
            setting,
            f"/files/zip/{name}",
            text,
            _published(release),
            file=file,
            part=int(part),
        )
    return None


def generated_ncci_file(file: Path) -> NcciFile:
    """The :class:`NcciFile` for a generated zip named like the real one (ValueError otherwise)."""
    found = _ncci_file_from_name(file.name, file)
    if found is None:
        raise ValueError(
            f"{file}: not a CMS NCCI file name the mirror knows (expected e.g. "
            "medicare-ncci-2026-q3-practitioner-services-mue-table.zip or "
            "medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip)"
        )
    return found


_MUE_Q3_2026 = "medicare-ncci-2026-q3-practitioner-services-mue-table.zip"
_PTP_Q3_2026_F1 = "medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"

#: The recorded NCCI files (PROVENANCE.md §2, both G-slice excerpts), zipped on the fly under their
#: real zip names. The members keep their recorded names (real shape plus ".excerpt", as for the
#: 2026 HCPCS excerpt) so nobody mistakes them for whole tables. The PTP link text is the real
#: page's, from the recorded link excerpt, although the zip holds only the excerpt's 154 edits.
NCCI_FILES: tuple[NcciFile, ...] = (
    NcciFile(
        "cms_ncci_mue",
        "2026-07",
        "practitioner",
        f"/files/zip/{_MUE_Q3_2026}",
        "Practitioner Services MUE Table - Effective July 1, 2026 (ZIP)",
        _published("2026-07"),
        members=(
            (
                "MCR_MUE_PractitionerServices_Eff_07-01-2026.excerpt.csv",
                "mue/MCR_MUE_PractitionerServices_Eff_07-01-2026.excerpt.csv",
            ),
        ),
    ),
    NcciFile(
        "cms_ncci_ptp",
        "2026-07",
        "practitioner",
        f"/files/zip/{_PTP_Q3_2026_F1}",
        "Practitioner PTP Edits v322r0 (675,037 Records) 0001A/0591T -- 25441/G0471",
        _published("2026-07"),
        members=(("ccipra-v322r0-f1.excerpt.txt", "ncci_ptp/ccipra-v322r0-f1.excerpt.txt"),),
        part=1,
    ),
)


def _ncci_order(links: list[Link]) -> list[Link]:
    """As CMS lists them: newest quarter first, then setting, then part; unknown names last."""

    def key(link: Link) -> tuple[int, str, int, int]:
        path = urlsplit(link.href).path
        if path.rstrip("/").endswith("/license/ama"):
            path = parse_qs(urlsplit(link.href).query).get("file", [""])[0]
        found = _ncci_file_from_name(PurePosixPath(path).name)
        if found is None:
            return (1, "", 0, 0)
        year, month = (int(x) for x in found.release.split("-"))
        newest_first = f"{9999 - year:04d}-{12 - month:02d}"
        return (0, newest_first, _SETTING_ORDER.index(found.setting), found.part or 0)

    return sorted(links, key=key)


def _ensure_ncci_page(site: MirrorSite, page: str, template_name: str) -> None:
    _add_cms_robots(site)
    site.links.setdefault(page, [])
    if page not in site.routes:
        site.routes[page] = lambda: _render_landing(site, page, template_name, order=_ncci_order)
    if page == PTP_LANDING_PATH:
        site.handlers.setdefault("license_ama", partial(_license_gate, site))


def _add_ncci_file(site: MirrorSite, data_dir: Path, f: NcciFile) -> None:
    page = MUE_LANDING_PATH if f.source == "cms_ncci_mue" else PTP_LANDING_PATH
    _ensure_ncci_page(
        site, page, "cms_ncci_mue_page.html" if f.source == "cms_ncci_mue" else "cms_ncci_ptp_page.html"
    )
    mirror = f"/{CMS_HOST}{f.path}"
    site.routes[mirror] = _static(Document(partial(f.load, data_dir), "application/zip", f.published))
    href = license_href(f.path) if f.gated else f.path
    if f.gated:
        site.gated[mirror] = href
    links = site.links[page]
    links[:] = [link for link in links if link.href != href]  # a generated file replaces a recorded one
    links.append(Link(href, f.text))


def cms_ncci_mue_routes(site: MirrorSite, data_dir: Path, releases: Iterable[str] | None = None) -> None:
    """Add robots.txt, the MUE landing page and the recorded MUE table to ``site``.

    ``releases`` picks HCPCS releases and is ignored here: the NCCI files are always served.
    """
    _ensure_ncci_page(site, MUE_LANDING_PATH, "cms_ncci_mue_page.html")
    for f in NCCI_FILES:
        if f.source == "cms_ncci_mue":
            _add_ncci_file(site, Path(data_dir), f)


def cms_ncci_ptp_routes(site: MirrorSite, data_dir: Path, releases: Iterable[str] | None = None) -> None:
    """Add robots.txt, the PTP landing page, the licence gate and the recorded PTP file to ``site``.

    ``releases`` picks HCPCS releases and is ignored here: the NCCI files are always served.
    """
    _ensure_ncci_page(site, PTP_LANDING_PATH, "cms_ncci_ptp_page.html")
    for f in NCCI_FILES:
        if f.source == "cms_ncci_ptp":
            _add_ncci_file(site, Path(data_dir), f)


def ncci_extra_routes(site: MirrorSite, dirs: Iterable[Path]) -> list[NcciFile]:
    """Serve every ``*.zip`` in ``dirs`` and their subfolders (generated MUE tables and PTP parts with
    real names, e.g. ``bench/generate.py``'s ``OUT_DIR`` or one quarter's ``OUT_DIR/2026-07``) at its
    real path, linked from its landing page (PTP files through the licence gate). A file named like
    a recorded one replaces it. Other files are ignored; a zip with an unknown name, a missing folder
    or one without any zip is a ValueError.
    """
    added: list[NcciFile] = []
    for folder in dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a directory (the folder of generated NCCI zips)")
        zips = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".zip")
        if not zips:
            raise ValueError(f"{folder}: no .zip files here (expected generated NCCI zips, e.g. bench/generate.py)")
        for file in zips:
            f = generated_ncci_file(file)
            _add_ncci_file(site, file.parent, f)
            added.append(f)
    return added


def _gate_page(file_path: str) -> bytes:
    template = Template((_PAGES_DIR / "cms_license_ama.html").read_text(encoding="utf-8"))
    back = PTP_LANDING_PATH.partition(CMS_HOST)[2]
    return template.substitute(
        file=html.escape(file_path), name=html.escape(PurePosixPath(file_path).name), back=html.escape(back)
    ).encode("utf-8")


def _license_gate(site: MirrorSite, path: str, query: str) -> Answer | None:
    """The licence page for ``?file=``, and the redirect to it for a gated file asked for without
    ``agree=yes``; None for everything else."""
    params = parse_qs(query)
    if path.rstrip("/") == LICENSE_PATH:
        target = "/" + re.sub(r"/{2,}", "/", params.get("file", [""])[0]).lstrip("/")
        if f"/{CMS_HOST}{target}" not in site.gated:
            return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"no such licensed file\n"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, _gate_page(target)
    href = site.gated.get(path)
    if href is not None and "yes" not in params.get("agree", []):
        return 302, {"Location": f"/{CMS_HOST}{href}", "Content-Type": "text/plain; charset=utf-8"}, b""
    return None


from policysync import mirror_asp as _mirror_asp  # noqa: E402 - it imports this module lazily
from policysync import mirror_mcd as _mirror_mcd  # noqa: E402 - it imports this module lazily

#: One builder per source; each adds its routes (and landing-page links) to the site.
ROUTE_BUILDERS: dict[str, Callable[[MirrorSite, Path, Iterable[str] | None], None]] = {
    "cms_hcpcs": cms_hcpcs_routes,
    "cms_ncci_mue": cms_ncci_mue_routes,
    "cms_ncci_ptp": cms_ncci_ptp_routes,
    "cms_asp": _mirror_asp.cms_asp_routes,
    "cms_mcd": _mirror_mcd.cms_mcd_routes,
}

from policysync import mirror_coverage_api as _mirror_coverage_api  # noqa: E402 - it imports this module lazily

ROUTE_BUILDERS["cms_coverage_api"] = _mirror_coverage_api.cms_coverage_api_routes

from policysync import mirror_payer as _mirror_payer  # noqa: E402 - it imports this module lazily

# Every configured payer source (parser = "payer") is served by one builder: index pages and PDFs.
ROUTE_BUILDERS["payer"] = _mirror_payer.payer_routes

from policysync import mirror_icd10cm as _mirror_icd10cm  # noqa: E402 - it imports this module lazily

ROUTE_BUILDERS["icd10cm"] = _mirror_icd10cm.icd10cm_routes


# --- the server ----------------------------------------------------------------------------------

Override = tuple[int, Mapping[str, str], bytes]


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "policysync-mirror/0.1"

    def do_GET(self) -> None:
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        self._serve(with_body=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass  # tests read MirrorServer.requests instead of stderr

    def _serve(self, *, with_body: bool) -> None:
        mirror = self.server.mirror
        fault = mirror._take_fault(self.path)
        if fault is not None:  # policysync/mirror_faults.py
            fault.serve(self, mirror, with_body=with_body)
            return
        status, headers, body = mirror._respond(self.command, self.path, dict(self.headers.items()))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if not any(k.lower() == "content-length" for k in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body and body:
            self.wfile.write(body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    mirror: MirrorServer


class MirrorServer:
    """The loopback mirror as a context manager::

        with MirrorServer(shared_data, releases=["2020-04", "2020-07"]) as mirror:
            run_crawl("cms_hcpcs", blobs=blobs, mirror=mirror.url)

    ``overrides`` maps a mirror path (``/www.cms.gov/files/zip/x.zip``, optionally with its query)
    to ``(status, headers, body)`` served as given, with no conditional handling: truncated zips,
    HTML error pages with 200, redirects to other hosts, 500s. ``sources`` picks the route
    builders (default: all), ``releases`` the HCPCS releases (default: all of :data:`HCPCS_RELEASES`).
    ``extra_dirs`` are folders of generated NCCI zips with real names (``bench/generate.py``):
    each is served at its real path and linked from its landing page (:func:`ncci_extra_routes`).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        overrides: Mapping[str, Override] | None = None,
        *,
        releases: Iterable[str] | None = None,
        sources: Iterable[str] | None = None,
        extra_dirs: Iterable[Path] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.site = MirrorSite()
        for source in sources if sources is not None else ROUTE_BUILDERS:
            ROUTE_BUILDERS[source](self.site, self.data_dir, releases)
        self.extra_files = ncci_extra_routes(self.site, extra_dirs or ())
        self.overrides: dict[str, Override] = dict(overrides or {})
        self.faults: dict[str, Fault] = {}  # by path (optionally with query): see fault()
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("mirror not started: use it as a context manager or call start()")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> MirrorServer:
        if self._httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.mirror = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="policysync-mirror", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for fault in list(self.faults.values()):
            fault.release()  # requests a slow fault holds end now
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- changing what is served while running --

    def put(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/zip",
        last_modified: datetime | None = None,
        link_text: str | None = None,
        page: str = HCPCS_LANDING_PATH,
        gated: bool = False,
    ) -> None:
        """Add or replace the document at mirror ``path`` (``/www.cms.gov/files/zip/x.zip``).

        With ``link_text`` it is also linked from landing page ``page`` (as a site-relative href),
        which is how a test publishes "the next quarter". ``gated`` puts it behind the AMA licence
        page, and the link goes through that page (``/license/ama?file=...``), as on the PTP page.
        Replacing changes the ETag, so the next conditional request gets the new bytes.
        """
        doc = Document.of(body, content_type, last_modified or datetime.now(UTC).replace(microsecond=0))
        with self._lock:
            self.site.routes[path] = _static(doc)
            href = "/" + path.lstrip("/").partition("/")[2]
            if gated:
                href = license_href(href)
                self.site.gated[path] = href
                self.site.handlers.setdefault("license_ama", partial(_license_gate, self.site))
            if link_text is not None:
                links = self.site.links.setdefault(page, [])
                links[:] = [link for link in links if link.href != href]
                links.append(Link(href, link_text))

    def publish_dir(self, folder: Path) -> list[NcciFile]:
        """Serve (and link) the generated NCCI zips in ``folder`` from now on, as ``extra_dirs`` does:
        how a benchmark publishes the next quarter while the mirror runs."""
        with self._lock:
            added = ncci_extra_routes(self.site, [folder])
            self.extra_files.extend(added)
            return added

    def remove(self, path: str) -> None:
        """Stop serving ``path`` (404 from now on) and drop its landing-page links."""
        with self._lock:
            self.site.routes.pop(path, None)
            href = "/" + path.lstrip("/").partition("/")[2]
            hrefs = {href, self.site.gated.pop(path, href)}
            for links in self.site.links.values():
                links[:] = [link for link in links if link.href not in hrefs]

    def override(self, path: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        with self._lock:
            self.overrides[path] = (status, headers, body)

    def clear_override(self, path: str) -> None:
        with self._lock:
            self.overrides.pop(path, None)

    def fault(self, path: str, fault: Fault) -> None:
        """Spoil the next requests for ``path`` (all, or ``fault.times``): 503 bursts, resets, delays,
        short bodies, redirects (policysync/mirror_faults.py). Replaces any fault on ``path``."""
        with self._lock:
            self.faults[path] = fault

    def clear_fault(self, path: str) -> None:
        with self._lock:
            fault = self.faults.pop(path, None)
        if fault is not None:
            fault.release()

    def _take_fault(self, raw_path: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(raw_path) or self.faults.get(raw_path.partition("?")[0])
        return fault if fault is not None and fault.take() else None

    def _record(self, method: str, raw_path: str, headers: dict[str, str], status: int) -> None:
        with self._lock:
            self.requests.append(SeenRequest(method, raw_path, headers, status))

    def paths(self) -> list[str]:
        """Every path served (overrides aside), sorted."""
        with self._lock:
            return sorted(self.site.routes)

    def document(self, path: str) -> Document:
        """The document served at ``path`` (KeyError if none), to compare with what a crawl stored."""
        with self._lock:
            route = self.site.routes[path]
        return route()

    def requests_for(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- answering --

    def _respond(
        self, method: str, raw_path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        status, out_headers, body = self._answer(raw_path, {k.lower(): v for k, v in headers.items()})
        with self._lock:
            self.requests.append(SeenRequest(method, raw_path, headers, status))
        return status, out_headers, body

    def _answer(self, raw_path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        path, _, query = raw_path.partition("?")
        with self._lock:
            override = self.overrides.get(raw_path) or self.overrides.get(path)
            route = self.site.routes.get(path)
            handled = None
            if override is None:
                for handler in self.site.handlers.values():
                    # A handler with ``wants_headers`` also gets the request headers (the Coverage API's token).
                    if getattr(handler, "wants_headers", False):
                        handled = handler(path, query, headers)  # type: ignore[call-arg]
                    else:
                        handled = handler(path, query)
                    if handled is not None:
                        break
        if override is not None:
            status, extra, body = override
            return status, dict(extra), body
        if handled is not None:
            return handled
        if route is None:
            return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"not on the mirror\n"
        doc = route()
        validators = {"ETag": doc.etag, "Last-Modified": _http_date(doc.last_modified)}
        if _not_modified(doc, headers):
            return 304, validators, b""
        return 200, {"Content-Type": doc.content_type, **validators}, doc.body()


def _not_modified(doc: Document, headers: dict[str, str]) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return doc.etag in tags
    ims = headers.get("if-modified-since")
    if ims:
        try:
            since = email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return doc.last_modified.replace(microsecond=0) <= since
    return False


def serve_forever(
    data_dir: Path,
    port: int = DEFAULT_PORT,
    *,
    releases: Iterable[str] | None = None,
    on_ready: Callable[[str], None] | None = None,
    until: threading.Event | None = None,
    extra_dirs: Iterable[Path] | None = None,
) -> None:
    """Serve the mirror on 127.0.0.1:``port`` until Ctrl-C (or ``until`` is set): ``policysync mirror serve``.

    ``on_ready`` is called with the base URL (``http://127.0.0.1:PORT``) once the socket listens.
    ``extra_dirs``: folders of generated NCCI zips to serve as well (see :class:`MirrorServer`).
    """
    server = MirrorServer(data_dir, port=port, releases=releases, extra_dirs=extra_dirs).start()
    try:
        if on_ready is not None:
            on_ready(server.url)
        (until or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
