"""The organisers' view: who answered what, when and how, behind a password.

``/organisers`` shows per session each mentor's answer, its time and channel (the same
rows as ``klash-sync attendance``, from the in-memory status the daemon refreshes), and
``/organisers/answers.atom`` every answer as a feed entry ("Milja Köpsi declined
Janakkala, 24.9.") read from the store's answers. Mentors' names and answers are for
organisers only: the public page shows counts.

The login is HTTP Basic (any user name, the password ``KLASH_ORGANISER_PASSWORD``), so a
feed reader can follow the Atom feed too. Passwords are compared in constant time on
their SHA-256, and each client address has the same budget of failed logins as the
embedded server's (``embedded.logins.Failures``): five at once, then one a minute, 429
over it. Without a password configured the view does not exist: 404.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from klash_sync.embedded.logins import Failures, Malformed, client_key, parse_basic
from klash_sync.logs import register_secret
from klash_sync.render.ical import start_instant
from klash_sync.state.records import Answer
from klash_sync.status import Live
from klash_sync.web.answer_texts import ANSWER_TEXTS, answer_sentence, moment_text
from klash_sync.web.http import preferred_language
from klash_sync.web.page import Page
from klash_sync.web.texts import LANGUAGE_NAMES, LANGUAGES, TEXTS

PAGE = "/organisers"
FEED = "/organisers/answers.atom"
ATOM = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 200
StartResponse = Callable[..., Any]
_HEADERS = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "private, no-store")]


class Organisers:
    """The view and its feed; ``answers`` reads every kept answer (the store's)."""

    def __init__(self, live: Live, page: Page, password: str | None,
                 answers: Callable[[], list[Answer]] | None) -> None:
        self.live, self.page, self.answers = live, page, answers
        register_secret(password)
        self._digest = hashlib.sha256(password.encode()).digest() if password else None
        self.failures = Failures()

    @staticmethod
    def serves(path: str) -> bool:
        return path in (PAGE, FEED)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse, path: str
                 ) -> Iterable[bytes]:
        if self._digest is None:
            return _plain(start_response, "404 Not Found", b"Not found\n")
        denied = self._login(environ, start_response)
        if denied is not None:
            return denied
        snapshot = self.live.snapshot
        if snapshot is None:
            return _plain(start_response, "503 Service Unavailable",
                          b"The programme has not been loaded yet\n")
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        lang = preferred_language(environ, query, LANGUAGES)
        head = environ.get("REQUEST_METHOD") == "HEAD"
        if path == FEED:
            return _respond(start_response, "application/atom+xml; charset=utf-8", self.atom(lang), head)
        tz = ZoneInfo(snapshot.programme.programme.timezone)

        def fmt(moment: datetime | None) -> str:
            return moment_text(moment, tz, lang)

        links = self.page.links
        body = self.page.env.get_template("organisers.html").render(
            lang=lang, t=TEXTS[lang], a=ANSWER_TEXTS[lang], programme=snapshot.programme,
            rows=self.live.attendance or (), fmt=fmt, feed=f"{links.prefix}{FEED}?lang={lang}",
            here=lambda code: f"{links.prefix}{PAGE}?lang={code}", back=links.page(lang),
            other_languages=[(c, LANGUAGE_NAMES[c]) for c in LANGUAGES if c != lang],
        ).encode()
        return _respond(start_response, "text/html; charset=utf-8", body, head, [
            ("Content-Language", lang),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")])

    def _login(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes] | None:
        """None when the request carries the password; else the answer to send."""
        key = client_key(environ.get("REMOTE_ADDR", ""))
        wait = self.failures.wait(key)
        header = environ.get("HTTP_AUTHORIZATION", "")
        try:
            _, password = parse_basic(header) if header else ("", None)
        except Malformed:
            password = None
        if password is not None and wait == 0:
            given = hashlib.sha256(password.encode()).digest()
            assert self._digest is not None
            if hmac.compare_digest(given, self._digest):
                return None
            self.failures.failed(key)
        if wait:
            return _plain(start_response, "429 Too Many Requests", b"Too many failed logins\n",
                          [("Retry-After", str(wait))])
        return _plain(start_response, "401 Unauthorized", b"The organisers' password is needed\n",
                      [("WWW-Authenticate", 'Basic realm="klash-sync organisers", charset="UTF-8"')])

    def atom(self, lang: str) -> bytes:
        """Every kept answer, newest first, for sessions and mentors of the programme in use."""
        snapshot = self.live.snapshot
        assert snapshot is not None
        programme = snapshot.programme
        tz = ZoneInfo(programme.programme.timezone)
        sessions = {s.id: s for s in programme.sessions}
        parts = urlsplit(self.page.settings.base_url)
        origin = f"{parts.scheme}://{parts.netloc}{self.page.links.prefix}"
        domain = programme.programme.uid_domain
        ET.register_namespace("", ATOM)
        feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": lang})
        title = f"{programme.programme.name}: {ANSWER_TEXTS[lang]['answers']}"
        ET.SubElement(feed, f"{{{ATOM}}}title").text = title
        ET.SubElement(feed, f"{{{ATOM}}}id").text = f"tag:{domain},2019:answers"
        answers = [a for a in reversed(self.answers() if self.answers else [])
                   if a.session in sessions and programme.mentor(a.mentor) is not None][:MAX_ENTRIES]
        newest = answers[0].at if answers else snapshot.loaded_at
        ET.SubElement(feed, f"{{{ATOM}}}updated").text = newest.astimezone(UTC).isoformat()
        ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "alternate", "href": f"{origin}{PAGE}?lang={lang}"})
        ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "self", "href": f"{origin}{FEED}?lang={lang}"})
        author = ET.SubElement(feed, f"{{{ATOM}}}author")
        ET.SubElement(author, f"{{{ATOM}}}name").text = programme.programme.organiser
        for a in answers:
            mentor, session = programme.mentor(a.mentor), sessions[a.session]
            assert mentor is not None
            text = answer_sentence(mentor.name, a.answer, session.title, start_instant(session, tz), lang)
            if a.comment:
                text += f" “{a.comment}”"
            entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
            ET.SubElement(entry, f"{{{ATOM}}}title").text = text
            digest = hashlib.sha256(a.source.encode()).hexdigest()[:24]
            ET.SubElement(entry, f"{{{ATOM}}}id").text = f"tag:{domain},2019:answer/{digest}"
            ET.SubElement(entry, f"{{{ATOM}}}updated").text = a.at.astimezone(UTC).isoformat()
            ET.SubElement(entry, f"{{{ATOM}}}link", {"href": f"{origin}{PAGE}?lang={lang}#{a.session}"})
            ET.SubElement(entry, f"{{{ATOM}}}summary").text = (
                f"{text} ({ANSWER_TEXTS[lang]['via_' + a.via]})")
        body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
        return body


def _respond(start_response: StartResponse, kind: str, body: bytes, head: bool,
             extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body))),
                              ("Vary", "Authorization, Accept-Language"), *_HEADERS, *(extra or [])])
    return [] if head else [body]


def _plain(start_response: StartResponse, status: str, body: bytes,
           extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))), *_HEADERS, *(extra or [])])
    return [body]
