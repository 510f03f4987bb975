"""The loopback mirror's NCCI routes: the MUE and PTP landing pages, the recorded excerpts zipped under
their real names, the AMA licence gate, and folders of generated files (127.0.0.1 only)."""

from __future__ import annotations

import io
import re
import threading
import urllib.error
import urllib.request
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from policysync.cli import cli
from policysync.mirror import (
    HCPCS_LANDING_PATH,
    LICENSE_PATH,
    MUE_LANDING_PATH,
    NCCI_FILES,
    PTP_LANDING_PATH,
    MirrorServer,
    build_zip,
    generated_ncci_file,
    license_href,
    serve_forever,
)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
Q = "/www.cms.gov/files/zip"
MUE_Q3 = f"{Q}/medicare-ncci-2026-q3-practitioner-services-mue-table.zip"
PTP_F1 = f"{Q}/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
MUE_EXCERPT = "mue/MCR_MUE_PractitionerServices_Eff_07-01-2026.excerpt.csv"
PTP_EXCERPT = "ncci_ptp/ccipra-v322r0-f1.excerpt.txt"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with _NO_REDIRECTS.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def test_serves_the_ncci_pages_and_files(shared_data: Path) -> None:
    mirror = MirrorServer(shared_data)
    assert {"/www.cms.gov/robots.txt", MUE_LANDING_PATH, PTP_LANDING_PATH, MUE_Q3, PTP_F1} <= set(mirror.paths())
    assert HCPCS_LANDING_PATH in mirror.paths()  # the HCPCS routes are still there
    assert MUE_LANDING_PATH == (
        "/www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
        "medicare-ncci-medically-unlikely-edits-mues"
    )
    assert PTP_LANDING_PATH == (
        "/www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
        "medicare-ncci-procedure-procedure-ptp-edits"
    )
    only_ptp = MirrorServer(shared_data, sources=["cms_ncci_ptp"])
    assert "/www.cms.gov/robots.txt" in only_ptp.paths() and MUE_LANDING_PATH not in only_ptp.paths()


def test_recorded_excerpts_are_zipped_under_real_names_byte_identically(shared_data: Path) -> None:
    one, two = MirrorServer(shared_data), MirrorServer(shared_data)
    for path, member, recorded in (
        (MUE_Q3, "MCR_MUE_PractitionerServices_Eff_07-01-2026.excerpt.csv", MUE_EXCERPT),
        (PTP_F1, "ccipra-v322r0-f1.excerpt.txt", PTP_EXCERPT),
    ):
        body = one.document(path).body()
        assert body == two.document(path).body()
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            assert zf.namelist() == [member]
            assert zf.read(member) == (shared_data / recorded).read_bytes()
            assert {i.date_time for i in zf.infolist()} == {(2026, 5, 1, 0, 0, 0)}
    assert [(f.source, f.release, f.setting) for f in NCCI_FILES] == [
        ("cms_ncci_mue", "2026-07", "practitioner"),
        ("cms_ncci_ptp", "2026-07", "practitioner"),
    ]


def test_landing_pages_link_the_files_as_cms_does(shared_data: Path) -> None:
    mirror = MirrorServer(shared_data)
    mue = mirror.document(MUE_LANDING_PATH).body().decode("utf-8")
    ptp = mirror.document(PTP_LANDING_PATH).body().decode("utf-8")
    assert "CONSTRUCTED PAGE, NOT A COPY OF THE CMS PAGE" in mue and "CONSTRUCTED PAGE" in ptp
    assert 'href="/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip"' in mue
    # the f1 link exactly as recorded from the real page
    recorded = (shared_data / "pages/cms/ncci_ptp_page.links.excerpt.html").read_text(encoding="utf-8")
    (f1_tag,) = [line for line in recorded.splitlines() if "v322r0-f1.zip" in line]
    assert f1_tag in ptp
    assert "/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits" not in ptp.replace(
        "/license/ama?file=/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits", ""
    )  # every PTP edit file link goes through the licence page


