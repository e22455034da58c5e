"""Handing messages to an SMTP server with smtplib: TLS rules, login, and one-line answers.

``smtp://host:587`` upgrades with STARTTLS and refuses to go on without it;
``smtps://host:465`` starts in TLS. Plain text is allowed only to a loopback relay
(a local Postfix) or when the operator says ``KLASH_SMTP_TLS=none``. Certificates are
always verified against the system's trust store (``SSL_CERT_FILE`` adds one).

Every answer becomes an ``Outcome`` with the server's own words on one line: 250 is
delivered; 4xx, a dropped connection or no server at all are temporary (tried again
later); 5xx is permanent for this message (an unknown recipient). The password is
registered as a secret, so not even a library's exception can carry it into a log.
"""

from __future__ import annotations

import base64
import hmac
import io
import ipaddress
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import EmailMessage
from types import TracebackType
from urllib.parse import unquote, urlsplit

from klash_sync.deliver.base import one_line
from klash_sync.deliver.invite.message import seven_bit
from klash_sync.errors import SettingsError
from klash_sync.logs import register_secret
from klash_sync.settings import Settings


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    mode: str  # starttls | ssl | plain
    username: str
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """The SMTP server from KLASH_SMTP_*, or None when KLASH_SMTP_URL is empty."""
    if not settings.smtp_url:
        return None
    parts = urlsplit(settings.smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError("KLASH_SMTP_URL: write smtp://host:587 (STARTTLS) or smtps://host:465")
    if parts.username or parts.password:
        raise SettingsError("KLASH_SMTP_URL: put the login in KLASH_SMTP_USERNAME and "
                            "KLASH_SMTP_PASSWORD(_FILE), not in the URL")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
    except ValueError:
        raise SettingsError("KLASH_SMTP_URL: the port is not a number") from None
    host = unquote(parts.hostname)
    if parts.scheme == "smtps":
        mode = "ssl"
    elif settings.smtp_tls == "none":
        mode = "plain"
    else:
        mode = "starttls"
    password = settings.smtp_secret()
    register_secret(password)
    if password and not settings.smtp_username:
        raise SettingsError("KLASH_SMTP_PASSWORD is set but KLASH_SMTP_USERNAME is empty")
    return SmtpConfig(host, port, mode, settings.smtp_username, password, settings.request_timeout)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """Log in, with a password (or login name) of any characters, sent as UTF-8.

    smtplib's ``login`` encodes what it sends with ASCII (Python 3.11 to 3.13), so a
    password such as "sähkö-Äänestys" ended every send in a UnicodeEncodeError, for every
    mentor. ASCII logins keep smtplib's own way; others are sent by hand as RFC 4616
    PLAIN, RFC 2195 CRAM-MD5 or the LOGIN mechanism, in smtplib's order, the bytes UTF-8
    (what PLAIN prescribes, and what servers read for the others).
    """
    if username.isascii() and password.isascii():
        smtp.login(username, password)
        return
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = smtp.esmtp_features["auth"].upper().split()
    user, secret = username.encode("utf-8"), password.encode("utf-8")
    last: smtplib.SMTPAuthenticationError | None = None
    for mechanism in ("CRAM-MD5", "PLAIN", "LOGIN"):
        if mechanism not in offered:
            continue
        if mechanism == "PLAIN":
            code, answer = smtp.docmd("AUTH", "PLAIN " + _b64(b"\0" + user + b"\0" + secret))
        elif mechanism == "LOGIN":
            code, answer = smtp.docmd("AUTH", "LOGIN " + _b64(user))
            if code == 334:
                code, answer = smtp.docmd(_b64(secret))
        else:
            code, answer = smtp.docmd("AUTH", "CRAM-MD5")
            if code == 334:
                digest = hmac.new(secret, base64.b64decode(answer), "md5").hexdigest()
                code, answer = smtp.docmd(_b64(user + b" " + digest.encode("ascii")))
        if code in (235, 503):  # authenticated; 503: already so
            return
        if code == 334:  # a server still asking: cancel this exchange (RFC 4954) and go on
            smtp.docmd("*")
        last = smtplib.SMTPAuthenticationError(code, answer)
    if last is None:
        raise smtplib.SMTPException("No suitable authentication method found.")
    raise last


@dataclass(frozen=True)
class Outcome:
    ok: bool
    temporary: bool = False
    answer: str = "250 OK"


_ADDRESS = re.compile(r"[^\s<>\"'@,;:]+@[^\s<>\"',;:]+")


def _one_line(code: int | None, text: object) -> str:
    # Servers quote the refused address ("<milja@example.fi>: Recipient address rejected");
    # the answer is shown on the status page and /healthz, which name mentors by id only.
    words = _ADDRESS.sub("(address)", one_line(text, limit=None))
    return one_line(f"{code} {words}" if code else words)


class Transport:
    """One SMTP session, opened on first use and reused; reopened after a drop."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _open(self) -> smtplib.SMTP:
        c = self.config
        context = ssl.create_default_context()
        if c.mode == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=context)
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        try:
            smtp.ehlo()
            if c.mode == "starttls":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif not _loopback(c.host):
                    raise smtplib.SMTPNotSupportedError(
                        f"{c.host} offers no STARTTLS; refusing to send in plain text "
                        "(KLASH_SMTP_TLS=none allows it)")
            if c.username:
                login(smtp, c.username, c.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def connect(self) -> Outcome:
        """Open the session now; a failure here concerns every message alike."""
        if self._smtp is not None:
            return Outcome(True)
        try:
            self._smtp = self._open()
        except smtplib.SMTPAuthenticationError as e:
            return Outcome(False, True, "login refused: " + _one_line(e.smtp_code, e.smtp_error))
        except smtplib.SMTPNotSupportedError as e:
            return Outcome(False, True, _one_line(None, e))
        except smtplib.SMTPResponseException as e:
            return Outcome(False, True, _one_line(e.smtp_code, e.smtp_error))
        except ssl.SSLError as e:
            return Outcome(False, True, f"TLS failed with {self.config.host}: {e.reason or e}")
        except (OSError, smtplib.SMTPException) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
            if isinstance(e, socket.timeout | TimeoutError):
                reason = "no answer in time"
            return Outcome(False, True, _one_line(
                None, f"cannot reach {self.config.host}:{self.config.port} ({reason})"))
        return Outcome(True)

    def send(self, msg: EmailMessage, sender: str, recipient: str) -> Outcome:
        """Hand one message for one recipient to the server; the answer as an Outcome.

        What goes over the wire follows what the server announced after EHLO: 8-bit parts
        with ``BODY=8BITMIME`` only to a server that announced 8BITMIME (RFC 6152), else a
        7-bit copy (quoted-printable); a UTF-8 address only with ``SMTPUTF8`` to a server
        that announced it (RFC 6531), else the message fails for good, for this recipient
        only, without a word to the server: no later try can go better.
        """
        opened = self.connect()
        if not opened.ok:
            return opened
        assert self._smtp is not None
        utf8 = not (sender.isascii() and recipient.isascii())
        if utf8 and not self._smtp.has_extn("smtputf8"):
            return Outcome(False, False, "the mail server does not announce SMTPUTF8, which an "
                                         "address with non-ASCII letters needs")
        options: list[str] = []
        if self._smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        else:
            msg = seven_bit(msg)
        if utf8:
            options.append("SMTPUTF8")
        data = wire_bytes(msg, utf8=utf8)
        try:
            refused = self._smtp.sendmail(sender, [recipient], data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            if code == 421:  # smtplib has closed the connection: open a new one next time
                self._drop()
            return Outcome(False, 400 <= code < 500, _one_line(code, text))
        except smtplib.SMTPResponseException as e:
            if e.smtp_code == 421 or e.smtp_code < 500:
                self._drop()
                return Outcome(False, True, _one_line(e.smtp_code, e.smtp_error))
            return Outcome(False, False, _one_line(e.smtp_code, e.smtp_error))
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            self._drop()
            return Outcome(False, True, _one_line(None, f"connection lost ({e or type(e).__name__})"))
        if refused:
            code, text = next(iter(refused.values()))
            return Outcome(False, 400 <= code < 500, _one_line(code, text))
        return Outcome(True)

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None


def wire_bytes(msg: EmailMessage, *, utf8: bool = False) -> bytes:
    """The message as sent: CRLF line ends, UTF-8 headers only for an SMTPUTF8 session."""
    out = io.BytesIO()
    policy = msg.policy.clone(utf8=utf8)  # type: ignore[call-arg]  # an EmailPolicy's field
    BytesGenerator(out, policy=policy).flatten(msg, linesep="\r\n")
    return out.getvalue()
