"""Web: the HTTP faces of digest.

`digest preview` (preview, page, live reload: live, pre-send checks: checks, a test
send: send_test) and `digest serve` (one-click unsubscribe and the web version:
serve, with request deadlines: deadlines). Both run the pipeline; neither sends a
real edition.
"""
