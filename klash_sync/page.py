"""The HTML pages: the programme with its subscribe links, and one page per mentor.

Rendering is done by Jinja2 with auto-escaping on, so programme text (which may
contain anything an organiser typed) is always shown as text. Pages are Finnish by
default and English on request; the words live in ``TEXTS`` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from .feeds import Feed, Snapshot
from .ical import start_instant, when
from .live import Live
from .model import Mentor, Session
from .settings import Settings

TEXTS: dict[str, dict[str, str]] = {
    "fi": {
        "lang_name": "suomeksi", "other_lang": "In English", "other_code": "en",
        "programme": "Ohjelma", "subscribe": "Tilaa kalenteriin", "all_day": "koko päivä",
        "mentors": "Mentorit", "place": "Paikka", "municipality": "Kunta",
        "joint": "Yhteinen tilaisuus kaikille tiimeille", "cancelled": "Peruttu",
        "tentative": "Alustava", "whole": "Koko ohjelma", "copy": "Kopioi linkki",
        "copied": "Kopioitu!", "webcal": "Tilaa (webcal)", "https": "Linkki (https)",
        "no_sessions": "Ei tilaisuuksia.", "mentor_feed": "Oma kalenterisi",
        "status": "Tilanne", "loaded": "Ohjelma luettu", "calendar": "Kalenteri",
        "in_sync": "ajan tasalla", "failing_since": "epäonnistunut alkaen",
        "never": "ei vielä synkronoitu", "last_sync": "viimeisin synkronointi",
        "error_title": "Ohjelmatiedostossa on virhe – edellinen toimiva versio on käytössä",
        "back": "Koko ohjelma", "municipalities": "Kunnat",
        "how_google": "Google-kalenteri: Muut kalenterit → + → URL-osoitteen perusteella, liitä "
                      "https-linkki. Google päivittää tilaukset vain muutaman tunnin välein.",
        "how_apple": "Apple-kalenteri: Arkisto → Uusi kalenteritilaus (iPhone: Asetukset → "
                     "Kalenteri → Tilit → Lisää tili → Muu), tai napauta webcal-linkkiä.",
        "how_outlook": "Outlook: Lisää kalenteri → Tilaa verkosta, liitä https-linkki.",
        "changes": "Muutokset", "no_changes": "Ei muutoksia vielä.",
        "private_note": "Tämä osoite on henkilökohtainen: älä jaa sitä.",
    },
    "en": {
        "lang_name": "in English", "other_lang": "Suomeksi", "other_code": "fi",
        "programme": "Programme", "subscribe": "Subscribe", "all_day": "all day",
        "mentors": "Mentors", "place": "Place", "municipality": "Municipality",
        "joint": "Joint session for all teams", "cancelled": "Cancelled",
        "tentative": "Tentative", "whole": "Whole programme", "copy": "Copy link",
        "copied": "Copied!", "webcal": "Subscribe (webcal)", "https": "Link (https)",
        "no_sessions": "No sessions.", "mentor_feed": "Your own calendar",
        "status": "Status", "loaded": "Programme loaded", "calendar": "Calendar",
        "in_sync": "in sync", "failing_since": "failing since",
        "never": "not synced yet", "last_sync": "last sync",
        "error_title": "The programme file has an error – the last good version is in use",
        "back": "Whole programme", "municipalities": "Municipalities",
        "how_google": "Google Calendar: Other calendars → + → From URL, paste the https link. "
                      "Google refreshes subscriptions only every several hours.",
        "how_apple": "Apple Calendar: File → New Calendar Subscription (iPhone: Settings → "
                     "Calendar → Accounts → Add Account → Other), or tap the webcal link.",
        "how_outlook": "Outlook: Add calendar → Subscribe from web, paste the https link.",
        "changes": "What changed", "no_changes": "No changes yet.",
        "private_note": "This address is personal: do not share it.",
    },
}

_WEEKDAYS = {
    "fi": ["ma", "ti", "ke", "to", "pe", "la", "su"],
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
}


@dataclass(frozen=True)
class Row:
    """A session as the page shows it."""

    session: Session
    time: str
    mentors: list[str]


@dataclass(frozen=True)
class Link:
    title: str
    https: str
    webcal: str


def day_label(day: date, lang: str) -> str:
    weekday = _WEEKDAYS[lang][day.weekday()]
    if lang == "fi":
        return f"{weekday} {day.day}.{day.month}.{day.year}"
    return f"{weekday} {day.year}-{day.month:02d}-{day.day:02d}"


def time_label(session: Session, tz: ZoneInfo, lang: str) -> str:
    start, end = when(session, tz)
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return TEXTS[lang]["all_day"]
    if start.date() == end.date():
        return f"{start:%H.%M}–{end:%H.%M}" if lang == "fi" else f"{start:%H:%M}–{end:%H:%M}"
    return f"{start:%H.%M} – {day_label(end.date(), lang)} {end:%H.%M}"


class Page:
    """Renders the pages from a snapshot; holds the template environment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = Environment(
            loader=PackageLoader("klash_sync", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def link(self, feed: Feed, path: str | None = None) -> Link:
        https = self.settings.base_url + (path or feed.path)
        webcal = "webcal://" + https.split("://", 1)[1]
        return Link(feed.title, https, webcal)

    def rows(self, snapshot: Snapshot, sessions: tuple[Session, ...] | None, lang: str
             ) -> list[tuple[str, list[Row]]]:
        tz = ZoneInfo(snapshot.programme.programme.timezone)
        ordered = snapshot.ordered(sessions)
        days = []
        for day, group in groupby(ordered, key=lambda s: start_instant(s, tz).date()):
            days.append((day_label(day, lang), [
                Row(s, time_label(s, tz, lang),
                    [m.name for mid in s.mentors if (m := snapshot.programme.mentor(mid))])
                for s in group
            ]))
        return days

    def feeds(self, snapshot: Snapshot) -> list[Link]:
        links = []
        if self.settings.public_feeds:
            for feed in snapshot.feeds.values():
                if feed.kind in ("programme", "municipality"):
                    links.append(self.link(feed))
        return links

    def index(self, snapshot: Snapshot, live: Live, lang: str) -> str:
        template = self.env.get_template("index.html")
        return template.render(
            t=TEXTS[lang], lang=lang, snapshot=snapshot, programme=snapshot.programme,
            days=self.rows(snapshot, None, lang), links=self.feeds(snapshot),
            error=live.programme_error, calendars=sorted(live.calendars.values(),
                                                         key=lambda c: c.calendar),
            mentor=None, private=False,
        )

    def mentor(self, snapshot: Snapshot, live: Live, mentor: Mentor, lang: str,
               private_path: str | None = None) -> str:
        template = self.env.get_template("index.html")
        own = snapshot.feed("mentor", mentor.id)
        links = []
        if own is not None and private_path is not None:
            links = [self.link(own, private_path)]
        elif own is not None and not self.settings.private_feeds:
            links = [self.link(own)]
        return template.render(
            t=TEXTS[lang], lang=lang, snapshot=snapshot, programme=snapshot.programme,
            days=self.rows(snapshot, snapshot.programme.sessions_of(mentor.id), lang),
            links=links, error=live.programme_error,
            calendars=[c for c in live.calendars.values() if c.mentor == mentor.id],
            mentor=mentor, private=private_path is not None,
        )
