"""Answers on the page: ``/rsvp/{token}``, where a mentor says coming, maybe or not coming.

The token (``tokens.FeedKeys.answer_token``) is the capability: it names one mentor and
one session and cannot be guessed; a wrong or rotated one is 404, like an unknown page.
A GET only shows the session and three buttons and changes nothing, because mail
scanners and link previews follow every link in an invitation; only the form's POST
records the answer, through the daemon (``record``), which keeps it in the store and
refreshes what the pages and /metrics show.

Why the POST is safe from other sites: a cross-site form cannot know the token in the
path, and a browser sends the page's Origin with the POST (the page sets
``Referrer-Policy: same-origin``, since ``no-referrer`` would make the Origin ``null``);
an Origin from elsewhere, a ``null`` one and ``Sec-Fetch-Site: cross-site`` are refused.
The body is a tiny form; anything larger or else is refused before it is read.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo

from icalendar import Calendar

from klash_sync.programme.model import Mentor, Session
from klash_sync.render.attendance import MentorAnswer
from klash_sync.render.ical import start_instant, uid
from klash_sync.render.snapshot import Feed, Snapshot
from klash_sync.state.records import ANSWERS, Answer
from klash_sync.status import Live
from klash_sync.web.answer_texts import ANSWER_TEXTS, moment_text
from klash_sync.web.page import Page, day_label, time_label
from klash_sync.web.texts import TEXTS, place
from klash_sync.web.tokens import FeedKeys, answer_url, token_id

log = logging.getLogger(__name__)

PREFIX = "/rsvp/"
MAX_BODY = 1024
StartResponse = Callable[..., Any]
Record = Callable[[Answer], None]


class Rsvp:
    """The answer pages of one running service: ``record`` keeps an answer (the daemon's)."""

    def __init__(self, live: Live, page: Page, keys: FeedKeys | None, record: Record | None,
                 now: Callable[[], datetime]) -> None:
        self.live, self.page, self.keys, self.record, self.now = live, page, keys, record, now
        self._feeds: dict[tuple[str, str, str], Feed] = {}  # (path, ETag, feed token) -> with links
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse, path: str
                 ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        found = self._find(path[len(PREFIX):])
        if found is None:
            return _plain(start_response, "404 Not Found", b"Not found\n")
        snapshot, mentor, session, token = found
        if method in ("GET", "HEAD"):
            if environ.get("HTTP_TRANSFER_ENCODING") or _length(environ) != 0:
                return _plain(start_response, "400 Bad Request", b"A GET or HEAD request has no body\n")
            query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
            body = self.render(snapshot, mentor, session, token, chosen=query.get("answer"))
            return _html(start_response, "200 OK", body, method == "HEAD", mentor.language)
        if method != "POST":
            return _plain(start_response, "405 Method Not Allowed", b"Method not allowed\n",
                          [("Allow", "GET, HEAD, POST")])
        refused = self._refused(environ)
        if refused is not None:
            return _plain(start_response, "403 Forbidden", refused.encode() + b"\n")
        answer = _form(environ).get("answer")
        if answer not in ANSWERS:
            return _plain(start_response, "400 Bad Request", b"Choose one of the answers\n")
        now = self.now()
        revision = snapshot.revisions.get(session.id)
        given = Answer(mentor.id, session.id, answer, "web", now, revision.sequence if revision else 0,
                       f"web:{token_id(token)}:{now.isoformat()}")
        assert self.record is not None
        try:
            self.record(given)
        except Exception as e:  # the store cannot be written now (held by another program)
            log.warning("an answer on the page for %s could not be kept: %s", session.id, e)
            body = self.render(snapshot, mentor, session, token, chosen=answer, failed=True)
            return _html(start_response, "503 Service Unavailable", body, False, mentor.language,
                         [("Retry-After", "5")])
        log.info("%s answered %s for %s on the page", mentor.id, answer, session.id)
        body = self.render(snapshot, mentor, session, token, chosen=answer, saved=answer)
        return _html(start_response, "200 OK", body, False, mentor.language)

    def _find(self, token: str) -> tuple[Snapshot, Mentor, Session, str] | None:
        snapshot = self.live.snapshot
        if self.keys is None or self.record is None or snapshot is None:
            return None
        named = self.keys.answer_of(token)
        if named is None:
            return None
        mentor = snapshot.programme.mentor(named[0])
        session = next((s for s in snapshot.programme.sessions if s.id == named[1]), None)
        if mentor is None or session is None or mentor.id not in session.mentors:
            return None
        return snapshot, mentor, session, token

    def _refused(self, environ: dict[str, Any]) -> str | None:
        """Why a POST is not from our own page (None: it may be)."""
        if environ.get("HTTP_SEC_FETCH_SITE", "same-origin") not in ("same-origin", "none"):
            return "A form on another site cannot answer for you"
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and origin not in self._origins(environ):
            return "A form on another site cannot answer for you"
        if _length(environ) is None or (_length(environ) or 0) > MAX_BODY:
            return "The form is too large"
        return None

    def _origins(self, environ: dict[str, Any]) -> set[str]:
        parts = urlsplit(self.page.settings.base_url)
        own = {f"{parts.scheme}://{parts.netloc}"}
        host = environ.get("HTTP_HOST")
        if host:
            own.add(f"{environ.get('wsgi.url_scheme', 'http')}://{host}")
        return own

    def current(self, mentor: str, session: str) -> MentorAnswer | None:
        for row in self.live.attendance or ():
            if row.id == session:
                return next((m for m in row.mentors if m.id == mentor), None)
        return None

    def render(self, snapshot: Snapshot, mentor: Mentor, session: Session, token: str, *,
               chosen: str | None = None, saved: str | None = None, failed: bool = False) -> bytes:
        lang = mentor.language
        tz = ZoneInfo(snapshot.programme.programme.timezone)

        def fmt(moment: datetime | None) -> str:
            return moment_text(moment, tz, lang)

        return self.page.env.get_template("rsvp.html").render(
            lang=lang, t=TEXTS[lang], a=ANSWER_TEXTS[lang], programme=snapshot.programme,
            mentor=mentor, session=session, answers=ANSWERS, chosen=chosen, saved=saved,
            failed=failed, fmt=fmt, current=self.current(mentor.id, session.id),
            day=day_label(start_instant(session, tz).date(), lang), time=time_label(session, tz, lang),
            place=lambda name: place(name, lang), action=self.page.links.prefix + PREFIX + quote(token),
        ).encode()


    def feed_with_links(self, feed: Feed, mentor_id: str) -> Feed:
        """A mentor's own feed as their secret address serves it: each event's description
        ends with their answer links, so a feed subscriber can answer too. Only here: the
        public feeds and the public mentor feed never carry a token. Kept per feed version
        and token, so a rotation or an edit makes a new one (and a new ETag)."""
        snapshot = self.live.snapshot
        if self.keys is None or self.record is None or snapshot is None:
            return feed
        key = (feed.path, feed.etag, self.keys.token(mentor_id))
        with self._lock:
            if key in self._feeds:
                return self._feeds[key]
        made = linked_feed(feed, snapshot, mentor_id, self.keys, self.page.settings.base_url)
        with self._lock:
            if len(self._feeds) > 512:
                self._feeds.clear()
            self._feeds[key] = made
        return made


def linked_feed(feed: Feed, snapshot: Snapshot, mentor_id: str, keys: FeedKeys, base_url: str) -> Feed:
    """``feed`` with the mentor's answer links at the end of each event's description; as the
    daemon serves it and as the export writes it (``static``), so both are the same bytes."""
    mentor = snapshot.programme.mentor(mentor_id)
    if mentor is None:
        return feed
    words = ANSWER_TEXTS[mentor.language]
    sessions = {uid(s, snapshot.programme): s for s in feed.sessions}
    cal = Calendar.from_ical(feed.body)
    for event in cal.walk("VEVENT"):
        sid = sessions.get(str(event.get("UID", "")))
        if sid is None:
            continue
        url = answer_url(base_url, keys, mentor_id, sid)
        lines = [f"{words[a]}: {url}?answer={a}" for a in ANSWERS]
        text = str(event.get("DESCRIPTION", "")).rstrip()
        event.pop("DESCRIPTION", None)
        event.add("DESCRIPTION", "\n".join([text, "", words["answer_prompt"], *lines]).lstrip())
    body = cal.to_ical()
    return replace(feed, body=body, gzipped=gzip.compress(body, compresslevel=6, mtime=0),
                   etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def _length(environ: dict[str, Any]) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def _form(environ: dict[str, Any]) -> dict[str, str]:
    kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    raw = environ["wsgi.input"].read(_length(environ) or 0)
    try:
        return dict(parse_qsl(raw.decode("ascii"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


_HEADERS = [("X-Content-Type-Options", "nosniff"), ("Cache-Control", "private, no-store")]


def _html(start_response: StartResponse, status: str, body: bytes, head: bool, lang: str,
          extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    start_response(status, [
        ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
        ("Content-Language", lang), *_HEADERS, *(extra or []),
        # same-origin, not no-referrer: with no-referrer the form's POST carries Origin: null
        ("Referrer-Policy", "same-origin"),
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                    "form-action 'self'; frame-ancestors 'none'"),
    ])
    return [] if head else [body]


def _plain(start_response: StartResponse, status: str, body: bytes,
           extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))), *_HEADERS,
                            ("Referrer-Policy", "no-referrer"), *(extra or [])])
    return [body]
