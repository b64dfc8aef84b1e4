"""The policy language server (`regua lsp`, the `lsp` extra): the checker's diagnostics, types and
names in an editor, over the Language Server Protocol (docs/editors.md)."""
