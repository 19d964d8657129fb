"""The pair score: how alike two of the day's articles are, as one number.

``Day`` holds the day's evidence, computed once (signatures, word and name IDF,
centred sentence vectors, times, feeds); ``score_pairs`` scores the candidate
pairs in bulk, ``Day.scorer`` one pair at a time, ``penalty`` is the
contradiction check both subtract. The formula and why each signal is there:
see ``digest.rank.cluster``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from digest.models import Article
from digest.rank.background import MEAN
from digest.rank.embed import Pending
from digest.rank.signatures import Reading, Signature, read, stem
from digest.rank.threads import in_two_threads

# Pair score weights (see digest.rank.cluster). Set on tests/data/clustering/.
W_COS = 1.0
W_LEX = 0.4
W_KEY = 0.0
W_LEX_CROSS = 1.2  # either article not English: no vectors, words and names decide
W_KEY_CROSS = 0.9
W_CONFLICT = 0.12
W_NUMBERS = 0.3
VETO = 1.0
W_HOURS = 0.25
# One outlet rarely runs two pieces on one event in a day unless one updates the
# other; two of its pieces on one subject (the same telescope, security flaws)
# are usually two stories. Updates clear this easily.
W_SAME_FEED = 0.1
BIAS = -0.25
BIAS_CROSS = -0.3

BACKGROUND_WEIGHT = 40  # articles' worth of weight the typical day's mean gets
WINDOW_HOURS = 36.0  # reports further apart than this are not one event
MAX_POSTING = 30  # a word in more articles than this is too common to block on
# ...and in a small day, a word in a tenth of the articles names a topic (Iran, the
# Olympics), not one event: it is too common too, down to TOPIC_MIN articles.
TOPIC_SHARE = 10
TOPIC_MIN = 8
# Content evidence: what two reports of one event share. A pair has it when the two
# share a rarer name or number, or enough rarer words (LEX_MIN: one shared middling
# word is not it), or, between two English articles, a sentence-vector cosine this
# high (a paraphrase that shares no word: "Volcano erupts" / "Volcanic eruption").
# Below it a cosine alone is noise: centred vectors of unrelated news reach 0.4.
# Set on tests/data/clustering/ (no unrelated pair there without shared words reaches it).
LEX_MIN = 0.05
COS_ALONE = 0.5
# Event evidence: what lets a pair *start* a story or join two (``Day.starts``),
# stricter than the content evidence that lets a member stay. Two reports of one
# event share something only a few of the day's articles carry, in a headline (a
# name, a detail: "Navalny", "threat", "test"), or read alike beyond their topic
# (cosine >= COS_EVENT); two pieces on one topic share only words many articles
# carry ("Olympic", "Games"; "Iran", "Trump") at middling cosines, or a name their
# leads mention in passing ("Jeffrey Epstein", "Ghislaine Maxwell"). "A few" is
# SPECIFIC articles, more in a larger day (the blocking cap over SPECIFIC_PER_CAP).
# A date is when, not what: calendar words ("February", "Tuesday", "2026") are
# never specific. Set on the real day (tests/data/realday), reported on the fiction:
# COS_EVENT sits between the real day's same-topic pairs (up to 0.55) and the
# weakest link its six-report Iran-talks story needs (0.61).
SPECIFIC = 3
SPECIFIC_PER_CAP = 3
COS_EVENT = 0.58
# The second round, so the rules do not loosen as a day grows or changes make-up
# (in a bigger day more words fall under the count): a specific word in a headline
# counts only with a second, independent piece of evidence, a cosine past COS_WORD
# (two headlines that merely share a rare word, "Rotterdam" for a strike and for
# cycle lanes, are not one event; set on the fiction, where 0.3 keeps the
# Antofagasta paraphrases and 0.4 loses them). A country counts only in both
# headlines and past COS_PLACE (PLACES). Past SPECIFIC articles a word counts only
# while at most REPEATS of its articles come from an outlet that already ran it:
# the Olympics, four pieces of one outlet, are a beat. COS_PLACE and REPEATS set
# on the real day's 36 h and the padded day (tests/clusterset.py), reported on the
# fiction and the 48 h real day.
COS_WORD = 0.3
COS_PLACE = 0.45
REPEATS = 1
# Countries, their people and continents: where a topic happens, not which event
# ("China's internet" craze vs a betting site courting "Chinese" users; every
# Ukraine story names Ukraine). Such a word is never specific on its own (COS_PLACE).
_PLACES = """afghanistan afghan albania albanian algeria algerian argentina argentine
    armenia armenian australia australian austria austrian azerbaijan azerbaijani
    bangladesh bangladeshi belarus belarusian belgium belgian bolivia bolivian bosnia
    bosnian brazil brazilian britain british bulgaria bulgarian cambodia cambodian
    cameroon canada canadian chile chilean china chinese colombia colombian congo
    congolese croatia croatian cuba cuban cyprus cypriot czech czechia denmark danish
    dane ecuador egypt egyptian england english estonia estonian ethiopia ethiopian
    finland finnish finn france french georgia georgian germany german ghana ghanaian
    greece greek haiti haitian hungary hungarian iceland icelandic india indian
    indonesia indonesian iran iranian iraq iraqi ireland irish israel israeli italy
    italian japan japanese jordan jordanian kazakhstan kenya kenyan korea korean kosovo
    kuwait latvia latvian lebanon lebanese libya libyan lithuania lithuanian malaysia
    malaysian mali mexico mexican moldova moldovan mongolia morocco moroccan myanmar
    nepal netherlands dutch nigeria nigerian norway norwegian pakistan pakistani
    palestine palestinian panama peru peruvian philippines filipino poland polish
    portugal portuguese qatar qatari romania romanian russia russian rwanda saudi
    scotland scottish senegal serbia serbian singapore slovakia slovak slovenia somalia
    somali spain spanish sudan sudanese sweden swedish swede switzerland swiss syria
    syrian taiwan taiwanese thailand thai tunisia turkey turkish uganda ukraine
    ukrainian america american usa venezuela venezuelan vietnam vietnamese wales welsh
    yemen yemeni zimbabwe europe european africa african asia asian arab"""
PLACES = frozenset(stem(w) for w in _PLACES.split())
_CALENDAR = frozenset("""january february march april may june july august september
    october november december jan feb mar apr jun jul aug sep sept oct nov dec monday
    tuesday wednesday thursday friday saturday sunday today yesterday tomorrow tonight
    weekend""".split())


@dataclass
class Day:
    """Everything pair scoring needs, computed once for the day."""

    sigs: list[Signature]
    reading: Reading  # the same words and names as arrays
    vec: np.ndarray  # n × d, centred, unit length
    english: np.ndarray  # n bools
    hours: np.ndarray  # n floats, publication time
    feed: np.ndarray  # n ints, which feed each article came from
    idf: dict[str, float]
    df: dict[str, int]
    idf_of: np.ndarray  # the same, by word id
    df_of: np.ndarray
    norm: np.ndarray  # sqrt(Σ idf²) over each article's words
    key_mass: np.ndarray  # Σ idf over each article's names and numbers
    cap: int
    specific_of: np.ndarray  # by word id: in few enough articles to tell an event (SPECIFIC)
    place_of: np.ndarray  # by word id: as few, but a country (PLACES)

    def score(self, i: int, j: int) -> float:
        """The pair score, computed directly (for pairs blocking did not propose)."""
        return self.scorer()(i, j)

    def scorer(self) -> Callable[[int, int], float]:
        """``score`` as a function with the day bound in (linking calls it for
        thousands of pairs, one at a time): plain lists, each word's IDF with
        the too-common words (not blocked on) at zero."""
        rare = {w: (v if self.df[w] <= self.cap else 0.0) for w, v in self.idf.items()}
        idf, idf2 = rare.__getitem__, {w: v * v for w, v in rare.items()}.__getitem__
        sigs, rows = self.sigs, list(self.vec)
        hours, english, feed = self.hours.tolist(), self.english.tolist(), self.feed.tolist()
        norm, mass = self.norm.tolist(), self.key_mass.tolist()

        def score(i: int, j: int) -> float:
            a, b = sigs[i], sigs[j]
            dt = abs(hours[i] - hours[j])
            if dt > WINDOW_HOURS:
                return -1.0
            lex = sum(map(idf2, a.words & b.words)) / (norm[i] * norm[j] or 1.0)
            names = 2 * sum(map(idf, a.keys & b.keys)) / ((mass[i] + mass[j]) or 1.0)
            if english[i] and english[j]:
                cos = float(rows[i] @ rows[j])
                if not (names > 0 or lex >= LEX_MIN or cos >= COS_ALONE):
                    cos = 0.0  # no content evidence: a middling cosine proves nothing
                base = W_COS * cos + W_LEX * lex + W_KEY * names + BIAS
            else:
                base = W_LEX_CROSS * lex + W_KEY_CROSS * names + BIAS_CROSS
            same = W_SAME_FEED if feed[i] == feed[j] else 0.0
            return base - W_HOURS * dt / 24.0 - same - penalty(a, b)

        return score

    def evidence(self) -> Callable[[int, int], bool]:
        """Whether a pair shares content evidence (see LEX_MIN): linking needs it
        between every member of a story and most of the others."""
        rare = {w: (v if self.df[w] <= self.cap else 0.0) for w, v in self.idf.items()}
        idf2 = {w: v * v for w, v in rare.items()}.__getitem__
        sigs, rows, english = self.sigs, list(self.vec), self.english.tolist()
        norm = self.norm.tolist()

        def evident(i: int, j: int) -> bool:
            a, b = sigs[i], sigs[j]
            if any(rare[w] > 0 for w in a.keys & b.keys):
                return True
            if sum(map(idf2, a.words & b.words)) / (norm[i] * norm[j] or 1.0) >= LEX_MIN:
                return True
            return bool(english[i] and english[j] and float(rows[i] @ rows[j]) >= COS_ALONE)

        return evident

    def starts(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Which pairs (i, j) carry event evidence (see SPECIFIC): only such a pair
        may start a story or join two; a pair without it can still stay inside
        one that others tie together. A specific word or name counts when a
        headline carries it and the two read alike past COS_WORD (what a story
        is about is in its headline; a name both leads mention in passing,
        "Jeffrey Epstein", is background); a country only when both headlines
        name it, past COS_PLACE. Two
        pieces of one outlet need both headlines to name the same specific
        person, place or thing (one outlet's two pieces on one topic are usually
        two stories: a medal count and a schedule, two clips of one podcast); a
        number does not do (issue numbers, dates). Pairs in another language
        than English keep the score's word: they have no cosine."""
        n = len(self.sigs)
        known = self._specific_pairs()
        codes = i * n + j
        at = np.minimum(np.searchsorted(known, codes), max(len(known) - 1, 0))
        english = self.english[i] & self.english[j]
        out = ~english
        rest = np.flatnonzero(english)
        out[rest] = np.einsum("ij,ij->i", self.vec[i[rest]], self.vec[j[rest]]) >= COS_EVENT
        shared = np.flatnonzero(~out & (known[at] == codes if len(known) else False))
        same = np.flatnonzero(english & (self.feed[i] == self.feed[j]))
        if not len(shared) + len(same):
            return out
        vocab, sigs = self.reading.vocab, self.sigs
        specific = {vocab[k] for k in np.flatnonzero(self.specific_of).tolist()}
        cos = np.einsum("ij,ij->i", self.vec[i[shared]], self.vec[j[shared]])
        pairs = [(sigs[x], sigs[y]) for x, y in
                 zip(i[shared].tolist(), j[shared].tolist(), strict=True)]
        headline = np.array([bool(specific & a.words & b.words & (a.title_words | b.title_words))
                        for a, b in pairs], dtype=bool)
        # A country is where a topic happens: it counts only when both headlines
        # name the same one and the two read alike past COS_PLACE ("Chile" in two
        # quake reports), never on its own ("China's" craze, "Chinese" gamblers).
        places = {vocab[k] for k in np.flatnonzero(self.place_of).tolist()}
        place = np.array([bool(places & a.title_words & b.title_words) for a, b in pairs],
                         dtype=bool)
        out[shared] = (headline & (cos >= COS_WORD)) | (place & (cos >= COS_PLACE))
        out[same] = [any(not w[:1].isdecimal() for w in specific & a.title_keys & b.title_keys)
                     for a, b in ((sigs[x], sigs[y]) for x, y in
                                  zip(i[same].tolist(), j[same].tolist(), strict=True))]
        return out

    def _specific_pairs(self) -> np.ndarray:
        """Codes (i·n + j, i < j) of the pairs sharing a specific word or name.
        Each is in at most ``specific_limit`` articles: its articles' pairs are
        the rows up to that many apart in the rows sorted by word."""
        r, n = self.reading, len(self.sigs)
        keep = (self.specific_of | self.place_of)[r.word_id]
        order = np.argsort(r.word_id[keep], kind="stable")
        art, word = r.word_art[keep][order], r.word_id[keep][order]
        codes = [np.zeros(0, np.int64)]
        for gap in range(1, specific_limit(n)):
            same = word[gap:] == word[:-gap]
            a, b = art[:-gap][same], art[gap:][same]
            codes.append(np.minimum(a, b) * n + np.maximum(a, b))
        return np.unique(np.concatenate(codes))


