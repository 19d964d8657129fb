"""What clustering looks at in an article: content words, names and numbers,
the language, and the text to embed. Plain Python, no model.

Names are found the way a reader spots them in running text: a capitalised word
inside a sentence. A capitalised first word counts only when the same word is
capitalised inside a sentence somewhere else that day, so "Residents ..." or
"Breakthrough jab ..." do not become names, while "Brightmart confirms ..." does
once any article mentions Brightmart mid-sentence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import numpy as np

from digest.models import Article

# Function words of the languages a European newsroom sees most. Without them a
# German article's "der", "und", "nicht" would be rare words of an English day
# and glue every German article to every other.
_STOP_BY_LANG = {
    "en": """a an the and or but nor of to in on at for from by with as is are was were be
        been being has have had it its this that these those into over after before about
        than then new says say said will would could can may might must shall should not no
        more most less up down out off his her their our your he she they we you i who whom
        which what when where while if so also just only all any some such other there here
        do does did get got one two three four five six seven eight nine ten first last
        amid against between during under since until via per very still yet now how why
        back set take takes make makes year years day days week month months time""",
    "de": """der die das des dem den ein eine einen einem einer eines und oder aber zu im am
        mit von vom zum zur für fur auf ist sind war waren wird werden wurde wurden hat haben
        nach bei aus sich nicht auch als wie vor seit über uber unter gegen durch noch nur
        schon sie er es wir ihr ihre sein seine dass daß bis um so beim ins""",
    "fr": """le la les un une des du de et en au aux à pour par sur dans est sont été ete
        avec qui que ses son sa d l selon ce cette ces il elle ils elles ne pas plus ou mais
        leur leurs se sa été après apres avant entre sous jamais""",
    "es": """el la los las un una unos unas del y o en con por para es son fue al que se su sus
        lo como más mas pero sin sobre entre tras ha han este esta estos estas le les ya muy
        hasta desde cuando""",
    "it": """il lo la gli i uno una della delle dei degli di da e ed con per tra fra che non è
        sono nel nella negli sul sulla anche come più""",
    "nl": """de het een en van in op met voor door aan bij naar is zijn was werd worden niet
        ook als dat die dit om te tot uit over""",
    "pt": """o os as um uma do da dos das e em no na nos nas com por para que não nao é são
        foi ao à mais como seu sua""",
}
STOP: frozenset[str] = frozenset(w for ws in _STOP_BY_LANG.values() for w in ws.split())
# Words only one language uses tell the languages apart ("de" is French,
# Spanish, Dutch and Portuguese; "el" is only Spanish).
_LANG_MARKERS = {
    lang: frozenset(ws.split()) - frozenset(
        w for other, ows in _STOP_BY_LANG.items() if other != lang for w in ows.split())
    for lang, ws in _STOP_BY_LANG.items()
}

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_SUMMARY_CHARS = 200  # enough for the lead; news summaries repeat themselves later


@dataclass(frozen=True, slots=True)
class Signature:
    """The clustering view of one article."""

    words: frozenset[str]  # content word stems, title and lead
    keys: frozenset[str]  # names and numbers anywhere in title and lead
    title_keys: frozenset[str]  # names and numbers in the headline
    title_numbers: frozenset[str]
    lang: str
    embed_text: str  # headline + first sentence
    title_words: frozenset[str] = frozenset()  # content word stems and numbers, headline only


@lru_cache(maxsize=1 << 18)
def fold(text: str) -> str:
    """Lower-case without accents, so "Brüssel"/"Brussel" and "Luís"/"Luis" meet."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


@lru_cache(maxsize=1 << 18)
def stem(word: str) -> str:
    """A light, language-blind stem: enough to make "quakes"/"quake" and
    "Chile's"/"Chile" one key without merging unrelated words."""
    return _stem_folded(fold(word))


