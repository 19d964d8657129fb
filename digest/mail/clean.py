"""Message bytes whose wire form is known by construction.

A 70 KB digest would otherwise be scanned three more times per subscriber: for
bare line ends (``send.pool.crlf``), for lines starting with '.' (SMTP
dot-stuffing) and for runs of blanks (DKIM's relaxed body form). Together that
is ~0.4 ms a message, a third of what sending one costs. ``digest.mail.mime`` builds
its messages from pieces it checks once per variant (and a subscriber's few
small values once per message), so it can promise the answers instead.
"""

from __future__ import annotations


class CleanMessage(bytes):
    """A complete message in which every line ends CRLF, no line starts with '.',
    and there is no tab, no two blanks in a row and no blank before a line end:
    CRLF normalisation, dot-stuffing and relaxed body canonicalisation leave it
    as it is."""


def clean_piece(piece: bytes) -> bool:
    """Whether ``piece`` keeps the promise wherever it sits between other clean pieces.

    The edges are what make it compose: a piece that ends in no blank and starts
    with no '.' can create neither a run of blanks, nor a blank before a line end,
    nor a line starting with '.' at a join (and a lone CR or LF fails the counts).
    ``qp.qp_line`` output is always clean (a property test holds it to that).
    """
    crlfs = piece.count(b"\r\n")
    return (piece.count(b"\r") == crlfs and piece.count(b"\n") == crlfs
            and b"\r\n." not in piece and b"\t" not in piece and b"  " not in piece
            and b" \r\n" not in piece and not piece.startswith(b".")
            and not piece.endswith(b" "))