def penalty(a: Signature, b: Signature) -> float:
    """The contradiction penalty: each headline names something (a place, a
    figure) the other text never mentions — "6.8 quake in Chile" vs "6.1 quake
    off Hokkaido" — and more when both headlines carry figures and share none."""
    found = W_CONFLICT if a.title_keys - b.words and b.title_keys - a.words else 0.0
    if a.title_numbers and b.title_numbers and not (a.title_numbers & b.words
                                                    or b.title_numbers & a.words):
        # "rate cut to 3.75%" vs "rate held at 2%", "beat City 3-1" vs "drew 0-0":
        # figures in both headlines that the other never mentions. With a name
        # in common it may be an update ("death toll rises to 12"); without one
        # it is another event told from the same template.
        found += W_NUMBERS if a.keys & b.keys else VETO
    return found


def combine(cos: np.ndarray, lex: np.ndarray, names: np.ndarray, dt: np.ndarray,
            english: np.ndarray, same_feed: np.ndarray) -> np.ndarray:
    """The weighted sum for arrays of pairs, before the window and the penalty.

    Time only ever subtracts, and a pair without content evidence (see LEX_MIN)
    gets nothing for its cosine: however close in time, it scores below 0."""
    evident = (names > 0) | (lex >= LEX_MIN) | (cos >= COS_ALONE)
    same_lang = W_COS * np.where(evident, cos, 0.0) + W_LEX * lex + W_KEY * names + BIAS
    cross = W_LEX_CROSS * lex + W_KEY_CROSS * names + BIAS_CROSS
    return np.where(english, same_lang, cross) - W_HOURS * dt / 24.0 - W_SAME_FEED * same_feed