def test_licence_gate(shared_data: Path) -> None:
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"]) as mirror:
        gate = f"{mirror.url}{LICENSE_PATH}?file=/files/zip/{PTP_F1.rsplit('/', 1)[1]}"
        status, headers, page = get(gate)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        text = page.decode("utf-8")
        assert "CONSTRUCTED PAGE" in text
        form = re.search(r'<form action="([^"]+)" method="get"', text)
        assert form is not None and form.group(1) == PTP_F1[len("/www.cms.gov") :]
        assert '<input type="hidden" name="agree" value="yes">' in text and 'value="Accept"' in text
        # the file only with the licence accepted; without, a redirect to the licence page
        status, headers, _ = get(mirror.url + PTP_F1)
        assert status == 302 and headers["Location"] == f"{LICENSE_PATH}?file={PTP_F1[len('/www.cms.gov') :]}"
        status, headers, body = get(mirror.url + PTP_F1 + "?agree=yes")
        assert status == 200 and body == mirror.document(PTP_F1).body()
        assert get(mirror.url + PTP_F1 + "?agree=yes", {"If-None-Match": headers["ETag"]})[0] == 304
        # a licence page for a file the mirror does not gate
        assert get(f"{mirror.url}{LICENSE_PATH}?file=/files/zip/nothing.zip")[0] == 404
        assert get(f"{mirror.url}{LICENSE_PATH}")[0] == 404
        # the MUE tables are not gated
    with MirrorServer(shared_data, sources=["cms_ncci_mue"]) as mirror:
        assert get(mirror.url + MUE_Q3)[0] == 200


def test_license_href() -> None:
    assert license_href("/files/zip/a-f1.zip") == "/license/ama?file=/files/zip/a-f1.zip"


