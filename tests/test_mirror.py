"""The loopback mirror: paths, conditional requests, deterministic zips, overrides (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from policysync.mirror import (
    HCPCS_LANDING_PATH,
    HCPCS_RELEASES,
    MirrorServer,
    build_zip,
    hcpcs_release_zip,
)

# Never through an http_proxy from the environment: the mirror is on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

ANNUAL = "/www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets/Downloads"
Q = "/www.cms.gov/files/zip"


def get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with _OPENER.open(request, timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def test_serves_the_cms_paths(shared_data: Path) -> None:
    with MirrorServer(shared_data) as mirror:
        paths = set(mirror.paths())
    assert {
        "/www.cms.gov/robots.txt",
        HCPCS_LANDING_PATH,
        f"{ANNUAL}/2017-Alpha-Numeric-HCPCS-File.zip",
        f"{ANNUAL}/2018-Alpha-Numeric-HCPCS-File.zip",
        f"{ANNUAL}/2019-Alpha-Numeric-HCPCS-File.zip",
        f"{ANNUAL}/2019-HCPCS-Alpha-Numeric-Corrections.zip",
        f"{ANNUAL}/2017-NOC-Codes.zip",
        f"{ANNUAL}/2019-HCPCS-Record-Layout.zip",
        f"{ANNUAL}/2017-Alpha-Numeric-Index.pdf",
        f"{Q}/april-2020-alpha-numeric-hcpcs-file.zip",
        f"{Q}/july-2020-alpha-numeric-hcpcs-file.zip",
        f"{Q}/october-2020-alpha-numeric-hcpcs-file.zip",
        f"{Q}/october-2025-alpha-numeric-hcpcs-file.zip",
        f"{Q}/october-2026-alpha-numeric-hcpcs-file.zip",
    } <= paths
    assert HCPCS_LANDING_PATH == (
        "/www.cms.gov/medicare/coding-billing/healthcare-common-procedure-system/quarterly-update"
    )


def test_recorded_zip_is_served_byte_for_byte(shared_data: Path) -> None:
    recorded = (shared_data / "hcpcs/annual_2017/2017-Alpha-Numeric-HCPCS-File.zip").read_bytes()
    with MirrorServer(shared_data, releases=["2017-01"]) as mirror:
        status, headers, body = get(f"{mirror.url}{ANNUAL}/2017-Alpha-Numeric-HCPCS-File.zip")
    assert status == 200 and body == recorded
    assert headers["Content-Type"] == "application/zip"
    assert headers["ETag"] == f'"{hashlib.sha256(recorded).hexdigest()}"'
    assert headers["Last-Modified"] == "Tue, 01 Nov 2016 00:00:00 GMT"
    assert int(headers["Content-Length"]) == len(recorded)


def test_quarterly_zips_wrap_the_recorded_files_under_cms_names(shared_data: Path) -> None:
    with MirrorServer(shared_data, releases=["2020-04", "2025-10", "2026-10"]) as mirror:
        april = get(f"{mirror.url}{Q}/april-2020-alpha-numeric-hcpcs-file.zip")[2]
        october = get(f"{mirror.url}{Q}/october-2025-alpha-numeric-hcpcs-file.zip")[2]
        excerpt = get(f"{mirror.url}{Q}/october-2026-alpha-numeric-hcpcs-file.zip")[2]
    with zipfile.ZipFile(io.BytesIO(april)) as zf:
        assert zf.namelist() == ["HCPC2020_APR_ANWEB.xlsx", "HCPC2020_APR_Trans_Alpha.xlsx"]
        assert (
            zf.read("HCPC2020_APR_ANWEB.xlsx")
            == (shared_data / "hcpcs/quarterly_2020/HCPC2020_04_anweb.xlsx").read_bytes()
        )
        assert zf.testzip() is None
    with zipfile.ZipFile(io.BytesIO(october)) as zf:
        assert zf.namelist() == ["HCPC2025_OCT_ANWEB.xlsx"]
    with zipfile.ZipFile(io.BytesIO(excerpt)) as zf:
        assert zf.namelist() == ["HCPC2026_OCT_ANWEB.excerpt.csv"]
        assert (
            zf.read("HCPC2026_OCT_ANWEB.excerpt.csv")
            == (shared_data / "hcpcs/quarterly_2026/HCPC2026_OCT_ANWEB.excerpt.csv").read_bytes()
        )


def test_zips_made_on_the_fly_are_byte_identical_every_time(shared_data: Path) -> None:
    for release in ("2020-04", "2020-07", "2020-10", "2025-10", "2026-10"):
        assert hcpcs_release_zip(shared_data, release) == hcpcs_release_zip(shared_data, release)
    with (
        MirrorServer(shared_data, releases=["2020-07"]) as one,
        MirrorServer(shared_data, releases=["2020-07"]) as two,
    ):
        a = get(f"{one.url}{Q}/july-2020-alpha-numeric-hcpcs-file.zip")
        b = get(f"{two.url}{Q}/july-2020-alpha-numeric-hcpcs-file.zip")
    assert a[2] == b[2] == hcpcs_release_zip(shared_data, "2020-07")
    assert a[1]["ETag"] == b[1]["ETag"]
    with zipfile.ZipFile(io.BytesIO(a[2])) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2020, 5, 1, 0, 0, 0)}
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}


def test_build_zip_depends_only_on_its_inputs() -> None:
    from datetime import UTC, datetime

    when = datetime(2020, 2, 1, tzinfo=UTC)
    one = build_zip([("a.txt", b"1"), ("b.txt", b"22")], when)
    assert one == build_zip([("a.txt", b"1"), ("b.txt", b"22")], when)
    assert one != build_zip([("a.txt", b"1"), ("b.txt", b"23")], when)
    assert (
        hashlib.sha256(one).hexdigest()
        == hashlib.sha256(build_zip([("a.txt", b"1"), ("b.txt", b"22")], when)).hexdigest()
    )


def test_conditional_requests_get_304(shared_data: Path) -> None:
    with MirrorServer(shared_data, releases=["2020-04"]) as mirror:
        url = f"{mirror.url}{Q}/april-2020-alpha-numeric-hcpcs-file.zip"
        status, headers, _ = get(url)
        etag, modified = headers["ETag"], headers["Last-Modified"]
        assert status == 200
        assert get(url, {"If-None-Match": etag})[:1] == (304,)
        assert get(url, {"If-None-Match": f'"other", W/{etag}'})[0] == 304
        assert get(url, {"If-None-Match": '"other"'})[0] == 200
        assert get(url, {"If-Modified-Since": modified})[0] == 304
        assert get(url, {"If-Modified-Since": "Mon, 01 Jan 2018 00:00:00 GMT"})[0] == 200
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
        assert get(url, {"If-None-Match": '"other"', "If-Modified-Since": modified})[0] == 200
        status, headers, body = get(url, {"If-None-Match": etag})
        assert body == b"" and headers["ETag"] == etag and headers["Last-Modified"] == modified
        seen = mirror.requests_for(f"{Q}/april-2020-alpha-numeric-hcpcs-file.zip")
    assert seen[1].headers["If-None-Match"] == etag and seen[1].status == 304


def test_robots_landing_page_head_and_404(shared_data: Path) -> None:
    with MirrorServer(shared_data, releases=["2020-04", "2019-01"]) as mirror:
        status, headers, robots = get(f"{mirror.url}/www.cms.gov/robots.txt")
        assert status == 200 and b"Allow: /" in robots and headers["Content-Type"].startswith("text/plain")
        status, headers, page = get(mirror.url + HCPCS_LANDING_PATH)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        text = page.decode("utf-8")
        assert "CONSTRUCTED PAGE, NOT A COPY OF THE CMS PAGE" in text
        assert 'href="/files/zip/april-2020-alpha-numeric-hcpcs-file.zip"' in text
        assert (
            'href="/Medicare/Coding/HCPCSReleaseCodeSets/Downloads/2019-Alpha-Numeric-HCPCS-File.zip"' in text
        )
        assert "2019-HCPCS-Record-Layout.zip" in text  # companion files are linked too, as on CMS
        assert "july-2020" not in text  # only the releases asked for
        status, headers, body = get(f"{mirror.url}{Q}/april-2020-alpha-numeric-hcpcs-file.zip", method="HEAD")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1_000_000
        assert get(f"{mirror.url}{Q}/july-2020-alpha-numeric-hcpcs-file.zip")[0] == 404
        assert get(f"{mirror.url}/evil.example/x.zip")[0] == 404


def test_overrides_inject_faults(shared_data: Path) -> None:
    path = f"{Q}/april-2020-alpha-numeric-hcpcs-file.zip"
    good = hcpcs_release_zip(shared_data, "2020-04")
    overrides = {path: (200, {"Content-Type": "application/zip"}, good[: len(good) // 2])}
    with MirrorServer(shared_data, overrides=overrides, releases=["2020-04"]) as mirror:
        status, _, body = get(mirror.url + path)
        assert status == 200 and body == good[: len(good) // 2]
        mirror.override(path, 302, {"Location": "/evil.example/x.zip"}, b"")
        req = urllib.request.Request(mirror.url + path)
        no_redirects = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        with pytest.raises(urllib.error.HTTPError) as err:
            no_redirects.open(req, timeout=10)
        assert err.value.code == 302 and err.value.headers["Location"] == "/evil.example/x.zip"
        mirror.override(path, 200, {"Content-Type": "text/html"}, b"<html><body>Error</body></html>")
        assert get(mirror.url + path)[2].startswith(b"<html>")
        mirror.clear_override(path)
        assert get(mirror.url + path)[2] == good


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_put_publishes_and_replaces_documents(shared_data: Path) -> None:
    path = f"{Q}/january-2021-alpha-numeric-hcpcs-files.zip"
    with MirrorServer(shared_data, releases=["2020-10"]) as mirror:
        assert get(mirror.url + path)[0] == 404
        mirror.put(path, b"first", link_text="January 2021 Alpha-Numeric HCPCS Files (ZIP)")
        status, headers, body = get(mirror.url + path)
        assert (status, body) == (200, b"first")
        page = get(mirror.url + HCPCS_LANDING_PATH)[2].decode()
        assert 'href="/files/zip/january-2021-alpha-numeric-hcpcs-files.zip"' in page
        mirror.put(path, b"second")
        status, _, body = get(mirror.url + path, {"If-None-Match": headers["ETag"]})
        assert (status, body) == (200, b"second")  # new bytes, new ETag
        mirror.remove(path)
        assert get(mirror.url + path)[0] == 404
        assert "january-2021" not in get(mirror.url + HCPCS_LANDING_PATH)[2].decode()


def test_unknown_release_is_refused(shared_data: Path) -> None:
    with pytest.raises(KeyError, match="2021-01"):
        MirrorServer(shared_data, releases=["2021-01"])
    assert [r.release for r in HCPCS_RELEASES] == [
        "2017-01",
        "2018-01",
        "2019-01",
        "2020-04",
        "2020-07",
        "2020-10",
        "2025-10",
        "2026-10",
    ]


def test_serve_forever_serves_until_told_to_stop(shared_data: Path) -> None:
    import threading

    from policysync.mirror import serve_forever

    ready: list[str] = []
    started, stop = threading.Event(), threading.Event()

    def on_ready(url: str) -> None:
        ready.append(url)
        started.set()

    thread = threading.Thread(
        target=serve_forever,
        args=(shared_data, 0),
        kwargs={"releases": ["2019-01"], "on_ready": on_ready, "until": stop},
    )
    thread.start()
    try:
        assert started.wait(10)
        assert ready[0].startswith("http://127.0.0.1:")
        assert get(ready[0] + "/www.cms.gov/robots.txt")[0] == 200
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
