"""Merging scored pairs into groups: average-link agglomeration, best pair first.

Only a pair with event evidence (``Day.starts``: something specific in common, not
only the day's topic) proposes a merge; the pairs without it still count in the
averages and the evidence majority, so another outlet can tie them in. Two groups
join only while the *average* score over every pair across them stays ≥ LINK (and
not much below either group's own), and while every member of the joined group
shares content evidence (``Day.evidence``) with more than half of the others: a
story is what its members have in common, so an article close to one member only
(cucumber prices and the war, through "Russia") stays out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from digest.rank.pairscore import Day

LINK = 0.0  # average score two groups need to merge
GAP = 0.1  # ...and no less than this below the average inside either group


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A label per article, the same for two articles joined by a path of (a, b) edges."""
    label = np.arange(n)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # and follow each label to its own label
        if np.array_equal(new, label):
            return label
        label = new


def _evidence_across(ga: list[int], gb: list[int], across: list[list[float]],
                     evident: Callable[[int, int], bool]) -> dict[int, int]:
    """For each member of either group, how many of the other group it has
    content evidence with (``across[a][b]``: the pair scores). A pair scoring ≥ 0
    has it (the pair score gives nothing for a cosine without evidence, see
    pairscore.combine): only the others are looked at again."""
    gain = dict.fromkeys(ga + gb, 0)
    for x, row in zip(ga, across, strict=True):
        for y, value in zip(gb, row, strict=True):
            if value >= 0 or evident(min(x, y), max(x, y)):
                gain[x] += 1
                gain[y] += 1
    return gain


def link(day: Day, i: np.ndarray, j: np.ndarray, scores: np.ndarray) -> list[list[int]]:
    """Average-link agglomeration, best pair first, only over pairs scoring ≥ 0."""
    n = len(day.sigs)
    # Groups only ever grow along pairs scoring ≥ 0, so only pairs inside one
    # connected part of those can be looked up while groups are compared.
    part = _components(n, i[scores >= 0], j[scores >= 0])
    # Only pairs scoring >= 0 are taken from the bulk scores: score_pairs skips the
    # contradiction penalty where the score is already below 0 (it cannot change
    # which pairs merge), but a pair's score also enters group averages, where a
    # missing penalty would count. Every other pair is scored here once, penalty
    # included, as a pair blocking never proposed is, so both paths weigh it the same.
    kept = (part[i] == part[j]) & (scores >= 0)
    table = dict(zip((i[kept] * n + j[kept]).tolist(), scores[kept].tolist(), strict=True))
    score = day.scorer()
    evident = day.evidence()

    def pair(x: int, y: int) -> float:
        if x > y:
            x, y = y, x
        code = x * n + y
        got = table.get(code)
        if got is None:  # a pair blocking did not propose: scored once, here
            got = table[code] = score(x, y)
        return got

    cohesions: dict[int, float] = {}  # by group owner, dropped when the group grows

    def cohesion(owner_id: int) -> float:
        got = cohesions.get(owner_id)
        if got is None:
            group = members[owner_id]
            pairs = [(x, y) for pos, x in enumerate(group) for y in group[pos + 1:]]
            got = cohesions[owner_id] = sum(pair(x, y) for x, y in pairs) / len(pairs)
        return got

    members: dict[int, list[int]] = {k: [k] for k in range(n)}
    owner = list(range(n))
    backed = [0] * n  # how many of its group's other members each article has evidence with
    ranked = np.flatnonzero(scores >= 0)
    # Only a pair with event evidence starts a story or joins two (Day.starts).
    ranked = ranked[day.starts(i[ranked], j[ranked])]
    ranked = ranked[np.argsort(-scores[ranked], kind="stable")]  # the best first, down to 0
    for x0, y0 in zip(i[ranked].tolist(), j[ranked].tolist(), strict=True):
        a, b = owner[x0], owner[y0]
        if a == b:
            continue
        ga, gb = members[a], members[b]
        if len(ga) * len(gb) > 1:
            across = [[pair(x, y) for y in gb] for x in ga]
            cross = sum(v for row in across for v in row) / (len(ga) * len(gb))
            if cross < LINK:
                continue
            if min(len(ga), len(gb)) > 1 and cross < min(cohesion(a), cohesion(b)) - GAP:
                continue  # two tight groups that are much less alike than each is inside
            gain = _evidence_across(ga, gb, across, evident)
            others = len(ga) + len(gb) - 1
            if any(2 * (backed[x] + got) <= others for x, got in gain.items()):
                continue  # a member would share content with half the story or less
            for x, got in gain.items():
                backed[x] += got
        else:  # two articles, their pair scoring ≥ 0: evidence (see _evidence_across)
            backed[x0] = backed[y0] = 1
        if len(ga) < len(gb):
            a, b, ga, gb = b, a, gb, ga
        for x in gb:
            owner[x] = a
        ga.extend(members.pop(b))
        cohesions.pop(a, None)
        cohesions.pop(b, None)
    return list(members.values())
