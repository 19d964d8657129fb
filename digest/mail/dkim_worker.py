"""The DKIM signing process: RSA (or Ed25519) beside the sender, not under its GIL.

A signing thread measured no help: it and the event loop fought over the GIL for
every hand-over. This process owns nothing but the key. ``dkim.SigningPool``
starts it as ``python -m digest.mail.dkim_worker`` and speaks frames over its pipes,
each a 4-byte big-endian length and a payload:

- the first frame to stdin is the PEM private key;
- then each request is a 4-byte id and the bytes to sign (the canonical signed
  headers, ~1.5 KB, never the 70 KB message: the sender hashes the body itself);
- each reply on stdout is the same id and the raw signature.

It ends when stdin closes, so a sender killed with SIGKILL leaves no signer
behind; it ignores SIGINT, leaving Ctrl-C to the sender, which closes stdin.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

_LEN = struct.Struct(">I")


def raw_signature(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, data: bytes) -> bytes:
    """The DKIM ``b=`` value, unencoded, for the canonical signed data."""
    digest = hashlib.sha256(data).digest()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 of the data
    return key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def frames(buffer: bytearray) -> list[bytes]:
    """Cut every complete frame off the front of ``buffer``."""
    out = []
    pos = 0
    while len(buffer) - pos >= 4:
        (size,) = _LEN.unpack_from(buffer, pos)
        if len(buffer) - pos - 4 < size:
            break
        out.append(bytes(buffer[pos + 4:pos + 4 + size]))
        pos += 4 + size
    del buffer[:pos]
    return out


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def serve(fd_in: int, fd_out: int) -> None:
    buffer = bytearray()
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | None = None
    while True:
        chunk = os.read(fd_in, 1 << 16)
        if not chunk:
            return
        buffer += chunk
        for payload in frames(buffer):
            if key is None:
                loaded = serialization.load_pem_private_key(payload, password=None)
                assert isinstance(loaded, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
                key = loaded
                continue
            # Each answer goes out at once: a message waits for its own signature
            # only, not for the others that arrived with it.
            out = memoryview(frame(payload[:4] + raw_signature(key, payload[4:])))
            while out:
                out = out[os.write(fd_out, out):]


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):  # the sender went away: nothing to sign for
        serve(sys.stdin.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    main()
