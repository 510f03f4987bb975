"""policysync/demo.py turns licence-gated sources on in its own demo home only (not in DEFAULT_CONFIG)."""

from __future__ import annotations

from pathlib import Path

from policysync.config import DEFAULT_CONFIG, init_home, load_sources, resolve_home
from policysync.demo import _enable


def test_enable_only_the_named_sources(tmp_path: Path) -> None:
    home = resolve_home(tmp_path / "demo")
    init_home(home)
    before = {sid: cfg.enabled for sid, cfg in load_sources(home).items()}
    assert before["cms_mcd"] is False and before["florida_blue_mcg"] is False and before["icd10cm"] is True
    assert _enable(home, ["cms_mcd", "florida_blue_mcg", "no_such_source"]) == ["cms_mcd", "florida_blue_mcg"]
    after = {sid: cfg.enabled for sid, cfg in load_sources(home).items()}
    assert {sid for sid in after if after[sid] != before[sid]} == {"cms_mcd", "florida_blue_mcg"}
    assert "[sources.cms_mcd]" in DEFAULT_CONFIG and home.config_path.read_text() != DEFAULT_CONFIG
