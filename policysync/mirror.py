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

Every document carries a strong ETag (its sha256) and a Last-Modified, and conditional requests
(If-None-Match, else If-Modified-Since) are answered with 304. ``overrides`` inject faults by path.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import io
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
from urllib.parse import urlsplit

__all__ = [
    "CMS_HOST",
    "DEFAULT_PORT",
    "HCPCS_LANDING_PATH",
    "HCPCS_RELEASES",
    "ROUTE_BUILDERS",
    "Document",
    "HcpcsRelease",
    "Link",
    "MirrorServer",
    "MirrorSite",
    "SeenRequest",
    "build_zip",
    "hcpcs_release_zip",
    "mirror_path",
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
        return f'"{hashlib.sha256(self.body()).hexdigest()}"'


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
    """What the route builders fill in: routes by path, and the links of each landing page."""

    routes: dict[str, Route] = field(default_factory=dict)
    links: dict[str, list[Link]] = field(default_factory=dict)


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
    robots = Document.of(
        b"# Constructed for the policysync loopback mirror; not a copy of the CMS robots.txt.\n"
        b"User-agent: *\nAllow: /\n",
        "text/plain; charset=utf-8",
        datetime(2016, 1, 1, tzinfo=UTC),
    )
    site.routes[f"/{CMS_HOST}/robots.txt"] = _static(robots)
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


def _render_landing(site: MirrorSite, page: str) -> Document:
    template = Template((_PAGES_DIR / "cms_hcpcs_quarterly_update.html").read_text(encoding="utf-8"))
    # Newest first, as CMS lists its files: links are kept in publication order, so reverse them.
    items = [
        f'<li><a href="{html.escape(link.href)}">{html.escape(link.text)}</a></li>'
        for link in reversed(list(site.links.get(page, [])))
    ]
    body = template.substitute(links="\n".join(items)).encode("utf-8")
    return Document.of(body, "text/html; charset=utf-8", datetime(2026, 1, 1, tzinfo=UTC))


#: One builder per source; each adds its routes (and landing-page links) to the site.
ROUTE_BUILDERS: dict[str, Callable[[MirrorSite, Path, Iterable[str] | None], None]] = {
    "cms_hcpcs": cms_hcpcs_routes,
}


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
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        overrides: Mapping[str, Override] | None = None,
        *,
        releases: Iterable[str] | None = None,
        sources: Iterable[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.site = MirrorSite()
        for source in sources if sources is not None else ROUTE_BUILDERS:
            ROUTE_BUILDERS[source](self.site, self.data_dir, releases)
        self.overrides: dict[str, Override] = dict(overrides or {})
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
    ) -> None:
        """Add or replace the document at mirror ``path`` (``/www.cms.gov/files/zip/x.zip``).

        With ``link_text`` it is also linked from landing page ``page`` (as a site-relative href),
        which is how a test publishes "the next quarter". Replacing changes the ETag, so the next
        conditional request gets the new bytes.
        """
        doc = Document.of(body, content_type, last_modified or datetime.now(UTC).replace(microsecond=0))
        with self._lock:
            self.site.routes[path] = _static(doc)
            if link_text is not None:
                href = "/" + path.lstrip("/").partition("/")[2]
                links = self.site.links.setdefault(page, [])
                links[:] = [link for link in links if link.href != href]
                links.append(Link(href, link_text))

    def remove(self, path: str) -> None:
        """Stop serving ``path`` (404 from now on) and drop its landing-page links."""
        with self._lock:
            self.site.routes.pop(path, None)
            href = "/" + path.lstrip("/").partition("/")[2]
            for links in self.site.links.values():
                links[:] = [link for link in links if link.href != href]

    def override(self, path: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        with self._lock:
            self.overrides[path] = (status, headers, body)

    def clear_override(self, path: str) -> None:
        with self._lock:
            self.overrides.pop(path, None)

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
        path = raw_path.split("?", 1)[0]
        with self._lock:
            override = self.overrides.get(raw_path) or self.overrides.get(path)
            route = self.site.routes.get(path)
        if override is not None:
            status, extra, body = override
            return status, dict(extra), body
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
) -> None:
    """Serve the mirror on 127.0.0.1:``port`` until Ctrl-C (or ``until`` is set): ``policysync mirror serve``.

    ``on_ready`` is called with the base URL (``http://127.0.0.1:PORT``) once the socket listens.
    """
    server = MirrorServer(data_dir, port=port, releases=releases).start()
    try:
        if on_ready is not None:
            on_ready(server.url)
        (until or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
