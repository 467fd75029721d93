"""The ``rapport`` command: a thin Typer root that delegates to services."""

from __future__ import annotations

import typer

from rapport.cli import admin, campaigns, catalog, data, demo, events, process, segments, server
from rapport.cli import content as content_cli

app = typer.Typer(
    name="rapport",
    help="Rapport: collect, process, segment, message, measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
server.register(app)
admin.register(app)
demo.register(app)
events.register(app)
data.register(app)
process.register(app)
segments.register(app)
campaigns.register(app)
catalog.register(app)
content_cli.register(app)


def main() -> None:
    """Entry point of the ``rapport`` console script."""
    app()
