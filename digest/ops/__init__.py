"""Ops: running digest day after day.

The daemon and its schedule (schedule), one cycle and the `render`/`run --once`
commands (runner), `digest status` (status), the daemon's lock (lock) and the demo
(demo). Sits above the pipeline and calls it.
"""
