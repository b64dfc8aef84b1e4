"""`regua keys new`: make an API key and print its configuration entry."""

from __future__ import annotations

import re

import click

from regua.server.scopes import SCOPES

#: Key names: they appear in logs, the decision log and the configuration, so plain and short.
KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def toml_string(value: str) -> str:
    """A TOML basic string holding exactly `value` (quotes, backslashes and control characters escaped)."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _key_name(ctx, param, value: str) -> str:
    if not KEY_NAME.fullmatch(value):
        raise click.BadParameter("use 1 to 64 letters, digits, '_', '.' or '-' (e.g. erp, crm.prod)")
    return value


@click.group("keys")
def keys_group() -> None:
    """API keys: make new ones for the configuration."""


@keys_group.command("new")
@click.option("--name", required=True, callback=_key_name,
              help="Who will use the key (e.g. erp): 1-64 letters, digits, '_', '.' or '-'.")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(list(SCOPES)))
def keys_new(name: str, scopes: tuple[str, ...]) -> None:
    """Print a new API key (give it to the client) and its configuration entry (keep only the hash)."""
    from regua.server.auth import new_key

    key, digest = new_key()
    click.echo(f"key (shown once, give it to {name}): {key}")
    click.echo("\nadd to the configuration:\n")
    scope_list = ", ".join(toml_string(s) for s in scopes)
    click.echo(f"[[auth.keys]]\nname = {toml_string(name)}\nhash = {toml_string(digest)}\nscopes = [{scope_list}]")
