"""Quoted-printable for bodies that are spliced after encoding (see digest.mail.mime).

Unlike ``quopri``/``email.quoprimime`` this keeps every encoded line short enough
that a leading '.' (written ``=2E``, so SMTP never needs to dot-stuff) and a
trailing blank (``=20``) both still fit in RFC 2045's 76 columns, never writes two
blanks in a row (so DKIM's relaxed body form is the body itself), and it encodes one
line at a time so a piece encoded alone is byte-identical to the same piece
encoded in context, as long as it starts at column 0.
"""

from __future__ import annotations

CRLF = "\r\n"
SOFT = "=\r\n"
# Encoded characters per line before the soft-break '='; 71 leaves room for a
# leading '=2E' and a trailing '=20' on the same line and still stays within 76.
_WIDTH = 71

# byte -> its quoted-printable form, applied to UTF-8 bytes seen as latin-1 text.
# Printable ASCII except '=' stays literal; tab, controls and 8-bit bytes are escaped.
_QP_TABLE = {b: (chr(b) if (33 <= b <= 126 and b != 61) or b == 32 else f"={b:02X}")
             for b in range(256)}


def _split_line(enc: str) -> list[str]:
    """Cut one encoded line into pieces of at most _WIDTH characters, never inside =XX."""
    pieces = []
    i, n = 0, len(enc)
    while n - i > _WIDTH:
        j = i + _WIDTH
        if enc[j - 1] == "=":
            j -= 1
        elif enc[j - 2] == "=":
            j -= 2
        pieces.append(enc[i:j])
        i = j
    pieces.append(enc[i:])
    return pieces


def _fix_edges(piece: str) -> str:
    # A leading '.' would need SMTP dot-stuffing; trailing blanks are stripped by
    # decoders (RFC 2045 6.7 rule 3). Escaping both keeps the bytes transport-proof.
    if piece.startswith("."):
        piece = "=2E" + piece[1:]
    if piece.endswith(" "):
        piece = piece[:-1] + "=20"
    return piece


def qp_line(line: str) -> str:
    """Quoted-printable for one line of text (no newline), soft-broken to <= 76 columns."""
    if (len(line) <= _WIDTH and line.isascii() and line.isprintable() and "=" not in line
            and not line.startswith(".") and not line.endswith(" ") and "  " not in line):
        return line  # the common case for names, addresses and URLs: nothing to escape
    enc = line.encode("utf-8").decode("latin-1").translate(_QP_TABLE)
    if "  " in enc:
        # No two literal blanks in a row (every second one of a run is '=20'): the
        # body is then already in DKIM's relaxed canonical form, which the signer
        # checks with three C-speed scans instead of rewriting 70 KB per message.
        enc = enc.replace("  ", " =20")
    if len(enc) <= _WIDTH:
        return _fix_edges(enc)
    return SOFT.join(_fix_edges(p) for p in _split_line(enc))


def qp_text(text: str) -> str:
    """Quoted-printable for text with '\\n' line ends; hard line breaks become CRLF."""
    return CRLF.join(qp_line(line) for line in text.split("\n"))


def body_text(content: str) -> str:
    """The content as the email package stores it: CRLF/CR folded to LF, one final LF."""
    content = content.replace("\r\n", "\n").replace("\r", "\n")
    return content if content.endswith("\n") else content + "\n"


def encoded_size(content: str) -> int:
    """Bytes of ``content`` as a quoted-printable body (what Gmail's clipping counts)."""
    return len(qp_text(body_text(content)))
