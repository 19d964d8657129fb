"""DKIM signing (RFC 6376) of final message bytes: relaxed/relaxed, rsa-sha256 or
ed25519-sha256 (RFC 8463), through the ``cryptography`` package.

dkimpy would do, but its pure-Python RSA costs ~15 ms a signature; OpenSSL signs
RSA-2048 in ~0.7 ms, and the sender has that done in a worker process on the other
core (``SigningPool``). Body canonicalisation uses C-speed ``bytes`` methods, not
regexes, and is skipped for digest.mail.mime's messages, which are built canonical.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from digest.config import Config
from digest.errors import ConfigError, DeliveryError
from digest.mail import dkim_worker
from digest.mail.clean import CleanMessage
from digest.worker_process import start_worker

# RFC 8058 needs List-Unsubscribe-Post signed (dkimpy's default list leaves it out).
# Content-Type and MIME-Version are signed too: altering them changes how the body reads.
SIGNED = ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
          "List-Unsubscribe-Post", "Reply-To", "Feedback-ID", "MIME-Version", "Content-Type")

_WSP_RUN = re.compile(rb"[ \t]+")


@dataclass(frozen=True)
class Signer:
    """Signs complete CRLF messages for one (domain, selector, key)."""

    domain: str
    selector: str
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    headers: tuple[str, ...] = SIGNED

    @property
    def algorithm(self) -> str:
        return "ed25519-sha256" if isinstance(self.key, ed25519.Ed25519PrivateKey) \
            else "rsa-sha256"

    def public_record(self) -> str:
        """The TXT record to publish at <selector>._domainkey.<domain>."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            raw = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
            return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"

    def sign(self, message: bytes, *, now: float | None = None) -> bytes:
        """``message`` (CRLF line ends, not dot-stuffed) with a DKIM-Signature prepended."""
        return self.signature(message, now=now) + message

    def signature(self, message: bytes, *, now: float | None = None) -> bytes:
        """The DKIM-Signature header field (with its CRLF) for ``message``."""
        return self.complete(*self.prepare(message), now=now)

    def prepare(self, message: bytes) -> tuple[bytes, tuple[str, ...], bytes]:
        """The GIL-bound part: (canonical signed headers, their names, canonical body)."""
        head, sep, body = message.partition(b"\r\n\r\n")
        if not sep:  # no body at all: the header block runs to the end
            head, body = message.removesuffix(b"\r\n"), b""
        fields = _fields(head + b"\r\n")
        signed: list[bytes] = []
        names: list[str] = []
        for name in self.headers:
            raw = fields.get(name.lower())
            if raw is not None:
                signed.append(_relaxed_header(raw))
                names.append(name)
        return b"".join(signed), tuple(names), _relaxed_body(
            body, clean=isinstance(message, CleanMessage))

    def complete(self, headers: bytes, names: tuple[str, ...], body: bytes, *,
                 now: float | None = None) -> bytes:
        """The finished DKIM-Signature header for what ``prepare`` returned."""
        unsigned, data = self.to_sign(headers, names, body, now=now)
        return self.finish(unsigned, self.raw_signature(data))

    def to_sign(self, headers: bytes, names: tuple[str, ...], body: bytes, *,
                now: float | None = None) -> tuple[bytes, bytes]:
        """(the header without its b= value, the canonical data that value signs)."""
        bh = base64.b64encode(hashlib.sha256(body).digest()).decode()
        tags = (f"v=1; a={self.algorithm}; c=relaxed/relaxed; d={self.domain};"
                f" s={self.selector};\r\n\tt={int(now if now is not None else time.time())};"
                f" h={':'.join(names)};\r\n\tbh={bh};\r\n\tb=")
        unsigned = f"DKIM-Signature: {tags}".encode("ascii")
        return unsigned, headers + _relaxed_header(unsigned + b"\r\n").removesuffix(b"\r\n")

    @staticmethod
    def finish(unsigned: bytes, signature: bytes) -> bytes:
        b = base64.b64encode(signature).decode("ascii")
        folded = "\r\n\t ".join(b[i:i + 64] for i in range(0, len(b), 64))
        return unsigned + folded.encode("ascii") + b"\r\n"

    def raw_signature(self, data: bytes) -> bytes:
        return dkim_worker.raw_signature(self.key, data)

    def pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _fields(head: bytes) -> dict[str, bytes]:
    """{lower-case name: the last such field, with its continuation lines and CRLF}.

    RFC 6376 signs the bottom-most instance of a repeated header.
    """
    out: dict[str, bytes] = {}
    name = ""
    start = 0
    pos = 0
    end = len(head)
    while pos < end:
        nl = head.find(b"\r\n", pos)
        nl = end if nl < 0 else nl + 2
        if head[pos:pos + 1] not in (b" ", b"\t"):  # a new field starts here
            if name:
                out[name] = head[start:pos]
            colon = head.find(b":", pos, nl)
            name = head[pos:colon].decode("ascii", "replace").strip().lower() if colon > 0 else ""
            start = pos
        pos = nl
    if name:
        out[name] = head[start:end]
    return out


