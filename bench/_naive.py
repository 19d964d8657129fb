"""The naive way to make a digest message, kept as the benchmarks' baseline.

Every message built and serialised by the email package, headers set from
strings. digest itself never does this (headers set from strings are decoded as
RFC 2047 encoded words: see digest.mail.headers); the benchmarks' readers are
synthetic, so it is safe here, and it is the work a simple mailer would do.
"""

from __future__ import annotations

from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from digest.config import Config
from digest.mail.message import message_id
from digest.models import Personal, Rendered, Subscriber
from digest.render.variant import personalise


def naive_message(config: Config, rendered: Rendered, subscriber: Subscriber,
                  personal: Personal, *, day: date, now: datetime) -> EmailMessage:
    nl = config.newsletter
    html, text = personalise(rendered, personal)
    msg = EmailMessage(policy=SMTP)
    from_name, from_email = parseaddr(nl.from_address)
    msg["From"] = Address(from_name, addr_spec=from_email)
    local, _, domain = subscriber.email.rpartition("@")
    msg["To"] = Address(subscriber.name, username=local, domain=domain)
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(config, day, subscriber.email)
    msg["List-Id"] = f'"{nl.name}" <{nl.list_id}>'
    msg["List-Unsubscribe"] = (f"<{personal.unsubscribe_url}>, "
                               f"<mailto:{personal.unsubscribe_mailto}?subject=unsubscribe>")
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if subscriber.format == "html":
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg
