"""Rank: the day's `Article`s -> `Story`s -> a `Selection` per subscriber variant.

Reads each headline into words, names and figures (signatures) and a sentence vector
(embed), folds the same event from several outlets into one story (cluster), scores
it (score), fills sections with variety and leaves out what a reader already got
(select), and says why (explain). Hands on a `Ranked` day to render.
"""
