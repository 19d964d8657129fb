"""Mail: `Rendered` + `Subscriber` -> the bytes of one message, ready for SMTP.

The header block (headers: every value from outside normalised and encoded here),
MIME built once per variant and spliced per subscriber (mime, qp, clean), signed
unsubscribe tokens (tokens) and DKIM signatures (dkim, dkim_worker). message is the
entry point. Hands on bytes to send.
"""
