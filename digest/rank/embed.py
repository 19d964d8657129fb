"""Static sentence vectors from the word embeddings shipped inside `wordllama`.

The model (256-d, 16 MB) lives in the wheel; it is loaded with downloads
disabled, so nothing is ever fetched at run time. ``wordllama.embed`` would
tokenize every text through the HF tokenizer and pad each batch, which costs
~0.2 ms a headline; a day has few distinct words, so this module tokenizes each
distinct whitespace-separated chunk once and pools the cached token sums, giving
the same mean-pooled vector for a fraction of the cost.

A large day is embedded in a worker process (``embed_async``), so that the
tokenizer and the pooling run on the other core while the caller reads the
day's signatures: the two together were the largest part of ranking a day, and
a thread would hold the GIL against the signatures' Python. The worker gets the
token table and the tokenizer from this process (it never loads the model) and
keeps its own chunk cache; ``forget`` empties both caches.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from itertools import chain, count
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from digest.worker_process import usable_cores, worker_env

DIM = 256

_lock = threading.Lock()
_model: Any = None


def _load() -> Any:
    global _model
    with _lock:
        if _model is None:
            import wordllama
            from wordllama import WordLlama

            _model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent,
                                    disable_download=True)
    return _model


_parts_cache: tuple[np.ndarray, Tokenizer] | None = None


def _parts() -> tuple[np.ndarray, Tokenizer]:
    """The token table (first DIM columns) and an unpadded tokenizer, made once
    per process: each chunk's ids then come back unpadded, so its token rows
    are summed without a mask. The tokenizer's normalizer (prepend "▁", every
    space to "▁") is left out: a chunk has no spaces, so ``Embedder`` writes
    the normalized " chunk" itself, "▁▁chunk", and the tokenizer skips the
    per-character alignment bookkeeping."""
    global _parts_cache
    model = _load()
    with _lock:
        if _parts_cache is None:
            tokenizer = Tokenizer.from_str(model.tokenizer.to_str())
            tokenizer.no_padding()
            tokenizer.normalizer = None
            _parts_cache = (np.ascontiguousarray(model.embedding[:, :DIM], np.float32),
                            tokenizer)
    return _parts_cache


class Embedder:
    """Mean-pooled token vectors per text, cached per whitespace chunk."""

    MAX_CHUNKS = 48  # a headline and its first sentence; longer texts are cut here

    def __init__(self, parts: tuple[np.ndarray, Tokenizer] | None = None) -> None:
        self._table, self._tokenizer = parts or _parts()
        # Row 0 is the empty chunk, used as padding.
        self._index: dict[str, int] = {"": 0}
        self._sums = np.zeros((1, DIM), np.float32)
        self._counts = np.zeros(1, np.float32)

    def _learn(self, chunks: Iterable[str]) -> None:
        new = [c for c in chunks if c not in self._index]  # (their order does not matter)
        if not new:
            return
        limit = self._table.shape[0] - 1
        ids = _token_ids(self._tokenizer, new)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.minimum(np.fromiter(chain.from_iterable(ids), dtype=np.int64,
                                      count=int(lengths.sum())), limit)
        base = len(self._counts)  # (the index also holds the text separator)
        self._index.update((c, base + k) for k, c in enumerate(new))
        self._sums = np.vstack([self._sums, _ragged_sums(self._table, flat, lengths)])
        self._counts = np.concatenate([self._counts, lengths.astype(np.float32)])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One mean-pooled row per text (zeros for an empty text)."""
        # All texts split at once, with a NUL chunk between two texts (a NUL in
        # a text is whitespace here).
        if not texts:
            return np.zeros((0, DIM), np.float32)
        chunks = " \x00 ".join(t.replace("\x00", " ") for t in texts).split()
        self._learn(set(chunks) - {"\x00"})
        self._index.setdefault("\x00", -1)
        rows = np.fromiter(map(self._index.__getitem__, chunks), dtype=np.int64,
                           count=len(chunks))
        ends = np.append(np.flatnonzero(rows < 0), len(rows))  # each text's end
        lengths = np.diff(ends, prepend=-1) - 1
        keep = rows >= 0
        if lengths.max(initial=0) > self.MAX_CHUNKS:  # longer texts are cut
            # (each text's chunks and the separator after it; the last has none)
            place = np.arange(len(rows)) - np.repeat(ends - lengths, lengths + 1)[:len(rows)]
            keep &= place < self.MAX_CHUNKS
            lengths = np.minimum(lengths, self.MAX_CHUNKS)
        rows = rows[keep]
        sums = _ragged_sums(self._sums, rows, lengths)
        # Token counts are whole numbers: their float sums are exact in any order.
        owner = np.repeat(np.arange(len(texts)), lengths)
        total = np.bincount(owner, weights=self._counts[rows], minlength=len(texts))
        return (sums / np.maximum(total, 1.0)[:, None].astype(np.float32)).astype(np.float32)


_MARKS = ".,:;!?)'\""  # a mark ending a chunk ("quake,") is tokenized on its own...
_tails: dict[int, dict[str, list[int]]] = {}  # ...with these ids, per tokenizer


def _token_ids(tokenizer: Tokenizer, chunks: list[str]) -> list[list[int]]:
    """Each chunk's token ids, as the tokenizer gives them for " chunk" inside a
    sentence ("▁▁chunk", normalized, see _parts).

    A chunk that ends in one of _MARKS after an ASCII letter or digit is
    tokenized as its word, then the mark: when no token of the vocabulary holds
    such a letter or digit followed by a mark, BPE can never merge across the
    two, so the ids are the same, and "quake," is free once "quake" is known
    (a third of a day's distinct chunks)."""
    tails = _tails.get(id(tokenizer))
    if tails is None:
        spans = re.compile(r"[A-Za-z0-9][" + re.escape(_MARKS) + "]")
        if any(spans.search(t) for t in tokenizer.get_vocab()):
            tails = {}
        else:
            probe = tokenizer.encode_batch_fast(["\u2581\u2581a" + m for m in ("", *_MARKS)],
                                                add_special_tokens=False)
            base = len(probe[0].ids)
            tails = {m: e.ids[base:] for m, e in zip(_MARKS, probe[1:], strict=True)}
        _tails[id(tokenizer)] = tails
    words = [c[:-1] if tails and len(c) > 1 and c[-1] in tails and c[-2].isascii()
             and c[-2].isalnum() else c for c in chunks]
    distinct = list(dict.fromkeys(words))
    found = dict(zip(distinct, (e.ids for e in tokenizer.encode_batch_fast(
        ["\u2581\u2581" + w for w in distinct], add_special_tokens=False)), strict=True))
    return [found[w] if len(w) == len(c) else found[w] + tails[c[-1]]
            for w, c in zip(words, chunks, strict=True)]


_BLOCK = 512  # rows summed together: their accumulators and the gathered rows stay in cache


