"""``serve``: the local review web app on 127.0.0.1."""

from __future__ import annotations

import click

from policysync.cli import cli
from policysync.config import load_reviewers, resolve_home


@cli.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port on 127.0.0.1 (0: any free)."
)
@click.pass_obj
def serve(obj: dict[str, str], port: int) -> None:
    """Serve the review web app on 127.0.0.1: the review queue, change sets with approve/reject,
    the rules that apply to a code on a date (with provenance) and payer policy redlines.

    Reviewers are the names in `[review] reviewers` of config.toml; Ctrl-C stops the server.

    \b
    Example:
      policysync serve --port 8765    # then open http://127.0.0.1:8765/
    """
    from policysync.web import AppServer, create_app

    home = resolve_home(obj["home"]).require()
    if not load_reviewers(home):
        click.echo(
            f"warning: no reviewers in [review] reviewers of {home.config_path}: nobody can approve in the browser",
            err=True,
        )
    server = AppServer(create_app(home), port=port)
    server.start_listening()
    click.echo(f"serving {home.root} on {server.url}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