def prepare_words(articles: Sequence[Article], given: Reading | Sequence[Signature] | None,
                  vectors: Pending) -> Day:
    """The day without its vectors (``take_vectors`` adds them): the blocking
    needs only this, so it can run while the vectors are still being made."""
    if given is None:
        reading = read(articles, vectors.texts)
    else:
        reading = given if isinstance(given, Reading) else Reading.of(given)
    sigs = reading.sigs
    n = len(sigs)
    english = np.array([s.lang == "en" for s in sigs])
    df_of = np.bincount(reading.word_id, minlength=len(reading.vocab))
    # +10: in a small day every word is "rare"; this keeps IDF from overrating them.
    idf_of = np.log((n + 10) / (df_of + 0.5))
    present = np.flatnonzero(df_of)
    words = [reading.vocab[k] for k in present.tolist()]
    idf = dict(zip(words, idf_of[present].tolist(), strict=True))
    df = dict(zip(words, df_of[present].tolist(), strict=True))
    # Per-article sums by bincount (in word order within each article).
    norm = np.sqrt(np.bincount(reading.word_art, weights=idf_of[reading.word_id] ** 2,
                               minlength=n))
    key_mass = np.bincount(reading.key_art, weights=idf_of[reading.key_id], minlength=n)
    hours = np.array([a.published.timestamp() / 3600.0 for a in articles])
    feed_ids: dict[str, int] = {}
    feed = np.array([feed_ids.setdefault(a.feed_url, len(feed_ids)) for a in articles])
    return Day(sigs=sigs, reading=reading, vec=np.zeros((0, 0), np.float32), english=english,
                hours=hours, feed=feed, idf=idf, df=df, idf_of=idf_of, df_of=df_of, norm=norm,
                key_mass=key_mass, cap=posting_cap(n),
                **_specific(reading, df_of, feed, specific_limit(n)))


