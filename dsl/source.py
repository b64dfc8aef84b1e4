"""Reading a policy file: only a regular, UTF-8 text file is a policy. Anything else (a folder,
a FIFO or device, a binary or Latin-1 file) is error E000 located in that file, never a crash
or a blocked read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .diagnostics import NO_SPAN, Diagnostic, PolicyError, Span


def _unreadable(path: Path, message: str, span: Span = NO_SPAN) -> PolicyError:
    return PolicyError([Diagnostic("E000", message, span, str(path))])


def read_policy(path: str | Path) -> str:
    """The text of a policy file; PolicyError E000 when it is not a readable UTF-8 text file.
    A UTF-8 byte-order mark (what some Windows editors write) is dropped."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # before opening: opening a FIFO would block
    except OSError as error:
        raise _unreadable(path, f"cannot read the file: {error.strerror or error}") from None
    if stat.S_ISDIR(mode):
        raise _unreadable(path, "is a folder, not a policy file")
    if not stat.S_ISREG(mode):
        raise _unreadable(path, "is not a regular file (a FIFO, socket or device)")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _unreadable(path, f"cannot read the file: {error.strerror or error}") from None
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise _unreadable(path, "is a binary file, not policy text", Span(line, 1))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise _unreadable(path, f"is not UTF-8 text (byte 0x{data[error.start]:02x}); save it as UTF-8",
                          Span(line, column)) from None
    return text.removeprefix("\ufeff")


def code_chars(line: str) -> Iterator[tuple[int, str]]:
    """(column, character) of one source line outside string literals (single-line, double-quoted,
    backslash escapes); a `#` outside a string is yielded too: the comment starts there."""
    in_string = escaped = False
    for column, char in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        else:
            yield column, char