def _stem_folded(w: str) -> str:
    w = w.replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.rsplit("'", 1)[-1]  # l'inflation -> inflation
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def number(token: str) -> str:
    """'6,8' -> '6.8' (decimal comma), '4,000'/'4 000' -> '4000', '3.75' kept."""
    t = token.replace("\u00a0", " ")
    if re.fullmatch(r"\d+,\d{1,2}", t):
        return t.replace(",", ".")
    return re.sub(r"(?<=\d)[ ,](?=\d{3})", "", t)


def embed_text(article: Article) -> str:
    """What the sentence vector is made of: the headline and the lead's first sentence."""
    return f"{article.title}. {first_sentence(article.summary[:_SUMMARY_CHARS])}"


def first_sentence(text: str) -> str:
    """Up to the first '.', '!' or '?' (not the text's first character) that
    ends the text or comes before whitespace."""
    m = _SENTENCE_END.search(text, 1)
    return text[:m.end()] if m else text


def language(tokens: set[str]) -> str:
    """The language whose function words the (folded) tokens use most ('en' when unsure)."""
    best, hits = "en", len(tokens & _LANG_MARKERS["en"])
    for lang, markers in _LANG_MARKERS.items():
        n = len(tokens & markers)
        if n > hits:
            best, hits = lang, n
    return best


@lru_cache(maxsize=1 << 18)
def _word(token: str) -> tuple[str, bool]:
    """(stem, or the folded word when it is a function word; is it a content
    word), cached: a day repeats its words many times over."""
    low = token.lower() if token.isascii() else fold(token)
    if low in STOP or len(low) < 3:
        return low, False
    return _stem_folded(low), True


@lru_cache(maxsize=1 << 16)
def _number(token: str) -> str:
    return number(token)


# The day's texts are scanned as one string, joined by NUL (which no group
# matches, so it splits tokens exactly as the end of a text does); the
# first character of a token tells which alternative matched it.
_SCAN_ALL = re.compile(r"\d+(?:[.,\u00a0 ]\d+)*(?:-\d+)?|[^\W\d_]+(?:['’-][^\W\d_]+)*"
                       r"|[.!?:;]|\x00")
_NUM, _CONTENT, _FUNCTION, _PUNCT, _SEP = range(5)
_LANGS = list(_LANG_MARKERS)  # "en" first: it wins ties, as in language()


@dataclass(frozen=True)
class Reading:
    """A day's signatures, and the same words and names as arrays for the
    day-level numpy work: one row per (article, distinct word), sorted by
    article then word id, ids into ``vocab``. Names and numbers are words too."""

    sigs: list[Signature]
    vocab: list[str]
    word_art: np.ndarray
    word_id: np.ndarray
    key_art: np.ndarray
    key_id: np.ndarray

    @classmethod
    def of(cls, sigs: Sequence[Signature]) -> Reading:
        """The arrays rebuilt from signatures alone (for callers that only kept those)."""
        vocab = list(dict.fromkeys(chain.from_iterable(
            chain(s.words, s.keys) for s in sigs)))
        ids = {w: k for k, w in enumerate(vocab)}

        def rows(sets: list[frozenset[str]]) -> tuple[np.ndarray, np.ndarray]:
            lengths = np.fromiter(map(len, sets), np.int64, len(sets))
            art = np.repeat(np.arange(len(sets), dtype=np.int64), lengths)
            word = np.fromiter(map(ids.__getitem__, chain.from_iterable(sets)), np.int64,
                               len(art))
            order = np.lexsort((word, art))
            return art[order], word[order]

        word_art, word_id = rows([s.words for s in sigs])
        key_art, key_id = rows([s.keys for s in sigs])
        return cls(list(sigs), vocab, word_art, word_id, key_art, key_id)


def signatures(articles: Sequence[Article]) -> list[Signature]:
    """Signatures for a day's articles (see ``read``)."""
    return read(articles).sigs


