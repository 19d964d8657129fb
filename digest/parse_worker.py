"""A feed-parsing process: lxml and nh3 beside the collector, not under its GIL.

``parsepool.ParsePool`` starts these as ``python -m digest.parse_worker`` and
speaks frames over their pipes, each a 4-byte big-endian length and a pickle:

- a request is the ``parse_new`` arguments: (body, feed, now, known, base_url,
  content_type);
- the reply is ("ok", (entries, articles)), ("error", one-line message) for a
  document that is not a feed, or ("crash", what went wrong) when the parser
  itself failed on it.

A plain process of our own rather than multiprocessing: its workers re-import
the parent's ``__main__``, which under the ``digest`` console script is the whole
CLI (about 1.5 s of imports per worker, more than a cold collect's parsing).
This one imports the parser only. The pickles come from our own parent over
private pipes, never from the network.

It ends when stdin closes, so a collector killed with SIGKILL leaves no parser
behind; it ignores SIGINT, leaving Ctrl-C to the collector, which closes stdin.
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
        out = memoryview(frame(answer(request)))
        while out:
            out = out[os.write(fd_out, out):]


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):
        serve(sys.stdin.fileno(), sys.stdout.fileno())
    # Nothing to flush (replies go out with os.write), and tearing down the parsed
    # documents' objects one by one would make the collector wait for it.
    os._exit(0)


if __name__ == "__main__":
    main()
