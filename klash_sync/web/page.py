"""The HTML pages: the programme with its subscribe links, and one page per mentor.

Rendering is done by Jinja2 with auto-escaping on, so programme text (which may
contain anything an organiser typed) is always shown as text. Pages are Finnish by
default, Swedish and English on request (Finland is bilingual, and so is Vantaa); the
words live in ``texts.py``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

import segno
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from klash_sync.programme.model import Mentor, Session
from klash_sync.render.attendance import SessionAttendance
from klash_sync.render.changes import change_text
from klash_sync.render.ical import start_instant, when
from klash_sync.render.snapshot import Feed, Snapshot
from klash_sync.settings import Settings
from klash_sync.state.records import ANSWERS, Change
from klash_sync.status import Live, Record
from klash_sync.web.answer_texts import ANSWER_TEXTS
from klash_sync.web.links import Links
from klash_sync.web.texts import LANGUAGE_NAMES, LANGUAGES, TEXTS, place
from klash_sync.web.tokens import FeedKeys

# The page works without JavaScript; this only adds the copy buttons. Its hash goes into
# the Content-Security-Policy, so no other inline script can run.
SCRIPT = """
for (const b of document.querySelectorAll('button.copy')) {
  b.hidden = false;
  b.addEventListener('click', async () => {
    const label = b.textContent;
    try { await navigator.clipboard.writeText(b.dataset.copy); b.textContent = b.dataset.done; }
    catch (e) { window.prompt('', b.dataset.copy); }
    setTimeout(() => { b.textContent = label; }, 2500);
  });
}
"""
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()


@lru_cache(maxsize=4096)
def qr_svg(url: str, title: str) -> str:
    """An inline SVG QR code (segno escapes the title)."""
    return segno.make(url, error="m").svg_inline(scale=3, title=title, dark="#000", light="#fff")


_WEEKDAYS = {
    "fi": ["ma", "ti", "ke", "to", "pe", "la", "su"],
    "sv": ["mån", "tis", "ons", "tors", "fre", "lör", "sön"],
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
}


@dataclass(frozen=True)
class Row:
    """A session as the page shows it."""

    session: Session
    time: str
    mentors: list[str]
    counts: dict[str, int] | None = None  # answers per kind, public (no names); None: not known
    answer_url: str | None = None  # the mentor's own answer page (on their private page)
    answer: str | None = None  # the mentor's own answer so far


@dataclass(frozen=True)
class DavLogin:
    """What a mentor types into a calendar app to add their embedded calendar."""

    server: str
    user: str
    calendar: str


@dataclass(frozen=True)
class InviteLine:
    """One invited mentor's row in the organisers' status: their name and outbox counts."""

    name: str
    outbox: Record


@dataclass(frozen=True)
class Link:
    title: str
    https: str
    webcal: str
    qr: str


def day_label(day: date, lang: str) -> str:
    weekday = _WEEKDAYS[lang][day.weekday()]
    if lang in ("fi", "sv"):
        return f"{weekday} {day.day}.{day.month}.{day.year}"
    return f"{weekday} {day.year}-{day.month:02d}-{day.day:02d}"


def time_label(session: Session, tz: ZoneInfo, lang: str) -> str:
    start, end = when(session, tz)
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return TEXTS[lang]["all_day"]
    if start.date() == end.date():
        return f"{start:%H.%M}–{end:%H.%M}" if lang != "en" else f"{start:%H:%M}–{end:%H:%M}"
    if lang == "en":
        return f"{start:%H:%M} – {day_label(end.date(), lang)} {end:%H:%M}"
    return f"{start:%H.%M} – {day_label(end.date(), lang)} {end:%H.%M}"


class Page:
    """Renders the pages from a snapshot; holds the template environment."""

    def __init__(self, settings: Settings, change_source: Callable[[], list[Change]] | None = None,
                 *, static: bool = False, keys: FeedKeys | None = None) -> None:
        """``keys``: answer links on mentors' private pages (only where answers are taken)."""
        self.settings = settings
        self.keys = keys
        self.change_source = change_source
        self.links = Links.for_base(settings.base_url, static=static)
        self.env = Environment(
            loader=PackageLoader("klash_sync.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,  # a missing text is an error in tests, not a blank page
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def link(self, feed: Feed, path: str | None = None, title: str | None = None) -> Link:
        https = self.settings.base_url + (path or feed.path)
        webcal = "webcal://" + https.split("://", 1)[1]
        title = title or feed.title
        return Link(title, https, webcal, qr_svg(https, f"QR: {title}"))

    def _common(self, snapshot: Snapshot, live: Live, lang: str,
                mentor_id: str | None = None, token: str | None = None) -> dict[str, Any]:
        tz = ZoneInfo(snapshot.programme.programme.timezone)

        def fmt(moment: datetime | None) -> str:
            if moment is None:
                return "–"
            local = moment.astimezone(tz)
            if lang == "fi":
                return f"{local.day}.{local.month}.{local.year} klo {local:%H.%M}"
            if lang == "sv":
                return f"{local.day}.{local.month}.{local.year} kl. {local:%H.%M}"
            return f"{local:%Y-%m-%d %H:%M}"

        t = dict(TEXTS[lang])
        return {
            "t": t, "a": ANSWER_TEXTS[lang], "answers": ANSWERS,
            "lang": lang, "snapshot": snapshot, "programme": snapshot.programme,
            "error": live.programme_error, "fmt": fmt, "script": SCRIPT,
            "urls": self.links,
            # The same page (and token) in another language: the language switch.
            "here": lambda code: self.links.page(code, mentor_id, token),
            "other_languages": [(c, LANGUAGE_NAMES[c]) for c in LANGUAGES if c != lang],
            "place": lambda name: place(name, lang),
            "change_text": lambda change: change_text(change, lang),
            "changes": self.changes(),
            "names": {m.id: m.name for m in snapshot.programme.mentors},
        }

    def unloaded(self, live: Live, lang: str, mentor_id: str | None = None,
                 token: str | None = None) -> str:
        """The page while no programme is loaded: a note for mentors, the error for organisers."""
        return self.env.get_template("unloaded.html").render(
            t=TEXTS[lang], lang=lang, error=live.programme_error,
            here=lambda code: self.links.page(code, mentor_id, token),
            other_languages=[(c, LANGUAGE_NAMES[c]) for c in LANGUAGES if c != lang],
        )

    def changes(self) -> list[Change]:
        return self.change_source() if self.change_source is not None else []

    def rows(self, snapshot: Snapshot, sessions: tuple[Session, ...] | None, lang: str,
             attendance: tuple[SessionAttendance, ...] | None = None, own: str | None = None
             ) -> list[tuple[str, list[Row]]]:
        """``attendance``: the counts of answers; ``own``: the mentor whose answer links to show."""
        tz = ZoneInfo(snapshot.programme.programme.timezone)
        ordered = snapshot.ordered(sessions)
        known = {a.id: a for a in attendance} if attendance is not None else None
        days = []
        for day, group in groupby(ordered, key=lambda s: start_instant(s, tz).date()):
            days.append((day_label(day, lang), [
                Row(s, time_label(s, tz, lang),
                    [m.name for mid in s.mentors if (m := snapshot.programme.mentor(mid))],
                    *self._answers(s, known, own))
                for s in group
            ]))
        return days

    def _answers(self, session: Session, known: dict[str, SessionAttendance] | None, own: str | None
                 ) -> tuple[dict[str, int] | None, str | None, str | None]:
        found = known.get(session.id) if known is not None else None
        counts = found.counts() if found is not None and found.mentors else None
        if own is None or self.keys is None or own not in session.mentors:
            return counts, None, None
        answer = next((m.answer for m in found.mentors if m.id == own), None) if found else None
        return counts, f"{self.links.prefix}/rsvp/{self.keys.answer_token(own, session.id)}", answer

    def feeds(self, snapshot: Snapshot, lang: str) -> list[Link]:
        links = []
        if self.settings.public_feeds:
            places = snapshot.programme.municipalities()
            for feed in snapshot.feeds.values():
                if feed.kind == "programme":
                    links.append(self.link(feed))
                elif feed.kind == "municipality":  # the municipality named in the page's language
                    title = f"{snapshot.programme.programme.name} – {place(places[feed.key], lang)}"
                    links.append(self.link(feed, title=title))
        return links

    def index(self, snapshot: Snapshot, live: Live, lang: str) -> str:
        template = self.env.get_template("index.html")
        return template.render(
            **self._common(snapshot, live, lang),
            days=self.rows(snapshot, None, lang, live.attendance), links=self.feeds(snapshot, lang),
            calendars=live.records("caldav"),
            invitations=self.invitations(snapshot, live),
            replies=[r for r in live.records("replies") if not r.ok],
            mentor=None, private=False, dav=None,
        )

    @staticmethod
    def invitations(snapshot: Snapshot, live: Live) -> list[InviteLine]:
        """Each mentor with invite = true, in programme order, with their outbox counts.

        Empty when nobody is invited, or when no invitation channel runs (the static
        export), so the page never shows counts nobody keeps current.
        """
        channel = live.channel("invite")
        if channel is None:
            return []
        return [InviteLine(m.name, channel.records.get(m.id, Record("invite", m.id, m.id, True)))
                for m in snapshot.programme.mentors if m.invite and m.email]

    def mentor(self, snapshot: Snapshot, live: Live, mentor: Mentor, lang: str,
               private_path: str | None = None, token: str | None = None, *, dav: bool = False) -> str:
        """``dav``: this server answers at /dav/, so the page may tell how to add the calendar."""
        template = self.env.get_template("index.html")
        own = snapshot.feed("mentor", mentor.id)
        links = []
        if own is not None and private_path is not None:
            links = [self.link(own, private_path)]
        elif own is not None and not self.settings.private_feeds:
            links = [self.link(own)]
        return template.render(
            **self._common(snapshot, live, lang, mentor.id, token),
            days=self.rows(snapshot, snapshot.programme.sessions_of(mentor.id), lang, live.attendance,
                           mentor.id if private_path is not None else None),
            links=links,
            calendars=[c for c in live.records("caldav") if c.mentor == mentor.id],
            mentor=mentor, private=private_path is not None,
            dav=self.dav_login(mentor) if dav else None,
        )

    def dav_login(self, mentor: Mentor) -> DavLogin | None:
        """The mentor's embedded calendar, when they have one (no CalDAV server of their own)."""
        if mentor.caldav is not None or not self.settings.embedded_caldav:
            return None
        from klash_sync.embedded.mount import Embedded

        base = self.settings.base_url
        return DavLogin(base + Embedded.server_path(), mentor.id, base + Embedded.calendar_path(mentor.id))
