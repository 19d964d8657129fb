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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

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

_FIRST = re.compile(r"(.+?[.!?])(\s|$)", re.DOTALL)
_SUMMARY_CHARS = 200  # enough for the lead; news summaries repeat themselves later


@dataclass(frozen=True)
class Signature:
    """The clustering view of one article."""

    words: frozenset[str]  # content word stems, title and lead
    keys: frozenset[str]  # names and numbers anywhere in title and lead
    title_keys: frozenset[str]  # names and numbers in the headline
    title_numbers: frozenset[str]
    lang: str
    embed_text: str  # headline + first sentence


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
    w = fold(word).replace("’", "'")
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


def first_sentence(text: str) -> str:
    m = _FIRST.match(text)
    return m.group(1) if m else text


def language(tokens: set[str]) -> str:
    """The language whose function words the (folded) tokens use most ('en' when unsure)."""
    best, hits = "en", len(tokens & _LANG_MARKERS["en"])
    for lang, markers in _LANG_MARKERS.items():
        n = len(tokens & markers)
        if n > hits:
            best, hits = lang, n
    return best


# One pass per text finds numbers, words and sentence ends.
_SCAN = re.compile(r"(\d+(?:[.,\u00a0 ]\d+)*(?:-\d+)?)|([^\W\d_]+(?:['’-][^\W\d_]+)*)|[.!?:;]")


@lru_cache(maxsize=1 << 18)
def _word(token: str) -> tuple[str, bool]:
    """(stem, or the folded word when it is a function word; is it a content
    word), cached: a day repeats its words many times over."""
    low = fold(token)
    if low in STOP or len(low) < 3:
        return low, False
    return stem(token), True


@lru_cache(maxsize=1 << 16)
def _number(token: str) -> str:
    return number(token)


@dataclass
class _Scan:
    words: list[str]  # content stems
    numbers: list[str]
    lowered: list[str]  # stems written lower-case
    caps_inside: list[str]  # stems capitalised inside a sentence
    caps_first: list[str]  # stems capitalised as a sentence's first word
    function: set[str]  # function words, for the language


def _scan(text: str, headline: bool = False) -> _Scan:
    out = _Scan([], [], [], [], [], set())
    first = True
    content = _word  # local names: this loop runs for every token of the day
    for num, word in _SCAN.findall(text):
        if word:
            key, is_content = content(word)
            if not is_content:
                out.function.add(key)
            else:
                out.words.append(key)
                if not word[0].isupper():
                    out.lowered.append(key)
                elif first:
                    out.caps_first.append(key)
                else:
                    out.caps_inside.append(key)
            first = False
        elif num:
            out.numbers.append(_number(num))
            first = False
        else:
            first = True  # a sentence ended
    capitals = len(out.caps_inside) + len(out.caps_first)
    if headline and capitals >= 3 and capitals > 1.5 * len(out.lowered):
        # "Central Bank Raises Rates": capitals carry no information here, so
        # every word is judged like a sentence's first word.
        out.caps_first += out.caps_inside
        out.caps_inside = []
    return out


def signatures(articles: Sequence[Article]) -> list[Signature]:
    """Signatures for a day's articles (names are judged against the whole day)."""
    scans = [(_scan(a.title, headline=True), _scan(a.summary[:_SUMMARY_CHARS]))
             for a in articles]
    langs = [language(title.function | lead.function) for title, lead in scans]
    # A word is a name if it is written capitalised inside sentences more often
    # than lower-case anywhere ("Bank" in "Norges Bank" vs "the bank"). German
    # capitalises every noun, so German text never makes a word a name; its
    # names are the ones the rest of the day uses.
    upper: Counter[str] = Counter()
    lower: Counter[str] = Counter()
    for (title, lead), lang in zip(scans, langs, strict=True):
        if lang != "de":
            upper.update(title.caps_inside)
            upper.update(lead.caps_inside)
            lower.update(title.lowered)
            lower.update(lead.lowered)
    names = {w for w, n in upper.items() if n > lower.get(w, 0)}
    return [_signature(a, title, lead, names, lang)
            for a, (title, lead), lang in zip(articles, scans, langs, strict=True)]


def _signature(a: Article, title: _Scan, lead: _Scan, names: set[str], lang: str) -> Signature:
    title_keys = names.intersection([*title.caps_inside, *title.caps_first])
    title_keys.update(title.numbers)
    keys = names.intersection([*lead.caps_inside, *lead.caps_first])
    keys.update(lead.numbers, title_keys)
    return Signature(
        words=frozenset(title.words).union(lead.words, title.numbers, lead.numbers),
        keys=frozenset(keys), title_keys=frozenset(title_keys),
        title_numbers=frozenset(title.numbers), lang=lang,
        embed_text=f"{a.title}. {first_sentence(a.summary[:_SUMMARY_CHARS])}",
    )
