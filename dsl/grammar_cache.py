"""The analysed grammar (Lark's LALR tables and lexers), saved in the user's cache folder.

Building the parser from dsl/grammar.lark takes ~0.15 s (more on a busy machine), once per process:
every `regua` command, every server start, and the first policy compiled cold paid it. Lark can
save an analysed grammar and load it back (`Lark.save` / `Lark.load`); the file is named by a hash
of everything that shapes it (the grammar text, the options, Lark's and Python's versions), written
whole then renamed (concurrent processes never read half a file), and anything wrong with it means
it is simply built again. Lark's own `cache=True` writes to the shared temporary folder, not
atomically; the user's cache folder is private, like the compiled-policy cache beside it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lark import Lark


def user_cache_dir() -> str | None:
    """Régua's cache folder: $REGUA_CACHE_DIR, else $XDG_CACHE_HOME/regua, else ~/.cache/regua;
    None when REGUA_CACHE_DIR=off (or "", 0, false, no)."""
    configured = os.environ.get("REGUA_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "false", "no") else configured
    home = os.path.expanduser("~")
    if not os.environ.get("XDG_CACHE_HOME") and home.startswith("~"):
        return None  # no home folder known: not a folder named "~" under the current one
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "regua")


def load_or_build(grammar: str, options: dict, runtime: dict) -> Lark:
    """Lark(grammar, **options, **runtime), from the cache when it holds it. `runtime`: the options
    that are objects (the post-lexer, plugins), saved with the tables by class name, not hashed."""
    from lark import Lark  # here: user_cache_dir() serves warm starts too
    from lark import __version__ as lark_version

    folder = user_cache_dir()
    shape = (grammar, sorted(options.items()), _describe(runtime), lark_version, sys.version_info[:2])
    key = hashlib.sha256(repr(shape).encode())
    path = Path(folder) / f"grammar-{key.hexdigest()[:20]}.lark" if folder else None
    if path is not None:
        try:
            with open(path, "rb") as handle:
                return Lark.load(handle)  # the saved options hold `runtime` too (by class name)
        except Exception:  # noqa: BLE001 — absent, unreadable or damaged: build it again
            pass
    parser = Lark(grammar, **options, **runtime)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".grammar-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    parser.save(handle)
                os.replace(temporary, path)
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
        except OSError:  # a read-only or full disk: no cache, same parser
            pass
    return parser


def _describe(value) -> object:
    """The classes `value` names or is made of (a post-lexer instance, plugin classes), stably."""
    if isinstance(value, dict):
        return sorted((key, _describe(item)) for key, item in value.items())
    cls = value if isinstance(value, type) else type(value)
    return f"{cls.__module__}.{cls.__qualname__}"
