"""Sending email over SMTP (``TOKENHUB_SMTP_URL``, ``TOKENHUB_MAIL_FROM``), with aiosmtplib.

``smtp://user:pass@host:port`` speaks plain SMTP and upgrades with STARTTLS when the server offers it;
``smtps://…`` is TLS from the first byte (port 465 by default). The password never appears in an error or
a log line: failures name the server and what went wrong, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from urllib.parse import unquote, urlsplit

SEVEN_BIT = policy.SMTP.clone(cte_type="7bit")


class MailError(Exception):
    """An email could not be handed to the SMTP server (the message says why, without credentials)."""


@dataclass(frozen=True)
class Mailbox:
    host: str
    port: int
    tls: bool  # smtps: TLS from the start
    username: str | None
    password: str | None
    sender: str
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, sender: str | None) -> "Mailbox":
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("TOKENHUB_SMTP_URL must look like smtp://user:pass@host:port or smtps://user:pass@host:port")
        tls = parts.scheme == "smtps"
        try:
            port = parts.port or (465 if tls else 587)
        except ValueError:
            raise ValueError("TOKENHUB_SMTP_URL has a port that is not a number") from None
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if not sender:
            sender = username if username and "@" in username else f"tokenhub@{parts.hostname}"
        return cls(parts.hostname, port, tls, username, password, sender)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        """One email, plain text with an HTML alternative when given. Raises ``MailError``."""
        import aiosmtplib  # loaded when the first email is sent: the request path never needs it

        # 7-bit transfer encodings (base64 / quoted-printable for Chinese text): any server takes it, 8BITMIME or not.
        message = EmailMessage(policy=SEVEN_BIT)
        message["From"] = self.sender if "<" in self.sender else formataddr(("TokenHub", self.sender))
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.host)
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.tls,
                start_tls=None if not self.tls else False,  # None: STARTTLS when the server offers it
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPResponseException as err:  # the server's code, not its text (which could echo anything)
            raise MailError(f"the SMTP server {self.server} refused the email: {type(err).__name__} {err.code}") from None
        except aiosmtplib.SMTPException as err:
            raise MailError(f"the SMTP server {self.server} refused the email: {type(err).__name__}") from None
        except OSError as err:
            raise MailError(f"the SMTP server {self.server} could not be reached: {err.strerror or type(err).__name__}") from None