def _ragged_sums(table: np.ndarray, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Σ table[flat[k]] over each run of ``lengths`` consecutive entries of ``flat``.

    Element by element, in order (the same additions, in the same order, as a
    masked sum over padded rows): the p-th row of every run that has one, runs
    sorted longest first so that those are a prefix, a block of runs at a time.
    """
    n, dim = len(lengths), table.shape[1]
    order = np.argsort(-lengths, kind="stable")
    starts = (np.cumsum(lengths) - lengths)[order]
    ranked = lengths[order]
    out = np.empty((n, dim), np.float32)
    gathered = np.empty((_BLOCK, dim), np.float32)
    for first in range(0, n, _BLOCK):
        runs = -ranked[first:first + _BLOCK]  # ascending
        begin = starts[first:first + _BLOCK]
        acc = np.zeros((len(runs), dim), np.float32)
        for p in range(int(-runs[0]) if len(runs) else 0):
            m = int(np.searchsorted(runs, -p, side="left"))  # runs longer than p
            np.take(table, flat[begin[:m] + p], axis=0, out=gathered[:m], mode="clip")
            acc[:m] += gathered[:m]
        out[order[first:first + _BLOCK]] = acc
    return out


_shared: Embedder | None = None


def embedder() -> Embedder:
    """A process-wide embedder (the chunk cache is reused across calls)."""
    global _shared
    if _shared is None:
        _shared = Embedder()
    return _shared


# -- the worker process ---------------------------------------------------------

WORKER_MIN_TEXTS = 1000  # fewer texts embed here: the round trip would cost more than it saves


class Pending:
    """Sentence vectors on their way: from the worker, or computed here on demand."""

    def __init__(self, texts: Sequence[str], worker: _Worker | None,
                 ticket: int | None) -> None:
        self._texts, self._worker, self._ticket = texts, worker, ticket
        self._vectors: np.ndarray | None = None

    @property
    def texts(self) -> Sequence[str]:
        return self._texts

    def ready(self) -> bool:
        """Would ``result()`` answer without waiting for the worker?"""
        return self._vectors is not None or self._worker is None or self._worker.ready()

    def result(self) -> np.ndarray:
        """The vectors (one row per text, as ``Embedder.embed``; the caller may
        change them); waits for the worker."""
        if self._vectors is None:
            got = None
            if self._worker is not None and self._ticket is not None:
                got = self._worker.receive(self._ticket, len(self._texts))
            self._worker = None
            self._vectors = got if got is not None else embedder().embed(self._texts)
        return self._vectors

    def copied(self) -> Pending:
        """The same vectors for a second user that changes them in place (clustering
        centres them): its ``result()`` is a copy, and this one's stays as it was."""
        return _Copied(self)


class _Copied(Pending):
    def __init__(self, of: Pending) -> None:
        super().__init__(of.texts, None, None)
        self._of = of

    def ready(self) -> bool:
        return self._of.ready()

    def result(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = self._of.result().copy()
        return self._vectors


def embed_async(texts: Sequence[str]) -> Pending:
    """Start embedding ``texts`` (in the worker process when the day is large and
    there is a core to spare); ``result()`` on the answer gives the vectors.

    One request is in the worker at a time: a new one makes an earlier answer
    nobody collected be thrown away (its ``result()`` then embeds here)."""
    worker = _worker() if len(texts) >= WORKER_MIN_TEXTS else None
    ticket = worker.submit(texts) if worker is not None else None
    return Pending(texts, worker, ticket)


def warm() -> None:
    """Load the model and start the worker, and have it answer once (its first
    answer pays one-off costs), as a long-running process does once."""
    _parts()
    worker = _worker()
    if worker is not None:
        ticket = worker.submit(["warm up"])
        if ticket is not None:
            worker.receive(ticket, 1)


def forget() -> None:
    """Empty the chunk caches, here and in the worker: the next day starts cold."""
    global _shared
    _shared = None
    if _pool is not None:
        _pool.forget()


class _Worker:
    """One worker process and the pipe to it; requests are answered in order."""

    def __init__(self) -> None:
        table, tokenizer = _parts()
        # A plain child interpreter over a socket pair (not multiprocessing's
        # spawn, which re-runs the caller's main script in the child).
        ours, theirs = socket.socketpair()
        # One core for the worker: the tokenizer's thread pool would take the
        # other from the signatures it runs beside.
        env = worker_env(TOKENIZERS_PARALLELISM="false", RAYON_NUM_THREADS="1",
                         OPENBLAS_NUM_THREADS="1")
        entry = f"from digest.rank.embed import _child; _child({theirs.fileno()})"
        try:
            self._process = subprocess.Popen([sys.executable, "-c", entry],
                                             pass_fds=(theirs.fileno(),),
                                             stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send((table, tokenizer.to_str()))
        self._io = threading.Lock()
        self._tickets = count()
        self._waiting: int | None = None  # the ticket whose answer is still in the pipe
        self.alive = True

    def submit(self, texts: Sequence[str]) -> int | None:
        with self._io:
            if not self.alive:
                return None
            try:
                self._drain()
                self._conn.send(("embed", list(texts)))
            except _BROKEN:
                self.alive = False
                return None
            self._waiting = next(self._tickets)
            return self._waiting

    def receive(self, ticket: int, rows: int) -> np.ndarray | None:
        """The answer to ``ticket``; None if it was thrown away or the worker failed."""
        with self._io:
            if ticket != self._waiting or not self.alive:
                return None
            self._waiting = None
            out = np.empty((rows, DIM), np.float32)
            try:
                if self._conn.recv_bytes_into(out.data.cast("B")) != out.nbytes:
                    raise OSError("short answer from the embedding worker")
            except _BROKEN:
                self.alive = False
                return None
            return out

    def ready(self) -> bool:
        """Is an answer waiting in the pipe (or nothing left to wait for)?"""
        try:
            return not self.alive or self._waiting is None or self._conn.poll()
        except _BROKEN:
            return True

    def forget(self) -> None:
        with self._io:
            try:
                self._drain()
                self._conn.send(("forget", None))
            except _BROKEN:
                self.alive = False

    def _drain(self) -> None:
        if self._waiting is not None:
            self._waiting = None
            self._conn.recv_bytes()


_BROKEN = (OSError, EOFError, ValueError, multiprocessing.BufferTooShort)


_pool: _Worker | None = None
_pool_lock = threading.Lock()


def _worker() -> _Worker | None:
    """The worker process, started on first use. None on a single core, and once a
    worker has failed: from then on this process embeds by itself."""
    global _pool
    # DIGEST_EMBED_WORKER=1 starts it even on one core (slower there, but the same
    # answers): the tests force it so that the worker is tested on every machine.
    if usable_cores() < 2 and os.environ.get("DIGEST_EMBED_WORKER") != "1":
        return None
    with _pool_lock:
        if _pool is None:
            try:
                _pool = _Worker()
            except (OSError, ValueError):  # (ValueError: no pass_fds here)
                return None
    return _pool if _pool.alive else None


def _child(fd: int) -> None:
    """The worker process's entry point."""
    _serve(Connection(fd))


def _serve(conn: Connection) -> None:
    """The worker's loop: token table and tokenizer first, then requests until EOF."""
    table, tokenizer_json = conn.recv()
    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    parts = (table, tokenizer)
    local = Embedder(parts)
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "forget":
            local = Embedder(parts)
        else:
            conn.send_bytes(np.ascontiguousarray(local.embed(payload)).data.cast("B"))
