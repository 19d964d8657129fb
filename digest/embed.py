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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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


class Embedder:
    """Mean-pooled token vectors per text, cached per whitespace chunk."""

    MAX_CHUNKS = 48  # a headline and its first sentence; longer texts are cut here

    def __init__(self) -> None:
        model = _load()
        self._table: np.ndarray = np.ascontiguousarray(model.embedding[:, :DIM], np.float32)
        self._tokenizer = model.tokenizer
        # Row 0 is the empty chunk, used as padding.
        self._index: dict[str, int] = {"": 0}
        self._sums = np.zeros((1, DIM), np.float32)
        self._counts = np.zeros(1, np.float32)

    def _learn(self, chunks: set[str]) -> None:
        new = sorted(c for c in chunks if c not in self._index)
        if not new:
            return
        sums, counts = [], []
        limit = self._table.shape[0] - 1
        for start in range(0, len(new), 4096):
            part = new[start:start + 4096]
            # A leading space gives the tokens a word has in the middle of a sentence.
            encoded = self._tokenizer.encode_batch([" " + c for c in part],
                                                   add_special_tokens=False)
            # The model's tokenizer pads each batch; the mask says which ids are real.
            ids = np.minimum(np.array([e.ids for e in encoded], dtype=np.int64), limit)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.float32)
            sums.append(np.einsum("ctd,ct->cd", self._table[ids], mask))
            counts.append(mask.sum(axis=1))
        base = len(self._index)
        self._index.update((c, base + k) for k, c in enumerate(new))
        self._sums = np.vstack([self._sums, *sums])
        self._counts = np.concatenate([self._counts, *counts])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One mean-pooled row per text (zeros for an empty text)."""
        width = self.MAX_CHUNKS
        split = [t.split()[:width] for t in texts]
        self._learn({c for chunks in split for c in chunks})
        index = self._index
        lengths = np.fromiter((len(chunks) for chunks in split), dtype=np.int64,
                              count=len(split))
        rows = np.zeros((len(texts), width), dtype=np.int64)
        rows[np.arange(width)[None, :] < lengths[:, None]] = [
            index[c] for chunks in split for c in chunks]
        out = np.empty((len(texts), DIM), dtype=np.float32)
        step = 2048  # texts at a time, so the gathered rows stay in cache
        for start in range(0, len(texts), step):
            block = rows[start:start + step]
            total = self._counts[block].sum(axis=1, keepdims=True)
            out[start:start + step] = (self._sums[block].sum(axis=1)
                                       / np.maximum(total, 1.0))
        return out


_shared: Embedder | None = None


def embedder() -> Embedder:
    """A process-wide embedder (the chunk cache is reused across calls)."""
    global _shared
    if _shared is None:
        _shared = Embedder()
    return _shared
