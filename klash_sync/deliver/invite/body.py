"""What an invitation says, as its Subject, its plain text and its HTML: the same facts in each.

The facts are read from the VEVENT the message carries (title, time, place, description,
link) and from the ``Invitation`` (who else mentors the session), so the words can never
say something the calendar part does not. Times are in the programme's time zone, the
one the mentor's calendar shows the session in (every event has that TZID). The
language is the text part's: Finnish, with each line also in English, as the page and
the feeds speak to mentors (a mentor has no language setting of their own yet).

The HTML part is what Outlook and Gmail show as the body (without one, Outlook shows
the plain text and Gmail's preview the raw lines); every value in it is escaped, the
start is also given machine-readable (``<time datetime>``), and it links to the
session's page, the programme's page and the mentor's own feed when the public address
(``KLASH_PUBLIC_URL``) is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from zoneinfo import ZoneInfo

from icalendar import Event

from klash_sync.deliver.invite.plan import CANCEL, Invitation

_WEEKDAYS = ("ma", "ti", "ke", "to", "pe", "la", "su")
# the prefix rendering puts on a cancelled session's SUMMARY (render.ical); the subject
# and the text say "cancelled" once, in their own words
_CANCELLED_SUMMARY = "PERUTTU: "


@dataclass(frozen=True)
class Facts:
    """What every part of one invitation says."""

    title: str
    when: str  # "to 2.7.2026 klo 10.00–12.00 (Helsingin aikaa / Helsinki time)"
    start: str  # ISO 8601, for <time datetime=…>: 2026-07-02T10:00+03:00, or a date
    place: str
    others: tuple[str, ...]  # the names of the session's other mentors
    description: str
    url: str  # the session's page
    page: str  # the programme's page
    feed: str  # the mentor's own feed
    subject: str
    lead: tuple[str, str]  # the opening, in Finnish and in English


def _zone_words(tz: ZoneInfo) -> str:
    if tz.key == "Europe/Helsinki":
        return "Helsingin aikaa / Helsinki time"
    return f"{tz.key}"


def _when(event: Event, tz: ZoneInfo) -> tuple[str, str]:
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    if isinstance(start, datetime):
        s, e = start.astimezone(tz), end.astimezone(tz)
        day = f"{_WEEKDAYS[s.weekday()]} {s.day}.{s.month}.{s.year}"
        return (f"{day} klo {s:%H.%M}–{e:%H.%M} ({_zone_words(tz)})",
                s.isoformat(timespec="minutes"))
    last = date.fromordinal(end.toordinal() - 1)
    text = f"{_WEEKDAYS[start.weekday()]} {start.day}.{start.month}.{start.year}"
    if last != start:
        text += f"–{last.day}.{last.month}.{last.year}"
    return text + " (koko päivä / all day)", start.isoformat()


def facts(inv: Invitation, event: Event, tz: ZoneInfo, *, programme_name: str,
          page: str = "", feed: str = "") -> Facts:
    """The facts of one message; the subject ends with the programme's name."""
    title = str(event.get("SUMMARY", ""))
    if title.startswith(_CANCELLED_SUMMARY):
        title = title[len(_CANCELLED_SUMMARY):]
    when, start = _when(event, tz)
    day = when.split(" (")[0]
    if inv.method == CANCEL:
        subject = f"Peruttu / Cancelled: {title}"
        lead = ("Tämä tilaisuus on peruttu tai et ole enää sen mentori; se poistuu kalenteristasi.",
                "This session is cancelled or you no longer mentor it; it leaves your calendar.")
    elif inv.reason == "changed":
        subject = f"Päivitetty / Updated: {title}, {day}"
        lead = ("Tilaisuuden tiedot ovat muuttuneet; kalenterisi päivittyy.",
                "The session has changed; your calendar is updated.")
    else:
        subject = f"Kutsu / Invitation: {title}, {day}"
        lead = ("Sinut on kutsuttu mentoriksi Klash-tilaisuuteen.",
                "You are invited as a mentor to a Klash session.")
    others = tuple(name for name, email in inv.attendees if email != inv.address and name)
    return Facts(title, when, start, str(event.get("LOCATION", "")), others,
                 str(event.get("DESCRIPTION", "")), str(event.get("URL", "")), page, feed,
                 f"{subject} – {programme_name}", lead)


def plain_text(f: Facts) -> str:
    """The text/plain part: the lead, then one labelled line per fact."""
    lines = [*f.lead, "", f.title, f"Aika / When: {f.when}"]
    if f.place:
        lines.append(f"Paikka / Where: {f.place}")
    if f.others:
        lines.append(f"Muut mentorit / Other mentors: {', '.join(f.others)}")
    if f.description:
        lines += ["", f.description, ""]
    if f.url:
        lines.append(f"Lisätiedot / Details: {f.url}")
    if f.page:
        lines.append(f"Ohjelma / Programme: {f.page}")
    if f.feed:
        lines.append(f"Oma kalenterisyöte / Your calendar feed: {f.feed}")
    return "\n".join(lines) + "\n"


def _link(label: str, url: str) -> str:
    return f'<li>{escape(label)}: <a href="{escape(url)}">{escape(url)}</a></li>'


def html_text(f: Facts) -> str:
    """The text/html part: the same facts as ``plain_text``, escaped, as one small HTML5 page."""
    e = escape
    rows = [f'<tr><th scope="row">Aika / When</th><td><time datetime="{e(f.start)}">{e(f.when)}'
            "</time></td></tr>"]
    if f.place:
        rows.append(f'<tr><th scope="row">Paikka / Where</th><td>{e(f.place)}</td></tr>')
    if f.others:
        rows.append('<tr><th scope="row">Muut mentorit / Other mentors</th>'
                    f"<td>{e(', '.join(f.others))}</td></tr>")
    parts = ["<!DOCTYPE html>", '<html lang="fi">', "<head>", '<meta charset="utf-8">',
             f"<title>{e(f.subject)}</title>", "</head>", "<body>",
             f'<p>{e(f.lead[0])}<br><span lang="en">{e(f.lead[1])}</span></p>',
             f"<h1>{e(f.title)}</h1>", "<table>", "<tbody>", *rows, "</tbody>", "</table>"]
    if f.description:
        paragraphs = [p for p in f.description.split("\n\n") if p.strip()]
        parts += [f"<p>{'<br>'.join(e(line) for line in p.splitlines())}</p>" for p in paragraphs]
    links = [_link(label, url) for label, url in (
        ("Lisätiedot / Details", f.url), ("Ohjelma / Programme", f.page),
        ("Oma kalenterisyöte / Your calendar feed", f.feed)) if url]
    if links:
        parts += ["<ul>", *links, "</ul>"]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
