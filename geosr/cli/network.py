"""``geosr network FILE``: what a network file (``--save-network``) holds."""

from __future__ import annotations

import json

import click

from geosr.errors import InputError
from geosr.pipeline.network import network_options, read_network


@click.command("network")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def network_cmd(path: str, as_json: bool) -> None:
    """Show what the network file PATH holds (written by --save-network).

    The method, its options, the scale, the guide's band count, and where and how it was
    fitted: what --network checks against a run."""

    try:
        meta, state = read_network(path)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    meta = {**meta, "weights_bytes": len(state)}
    if as_json:
        click.echo(json.dumps(meta, indent=2, default=str))
        return
    fitted = meta.get("fitted_on") or {}
    fit = fitted.get("fit") or {}
    opts = ", ".join(f"{k}={v!r}" for k, v in network_options(meta["options"]).items())
    click.echo(f"{path}: {meta['method']} network, scale {meta['scale']}, "
               f"{meta['guide_channels']}-band guide (geosr {meta['geosr']}, {meta['created']})")
    click.echo(f"  network options: {opts}")
    click.echo(f"  fitted on: {fitted.get('lr')} with {fitted.get('guide')} ({fitted.get('crs')}); "
               f"{fit.get('steps', '?')} steps, loss {fit.get('loss', '?')}")
