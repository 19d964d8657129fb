"""Send: message bytes -> `Delivery` outcomes, exactly once per subscriber and day.

SMTP sessions (session) over a pool of reused connections (pool), rate-limited
(ratelimit), journaled in the store so a crash or rerun neither loses nor repeats
anyone (run, deliver). catch is digest's own local SMTP catcher. Hands on a
`SendReport`.
"""
