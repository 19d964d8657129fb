"""Where a summary is cut: one function for collect (the stored summary) and render
(the HTML and the text part), so no two places can disagree about a cut.

A cut falls at a sentence end when one is near enough, else between words, and never
inside a name: "… met Volodymyr Zelenskyy" is never shown as "… met Volodymyr…".
Pure, dependency-free, in the bottom layer so both stages may import it.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"

# A sentence ends at . ! ? or … (maybe closed by a quote or bracket) before a blank
# and a word that can start a sentence. "U.S. officials", "Dr. Smith" and "Jan. 5"
# are not ends: see _is_abbreviation.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms mx dr prof st sen rep gov gen col lt sgt capt cmdr adm maj pres supt det "
    "jr sr inc ltd co corp bros vs etc no nos vol fig approx est dept univ mt ft ave blvd "
    "jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e a.m p.m".split())
_INITIALS = re.compile(r"(?:\b[A-Za-z]\.)+$")
# Lower-case words that belong inside a name: "Ursula von der Leyen", "Charles de Gaulle".
_PARTICLES = frozenset("de da del della der di du van von den la le bin ibn al el dos das y"
                       .split())
_TRAILING = " ,;:–—-/(["


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the '.' at ``end`` closes an abbreviation or initials, not a sentence."""
    start = text.rfind(" ", 0, end) + 1
    word = text[start:end + 1].lstrip("\"'“‘([")
    if _INITIALS.search(word):
        return True  # "U.S.", "D.C.", "John F." (a name goes on after an initial)
    return word[:-1].lower() in _ABBREVIATIONS


def sentence_ends(text: str) -> list[int]:
    """Offsets just past each sentence end in ``text`` (abbreviations are not ends)."""
    out = []
    for m in _SENTENCE_END.finditer(text):
        if text[m.start()] == "." and _is_abbreviation(text, m.start()):
            continue
        out.append(m.end())
    return out


def _is_name_word(word: str) -> bool:
    core = word.strip("\"'“”‘’()[],;:")
    return bool(core) and (core[0].isupper() or core in _PARTICLES)


def _name_start(words: list[str], i: int) -> int:
    """Index of the first word of the capitalised run that holds ``words[i]``."""
    while i > 0 and _is_name_word(words[i - 1]) and not words[i - 1].endswith(
            (".", ",", ";", ":", "!", "?", "—", "–")):
        i -= 1
    return i


def _word_cut(text: str, limit: int) -> int:
    """Offset of the last word boundary at or before ``limit`` that is not inside a name."""
    cut = text.rfind(" ", 0, limit + 1)
    if cut <= 0:
        return limit  # one enormous word (a URL): cut it anyway
    head, rest = text[:cut], text[cut + 1:]
    before = head.split(" ")
    after = rest.split(" ", 1)[0]
    last = before[-1]
    joined = (_is_name_word(last) and after[:1].isupper() and not last.endswith(
        (".", ",", ";", ":", "!", "?", "—", "–")))
    if not joined:
        return cut
    # The cut would split a name: go back to before the whole name, if that keeps
    # enough text; otherwise take the name whole, a little past the limit.
    first = _name_start(before, len(before) - 1)
    back = len(" ".join(before[:first]))
    if first > 0 and back >= limit // 2:
        return back
    end = cut + 1
    words = rest.split(" ")
    for w in words:
        if not _is_name_word(w):
            break
        end += len(w) + 1
        if w.endswith((".", ",", ";", ":", "!", "?")):
            break
    end = min(end - 1, len(text))
    return end if end <= limit + 40 else cut


def _mark(sentences: str) -> str:
    """Whole sentences, then the ellipsis that says more followed (unless one ends them)."""
    sentences = sentences.rstrip()
    return sentences if sentences.endswith((ELLIPSIS, "...")) else f"{sentences} {ELLIPSIS}"


def cut(text: str, limit: int, *, truncated: bool = False) -> str:
    """``text`` cut to about ``limit`` characters, marked with '…' when cut.

    At the last sentence end in the second half of the limit, else between words,
    never inside a capitalised name. ``truncated`` says the text was already cut
    short by its source (a feed's "[…]"): it then ends at its last full sentence if
    one is near, or gets the ellipsis the source's marker stood for.
    """
    text = " ".join(text.split())
    if len(text) <= limit and not truncated:
        return text
    if len(text) <= limit:
        ends = sentence_ends(text + " X")
        keep = ends[-1] if ends else 0
        if keep >= len(text) * 0.6:
            return _mark(text[:keep])
        return text.rstrip(_TRAILING + ".") + ELLIPSIS
    head = text[: limit + 1]
    ends = [e for e in sentence_ends(text[: limit + 40]) if e <= limit + 1]
    if ends and ends[-1] >= limit // 2:
        return _mark(head[: ends[-1]])
    at = _word_cut(text, limit)
    return text[:at].rstrip(_TRAILING) + ELLIPSIS
