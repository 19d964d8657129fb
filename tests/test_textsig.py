"""Reading a day's texts by distinct chunks finds what one regex pass over the day finds."""

from __future__ import annotations

from digest.rank import signatures as textsig
from tests.clusterset import load


def test_chunked_scan_matches_one_pass() -> None:
    texts = [t for a in load().articles for t in (a.title, a.summary[:200])]
    texts += ["4 000 people", "In 2019 2020 and 1 000 000 more", "x\u00a04 5", "a  1  2",
              "4-5 6", "", "ends with 7", "8 starts", "€4 000.", "Brüssel 3,5 %"]
    surface, ids = textsig._tokens(" \x00 ".join(texts))
    names = list(surface)
    assert [names[k] for k in ids.tolist()] == textsig._SCAN_ALL.findall("\x00".join(texts))


def test_reading_arrays_match_the_signatures() -> None:
    reading = textsig.read(load().articles)
    for arrays, field in (((reading.word_art, reading.word_id), "words"),
                          ((reading.key_art, reading.key_id), "keys")):
        rows = {(a, reading.vocab[w]) for a, w in zip(*(x.tolist() for x in arrays),
                                                      strict=True)}
        assert rows == {(k, w) for k, s in enumerate(reading.sigs) for w in getattr(s, field)}
    again = textsig.Reading.of(reading.sigs)
    assert {(a, again.vocab[w]) for a, w in zip(again.word_art.tolist(), again.word_id.tolist(),
                                                 strict=True)} == {
        (a, reading.vocab[w]) for a, w in zip(reading.word_art.tolist(),
                                              reading.word_id.tolist(), strict=True)}
