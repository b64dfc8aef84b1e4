"""How the server talks to its child processes (the shadow evaluator, server.shadow_process; the
decision writer, server.decision_process): each started with its own interpreter (`python -m`,
no fork of a threaded server), length-prefixed frames over its stdin and stdout, and ended by
closing its stdin."""

from __future__ import annotations

import struct
import subprocess
import sys

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


def start_child(module: str) -> subprocess.Popen:
    """`python -m module` with pipes for the frames."""
    return subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            close_fds=True)


def end_child(process: subprocess.Popen, timeout: float) -> None:
    """Close its input (it reads the end and exits) and reap it; killed past `timeout` seconds."""
    try:
        process.stdin.close()
    except OSError:
        pass
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()