def read(articles: Sequence[Article], texts: Sequence[str] | None = None) -> Reading:
    """Signatures for a day's articles (names are judged against the whole day);
    ``texts`` are their ``embed_text``s when the caller has them already.

    Every text is read the same way (title and the lead's first 200 characters):
    a content word written lower-case, capitalised inside a sentence, or
    capitalised as a sentence's first word; numbers; function words for the
    language. The whole day is read at once: one regex pass over the day's
    distinct space-separated chunks, one dict lookup per chunk and numpy for
    the per-token rules, since a Python loop over a 20k-article day's tokens
    cost seconds.
    """
    n = len(articles)
    if not n:
        empty = np.zeros(0, np.int64)
        return Reading([], [], empty, empty, empty, empty)
    surface, tok = _tokens(" \x00 ".join(t.replace("\x00", " ") for a in articles
                                         for t in (a.title, a.summary[:_SUMMARY_CHARS])))
    key_ids: dict[str, int] = {}
    kinds = np.empty(len(surface), np.int8)
    keys_of = np.empty(len(surface), np.int64)
    upper_of = np.zeros(len(surface), bool)
    for t, k in surface.items():
        head = t[0]
        if head.isdecimal():  # what \d matches
            name, kinds[k] = _number(t), _NUM
        elif head == "\x00":
            name, kinds[k] = "", _SEP
        elif head in ".!?:;":
            name, kinds[k] = "", _PUNCT
        else:
            name, is_content = _word(t)
            kinds[k] = _CONTENT if is_content else _FUNCTION
            upper_of[k] = head.isupper()
        keys_of[k] = key_ids.setdefault(name, len(key_ids))
    kind = kinds[tok]
    # A word opens a sentence when the token before it ended one (or a text).
    first = np.empty(len(tok), bool)
    first[0] = True
    first[1:] = kind[:-1] >= _PUNCT
    seg = np.cumsum(kind == _SEP)  # which text: 2k title, 2k+1 lead of article k
    real = kind < _PUNCT
    kind, first, seg = kind[real], first[real], seg[real]
    key, upper = keys_of[tok[real]], upper_of[tok[real]]
    art, title = seg // 2, seg % 2 == 0
    content, numeric = kind == _CONTENT, kind == _NUM
    caps = content & upper
    lowered = content & ~upper
    inside = caps & ~first
    # "Central Bank Raises Rates": in such a headline every capital is judged
    # like a sentence's first word.
    capitals = np.bincount(art, weights=caps & title, minlength=n)
    lows = np.bincount(art, weights=lowered & title, minlength=n)
    shouting = (capitals >= 3) & (capitals > 1.5 * lows)
    inside &= ~(title & shouting[art])
    # Language: the distinct function words of title and lead against each
    # language's markers.
    strings = list(key_ids)
    markers = np.zeros((len(strings), len(_LANGS)), dtype=bool)
    for c, lang in enumerate(_LANGS):
        markers[[key_ids[w] for w in _LANG_MARKERS[lang] if w in key_ids], c] = True
    func_art, func_key = _distinct(art, key, kind == _FUNCTION, len(strings))
    hits = np.stack([np.bincount(func_art, weights=markers[func_key, c], minlength=n)
                     for c in range(len(_LANGS))], axis=1)
    lang_of = np.argmax(hits, axis=1)
    # A word is a name if it is written capitalised inside sentences more often
    # than lower-case anywhere ("Bank" in "Norges Bank" vs "the bank"). German
    # capitalises every noun, so German text never makes a word a name; its
    # names are the ones the rest of the day uses.
    counted = lang_of[art] != _LANGS.index("de")
    up = np.bincount(key, weights=inside & counted, minlength=len(strings))
    low = np.bincount(key, weights=lowered & counted, minlength=len(strings))
    is_name = up > low
    keyed = (caps & is_name[key]) | numeric
    word_art, word_id = _distinct(art, key, content | numeric, len(strings))
    key_art, key_id = _distinct(art, key, keyed, len(strings))
    named = np.array(strings, dtype=object)
    words = _per_article(n, word_art, named[word_id].tolist())
    all_keys = _per_article(n, key_art, named[key_id].tolist())
    in_title = keyed & title
    title_keys = _per_article(n, art[in_title], named[key[in_title]].tolist())
    in_title = numeric & title
    title_numbers = _per_article(n, art[in_title], named[key[in_title]].tolist())
    in_title = (content | numeric) & title
    title_words = _per_article(n, art[in_title], named[key[in_title]].tolist())
    if texts is None:
        texts = [embed_text(a) for a in articles]
    sigs = [Signature(words=w, keys=k, title_keys=tk, title_numbers=tn, lang=_LANGS[lang],
                      embed_text=t, title_words=tw)
            for t, w, k, tk, tn, lang, tw in zip(texts, words, all_keys, title_keys,
                                                 title_numbers, lang_of.tolist(), title_words,
                                                 strict=True)]
    return Reading(sigs, strings, word_art, word_id, key_art, key_id)


