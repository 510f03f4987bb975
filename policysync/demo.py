"""The demo: the whole flow over the recorded data, through the loopback mirror only."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compiler.packs import compile_packs
from policysync import pipeline
from policysync.config import Home, init_home, load_sources, resolve_home
from policysync.mirror import HCPCS_RELEASES, MirrorServer
from policysync.mirror_mcd import export_zip, publish_export
from policysync.report import render_sync_report
from rulebook import review
from rulebook import versions as vers
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions, render_markdown

FIRST = [r.release for r in HCPCS_RELEASES if r.release <= "2020-07"]
# Constructed article/LCD tables the recorded MCD export lacks (tests/fixtures/cms_mcd/README.md): with
# them the mirror serves a complete export. Present in a clone of the repository.
MCD_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cms_mcd"
MCD_EXPORT = "mcd/export_2026-01"


def _enable(home: Home, sources: list[str]) -> list[str]:
    """Turn on ``sources`` (off by default: licence terms) in the demo home's own config.toml."""
    text = home.config_path.read_text(encoding="utf-8")
    done = []
    for sid in sources:
        pattern = re.compile(rf"(\[sources\.{re.escape(sid)}\]\n(?:[^\[\n][^\n]*\n|\n)*?)enabled = false")
        text, n = pattern.subn(r"\1enabled = true", text, count=1)
        if n:
            done.append(sid)
    home.config_path.write_text(text, encoding="utf-8")
    return done


def _publish_mcd(m: MirrorServer, data_dir: Path) -> bool:
    """Publish a complete MCD export (recorded tables + the constructed missing ones) on the mirror."""
    if not MCD_FIXTURES.is_dir():
        return False
    base = data_dir / MCD_EXPORT
    for name in ("current_article", "current_lcd"):
        publish_export(m, name, export_zip(name, [base / name / "csv", MCD_FIXTURES]))
    return True


def _summary(db: Any, reports: list[Any], echo: Callable[[str], None]) -> None:
    """One line per source: documents parsed, records, facts in force now, errors."""
    from rulebook.kinds import KINDS

    per: dict[str, list[int]] = {}
    errors: dict[str, int] = {}
    for rep in reports:
        for s in rep.sources:
            row = per.setdefault(s.source, [0, 0])
            row[0] += s.documents_parsed
            row[1] += s.records
            errors[s.source] = errors.get(s.source, 0) + len(s.errors)
    tables: dict[str, list[str]] = {}
    for kind in KINDS.values():
        tables.setdefault(kind.source, []).append(kind.name)
    echo(f"   {'source':<34} {'documents':>9} {'records':>9}  facts in force")
    for sid, (docs, recs) in per.items():
        names = tables.get(sid) or tables.get("payer", [])
        facts = []
        for t in names:
            where = "v_to IS NULL AND artifact_sha256 IN (SELECT sha256 FROM artifacts WHERE source = ?)"
            n = db.execute(f"SELECT COUNT(*) FROM [{t}] WHERE {where}", [sid]).fetchone()[0]
            if n:
                facts.append(f"{n} {t}")
        err = f"; {errors[sid]} errors" if errors.get(sid) else ""
        echo(f"   {sid:<34} {docs:>9} {recs:>9}  {', '.join(facts) or '-'}{err}")


def run_demo(home_dir: Path, data_dir: Path, echo: Callable[[str], None] = print) -> int:
    home = resolve_home(home_dir)
    init_home(home)
    echo(f"home: {home.root}")
    with MirrorServer(data_dir, releases=FIRST) as m:
        echo(f"1. sync of the HCPCS files up to July 2020 via the loopback mirror {m.url}")
        r1 = pipeline.sync(home, sources=["cms_hcpcs"], mirror=m.url)
        echo(render_sync_report(r1))
    with MirrorServer(data_dir) as m:
        echo(
            "2. CMS 'publishes' October 2020, October 2025 and the October 2026 excerpt; "
            "the NCCI MUE and PTP, ASP and ICD-10-CM sources join: sync again"
        )
        # Off by default (licence terms): this demo home turns them on. MCD gets a complete export.
        extra = [sid for sid, cfg in load_sources(home).items() if cfg.extra.get("parser") == "payer"]
        if _publish_mcd(m, data_dir):
            extra.insert(0, "cms_mcd")
        else:
            echo(f"   (no {MCD_FIXTURES}: cms_mcd left off)")
        echo(f"   enabled in this demo home: {', '.join(_enable(home, extra))}")
        r2 = pipeline.sync(home, mirror=m.url)
        echo(render_sync_report(r2))
    db = open_rulebook(home.db_path)
    cs = diff_versions(db, r1.version, r2.version)
    high = [c for c in cs.changes if c.severity == "high"]
    echo(
        f"3. what changed from version {r1.version} to {r2.version}: "
        f"{len(cs.changes)} changes, {len(high)} high"
    )
    for c in high[:10]:
        echo(f"   [high] {c.key} {', '.join(c.categories)} [{c.eff_start}, {c.eff_end or 'open'})")
    report = home.reports / f"diff-{r1.version}-{r2.version}.md"
    report.write_text(render_markdown(cs), encoding="utf-8")
    echo(f"   full change set: {report}")
    echo("4. review: a compliance reviewer approves the pending versions before anything is compiled")
    for v in (r1.version, r2.version):
        if vers.get_version(db, v).review_state == "pending_review":
            # The October 2026 file is a 35-row excerpt, so cms_hcpcs is quarantined: a forced approval.
            for q in review.quarantine_blockers(db, v):
                echo(f"   quarantined in version {q['version_id']}: {q['message']}")
            quarantined = bool(review.quarantine_blockers(db, v))
            note = "demo: recorded CMS files" + (
                "; the October 2026 HCPCS file is recorded as a 35-row excerpt" if quarantined else ""
            )
            entry = review.decide(
                db, v, action="approve", actor="demo", note=note, now=pipeline.utcnow(), force=quarantined
            )
            echo(
                f"   policysync review approve {v} --by demo --note '{entry.note}'"
                + (" --force" if entry.forced else "")
                + ": "
                f"{entry.previous_state} -> {entry.new_state} (audit #{entry.id})"
            )
    echo("5. packs")
    windows = [("medicare", "2020-07-01", "2020-10-01"), ("medicare", "2026-07-01", "2026-10-01")]
    # New York Part B in Q1 2026: the MCD coverage rules (article A52370 v128) join the national facts.
    windows.append(("medicare:NY", "2026-01-01", "2026-04-01"))
    for scope, start, end in windows:
        out = home.packs / f"{scope.replace(':', '-')}_{start}_{end}"
        res = compile_packs(db, start=start, end=end, scope=scope, out_dir=out)
        counts = ", ".join(f"{n} {k}" for k, n in res.manifest["packs"][0]["sections"].items())
        echo(f"   {out}/: in force in [{start}, {end}): {counts} (rulebook version {res.version})")
    echo("6. per source")
    _summary(db, [r1, r2], echo)
    echo(f"rulebook: {home.db_path}; raw documents: {home.artifacts}; run reports: {home.reports}")
    return max(r1.exit_code, r2.exit_code)
