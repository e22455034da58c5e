"""A real SMTP server for the tests: aiosmtpd on a free loopback port, STARTTLS and AUTH required.

It collects every message it accepts, in the order it accepted them, and can be told to
answer like the failures a real relay gives: 550 for one recipient, 421 for everyone,
or to be down altogether (stopped, and later started again on the same port).
"""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USERNAME = "klash@kuntaliitto.test"
PASSWORD = "smtp-Secret-Pw-4711"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=default)  # type: ignore[return-value]


@dataclass
class Collector:
    """The aiosmtpd handler: accepts, refuses or delays as told."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> answer, e.g. 550
    answer_all: str | None = None  # e.g. "421 4.3.2 try again later"
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.answer_all:
            return self.answer_all
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content))
        return "250 2.0.0 accepted"

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USERNAME
          and auth_data.password.decode() == PASSWORD)
    return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535 itself


def make_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 and localhost; the path of the PEM (cert+key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    return cert


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    def __init__(self, directory: Path) -> None:
        self.cert = make_certificate(directory)
        self.key = directory / "key.pem"
        self.port = free_port()
        self.handler = Collector()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The KLASH_* settings (and trust) a klash-sync process needs to send through it."""
        return {"KLASH_SMTP_URL": self.url, "KLASH_SMTP_USERNAME": USERNAME,
                "KLASH_SMTP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(self.cert)}

    def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, tls_context=context,
            require_starttls=True, auth_required=True, auth_require_tls=True,
            authenticator=_authenticator,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