def _tokens(joined: str) -> tuple[dict[str, int], np.ndarray]:
    """What ``_SCAN_ALL.findall(joined)`` finds, as ids into the distinct tokens
    (in order of first sight): each distinct token is then judged once (its
    kind, its key, whether it is written capitalised).

    A token spans a space only inside a number ("4 000"), so the text is cut
    at spaces, chunks that such a number joins are put back together, and
    each distinct chunk is scanned once: a day repeats most of its chunks.
    """
    parts = joined.split(" ")
    distinct = list(dict.fromkeys(parts))
    index = {c: k for k, c in enumerate(distinct)}
    occ = np.fromiter(map(index.__getitem__, parts), np.int64, len(parts))
    tail = np.fromiter((c[-1:].isdecimal() for c in distinct), bool, len(distinct))
    head = np.fromiter((c[:1].isdecimal() for c in distinct), bool, len(distinct))
    glue = np.flatnonzero(tail[occ[:-1]] & head[occ[1:]]).tolist()
    if glue:
        keep = np.ones(len(occ), dtype=bool)
        at = 0
        while at < len(glue):  # a run of glued chunks: "1 000 000"
            first = last = glue[at]
            while at + 1 < len(glue) and glue[at + 1] == last + 1:
                at += 1
                last = glue[at]
            chunk = " ".join(parts[first:last + 2])
            if chunk not in index:
                index[chunk] = len(distinct)
                distinct.append(chunk)
            occ[first] = index[chunk]
            keep[first + 1:last + 2] = False
            at += 1
        occ = occ[keep]
    # One scan of the distinct chunks, a NUL after each (the NUL chunk, which
    # separates texts, is scanned as an empty one and given the last NUL).
    found = _SCAN_ALL.findall("\x00".join("" if c == "\x00" else c for c in distinct) + "\x00")
    surface = {t: k for k, t in enumerate(dict.fromkeys(found))}
    ids = np.fromiter(map(surface.__getitem__, found), np.int64, len(found))
    ends = np.flatnonzero(ids == surface["\x00"])
    begins = np.r_[0, ends[:-1] + 1]
    lengths = ends - begins
    if "\x00" in index:
        begins[index["\x00"]], lengths[index["\x00"]] = ends[-1], 1
    sizes = lengths[occ]
    at_ = np.repeat(begins[occ] - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
    return surface, ids[at_]


def _distinct(art: np.ndarray, key: np.ndarray, mask: np.ndarray,
              size: int) -> tuple[np.ndarray, np.ndarray]:
    """(article, key) of the masked tokens, each pair once, sorted (a sort, not
    np.unique: its hashing is slower on these)."""
    codes = np.sort(art[mask] * size + key[mask])
    codes = codes[np.r_[True, codes[1:] != codes[:-1]]] if len(codes) else codes
    return codes // size, codes % size


def _per_article(n: int, art: np.ndarray, picked: list[str]) -> list[frozenset[str]]:
    """The ``picked`` keys, as one set per article (``art`` says whose each is,
    in article order)."""
    bounds = np.searchsorted(art, np.arange(n + 1))
    out = [frozenset[str]()] * n
    # Only articles with any such token: headline numbers are rare.
    ends = bounds.tolist()
    for k in np.flatnonzero(np.diff(bounds)).tolist():
        out[k] = frozenset(picked[ends[k]:ends[k + 1]])
    return out
