"""Feed-parsing processes: lxml and nh3 beside the collector, not under its GIL.

``parsepool.ParsePool`` starts ``python -m digest.parse_worker FD [FD ...]`` with
one end of a socket pair per worker. The process imports the parser once, then
forks one copy of itself per further descriptor (a fresh single-threaded process:
safe to fork), so N workers cost one interpreter start-up, not N. Each worker
serves its own socket with frames, each a 4-byte big-endian length and a pickle:

- first, unasked, its process id (so the collector can stop that one worker);
- then per request the ``parse_new`` arguments: (body, feed, now, known,
  base_url, content_type);
- the reply is ("ok", (entries, articles)), ("error", one-line message) for a
  document that is not a feed, or ("crash", what went wrong) when the parser
  itself failed on it.

A plain process of our own rather than multiprocessing: its workers re-import
the parent's ``__main__``, which under the ``digest`` console script is the whole
CLI (about 1.5 s of imports per worker, more than a cold collect's parsing).
The pickles come from our own parent over private sockets, never from the network.

A worker ends when its socket closes, so a collector killed with SIGKILL leaves
no parser behind; it ignores SIGINT, leaving Ctrl-C to the collector.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
from typing import Any

from digest.errors import FeedError
from digest.feedparse import parse_new

_LEN = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


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
        _write_all(fd, frame(pickle.dumps(os.getpid())))
        serve(fd, fd)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fds = [int(a) for a in sys.argv[1:]]
    children = []
    for i, fd in enumerate(fds[1:], 1):
        pid = os.fork()
        if pid == 0:
            for other in [fds[0], *fds[i + 1:]]:  # the ones between are closed already
                os.close(other)
            _work(fd)
            os._exit(0)
        children.append(pid)
        os.close(fd)
    _work(fds[0])
    # The sockets close together at the end of a collect, so the others are ending
    # too; reaping them adds their CPU time to ours, where the collector sees it.
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    # Nothing to flush (replies go out with os.write), and tearing down the parsed
    # documents' objects one by one would make the collector wait for it.
    os._exit(0)


if __name__ == "__main__":
    main()
