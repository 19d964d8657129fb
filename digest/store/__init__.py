"""Store: the database, behind one facade (`Store`).

Everything digest remembers between runs: articles and feeds, frozen digests and
the delivery journal, runs, suppressions and secrets. The file itself (mode,
damage, locking) is dbfile's. Nothing outside this package writes SQL.
"""