def _write_zip(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_bytes(build_zip([("member.txt", text.encode())], datetime(2026, 5, 1, tzinfo=UTC)))
    return path


def test_extra_dirs_serve_generated_files_under_their_real_names(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    names = [
        "medicare-ncci-2026-q3-practitioner-services-mue-table.zip",  # replaces the recorded excerpt
        "medicare-ncci-2026-q3-facility-outpatient-hospital-services-mue-table.zip",
        "medicare-ncci-2026-q3-dme-supplier-services-mue-table.zip",
        *(f"medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f{p}.zip" for p in (4, 3, 2, 1)),
        "medicare-ncci-2026-q4-hospital-ptp-edits-ccioph-v323r0-f1.zip",
    ]
    files = {name: _write_zip(out, name, f"generated {name}") for name in names}
    (out / "manifest.json").write_text("{}")  # not a zip: ignored
    with MirrorServer(shared_data, sources=["cms_ncci_mue", "cms_ncci_ptp"], extra_dirs=[out]) as mirror:
        assert len(mirror.extra_files) == len(names)
        for name, path in files.items():
            assert mirror.document(f"{Q}/{name}").body() == path.read_bytes()
        mue = get(mirror.url + MUE_LANDING_PATH)[2].decode()
        ptp = get(mirror.url + PTP_LANDING_PATH)[2].decode()
        assert get(f"{mirror.url}{Q}/{names[3]}")[0] == 302  # the generated PTP files are gated too
        assert get(f"{mirror.url}{Q}/{names[3]}?agree=yes")[2] == files[names[3]].read_bytes()
    assert mue.count('href="/files/zip/medicare-ncci-2026-q3-practitioner-services-mue-table.zip"') == 1
    assert 'href="/files/zip/medicare-ncci-2026-q3-dme-supplier-services-mue-table.zip"' in mue
    hrefs = re.findall(r'href="/license/ama\?file=/files/zip/([^"]+)"', ptp)
    # as CMS lists them: newest quarter first, then part order
    parts = [f"medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f{p}.zip" for p in (1, 2, 3, 4)]
    assert hrefs == [names[-1], *parts]
    assert ptp.count("v322r0-f1.zip") == 1  # the generated f1 replaced the recorded one


def test_extra_dirs_take_bench_generate_output_whole_or_one_quarter_at_a_time(
    shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"  # the layout bench/generate.py writes: OUT_DIR/<release>/<real names>
    for release, q, v in (("2026-07", "q3", "v322r0"), ("2026-10", "q4", "v323r0")):
        (out / release).mkdir(parents=True)
        _write_zip(out / release, f"medicare-ncci-2026-{q}-practitioner-services-mue-table.zip", release)
        for part in (1, 2, 3, 4):
            _write_zip(out / release, f"medicare-ncci-2026{q}-practitioner-ptp-edits-ccipra-{v}-f{part}.zip", release)
    (out / "generated.json").write_text("{}")
    whole = MirrorServer(shared_data, sources=[], extra_dirs=[out])
    assert sorted(f.release for f in whole.extra_files) == ["2026-07"] * 5 + ["2026-10"] * 5
    with MirrorServer(shared_data, sources=[], extra_dirs=[out / "2026-07"]) as mirror:
        assert "v323r0" not in get(mirror.url + PTP_LANDING_PATH)[2].decode()
        added = mirror.publish_dir(out / "2026-10")
        assert [f.release for f in added] == ["2026-10"] * 5
        page = get(mirror.url + PTP_LANDING_PATH)[2].decode()
        assert page.index("v323r0-f1.zip") < page.index("v322r0-f1.zip")  # newest quarter first
        assert get(mirror.url + f"{Q}/medicare-ncci-2026-q4-practitioner-services-mue-table.zip")[2] == (
            out / "2026-10" / "medicare-ncci-2026-q4-practitioner-services-mue-table.zip"
        ).read_bytes()


def test_extra_dirs_alone_make_their_landing_pages(shared_data: Path, tmp_path: Path) -> None:
    _write_zip(tmp_path, "medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f2.zip", "x")
    mirror = MirrorServer(shared_data, sources=[], extra_dirs=[tmp_path])
    assert PTP_LANDING_PATH in mirror.paths() and "/www.cms.gov/robots.txt" in mirror.paths()
    assert MUE_LANDING_PATH not in mirror.paths()


def test_extra_dirs_refuse_unknown_names_and_missing_folders(shared_data: Path, tmp_path: Path) -> None:
    _write_zip(tmp_path, "ccipra-v322r0-f1.zip", "x")
    with pytest.raises(ValueError, match=r"ccipra-v322r0-f1\.zip: not a CMS NCCI file name the mirror knows"):
        MirrorServer(shared_data, extra_dirs=[tmp_path])
    with pytest.raises(ValueError, match="not a directory"):
        MirrorServer(shared_data, extra_dirs=[tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .zip files here"):
        MirrorServer(shared_data, extra_dirs=[tmp_path / "empty"])
    f = generated_ncci_file(tmp_path / "medicare-ncci-2025-q4-dme-supplier-services-mue-table.zip")
    assert (f.source, f.release, f.setting, f.path) == (
        "cms_ncci_mue",
        "2025-10",
        "dme",
        "/files/zip/medicare-ncci-2025-q4-dme-supplier-services-mue-table.zip",
    )


def test_put_can_publish_behind_the_gate_and_remove_unlinks(shared_data: Path) -> None:
    path = f"{Q}/medicare-ncci-2026q4-practitioner-ptp-edits-ccipra-v323r0-f1.zip"
    with MirrorServer(shared_data, sources=["cms_ncci_ptp"]) as mirror:
        mirror.put(path, b"zip", link_text="Practitioner PTP Edits v323r0", page=PTP_LANDING_PATH, gated=True)
        page = get(mirror.url + PTP_LANDING_PATH)[2].decode()
        assert f'href="{license_href(path[len("/www.cms.gov") :])}"' in page
        assert get(mirror.url + path)[0] == 302 and get(mirror.url + path + "?agree=yes")[2] == b"zip"
        mirror.remove(path)
        assert "v323r0" not in get(mirror.url + PTP_LANDING_PATH)[2].decode()
        assert get(mirror.url + path + "?agree=yes")[0] == 404


def test_serve_forever_serves_extra_dirs(shared_data: Path, tmp_path: Path) -> None:
    name = "medicare-ncci-2026-q3-dme-supplier-services-mue-table.zip"
    _write_zip(tmp_path, name, "x")
    ready: list[str] = []
    started, stop = threading.Event(), threading.Event()

    def on_ready(url: str) -> None:
        ready.append(url)
        started.set()

    thread = threading.Thread(
        target=serve_forever,
        args=(shared_data, 0),
        kwargs={"on_ready": on_ready, "until": stop, "extra_dirs": [tmp_path]},
    )
    thread.start()
    try:
        assert started.wait(10)
        assert get(f"{ready[0]}{Q}/{name}")[0] == 200
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_mirror_serve_refuses_a_bad_extra_folder(shared_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["mirror", "serve", "--data", str(shared_data), "--extra", str(tmp_path / "no")])
    assert result.exit_code == 2 and "does not exist" in result.output
    _write_zip(tmp_path, "not-an-ncci-name.zip", "x")
    args = ["mirror", "serve", "--data", str(shared_data), "--port", "0", "--extra", str(tmp_path)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'not-an-ncci-name.zip'}: not a CMS")
