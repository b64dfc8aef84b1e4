"""How the server talks to its child processes (the shadow evaluator, server.shadow_process; the
decision writer, server.decision_process): each started with its own interpreter (`python -m`,
no fork of a threaded server), length-prefixed frames over its stdin and stdout, and ended by
closing its stdin."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading

_HEAD = struct.Struct("<I")


def write_frame(pipe, *payload: bytes) -> None:
    """Send one frame, its payload given whole or in parts, and flush it (the other side waits for
    whole frames)."""
    pipe.write(_HEAD.pack(sum(map(len, payload))))
    for part in payload:
        pipe.write(part)
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


class ChildProcess:
    """The server's handle on one child `python -m <module>`: the process (None until started and
    after it ended), the lock that guards it, how many times it was started; `close()` ends it for
    good. The child reads `setup` as its first frame."""

    module = ""

    def __init__(self, setup: bytes):
        self._setup = setup
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.starts = 0
        self._closed = False

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def _spawn(self) -> subprocess.Popen:
        """A new child, its setup sent (call with the lock held)."""
        self.starts += 1
        process = start_child(self.module)
        write_frame(process.stdin, self._setup)
        return process

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            process, self._process, self._closed = self._process, None, True
        if process is not None:
            end_child(process, timeout)
