"""`regua keys new`: make an API key and print its configuration entry."""

from __future__ import annotations

import json

import click

from regua.server.scopes import SCOPES


@click.group("keys")
def keys_group() -> None:
    """API keys: make new ones for the configuration."""


@keys_group.command("new")
@click.option("--name", required=True, help="Who will use the key (e.g. erp).")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(list(SCOPES)))
def keys_new(name: str, scopes: tuple[str, ...]) -> None:
    """Print a new API key (give it to the client) and its configuration entry (keep only the hash)."""
    from regua.server.auth import new_key

    key, digest = new_key()
    click.echo(f"key (shown once, give it to {name}): {key}")
    click.echo("\nadd to the configuration:\n")
    click.echo(f'[[auth.keys]]\nname = "{name}"\nhash = "{digest}"\nscopes = {json.dumps(list(scopes))}')
