"""``geosr methods``: list registered methods and their options."""

from __future__ import annotations

import dataclasses
import json

import click

from geosr.models import get_method_class, list_methods


@click.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def methods_cmd(as_json: bool) -> None:
    """List the registered methods and their options with defaults."""

    table = {}
    for name in list_methods():
        cls = get_method_class(name)
        table[name] = {
            f.name: (None if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(cls.Options)
        }
    if as_json:
        click.echo(json.dumps(table, indent=2, default=str))
        return
    for name, opts in table.items():
        shown = ", ".join(f"{k}={v!r}" for k, v in opts.items()) or "(no options)"
        click.echo(f"{name:16s} {shown}")
