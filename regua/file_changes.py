"""Whether a SQLite file may have been written since the last time we asked: Linux inotify on the
file's folder, read without blocking.

Why: a cache kept in front of a SQLite file must learn of every commit, whichever process made
it. Asking SQLite (one query per lookup) costs a read transaction on a file whose page cache every
decision-log commit invalidates, and on a busy server's event loop that query cost ~40 µs of CPU
per request, more than the lookups it saved. Every commit reaches the file through write(2) (WAL
frames into `-wal`; checkpoints and rollback-journal commits into the file itself), and the
kernel queues an inotify event for it before write(2) returns to the committer. So when our read
of the inotify descriptor finds nothing, no commit has completed since the previous read: the
cache may answer from memory. When it finds an event, the caller asks SQLite once.

The folder is watched, not the files: a `-wal` deleted and created again (the last connection of
any process closing) is still seen, and no file of the database is ever opened here. (Opening and
closing a descriptor on a database file releases every POSIX lock this process holds on it,
SQLite's included: see portfolio/monitoring/account_cache.py.) Events of other files in the folder
(a `.notifications.db` beside the store) are told apart by name and ignored.

On an asyncio event loop (`attach`) the loop itself reads the descriptor when it becomes readable,
and a call on the loop's thread asks the kernel nothing: even poll(0), a system call that hands
the GIL to any waiting thread, cost a busy server ~9 % of its requests a second. It is still
exact for a request that came over a socket: the event of a commit completed before the request
was sent is ready in the kernel before the request's bytes are; the loop's epoll reports both in
the same pass (or the event earlier), the loop runs the reader callback in that pass, and a
request's coroutine only starts in a later one (asyncio schedules a new task's first step with
call_soon). Any other thread asks the kernel on each call.

Where inotify is not available (not Linux, the per-user watch limit reached), `FileChanges.open`
answers None and the caller asks SQLite every time, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import threading

# <sys/inotify.h>
_IN_MODIFY = 0x002  # write(2), truncate
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
# Not IN_ATTRIB: SQLite sets the mode of a -wal each time a connection opens it, which writes nothing.
_WATCHED = _IN_MODIFY | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF \
    | _IN_MOVE_SELF
_GONE = _IN_IGNORED | _IN_DELETE_SELF | _IN_MOVE_SELF  # the watch is over
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
_SUFFIXES = ("", "-wal", "-journal")  # the files a commit writes (WAL mode, or rollback journal)

_libc = None


def _inotify():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.inotify_init1.argtypes = [ctypes.c_int]
        _libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return _libc


class FileChanges:
    """`changed()`: True when one of the database's files may have been written since the previous
    call (and on the first call). Not thread-safe: callers serialize their calls (and whatever
    they do with the answer)."""

    def __init__(self, fd: int, names: set[bytes]):
        self._fd = fd
        self._loop = None  # the event loop reading the descriptor (attach), and its thread
        self._loop_thread = None
        self._poll = select.poll()  # asking whether there is anything to read costs a third of reading
        self._poll.register(fd, select.POLLIN)
        self._names = names
        self._pending = True  # nothing is known before the first look
        self._broken = False  # the folder went away: every call answers True from then on

    @classmethod
    def open(cls, database: str) -> "FileChanges | None":
        """A watch on the folder of the SQLite file `database`, or None where inotify is unavailable."""
        if not hasattr(os, "O_NONBLOCK"):
            return None
        real = os.path.realpath(database)  # a symlinked file is written where it really lives
        folder, name = os.path.split(real)
        try:
            libc = _inotify()
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):  # no libc inotify (not Linux)
            return None
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(folder or "."), _WATCHED) < 0:
            os.close(fd)
            return None
        return cls(fd, {os.fsencode(name + suffix) for suffix in _SUFFIXES})

    def attach(self, loop, lock) -> None:
        """Read the events on `loop` (call from its thread) as they come, holding `lock` (the one the
        callers serialize their calls with); calls from that thread then make no system call."""
        def on_readable() -> None:
            with lock:
                self._drain()

        if self._fd >= 0 and self._loop is None:
            loop.add_reader(self._fd, on_readable)
            self._loop, self._loop_thread = loop, threading.get_ident()

    def changed(self) -> bool:
        if self._fd < 0:
            return True
        # On the loop's thread while it runs, its reader has already read what came (a stopped loop
        # reads nothing, and a finished thread's ident can be another thread's).
        on_loop = self._loop_thread == threading.get_ident() and self._loop.is_running()
        if not on_loop and self._poll.poll(0):
            self._drain()
        pending, self._pending = self._pending, False
        return pending or self._broken

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                self._broken = True
                return
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                name = data[offset:offset + length].rstrip(b"\0")
                offset += length
                if mask & _IN_Q_OVERFLOW:
                    self._pending = True  # events were dropped: any of them may have been a commit
                elif mask & _GONE:
                    self._broken = True  # the folder was removed or moved: nothing more will come
                elif name in self._names:
                    self._pending = True

    def close(self) -> None:
        if self._fd < 0:
            return
        loop, thread, self._loop, self._loop_thread = self._loop, self._loop_thread, None, None
        if loop is not None and not loop.is_closed():
            if threading.get_ident() == thread:
                loop.remove_reader(self._fd)
            else:  # not thread-safe from here: the loop removes it (a closed descriptor is dropped quietly)
                loop.call_soon_threadsafe(loop.remove_reader, self._fd)
        os.close(self._fd)
        self._fd = -1

    def __del__(self) -> None:  # an inotify instance is a scarce resource (128 per user by default)
        try:
            self.close()
        except OSError:
            pass