def specific_limit(n: int) -> int:
    """How many of a day's ``n`` articles a shared word or name may be in and still
    tell one event from the rest of its topic (see SPECIFIC)."""
    return max(SPECIFIC, posting_cap(n) // SPECIFIC_PER_CAP)


def calendar(word: str) -> bool:
    """A month, a weekday or a year: a date says when, not what."""
    return word in _CALENDAR or (len(word) == 4 and word.isdecimal() and word[:2] in ("19", "20"))


def background(word: str) -> bool:
    """A date or a country (see PLACES): never what two reports share as an event."""
    return word in PLACES or calendar(word)


def _specific(reading: Reading, df_of: np.ndarray, feed: np.ndarray,
              limit: int) -> dict[str, np.ndarray]:
    """By word id: ``specific_of``, shared by 2 to ``limit`` articles, not a date
    or a country, and past SPECIFIC articles only while at most REPEATS of them
    come from an outlet that already ran it (a topic is an outlet's beat: the
    Olympics in four pieces of one outlet); ``place_of``, the countries that
    pass the same counts."""
    vocab = reading.vocab
    few = (df_of >= 2) & (df_of <= limit)
    stride = int(feed.max(initial=0)) + 1
    pairs = np.unique(reading.word_id * stride + feed[reading.word_art])
    outlets = np.bincount(pairs // stride, minlength=len(vocab))
    few &= (df_of <= SPECIFIC) | (df_of - outlets <= REPEATS)
    at = np.flatnonzero(few)
    place = np.zeros_like(few)
    place[at] = [vocab[k] in PLACES for k in at.tolist()]
    few[at] = [not background(vocab[k]) for k in at.tolist()]
    return {"specific_of": few, "place_of": place}


def posting_cap(n: int) -> int:
    """How many of a day's ``n`` articles a word may be in and still be rare
    (blocked on, counted as evidence)."""
    return max(n // 1000, min(MAX_POSTING, max(TOPIC_MIN, n // TOPIC_SHARE)))


def take_vectors(day: Day, vectors: Pending) -> None:
    """The day's sentence vectors, centred and made unit length."""
    vec, english = vectors.result(), day.english
    # Centre on the day's mean, blended with a typical day's mean while the day is
    # small: two articles centred on their own mean would point in opposite ways.
    count = int(english.sum())
    day_mean = vec[english].mean(axis=0) if count else np.zeros(vec.shape[1], np.float32)
    mean = (count * day_mean + BACKGROUND_WEIGHT * np.asarray(MEAN, np.float32)) / (
        count + BACKGROUND_WEIGHT)
    vec -= mean  # in place: the day's vectors are made for this day alone
    lengths = np.linalg.norm(vec, axis=1, keepdims=True)
    vec /= np.where(lengths > 0, lengths, 1.0)
    day.vec = vec


def score_pairs(day: Day, i: np.ndarray, j: np.ndarray, lexnum: np.ndarray,
                keynum: np.ndarray) -> np.ndarray:
    """The scores of candidate pairs (i, j) in bulk, from their summed shared-word
    IDF² (``lexnum``) and shared-name IDF (``keynum``) as blocking found them."""
    dt = np.abs(day.hours[i] - day.hours[j])
    english = day.english[i] & day.english[j]
    # Vectors count only between two English articles (see combine).
    cos = np.zeros(len(i), dtype=np.float32)
    both = np.flatnonzero(english)
    step = 8192  # pairs at a time: keeps the gathered vectors in cache

    def cosines(first: int, last: int) -> None:
        for start in range(first, last, step):
            at = both[start:min(start + step, last)]
            cos[at] = np.einsum("ij,ij->i", day.vec[i[at]], day.vec[j[at]])

    # Gathering the vectors is memory-bound numpy work that lets go of the GIL:
    # a second thread takes half (the embedding worker's core is idle by now).
    in_two_threads(cosines, len(both), step)
    lex = lexnum / np.maximum(day.norm[i] * day.norm[j], 1e-9)
    names = 2 * keynum / np.maximum(day.key_mass[i] + day.key_mass[j], 1e-9)
    scores = combine(cos, lex, names, dt, english, day.feed[i] == day.feed[j])
    scores[dt > WINDOW_HOURS] = -1.0
    # The contradiction check is per pair in Python; it can only lower a score,
    # so only pairs that would otherwise merge need it.
    merging = np.flatnonzero(scores >= 0)
    sigs = day.sigs
    scores[merging] -= np.array([penalty(sigs[a], sigs[b]) for a, b in
                                 zip(i[merging].tolist(), j[merging].tolist(), strict=True)],
                                dtype=np.float64)
    return scores
