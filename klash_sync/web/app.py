"""The WSGI application: feeds, the page, health and metrics, and the embedded CalDAV mount.

Routes are few and fixed, so they are matched by exact patterns; nothing outside
them is ever read from disk. Feeds are served from the current ``Snapshot`` (bytes
rendered once per programme version), with strong ETags, Last-Modified, 304s,
HEAD and gzip. Any unexpected exception becomes a bare 500 without a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from klash_sync.render.snapshot import Feed
from klash_sync.settings import Settings
from klash_sync.state.records import Answer, Change
from klash_sync.status import Live
from klash_sync.web.atom import atom
from klash_sync.web.http import accepts_gzip, http_date, not_modified, preferred_language
from klash_sync.web.organisers import Organisers
from klash_sync.web.page import SCRIPT_HASH, Page
from klash_sync.web.rsvp import PREFIX as RSVP
from klash_sync.web.rsvp import Rsvp
from klash_sync.web.texts import LANGUAGES
from klash_sync.web.tokens import FeedKeys

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_FEED = re.compile(r"^/feeds/(?:programme|mentors/[a-z0-9-]{1,64}|municipalities/[a-z0-9-]{1,64})\.ics$")
_PRIVATE_FEED = re.compile(r"^/feeds/mentors/(?P<id>[a-z0-9-]{1,64})/(?P<token>[A-Za-z0-9_-]{1,64})\.ics$")
_MENTOR_PAGE = re.compile(r"^/mentors/(?P<id>[a-z0-9-]{1,64})(?:/(?P<token>[A-Za-z0-9_-]{1,64}))?$")
_SAFE = ("GET", "HEAD")
_SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


class App:
    """The HTTP face of klash-sync. ``dav`` is the embedded CalDAV server, mounted at /dav/."""

    def __init__(
        self,
        live: Live,
        settings: Settings,
        *,
        dav: WSGIApp | None = None,
        health: Callable[[], tuple[int, bytes]] | None = None,
        metrics: Callable[[], bytes] | None = None,
        on_request: Callable[[str, int], None] | None = None,
        keys: FeedKeys | None = None,
        changes: Callable[[], list[Change]] | None = None,
        record: Callable[[Answer], None] | None = None,
        answers: Callable[[], list[Answer]] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``record`` keeps a mentor's answer from the page (the daemon's store; without it
        there are no answer pages), ``answers`` reads every kept one (the organisers' feed)."""
        self.live = live
        self.keys = keys
        self.changes = changes
        self.settings = settings
        self.dav = dav
        self.health = health
        self.metrics = metrics
        self.on_request = on_request
        self.record, self.answers, self.now = record, answers, now
        self.set_settings(settings)

    def set_settings(self, settings: Settings) -> None:
        self.settings = settings
        # answer links only where answers are taken (the daemon, not ``serve``)
        self.page = Page(settings, self.changes, keys=self.keys if self.record is not None else None)
        self._prefix = _path_of(settings.base_url)
        self.rsvp = Rsvp(self.live, self.page, self.keys, self.record, self.now)
        self.organisers = Organisers(self.live, self.page, settings.organiser_secret(), self.answers)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if self.dav is not None and _for_dav(path, self._prefix):
            return self.dav(environ, start_response)
        if self.dav is not None and _asks_for_dav(path, environ.get("REQUEST_METHOD", "GET")):
            return self._to_dav(start_response)
        try:
            return self._route(environ, start_response, path)
        except Exception:  # a bug: log it for the operator, show nothing to the client
            log.exception("internal error serving %s", _printable(path.rsplit("/", 1)[0]) + "/…")
            return _plain(start_response, "500 Internal Server Error", b"Internal server error\n")

    def _route(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith(RSVP):  # the one form: it takes a POST (rsvp.py)
            return self.rsvp(environ, start_response, path)
        if method not in _SAFE:
            return _plain(start_response, "405 Method Not Allowed", b"Method not allowed\n",
                          extra=[("Allow", "GET, HEAD")])
        head = method == "HEAD"
        if _has_body(environ):  # a GET with a body is a smuggling attempt or a broken client
            return _plain(start_response, "400 Bad Request", b"A GET or HEAD request has no body\n")
        snapshot = self.live.snapshot
        if Organisers.serves(path):
            return self.organisers(environ, start_response, path)
        if path == "/healthz" and self.health is not None:
            status, body = self.health()
            return _respond(start_response, f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                            "application/json", body, head,
                            extra=[("Cache-Control", "no-store")])
        if path == "/metrics" and self.metrics is not None:
            return _respond(start_response, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
                            self.metrics(), head, extra=[("Cache-Control", "no-store")])
        if snapshot is None:
            return self._unloaded(environ, start_response, path, head)
        if _FEED.match(path):
            feed = snapshot.feeds.get(path)
            if feed is None or not self._feed_visible(feed):
                return self._not_found(start_response, path)
            return self._feed(environ, start_response, feed, head)
        m = _PRIVATE_FEED.match(path)
        if m:
            feed = snapshot.feeds.get(f"/feeds/mentors/{m['id']}.ics")
            if feed is None or not self._token_ok(m["id"], m["token"]):
                return self._not_found(start_response, path)
            feed = self.rsvp.feed_with_links(feed, m["id"])  # the answer links, on this one only
            return self._feed(environ, start_response, feed, head, private=True)
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        lang = preferred_language(environ, query, LANGUAGES)
        if path == "/changes.atom":
            body = atom(snapshot, self.changes() if self.changes else [], lang, self.settings.base_url,
                        self.page.links)
            return _respond(start_response, "200 OK", "application/atom+xml; charset=utf-8", body, head,
                            extra=[("Cache-Control", "no-cache")])
        if path in ("/", "/index.html"):
            body = self.page.index(snapshot, self.live, lang).encode()
            return self._html(start_response, body, head, lang)
        m = _MENTOR_PAGE.match(path)
        if m:
            mentor = snapshot.programme.mentor(m["id"])
            if mentor is None:
                return self._not_found(start_response, path)
            private_path, token = None, None
            if m["token"] is not None:
                if not self._token_ok(mentor.id, m["token"]):
                    return self._not_found(start_response, path)
                token = m["token"]
                private_path = f"/feeds/mentors/{mentor.id}/{token}.ics"
            body = self.page.mentor(snapshot, self.live, mentor, lang, private_path, token,
                                    dav=self.dav is not None).encode()
            return self._html(start_response, body, head, lang, private=private_path is not None)
        return self._not_found(start_response, path)

    def _unloaded(self, environ: dict[str, Any], start_response: StartResponse, path: str, head: bool
                  ) -> Iterable[bytes]:
        """No programme yet: pages explain why (still 503 for machines), the rest is plain."""
        m = _MENTOR_PAGE.match(path)
        if path not in ("/", "/index.html") and m is None:
            return _plain(start_response, "503 Service Unavailable",
                          b"The programme has not been loaded yet\n", extra=[("Retry-After", "5")])
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        lang = preferred_language(environ, query, LANGUAGES)
        body = self.page.unloaded(self.live, lang, m["id"] if m else None, m["token"] if m else None)
        return self._html(start_response, body.encode(), head, lang, private=True,
                          status="503 Service Unavailable", extra=[("Retry-After", "5")])

    def _to_dav(self, start_response: StartResponse) -> Iterable[bytes]:
        """Send a calendar app from the server address to the DAV root (RFC 6764, section 5).

        The target is a path (keeping the host the app used) under the public URL's path,
        so it is right behind a reverse proxy at a sub-path too. A PROPFIND that follows
        a 301 may lose its body; Radicale then answers "allprop", which includes the
        current-user-principal the app is after.
        """
        start_response("301 Moved Permanently", [
            ("Location", f"{self._prefix}/dav/"), ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", "0"), ("Cache-Control", "no-store"), *_SECURITY_HEADERS,
        ])
        return []

    def _token_ok(self, mentor_id: str, token: str) -> bool:
        return self.settings.private_feeds and self.keys is not None and self.keys.valid(mentor_id, token)

    def _feed_visible(self, feed: Feed) -> bool:
        if feed.kind == "mentor":
            return not self.settings.private_feeds
        return self.settings.public_feeds

    def _feed(
        self, environ: dict[str, Any], start_response: StartResponse, feed: Feed, head: bool,
        *, private: bool = False,
    ) -> Iterable[bytes]:
        gz = accepts_gzip(environ)
        etag = feed.etag if not gz else feed.etag[:-1] + '-gz"'
        headers = [
            ("ETag", etag),
            ("Last-Modified", http_date(feed.last_modified)),
            # A secret address must not be kept by shared caches.
            ("Cache-Control", "private, no-cache" if private else "no-cache"),
            ("Vary", "Accept-Encoding"),
        ]
        if not_modified(environ, (feed.etag, feed.etag[:-1] + '-gz"'), feed.last_modified):
            self._count(feed.kind, 304)
            start_response("304 Not Modified", headers + _SECURITY_HEADERS)
            return []
        body = feed.gzipped if gz else feed.body
        if gz:
            headers.append(("Content-Encoding", "gzip"))
        name = feed.path.rsplit("/", 1)[-1]
        headers.append(("Content-Disposition", f'inline; filename="klash-{name}"'))
        self._count(feed.kind, 200)
        return _respond(start_response, "200 OK", "text/calendar; charset=utf-8", body, head,
                        extra=headers)

    def _html(
        self, start_response: StartResponse, body: bytes, head: bool, lang: str,
        *, private: bool = False, status: str = "200 OK", extra: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        return _respond(start_response, status, "text/html; charset=utf-8", body, head, extra=[
            *(extra or []),
            ("Content-Language", lang),
            ("Cache-Control", "private, no-store" if private else "no-cache"),
            ("Vary", "Accept-Language"),
            ("Content-Security-Policy",
             f"default-src 'none'; style-src 'unsafe-inline'; script-src '{SCRIPT_HASH}'; "
             "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        ])

    def _not_found(self, start_response: StartResponse, path: str) -> Iterable[bytes]:
        self._count("other", 404)
        return _plain(start_response, "404 Not Found", b"Not found\n")

    def _count(self, kind: str, status: int) -> None:
        if self.on_request is not None:
            self.on_request(kind, status)


def _respond(
    start_response: StartResponse,
    status: str,
    content_type: str,
    body: bytes,
    head: bool,
    *,
    extra: list[tuple[str, str]] | None = None,
) -> Iterable[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    headers += extra or []
    start_response(status, headers + _SECURITY_HEADERS)
    return [] if head else [body]


def _plain(
    start_response: StartResponse, status: str, body: bytes,
    *, extra: list[tuple[str, str]] | None = None,
) -> Iterable[bytes]:
    return _respond(start_response, status, "text/plain; charset=utf-8", body, False,
                    extra=[("Cache-Control", "no-store"), *(extra or [])])


def _path_of(base_url: str) -> str:
    """The public URL's path: '' or e.g. '/klash' behind a proxy at a sub-path."""
    return urlsplit(base_url).path.rstrip("/")


def _for_dav(path: str, prefix: str) -> bool:
    """Under /dav/, or under the public URL's path + /dav/ (see Embedded.below_mount)."""
    return any(path == m or path.startswith(m + "/") for m in {"/dav", prefix + "/dav"})


def _asks_for_dav(path: str, method: str) -> bool:
    """A calendar app looking for the CalDAV service: the well-known URI (any method), or a
    PROPFIND of the server address itself (what apps try first with the address typed in)."""
    if path.rstrip("/") == "/.well-known/caldav":
        return True
    return method == "PROPFIND" and path == "/"


def _has_body(environ: dict[str, Any]) -> bool:
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return True
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) > 0
    except ValueError:
        return True


def _printable(path: str) -> str:
    return path.encode("latin-1", "replace").decode("ascii", "replace")[:200]

