"""`regua lsp`: the language server for editors (docs/editors.md)."""

from __future__ import annotations

import importlib.util

import click


@click.command("lsp")
@click.option("--stdio", is_flag=True, help="Talk over standard input and output (the default, and the only way).")
def lsp_command(stdio: bool) -> None:
    """Run the policy language server over stdio, for editors (VS Code, Neovim...).

    Diagnostics as `regua check` gives them, hover, go to definition, references, completion,
    formatting, the outline and quick fixes. Needs the lsp extra: pip install 'regua[lsp]'."""
    if importlib.util.find_spec("pygls") is None:
        raise click.ClickException("the language server needs the lsp extra: pip install 'regua[lsp]'")
    from regua.lsp.server import serve

    serve()
