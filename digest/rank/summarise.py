"""A story's summary: two or three sentences its outlets agree on, each verbatim from
one member and credited to its outlet.

    summarise(story)      a Summary, or None (one outlet, or too little clean text)

Extractive on purpose: every word shown is a word an outlet published, so the
summary can be credited, never misquotes, and needs no model beyond the static
word vectors ranking already loads (digest.rank.embed; offline).

1. Sentences: each member's teaser (``Article.summary``) and the start of its body
   (``content_html`` as text, boilerplate stripped as collect strips it), split by
   the one sentence rule the email's cuts use (digest.textcut: "U.S.", "Dr." and
   initials are not ends). Only whole sentences: the part after a text's last end,
   a sentence a feed cut ("…"), one that starts mid-thought (lower case) or runs on
   past a reader's breath, and one that is the headline again are left out. So are
   sentences not in the lead's language: a summary reads in one language.
2. Centrality: a sentence's mean cosine to the *other* members' centroids. What
   several outlets say is the event; what one outlet adds is colour. Each member
   weighs the same however much text it has. A lede gets a little more; a sentence
   opening on a pronoun ("He said …") a little less, and one that leans on the
   sentence before it ("But …") or sells the page ("Watch …") none at all.
3. Choice: best first, skipping a sentence too close to one already taken (the same
   wire copy in two outlets, a teaser repeated as the body's first paragraph);
   at most two from one outlet; three when they are short enough to read at a
   glance, else two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import islice

import numpy as np

from digest.models import Article, Sentence, Story, Summary
from digest.plaintext import collapse, html_to_text, strip_boilerplate
from digest.rank import embed
from digest.rank.signatures import STOP, fold, language
from digest.textcut import sentence_ends

MEMBERS = 8  # the lead and the next seven reports: enough to know what they agree on
BODY_CHARS = 4000  # a body's first paragraphs: a news story puts its event first
SENTENCES_PER_MEMBER = 16  # teaser and body together
MIN_WORDS = 6  # shorter is a caption, a dateline or a fragment, not a summary sentence
MAX_CHARS = 320  # longer is a run-on (or a text with no sentence ends): not at a glance
THREE_CHARS = 560  # three sentences when they fit in this many characters, else two
SAME = 0.92  # cosine above which two sentences say the same thing
SAME_WORDS = 0.6  # ... or this share of the shorter one's content words
HEADLINE = 0.75  # a sentence sharing this share of its words with a headline repeats it
PER_OUTLET = 2
LEAD_BONUS = 0.02  # per place nearer a text's start (up to 3): a lede summarises

_HEADING = re.compile(r"<h[1-6]\b[^>]*>.*?</h[1-6]\s*>", re.S | re.I)
_BLOCK = re.compile(r"</?(?:p|div|br|hr|li|ul|ol|dd|dt|h[1-6]|tr|td|th|table|blockquote|figure|"
                    r"figcaption|pre)\b[^>]*>", re.I)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+(?:[.,]\d+)*")
_CLOSING = "\"'”’)]"
_OPENING = "\"'“‘(["
# Not prose: an address, markup the sanitizer escaped, a photo credit or a byline.
_NOT_PROSE = re.compile(r"https?://|www\.|<|>|@|\b(?:Photo|Image|Credit|Getty Images|AP Photo)"
                        r"\b\s*[:/(]|^(?:By|Updated|Published|Posted)\b|\|")


# A sentence that leans on the one before it ("But …", "And that is …") or sells the
# page rather than telling the news ("Watch …", "Here's a look …") reads wrong alone.
_LEANS = re.compile(r"^[\"'“‘(]?(?:And|But|Or|Nor|So|Yet|Also|However|Still|Meanwhile|"
                    r"Instead|Then|Plus|Watch|Listen|Click|Subscribe|Sign up|Follow|"
                    r"Here(?:'s|’s| is| are)|See also)\b")
# ... and one that opens on a pronoun often does: it may stand, a little behind.
_PRONOUN = re.compile(r"^[\"'“‘(]?(?:He|She|It|They|This|That|These|Those|His|Her|Its|"
                      r"Their)\b")
PRONOUN_PENALTY = 0.04


@dataclass(frozen=True)
class _Candidate:
    text: str
    source: str
    member: int  # index of the article in the story's members
    place: int  # index of the sentence within its text
    words: frozenset[str]


def summarise(story: Story) -> Summary | None:
    """Two or three central sentences of a story several outlets report, else None."""
    members = _members(story)
    if len({a.source for a in members}) < 2:
        return None
    lang = _language(_lead_text(members[0]))
    candidates = _candidates(members, lang)
    if len(candidates) < 2:
        return None
    vectors = _unit(embed.embedder().embed([c.text for c in candidates]))
    scores = _centrality(candidates, vectors, len(members))
    chosen = _choose(candidates, vectors, scores)
    if len(chosen) < 2:
        return None
    return Summary(tuple(Sentence(c.text, c.source) for c in chosen))


def _members(story: Story) -> list[Article]:
    """The lead, then one report per other outlet, then second reports: a story of
    twenty wire copies and one other outlet still hears that outlet."""
    seen: set[str] = set()
    first: list[Article] = []
    again: list[Article] = []
    for a in story.articles:
        (again if a.source in seen else first).append(a)
        seen.add(a.source)
    return (first + again)[:MEMBERS]


def _lead_text(a: Article) -> str:
    return f"{a.title} {a.summary}"


def _language(text: str) -> str:
    return language({fold(w) for w in _WORD.findall(text)})


def texts_of(a: Article) -> list[str]:
    """The member's readable texts: its teaser, then each paragraph of the start of
    its body (a paragraph break is a hard end: a subheading such as "What happened"
    never runs into the sentence after it; headings themselves are left out)."""
    out: list[str] = []
    body = _HEADING.sub(" ", a.content_html[:BODY_CHARS]) if a.content_html else ""
    blocks = _BLOCK.split(body)
    if len(a.content_html) > BODY_CHARS:
        blocks.pop()  # the paragraph the limit cut: "rose 3." may be "rose 3.5 percent"
    for raw in (a.summary, *blocks):
        text, _ = strip_boilerplate(collapse(html_to_text(raw) if raw is not a.summary
                                             else raw))
        if text and text not in out:
            out.append(text)
    return out


def sentences(text: str) -> list[str]:
    """The whole sentences of ``text`` (textcut's rule), in order. The part after the
    last end is left out unless it ends like a sentence: it may be cut."""
    ends = sentence_ends(text + " X")  # (a final end is seen only before a next word)
    out, start = [], 0
    for end in ends:
        piece = text[start:end].strip()
        start = end
        if piece:
            out.append(piece)
    return out


def _complete(s: str) -> bool:
    """A sentence a reader can take alone: starts like one, ends like one, no cut."""
    body = s.rstrip(_CLOSING)
    if not body.endswith((".", "!", "?")) or body.endswith(("...", "…")):
        return False
    head = s.lstrip(_OPENING)[:1]
    if not (head.isupper() or head.isdigit()):
        return False
    # An unclosed quote or bracket means the sentence rule split inside a quotation.
    return (s.count("(") == s.count(")") and s.count("“") == s.count("”")
            and s.count('"') % 2 == 0)


def _foreign(s: str, lang: str) -> bool:
    """Whether sentence ``s`` is clearly in another language than ``lang``."""
    tokens = {fold(w) for w in _WORD.findall(s)}
    other = language(tokens)
    if other == lang:
        return False
    if other != "en":
        return True  # another language's own function words
    # language() says "en" when unsure too: only English words make it English.
    return len(tokens & _ENGLISH) >= 2


_ENGLISH = frozenset("the and of to is are was were with for that this has have from".split())


def _content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in (fold(t) for t in _WORD.findall(text)) if w not in STOP)


def _repeats_headline(words: frozenset[str], headlines: Sequence[frozenset[str]]) -> bool:
    return any(h and len(words & h) >= HEADLINE * len(words) for h in headlines)


def _candidates(members: Sequence[Article], lang: str) -> list[_Candidate]:
    headlines = [_content_words(a.title) for a in members]
    seen: set[str] = set()
    out: list[_Candidate] = []
    for m, a in enumerate(members):
        if _language(_lead_text(a)) != lang:
            continue
        places = (s for text in texts_of(a) for s in sentences(text))
        for place, s in enumerate(islice(places, SENTENCES_PER_MEMBER)):
                key = " ".join(fold(w) for w in _WORD.findall(s))
                if key in seen or not _usable(s):
                    continue
                words = _content_words(s)
                if _repeats_headline(words, headlines) or _foreign(s, lang):
                    continue
                seen.add(key)
                out.append(_Candidate(s, a.source, m, place, words))
    return out


def _usable(s: str) -> bool:
    return (len(s) <= MAX_CHARS and len(s.split()) >= MIN_WORDS and _complete(s)
            and not _NOT_PROSE.search(s) and not _LEANS.match(s))


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)


def _centrality(candidates: Sequence[_Candidate], vectors: np.ndarray, members: int
                ) -> np.ndarray:
    """Mean cosine to the other members' centroids, plus a little for a lede."""
    owner = np.array([c.member for c in candidates])
    present = sorted(set(owner.tolist()))
    centroids = _unit(np.stack([vectors[owner == m].mean(axis=0) for m in present]))
    sims = vectors @ centroids.T  # (sentence, member)
    own = owner[:, None] == np.array(present)[None, :]
    others = (~own).sum(axis=1)
    # A sentence of the only member with usable text has no other voice: it is judged
    # against its own member's centroid (still the text's most typical sentence).
    agreement = np.where(others > 0, (sims * ~own).sum(axis=1) / np.maximum(others, 1),
                         sims.max(axis=1))
    lede = np.array([LEAD_BONUS * max(0, 3 - c.place)
                     - (PRONOUN_PENALTY if _PRONOUN.match(c.text) else 0.0)
                     for c in candidates])
    return np.asarray(agreement + lede)


def _choose(candidates: Sequence[_Candidate], vectors: np.ndarray, scores: np.ndarray
            ) -> list[_Candidate]:
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable").tolist():
        # At most two from one outlet: a summary of several outlets, not one's teaser.
        if sum(candidates[j].source == candidates[i].source for j in chosen) >= PER_OUTLET:
            continue
        if any(_same(candidates[i], candidates[j], float(vectors[i] @ vectors[j]))
               for j in chosen):
            continue
        chosen.append(i)
        if len(chosen) == 3:
            break
    if len(chosen) == 3 and sum(len(candidates[i].text) for i in chosen) > THREE_CHARS:
        chosen.pop()
    return [candidates[i] for i in chosen]


def _same(a: _Candidate, b: _Candidate, cosine: float) -> bool:
    if cosine >= SAME:
        return True
    shorter = min(len(a.words), len(b.words))
    return shorter > 0 and len(a.words & b.words) >= SAME_WORDS * shorter


def with_summaries(stories: Sequence[Story]) -> list[Story]:
    """The stories, each that several outlets report given its summary (once)."""
    out = []
    for s in stories:
        if s.summary is None and len({a.source for a in s.articles}) >= 2:
            summary = summarise(s)
            if summary is not None:
                s = replace(s, summary=summary)
        out.append(s)
    return out
