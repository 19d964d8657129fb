"""Static sentence vectors from the word embeddings shipped inside `wordllama`.

The model (256-d, 16 MB) lives in the wheel; it is loaded with downloads
disabled, so nothing is ever fetched at run time. ``wordllama.embed`` would
tokenize every text through the HF tokenizer and pad each batch, which costs
~0.2 ms a headline; a day has few distinct words, so this module tokenizes each
distinct whitespace-separated chunk once and pools the cached token sums, giving
the same mean-pooled vector for a fraction of the cost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

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
    are summed without a mask."""
    global _parts_cache
    model = _load()
    with _lock:
        if _parts_cache is None:
            tokenizer = Tokenizer.from_str(model.tokenizer.to_str())
            tokenizer.no_padding()
            _parts_cache = (np.ascontiguousarray(model.embedding[:, :DIM], np.float32),
                            tokenizer)
    return _parts_cache


class Embedder:
    """Mean-pooled token vectors per text, cached per whitespace chunk."""

    MAX_CHUNKS = 48  # a headline and its first sentence; longer texts are cut here

    def __init__(self) -> None:
        self._table, self._tokenizer = _parts()
        # Row 0 is the empty chunk, used as padding.
        self._index: dict[str, int] = {"": 0}
        self._sums = np.zeros((1, DIM), np.float32)
        self._counts = np.zeros(1, np.float32)

    def _learn(self, chunks: Iterable[str]) -> None:
        new = sorted(c for c in chunks if c not in self._index)
        if not new:
            return
        limit = self._table.shape[0] - 1
        # A leading space gives the tokens a word has in the middle of a sentence.
        encoded = self._tokenizer.encode_batch([" " + c for c in new], add_special_tokens=False)
        ids = [e.ids for e in encoded]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.minimum(np.fromiter(chain.from_iterable(ids), dtype=np.int64,
                                      count=int(lengths.sum())), limit)
        # Token by token, in order (the same additions, in the same order, as a
        # masked sum over padded rows): the k-th token of every chunk that has
        # one. Chunks sorted longest first make those a prefix.
        order = np.argsort(-lengths, kind="stable")
        starts = (np.cumsum(lengths) - lengths)[order]
        ranked = lengths[order]
        acc = np.zeros((len(new), DIM), np.float32)
        for k in range(int(ranked[0]) if len(ranked) else 0):
            m = int(np.searchsorted(-ranked, -k, side="left"))  # chunks longer than k
            acc[:m] += self._table[flat[starts[:m] + k]]
        sums = np.empty_like(acc)
        sums[order] = acc
        base = len(self._index)
        self._index.update((c, base + k) for k, c in enumerate(new))
        self._sums = np.vstack([self._sums, sums])
        self._counts = np.concatenate([self._counts, lengths.astype(np.float32)])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One mean-pooled row per text (zeros for an empty text)."""
        width = self.MAX_CHUNKS
        split = [t.split()[:width] for t in texts]
        flat = list(chain.from_iterable(split))
        self._learn(set(flat))
        lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        rows = np.fromiter(map(self._index.__getitem__, flat), dtype=np.int64, count=len(flat))
        # Chunk by chunk, in order: the p-th chunk of every text that has one.
        # Texts sorted longest first make "every text that has one" a prefix.
        order = np.argsort(-lengths, kind="stable")
        starts = (np.cumsum(lengths) - lengths)[order]
        ranked = lengths[order]
        sums = np.zeros((len(texts), DIM), np.float32)
        total = np.zeros(len(texts), np.float32)
        for p in range(int(ranked[0]) if len(ranked) else 0):
            m = int(np.searchsorted(-ranked, -p, side="left"))  # texts longer than p
            at = rows[starts[:m] + p]
            sums[:m] += self._sums[at]
            total[:m] += self._counts[at]
        out = np.empty((len(texts), DIM), dtype=np.float32)
        out[order] = sums / np.maximum(total, 1.0)[:, None]
        return out


_shared: Embedder | None = None


def embedder() -> Embedder:
    """A process-wide embedder (the chunk cache is reused across calls)."""
    global _shared
    if _shared is None:
        _shared = Embedder()
    return _shared
