"""The CLI contract (DESIGN.md "Command line"): exit codes, exact error lines, --json, docs."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from policysync.cli import cli
from policysync.mirror import MirrorServer
from rulebook.db import open_rulebook
from rulebook.versions import source_status

REPO = Path(__file__).resolve().parent.parent


def run(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--home", str(home), *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def test_commands_need_a_home(tmp_path: Path) -> None:
    code, _, err = run(tmp_path / "nohome", "sync")
    assert code == 2
    assert err == f"error: {tmp_path / 'nohome'}: no policysync home here (run `policysync init` first)\n"


def test_init_twice_keeps_config(tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, out, _ = run(home, "init")
    assert code == 0 and "created" in out
    for name in ("config.toml", "rulebook.db", "artifacts", "packs", "reports"):
        assert (home / name).exists()
    (home / "config.toml").write_text((home / "config.toml").read_text() + "\n# mine\n")
    code, out, _ = run(home, "init")
    assert code == 0 and "already exists" in out
    assert (home / "config.toml").read_text().endswith("# mine\n")


def test_unknown_source_is_a_usage_error(tmp_path: Path) -> None:
    run(tmp_path, "init")
    code, _, err = run(tmp_path, "sync", "--source", "cms_nope")
    assert code == 2
    configured = ", ".join(sorted(tomllib.loads((tmp_path / "config.toml").read_text())["sources"]))
    assert {"cms_hcpcs", "cms_ncci_mue", "cms_ncci_ptp"} <= set(configured.split(", "))
    assert err == f"error: unknown source 'cms_nope' (configured: {configured})\n"


def test_broken_config_is_one_line(tmp_path: Path) -> None:
    run(tmp_path, "init")
    (tmp_path / "config.toml").write_text("[sources.cms_hcpcs\n")
    code, _, err = run(tmp_path, "sync")
    assert code == 2
    assert err.startswith(f"error: {tmp_path / 'config.toml'}: not valid TOML (")
    assert err.count("\n") == 1


def test_flow_through_the_cli(tmp_path: Path, shared_data: Path) -> None:
    home = tmp_path / "h"
    run(home, "init")
    with MirrorServer(shared_data, releases=["2020-07", "2020-10"]) as mirror:
        code, out, err = run(home, "sync", "--source", "cms_hcpcs", "--mirror", mirror.url, "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["status"] == "committed" and report["exit_code"] == 0
        src = report["sources"][0]
        assert src["source"] == "cms_hcpcs" and src["documents_parsed"] == 2
        # Not a terminal: no progress lines anywhere (cron stays quiet).
        assert "crawling" not in err and "parsing" not in err
        code, out, _ = run(home, "sync", "--source", "cms_hcpcs", "--mirror", mirror.url)
        assert code == 0
        assert "no changes" in out and "2 not modified" in out

    code, out, _ = run(home, "versions", "--json")
    listing = json.loads(out)
    vs = listing["versions"]
    assert [v["status"] for v in vs] == ["committed", "committed"]
    assert vs[0]["sources"] == {"cms_hcpcs": "changed"} and vs[1]["sources"] == {"cms_hcpcs": "unchanged"}
    status = {s["source"]: s for s in listing["sources"]}
    assert status["cms_hcpcs"]["stale"] is False and status["cms_hcpcs"]["last_outcome"] == "unchanged"
    # Never fetched: stale from the start, and said so.
    assert status["cms_ncci_mue"]["stale"] is True and status["cms_ncci_mue"]["last_successful_fetch"] is None
    code, out, _ = run(home, "versions")
    assert "  cms_ncci_ptp: STALE (last successful fetch never; cadence 91 days)" in out.splitlines()
    # Stale means no successful fetch within 1.5 x the cadence (91 days -> 136.5 days), as of `now`.
    fetched = datetime.strptime(status["cms_hcpcs"]["last_successful_fetch"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    db = open_rulebook(home / "rulebook.db")
    for days, stale in ((136, False), (137, True)):
        (row,) = source_status(db, {"cms_hcpcs": 91}, fetched + timedelta(days=days))
        assert row["stale"] is stale

    code, out, _ = run(home, "diff", "0", "1", "--json")
    cs = json.loads(out)
    assert code == 0 and cs["counts"]["added"] == cs["severity"]["medium"] > 7000

    code, out, _ = run(home, "diff", "1", "2", "--format", "md")
    assert code == 0 and out.startswith("# Rulebook changes: version 1 → 2")

    code, _, err = run(home, "diff", "2", "1")
    assert code == 3
    assert err == "error: diff: the first version must be older than the second (got 2 and 1)\n"

    out_dir = tmp_path / "packs"
    code, _, err = run(home, "compile", "--from", "2020-07-01", "--to", "2020-10-01", "-o", str(out_dir))
    assert code == 3
    assert err == (
        "error: nothing to compile: no approved version (pending review: 1; see `policysync review approve`)\n"
    )
    code, out, _ = run(home, "review", "approve", "1", "--by", "tester", "--note", "July and October 2020 checked")
    assert code == 0 and out.startswith("version 1: pending_review -> approved by tester at ")
    code, out, _ = run(home, "compile", "--from", "2020-07-01", "--to", "2020-10-01", "-o", str(out_dir))
    assert code == 0
    assert out.startswith("compiled from rulebook version 2 (no substantive change since approved version 1)\n")
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["packs"][0]["file"] == "medicare_2020-07-01_2020-10-01.json"

    code, _, err = run(home, "compile", "--from", "2020-10-01", "--to", "2020-10-01", "-o", str(out_dir))
    assert code == 2
    assert err == "error: empty window: --from 2020-10-01 must be before --to 2020-10-01 (the window is [from, to))\n"
    code, _, err = run(home, "compile", "--from", "2020-07-01", "--to", "2020-10-01", "--scope", "medicaid",
                       "-o", str(out_dir))
    assert code == 2 and err.startswith("error: unknown scope 'medicaid' (use medicare, ")

    code, out, _ = run(home, "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True

    code, out, _ = run(home, "reparse", "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["kind"] == "reparse" and rep["changes"] == {}


def test_verify_finds_a_damaged_artifact(tmp_path: Path, shared_data: Path) -> None:
    run(tmp_path, "init")
    with MirrorServer(shared_data, releases=["2020-07"]) as mirror:
        assert run(tmp_path, "sync", "--source", "cms_hcpcs", "--mirror", mirror.url)[0] == 0
    blob = next(p for p in (tmp_path / "artifacts").rglob("*") if p.is_file())
    blob.write_bytes(blob.read_bytes()[:-10])
    code, out, _ = run(tmp_path, "verify")
    assert code == 3
    url = "https://www.cms.gov/files/zip/july-2020-alpha-numeric-hcpcs-file.zip"
    assert f"problem: artifact {blob.name[:12]} ({url}): bytes on disk do not match sha256" in out


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            names += _commands(cmd, full + " ")
        else:
            names.append(full)
    return names


@pytest.mark.parametrize("command", _commands(cli))
def test_every_command_has_an_example_and_is_in_the_readme(command: str) -> None:
    cmd: click.Command = cli
    for part in command.split():
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[part]
    assert "Example:" in (cmd.help or ""), f"`policysync {command}` help has no example"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"policysync (--home \S+ )?{re.escape(command)}\b", readme), f"README does not document {command}"
