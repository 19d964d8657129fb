"""The embedding worker process gives the vectors this process would."""

from __future__ import annotations

import numpy as np
import pytest

from digest.rank import embed
from tests.clusterset import load


@pytest.fixture
def texts() -> list[str]:
    from digest.rank.signatures import embed_text

    return [embed_text(a) for a in load().articles]


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> embed._Worker:
    """The embedding worker, forced even on one core, for every day size; a worker
    that does not start fails the test instead of skipping it."""
    monkeypatch.setenv("DIGEST_EMBED_WORKER", "1")
    monkeypatch.setattr(embed, "WORKER_MIN_TEXTS", 1)
    started = embed._worker()
    assert started is not None, "the embedding worker did not start (or died earlier)"
    return started


def _here_only(texts: object) -> object:
    raise AssertionError("embedded in this process: the worker's answer was lost")


def test_worker_matches_in_process(texts: list[str], worker: embed._Worker,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    here = embed.Embedder().embed(texts)
    # A failed worker would be covered up by embedding here: that way is shut.
    monkeypatch.setattr(embed, "embedder", _here_only)
    first = embed.embed_async(texts)
    assert first._ticket is not None  # it went to the worker
    assert np.array_equal(first.result(), here)
    embed.forget()  # the worker starts cold again, and answers the same
    assert np.array_equal(embed.embed_async(texts[:7]).result(), here[:7])
    assert worker.alive


def test_an_answer_nobody_collected_is_dropped(texts: list[str], worker: embed._Worker,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    here = embed.Embedder().embed(texts)
    stale = embed.embed_async(texts[:5])
    fresh = embed.embed_async(texts)
    with monkeypatch.context() as m:
        m.setattr(embed, "embedder", _here_only)  # the fresh answer is the worker's
        assert np.array_equal(fresh.result(), here)
    assert np.array_equal(stale.result(), here[:5])  # embedded here instead
    assert worker.alive


def test_the_worker_can_be_forced_on_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed, "usable_cores", lambda: 1)
    monkeypatch.delenv("DIGEST_EMBED_WORKER", raising=False)
    assert embed._worker() is None  # one core: embed here
    monkeypatch.setenv("DIGEST_EMBED_WORKER", "1")
    assert embed._worker() is not None


def test_small_days_stay_in_process(texts: list[str]) -> None:
    pending = embed.embed_async(texts[:3])
    assert pending._worker is None
    assert pending.result().shape == (3, embed.DIM)


def test_texts_split_at_once_pool_as_one_by_one(texts: list[str]) -> None:
    parts = embed._parts()
    together = embed.Embedder(parts)
    assert together.embed([]).shape == (0, embed.DIM)
    got = together.embed([*texts[:40], "", "a\x00b", " ".join(["word"] * 60)])
    again = together.embed(texts[40:80])  # the cache grows: rows stay right
    alone = embed.Embedder(parts)
    want = [alone.embed([t])[0] for t in texts[:40]]
    assert np.allclose(got[:40], want, atol=1e-6)
    assert not got[40].any()
    assert np.allclose(got[41], alone.embed(["a b"])[0], atol=1e-6)
    assert np.allclose(got[42], alone.embed([" ".join(["word"] * 48)])[0], atol=1e-6)
    assert np.allclose(again, embed.Embedder(parts).embed(texts[40:80]), atol=1e-6)


def test_marks_after_a_word_are_tokenized_on_their_own_with_the_same_ids(
        texts: list[str]) -> None:
    _, tokenizer = embed._parts()
    chunks = sorted({c for t in texts for c in t.split()}
                    | {"a.", "x)", "1,", "é,", "a²,", ".", ",,", "ok!?", "Zürich.", "U.S.", "'s"})
    whole = tokenizer.encode_batch_fast(["\u2581\u2581" + c for c in chunks],
                                        add_special_tokens=False)
    assert embed._token_ids(tokenizer, chunks) == [e.ids for e in whole]
    assert embed._tails[id(tokenizer)]  # this vocabulary allows the shortcut
