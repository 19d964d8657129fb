"""Subscribers: the files under subscribers/ -> a validated `Roster` of `Subscriber`s.

Reading and validating (roster; a broken file falls back to its last good copy:
last_good), editing with comments kept under one folder lock (edit, lock), CSV and
JSON in and out (csv), unsubscribes and suppressions (admin) and their catch-up into
the files (sync), and the `digest subscribers` commands' logic (commands). The
roster is an input of the pipeline, like config.toml.
"""