@lru_cache(maxsize=256)  # most signed fields are the same in every message of a run
def _relaxed_header(raw: bytes) -> bytes:
    name, _, value = raw.partition(b":")
    value = value.replace(b"\r\n", b"")
    value = _WSP_RUN.sub(b" ", value).strip(b" \t")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def _relaxed_body(body: bytes, *, clean: bool = False) -> bytes:
    """RFC 6376 3.4.4; ``clean`` (see digest.mail.clean): only the trailing lines change."""
    if clean:
        return _without_trailing_lines(body)
    # C-speed bytes methods instead of regexes (~3 ms on a 70 KB digest): find each
    # run of spaces (HTML indentation: a hundred or so) and keep one space of it.
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    at = body.find(b"  ")
    if at >= 0:
        pieces = []
        start = 0
        while at >= 0:
            pieces.append(body[start:at + 1])
            end = at + 2
            while True:  # skip the rest of the run, 64 bytes a step
                ahead = body[end:end + 64]
                skip = len(ahead) - len(ahead.lstrip(b" "))
                end += skip
                if skip < 64:
                    break
            start = end
            at = body.find(b"  ", end)
        pieces.append(body[start:])
        body = b"".join(pieces)
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")  # one space at most is left before a CRLF
    # (A last line without CRLF keeps a trailing space, as dkimpy and OpenDKIM do;
    # over SMTP every body ends with CRLF anyway.)
    return _without_trailing_lines(body)


def _without_trailing_lines(body: bytes) -> bytes:
    """The body ending in exactly one CRLF (none when empty): RFC 6376 3.4.4 (b)."""
    if body.endswith(b"\r\n") and not body.endswith(b"\r\n\r\n") and body != b"\r\n":
        return body  # the usual case: no copy of 70 KB
    while body.endswith(b"\r\n"):
        body = body[:-2]
    return body + b"\r\n" if body else b""


def load(config: Config) -> Signer | None:
    """The configured signer, or None when [dkim] has no selector."""
    cfg = config.dkim
    if not cfg.selector:
        return None
    from digest.mail.message import from_domain

    domain = cfg.domain or from_domain(config)
    if cfg.private_key_file:
        path = config.resolve(cfg.private_key_file)
        where = f"dkim.private_key_file ({path})"
        try:
            pem = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"{where}: cannot read: {e.strerror}",
                              hint="point it at a PEM private key") from None
    else:
        where = f"${cfg.private_key_env} (dkim.private_key_env)"
        value = os.environ.get(cfg.private_key_env)
        if not value:
            raise ConfigError(f"dkim.selector is {cfg.selector!r} but no key: "
                              f"dkim.private_key_file is empty and ${cfg.private_key_env} unset",
                              hint="set one of them, or clear dkim.selector")
        pem = value.encode()
    return Signer(domain=domain, selector=cfg.selector, key=_key(pem, where))


def _key(pem: bytes, where: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise ConfigError(f"{where}: not an unencrypted PEM private key ({e})",
                          hint="openssl genrsa -out dkim.pem 2048") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise ConfigError(f"{where}: RSA key of {key.key_size} bits is too weak",
                              hint="use 2048 bits (receivers ignore < 1024)")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ConfigError(f"{where}: a {type(key).__name__} cannot sign DKIM",
                      hint="use an RSA (2048-bit) or Ed25519 key")


# -- signing beside the sender ----------------------------------------------------------

class SigningPool:
    """Signs for the sender's event loop through a ``digest.mail.dkim_worker`` process.

    The canonical form and the body hash (~0.1 ms, bytes work) run inline; the RSA
    signature (~0.7 ms) runs in the worker on the other core, which gets only the
    ~1.5 KB of signed headers. (Threads fought the loop for the GIL: 390-560 msg/s
    against smtp-sink where the process gives more; shipping whole 70 KB messages
    to a process cost more than the signature.)
    """

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self._proc: asyncio.subprocess.Process | None = None
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._ids = itertools.count()
        self._reader: asyncio.Task[None] | None = None
        self._dead: str | None = None

    async def start(self) -> None:
        self._proc = await start_worker("digest.mail.dkim_worker")
        assert self._proc.stdin is not None
        self._proc.stdin.write(dkim_worker.frame(self.signer.pem()))
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def sign(self, message: bytes) -> bytes:
        """``message`` with its DKIM-Signature header prepended."""
        assert self._proc is not None and self._proc.stdin is not None, "start() first"
        if self._dead is not None:
            raise DeliveryError(self._dead, hint="see the log above; rerun to send the rest")
        unsigned, data = self.signer.to_sign(*self.signer.prepare(message))
        ident = next(self._ids) & 0xFFFFFFFF
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[ident] = waiter
        self._proc.stdin.write(dkim_worker.frame(ident.to_bytes(4, "big") + data))
        return self.signer.finish(unsigned, await waiter) + message

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                size = int.from_bytes(await stdout.readexactly(4), "big")
                payload = await stdout.readexactly(size)
                waiter = self._waiting.pop(int.from_bytes(payload[:4], "big"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(payload[4:])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self._dead = "the DKIM signing process stopped"
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(DeliveryError(self._dead))
        self._waiting.clear()

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # the worker ends at EOF
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader
