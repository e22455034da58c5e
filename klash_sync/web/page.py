"""The HTML pages: the programme with its subscribe links, and one page per mentor.

Rendering is done by Jinja2 with auto-escaping on, so programme text (which may
contain anything an organiser typed) is always shown as text. Pages are Finnish by
default, Swedish and English on request (Finland is bilingual, and so is Vantaa); the
words live in ``TEXTS`` below, translated by hand, never generated.
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

from klash_sync.deliver.invite.outbox import MentorOutbox
from klash_sync.programme.model import Mentor, Session
from klash_sync.render.changes import change_text
from klash_sync.render.ical import start_instant, when
from klash_sync.render.snapshot import Feed, Snapshot
from klash_sync.service.live import Live
from klash_sync.settings import Settings
from klash_sync.state.records import Change
from klash_sync.web.links import Links

# The page's languages; the first is the default (no ?lang=, no Accept-Language match).
LANGUAGES = ("fi", "sv", "en")
# Each language named in itself, for the language switch.
LANGUAGE_NAMES = {"fi": "Suomeksi", "sv": "På svenska", "en": "In English"}

TEXTS: dict[str, dict[str, str]] = {
    "fi": {
        "navigation": "Sivut", "languages": "Kieli",
        "programme": "Ohjelma", "subscribe": "Tilaa kalenteriin", "all_day": "koko päivä",
        "mentors": "Mentorit", "mentor": "Mentori", "municipality": "Kunta",
        "joint": "yhteinen tilaisuus kaikille tiimeille", "cancelled": "Peruttu",
        "tentative": "Alustava", "copy_link": "Kopioi linkki", "copied": "Kopioitu!",
        "webcal": "Tilaa kalenteriin", "https": "Avaa .ics-tiedosto",
        "qr": "Skannaa puhelimella", "no_sessions": "Ei tilaisuuksia.",
        "no_links": "Syötteet eivät ole julkisia: pyydä omaa tilausosoitettasi järjestäjältä.",
        "your_calendar": "Oma kalenterisi", "no_calendar": "Tapahtumia ei viedä kalenteriisi suoraan; "
        "tilaa syöte alta.", "status": "Tilanne järjestäjille", "loaded": "Ohjelma luettu",
        "file_broken": "tiedostossa on virhe", "in_sync": "ajan tasalla",
        "failing_since": "epäonnistunut", "last_sync": "viimeisin synkronointi",
        "state": "Tila", "calendars_caption": "Mentorien kalenterit",
        "no_calendars": "Kalentereita ei ole vielä synkronoitu.",
        "error_title": "Ohjelmatiedostossa on virhe",
        "error_help": "Muutosta ei ole otettu käyttöön: kalentereissa ja syötteissä on edellinen "
                      "toimiva versio. Korjaa tiedosto; korjaus otetaan käyttöön heti.",
        "back": "Koko ohjelma", "how": "Näin tilaat",
        "how_google": "Google-kalenteri: Muut kalenterit → + → URL-osoitteen perusteella, liitä "
                      "linkki. Google päivittää tilatut kalenterit vain muutaman tunnin välein.",
        "how_apple": "Apple-kalenteri (iPhone, Mac): napauta ”Tilaa kalenteriin” tai valitse "
                     "Arkisto → Uusi kalenteritilaus ja liitä linkki.",
        "how_outlook": "Outlook: Lisää kalenteri → Tilaa verkosta, liitä linkki.",
        "changes": "Muutokset", "no_changes": "Ei muutoksia vielä.",
        "atom": "Muutokset syötteenä (Atom)",
        "private_note": "Tämä osoite on henkilökohtainen: älä jaa sitä.",
        "unloaded_title": "Ohjelmaa päivitetään",
        "unloaded_note": "Ohjelmaa päivitetään parhaillaan. Palaa hetken kuluttua.",
        "unloaded_help": "Aiempaa toimivaa versiota ei ole tallessa, joten sivulla ja syötteissä "
                         "ei ole vielä mitään. Korjaa tiedosto; korjaus otetaan käyttöön heti.",
        "unloaded_loading": "Ohjelmaa luetaan.",
        # --- the embedded calendar in a calendar app (discovery) ---
        "dav_title": "Lisää kalenteri omaan sovellukseesi",
        "dav_intro": "Tapahtumasi ovat myös tämän palvelun kalenterissa. Lisää kalenterisovellukseesi "
                     "CalDAV-tili alla olevilla tiedoilla; sovellus löytää kalenterin itse. "
                     "Kalenteria voi vain lukea.",
        "dav_server": "Palvelimen osoite", "dav_user": "Käyttäjätunnus", "dav_password": "Salasana",
        "dav_password_note": "saat sen järjestäjältä",
        "dav_calendar": "Kalenterin osoite", "dav_calendar_note": "vain jos sovellus kysyy sitä",
        # --- e-mail invitations on the organisers' status ---
        "invites_caption": "Kutsut sähköpostilla", "invites_sent": "Lähetetyt",
        "invites_pending": "Odottavat", "invites_failed": "Epäonnistuneet",
        "invites_last_sent": "Viimeksi lähetetty", "invites_answer": "Sähköpostipalvelimen vastaus",
    },
    # Finland-Swedish as Kuntaliitto and the bilingual municipalities write it.
    "sv": {
        "navigation": "Sidor", "languages": "Språk",
        "programme": "Program", "subscribe": "Prenumerera", "all_day": "hela dagen",
        "mentors": "Mentorer", "mentor": "Mentor", "municipality": "Kommun",
        "joint": "gemensamt tillfälle för alla team", "cancelled": "Inställd",
        "tentative": "Preliminär", "copy_link": "Kopiera länken", "copied": "Kopierad!",
        "webcal": "Prenumerera i kalendern", "https": "Öppna .ics-filen",
        "qr": "Skanna med telefonen", "no_sessions": "Inga tillfällen.",
        "no_links": "Flödena är inte offentliga: be arrangören om din egen adress.",
        "your_calendar": "Din kalender", "no_calendar": "Tillfällena förs inte direkt in i din "
        "kalender; prenumerera på flödet nedan.", "status": "Läget för arrangörerna",
        "loaded": "Programmet inläst", "file_broken": "filen innehåller ett fel",
        "in_sync": "uppdaterad", "failing_since": "misslyckas sedan",
        "last_sync": "senaste synkronisering", "state": "Läge",
        "calendars_caption": "Mentorernas kalendrar",
        "no_calendars": "Inga kalendrar har synkroniserats ännu.",
        "error_title": "Programfilen innehåller ett fel",
        "error_help": "Ändringen har inte tagits i bruk: kalendrarna och flödena har kvar den "
                      "senaste fungerande versionen. Rätta filen, så tas rättelsen i bruk genast.",
        "back": "Hela programmet", "how": "Så här prenumererar du",
        "how_google": "Google Kalender: Andra kalendrar → + → Från webbadress, klistra in länken. "
                      "Google uppdaterar prenumererade kalendrar bara med några timmars mellanrum.",
        "how_apple": "Apples Kalender (iPhone, Mac): tryck på ”Prenumerera i kalendern” eller välj "
                     "Arkiv → Ny kalenderprenumeration och klistra in länken.",
        "how_outlook": "Outlook: Lägg till kalender → Prenumerera från webben, klistra in länken.",
        "changes": "Ändringar", "no_changes": "Inga ändringar ännu.",
        "atom": "Ändringarna som flöde (Atom)",
        "private_note": "Den här adressen är personlig: dela den inte med andra.",
        "unloaded_title": "Programmet uppdateras",
        "unloaded_note": "Programmet håller på att uppdateras. Kom tillbaka om en stund.",
        "unloaded_help": "Det finns ingen tidigare fungerande version sparad, så sidan och flödena "
                         "är tomma tills vidare. Rätta filen, så tas rättelsen i bruk genast.",
        "unloaded_loading": "Programmet läses in.",
        # --- the embedded calendar in a calendar app (discovery) ---
        "dav_title": "Lägg till kalendern i din kalenderapp",
        "dav_intro": "Dina tillfällen finns också i en kalender på den här tjänsten. Lägg till ett "
                     "CalDAV-konto i din kalenderapp med uppgifterna nedan; appen hittar kalendern "
                     "själv. Kalendern kan bara läsas.",
        "dav_server": "Serverns adress", "dav_user": "Användarnamn", "dav_password": "Lösenord",
        "dav_password_note": "du får det av arrangören",
        "dav_calendar": "Kalenderns adress", "dav_calendar_note": "bara om appen frågar efter den",
        # --- e-mail invitations on the organisers' status ---
        "invites_caption": "Inbjudningar per e-post", "invites_sent": "Skickade",
        "invites_pending": "Väntande", "invites_failed": "Misslyckade",
        "invites_last_sent": "Senast skickad", "invites_answer": "E-postserverns svar",
    },
    "en": {
        "navigation": "Pages", "languages": "Language",
        "programme": "Programme", "subscribe": "Subscribe", "all_day": "all day",
        "mentors": "Mentors", "mentor": "Mentor", "municipality": "Municipality",
        "joint": "joint session for all teams", "cancelled": "Cancelled",
        "tentative": "Tentative", "copy_link": "Copy link", "copied": "Copied!",
        "webcal": "Add to calendar", "https": "Open the .ics file",
        "qr": "Scan with a phone", "no_sessions": "No sessions.",
        "no_links": "The feeds are not public: ask the organiser for your own address.",
        "your_calendar": "Your calendar", "no_calendar": "Events are not pushed to your calendar; "
        "subscribe to the feed below.", "status": "Status for organisers",
        "loaded": "Programme loaded", "file_broken": "the file has an error",
        "in_sync": "in sync", "failing_since": "failing since", "last_sync": "last sync",
        "state": "State", "calendars_caption": "Mentors' calendars",
        "no_calendars": "No calendar has been synced yet.",
        "error_title": "The programme file has an error",
        "error_help": "The edit has not been applied: calendars and feeds keep the last good "
                      "version. Fix the file; the fix is applied at once.",
        "back": "Whole programme", "how": "How to subscribe",
        "how_google": "Google Calendar: Other calendars → + → From URL, paste the link. "
                      "Google refreshes subscribed calendars only every several hours.",
        "how_apple": "Apple Calendar (iPhone, Mac): tap “Add to calendar”, or File → New "
                     "Calendar Subscription and paste the link.",
        "how_outlook": "Outlook: Add calendar → Subscribe from web, paste the link.",
        "changes": "What changed", "no_changes": "No changes yet.",
        "atom": "Changes as a feed (Atom)",
        "private_note": "This address is personal: do not share it.",
        "unloaded_title": "The programme is being updated",
        "unloaded_note": "The programme is being updated right now. Please come back in a moment.",
        "unloaded_help": "No earlier working version is kept, so the page and the feeds are "
                         "empty for now. Fix the file; the fix is applied at once.",
        "unloaded_loading": "The programme is being loaded.",
        # --- the embedded calendar in a calendar app (discovery) ---
        "dav_title": "Add it to your calendar app",
        "dav_intro": "Your events are also in a calendar on this service. In your calendar app, add "
                     "a CalDAV account with the details below; the app finds the calendar itself. "
                     "The calendar is read-only.",
        "dav_server": "Server address", "dav_user": "User name", "dav_password": "Password",
        "dav_password_note": "you get it from the organiser",
        "dav_calendar": "Calendar address", "dav_calendar_note": "only if your app asks for it",
        # --- e-mail invitations on the organisers' status ---
        "invites_caption": "Invitations by e-mail", "invites_sent": "Sent",
        "invites_pending": "Pending", "invites_failed": "Failed",
        "invites_last_sent": "Last sent", "invites_answer": "Mail server's answer",
    },
}

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
    outbox: MentorOutbox


@dataclass(frozen=True)
class Link:
    title: str
    https: str
    webcal: str
    qr: str


# Swedish names of bilingual and other well-known municipalities; others (Joensuu,
# Janakkala) are the same in both languages.
SWEDISH_PLACES = {
    "Vantaa": "Vanda", "Helsinki": "Helsingfors", "Espoo": "Esbo", "Kauniainen": "Grankulla",
    "Turku": "Åbo", "Tampere": "Tammerfors", "Oulu": "Uleåborg", "Vaasa": "Vasa",
    "Porvoo": "Borgå", "Kokkola": "Karleby", "Pietarsaari": "Jakobstad", "Raasepori": "Raseborg",
    "Hanko": "Hangö", "Loviisa": "Lovisa", "Sipoo": "Sibbo", "Kirkkonummi": "Kyrkslätt",
    "Hämeenlinna": "Tavastehus", "Lappeenranta": "Villmanstrand", "Kotka": "Kotka",
    "Mikkeli": "S:t Michel", "Kristiinankaupunki": "Kristinestad", "Lohja": "Lojo",
}


def place(name: str, lang: str) -> str:
    """A municipality's name as the language writes it (Vantaa is Vanda in Swedish)."""
    return SWEDISH_PLACES.get(name, name) if lang == "sv" else name


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
                 *, static: bool = False) -> None:
        self.settings = settings
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
            "t": t, "lang": lang, "snapshot": snapshot, "programme": snapshot.programme,
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
            days=self.rows(snapshot, None, lang), links=self.feeds(snapshot, lang),
            calendars=sorted(live.calendars.values(), key=lambda c: (c.mentor, c.calendar)),
            invitations=self.invitations(snapshot, live),
            mentor=None, private=False, dav=None,
        )

    @staticmethod
    def invitations(snapshot: Snapshot, live: Live) -> list[InviteLine]:
        """Each mentor with invite = true, in programme order, with their outbox counts.

        Empty when nobody is invited, or when no invitation worker runs (``live.invitations``
        is None: the static export), so the page never shows counts nobody keeps current.
        """
        if live.invitations is None:
            return []
        return [InviteLine(m.name, live.invitations.get(m.id, MentorOutbox(m.id)))
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
            days=self.rows(snapshot, snapshot.programme.sessions_of(mentor.id), lang),
            links=links,
            calendars=[c for c in live.calendars.values() if c.mentor == mentor.id],
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
