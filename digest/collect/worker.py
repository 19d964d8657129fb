"""Feed-parsing processes: lxml and nh3 beside the collector, not under its GIL.

``fork_worker(fd)`` forks the collector itself: the child already has the parser
imported, so a worker costs a fork (milliseconds), not an interpreter start-up and
its imports (~0.2 s, a fifth of a cold collect). The child serves the socket ``fd``
with frames, each a 4-byte big-endian length and a pickle:

- per request the ``parse_new`` arguments: (body, feed, now, known, base_url,
  content_type);
- the reply is ("ok", parse.Parsed), ("error", one-line message) for a
  document that is not a feed, or ("crash", what went wrong) when the parser
  itself failed on it.

What the child inherits and must not use is put away before it serves: the
parent's signal handlers (it ignores SIGINT, leaving Ctrl-C to the collector, and
dies of anything else), every other descriptor (so the parent's sockets, SQLite
file and the other workers' sockets close when the parent closes them), and
logging (the parent's handlers write to files it closed). It only ever runs the
parser, pickle and os.read/os.write: nothing that takes a lock another thread of
the parent might have held at the fork.

The pickles come from our own parent over private sockets, never from the network.
A worker ends when its socket closes, so a collector killed with SIGKILL leaves no
parser behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import pickle
import signal
import struct
from typing import Any

from digest.collect.parse import parse_new
from digest.errors import FeedError

_LEN = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def fork_worker(fd: int) -> int:
    """Fork a parsing process that serves the socket ``fd``; its pid (in the parent).

    Raises OSError when the system cannot fork (the caller parses in a thread then).
    """
    # The parent's objects are not the child's to collect: frozen, its collector
    # neither walks them (CPU) nor writes to their pages (copying them).
    gc.freeze()
    _trim()
    try:
        pid = os.fork()
    except BaseException:
        gc.unfreeze()
        raise
    if pid == 0:
        code = 1
        try:
            _settle(fd)
            _work(fd)
            code = 0
        finally:
            # No atexit handlers, no flushing of the parent's buffers, and no tearing
            # down of the parsed documents' objects one by one.
            os._exit(code)
    gc.unfreeze()
    return pid


def _trim() -> None:
    """Give the heap's free pages back to the system before forking. glibc keeps
    what an earlier collect freed (megabytes of feed bodies); a child that
    allocates into those pages makes its own copy of each, and the parent keeps
    paying for its page too."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


def _settle(fd: int) -> None:
    """Put away what the child inherited from the collector and must not use."""
    with contextlib.suppress(ValueError):  # not the main thread: none was set here
        signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            if callable(signal.getsignal(sig)):  # a Python handler of the parent's
                signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)
    # Standard streams stay (a crash in C still says something); all else goes.
    os.closerange(3, fd)
    os.closerange(fd + 1, 1 << 20)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def answer(request: bytes) -> bytes:
    """The reply frame's payload for one request payload."""
    body, feed, now, known, base_url, content_type = pickle.loads(request)
    reply: tuple[str, Any]
    try:
        reply = ("ok", parse_new(body, feed, now=now, known=known, base_url=base_url,
                                 content_type=content_type))
    except FeedError as e:
        reply = ("error", e.message)
    except Exception as e:  # a parser bug costs this document, not the worker
        reply = ("crash", f"{type(e).__name__}: {e}"[:300])
    return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)


def serve(fd_in: int, fd_out: int) -> None:
    while True:
        head = _read_exactly(fd_in, 4)
        if head is None:
            return
        request = _read_exactly(fd_in, _LEN.unpack(head)[0])
        if request is None:
            return
        _write_all(fd_out, frame(answer(request)))


def _write_all(fd: int, data: bytes) -> None:
    out = memoryview(data)
    while out:
        out = out[os.write(fd, out):]


def _work(fd: int) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        serve(fd, fd)
