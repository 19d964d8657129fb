"""The sender process the crash test kills: ``python -m tests.crash_sender DB PORT N``
(DKIM-signed, so kills also land on its signing process).

It sends the day's journal to N subscribers, as `digest send` would, and prints
"sending" at the first reply so the test can aim its SIGKILL into the send.
"""

from __future__ import annotations

import sys
from pathlib import Path

from digest.config import from_dict
from digest.send.deliver import Outgoing, deliver_sync
from digest.store.facade import Store
from tests.test_send import DAY, SENDER

CONNECTIONS, RATE = 4, 400  # the crash test's bound on duplicates follows from these


def people(n: int) -> list[str]:
    return [f"reader{i:05d}@example.com" for i in range(n)]


def message(email: str) -> bytes:
    body = "".join(f"Story {i}: the harbour reopens, and {email} reads it.\r\n" for i in range(30))
    return (f"From: Daily Selection <{SENDER}>\r\nTo: {email}\r\nSubject: Today\r\n"
            f"Message-ID: <{email.replace('@', '.')}@example.org>\r\n\r\n{body}").encode()


def dkim_key(path: Path) -> Path:
    """An RSA key for the run, made by the first sender: kills land while it signs too."""
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


def main(db: str, port: int, n: int) -> None:
    config = from_dict({
        "newsletter": {"from": f"Daily Selection <{SENDER}>"},
        "dkim": {"selector": "crash", "private_key_file": str(dkim_key(Path(db).parent
                                                                       / "dkim.pem"))},
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "connections": CONNECTIONS,
                 "timeout": 10, "retry_first": 0.05, "retry_within_run": 30,
                 "rate_per_second": RATE},
    }, Path(db).parent / "config.toml")
    store = Store.open(Path(db))
    outgoing = [Outgoing(e, lambda e=e: message(e)) for e in people(n)]  # type: ignore[misc]
    started = []

    def progress(_: object) -> None:
        if not started:  # the first reply: from here on the kill lands mid-send
            started.append(True)
            print("sending", flush=True)

    report = deliver_sync(config, store, DAY, outgoing, on_progress=progress)
    if not started:
        print("sending", flush=True)  # nothing was left to send
    print(f"done sent={report.sent} skipped={report.skipped}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
