"""``scrub``: the reference scrubber over rule packs (compiler/scrub.py)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from compiler.packs import read_packs
from compiler.scrub import DEFAULT_TOLERANCE, scrub
from parsers.errors import UsageError
from policysync.cli import cli


@cli.command(name="scrub")
@click.argument("claims", type=click.Path(dir_okay=False))
@click.option(
    "--pack",
    "packs",
    required=True,
    multiple=True,
    type=click.Path(file_okay=False),
    help="A pack directory (with manifest.json). Repeat for a jurisdiction's or a payer's packs.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--tolerance",
    default=str(DEFAULT_TOLERANCE),
    show_default=True,
    help="Underpayment tolerance, a share of the expected amount.",
)
@click.option(
    "--full-check",
    is_flag=True,
    help="Validate every rule of every pack against the pack schema (slow on a national pack); by default "
    "sha256, schema version and pack id are checked in full and the rules on a sample.",
)
def scrub_cmd(claims: str, packs: tuple[str, ...], fmt: str, tolerance: str, full_check: bool) -> None:
    """Check the claims in CLAIMS (JSON, compiler/schemas/claims.schema.json) against rule packs.

    Reads only packs, each checked first (sha256 of every file, schema version, pack id; the rules
    against the schema on a sample, or all of them with --full-check). Every line is checked on
    its date of service: code, units, JW/JZ, MUE, PTP, diagnosis coverage, prior authorization,
    price. Exit 0: no error findings; 1: error findings or malformed claims; 2: usage; 3: packs refused.

    \b
    Example:
      policysync scrub claims.json --pack packs/2025q4 --pack packs/2025q4-JK --format json
    """
    try:
        tol = Decimal(tolerance)
    except InvalidOperation:
        raise UsageError(f"--tolerance {tolerance!r}: not a number (e.g. 0.03 for 3 %)") from None
    result = scrub(Path(claims), [Path(p) for p in packs], tolerance=tol, full_check=full_check)
    for line in result.malformed:
        click.echo(f"error: {line}", err=True)
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        for p in result.packs:
            click.echo(
                f"pack {p['scope']} [{p['window']['from']}, {p['window']['to']}) {p['pack_id'][:12]} ({p['dir']})"
            )
        for f in result.findings:
            where = f"{f.claim_id} line {f.line}" if f.line is not None else f.claim_id
            denial = f" {f.denial}" if f.denial else ""
            prov = f" [{f.provenance['locator']}]" if f.provenance else ""
            click.echo(
                f"{where} {f.code or ''} {f.date_of_service or ''} {f.severity}{denial} {f.check} "
                f"{f.rule_id or '-'}: {f.message}{prov}"
            )
        s = result.summary()
        by = ", ".join(f"{n} {k}" for k, n in s["by_severity"].items()) or "none"
        click.echo(f"{s['claims']} claims, {s['lines']} lines, {s['malformed_claims']} malformed; findings: {by}")
    if result.errors or result.malformed:
        raise SystemExit(1)


@cli.command(name="verify-pack")
@click.argument("pack_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def verify_pack_cmd(pack_dirs: tuple[str, ...]) -> None:
    """Check pack directories in full: every file's sha256 against manifest.json, the schema version,
    the pack id, and every rule against the pack schema (what `scrub` samples at load).

    Prints one line per pack; exit 0 when all check out, 3 (one-line error) when one is refused.

    \b
    Example:
      policysync verify-pack packs/2025q4 packs/2025q4-JK
    """
    for d in pack_dirs:
        for pack in read_packs(Path(d), schema="full"):
            sections = ", ".join(
                f"{k} {sum(f['rows'] for f in v['files']) if k == 'ptp' else len(v)}"
                for k, v in sorted(pack["sections"].items())
            )
            click.echo(
                f"ok {d}: {pack['scope']} [{pack['window']['from']}, {pack['window']['to']}) "
                f"{pack['pack_id'][:12]} schema {pack['schema_version']}: {sections or 'no sections'}"
            )
