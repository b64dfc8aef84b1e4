"""Length-prefixed frames over a pipe: how the server talks to its child processes (the shadow
evaluator, server.shadow_process; the decision writer, server.decision_process)."""

from __future__ import annotations

import struct

_HEAD = struct.Struct("<I")


def write_frame(pipe, payload: bytes) -> None:
    """Send one frame and flush it (the other side waits for whole frames)."""
    pipe.write(_HEAD.pack(len(payload)) + payload)
    pipe.flush()


def read_frame(pipe) -> bytes | None:
    """The next frame, or None at the end of the pipe (the other side closed it or died)."""
    head = pipe.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    size = _HEAD.unpack(head)[0]
    data = pipe.read(size)
    return data if len(data) == size else None
