"""What an invitation says, as its Subject, its plain text and its HTML: the same facts in each.

The facts are read from the VEVENT the message carries (title, time, place, description,
link) and from the ``Invitation`` (who else mentors the session), so the words can never
say something the calendar part does not. Times are in the programme's time zone, the
one the mentor's calendar shows the session in (every event has that TZID). The
language is the mentor's own (``language`` in the programme, Finnish by default), one
language per message: its words are in ``words.py``.

The HTML part is what Outlook and Gmail show as the body (without one, Outlook shows
the plain text and Gmail's preview the raw lines); every value in it is escaped, the
start is also given machine-readable (``<time datetime>``), and it links to the
session's page, the programme's page and the mentor's own feed when the public address
(``KLASH_PUBLIC_URL``) is known, and to the mentor's answer page (coming, maybe, not coming:
``web.rsvp``) when there is one; a cancellation asks for no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from zoneinfo import ZoneInfo

from icalendar import Event

from klash_sync.deliver.invite.items import CANCEL, Invitation
from klash_sync.deliver.invite.words import words

# the prefix rendering puts on a cancelled session's SUMMARY (render.ical); the subject
# and the text say "cancelled" once, in their own words
_CANCELLED_SUMMARY = "PERUTTU: "


@dataclass(frozen=True)
class Facts:
    """What every part of one invitation says."""

    title: str
    when: str  # "to 2.7.2026 klo 10.00–12.00 (Helsingin aikaa)"
    start: str  # ISO 8601, for <time datetime=…>: 2026-07-02T10:00+03:00, or a date
    place: str
    others: tuple[str, ...]  # the names of the session's other mentors
    description: str
    url: str  # the session's page
    page: str  # the programme's page
    feed: str  # the mentor's own feed
    subject: str
    lead: str  # the opening sentence
    language: str  # fi, sv or en
    labels: dict[str, str]  # the words of ``language`` (words.TEXTS)
    answers: tuple[tuple[str, str], ...] = ()  # (label, link): coming, maybe, not coming


def _zone_words(tz: ZoneInfo, w: dict[str, str]) -> str:
    return w["zone_helsinki"] if tz.key == "Europe/Helsinki" else tz.key


def _day(moment: date, w: dict[str, str]) -> str:
    weekday = w["weekdays"].split()[moment.weekday()]
    return f"{weekday} {moment.day}.{moment.month}.{moment.year}"


def _when(event: Event, tz: ZoneInfo, w: dict[str, str]) -> tuple[str, str]:
    """(the time in words, the start as ISO 8601)."""
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    if isinstance(start, datetime):
        s, e = start.astimezone(tz), end.astimezone(tz)
        day = _day(s, w)
        at = f"{w['at']} " if w["at"] else ""
        return (f"{day} {at}{s:%H.%M}–{e:%H.%M} ({_zone_words(tz, w)})",
                s.isoformat(timespec="minutes"))
    last = date.fromordinal(end.toordinal() - 1)
    text = _day(start, w)
    if last != start:
        text += f"–{last.day}.{last.month}.{last.year}"
    return f"{text} ({w['all_day']})", start.isoformat()


def facts(inv: Invitation, event: Event, tz: ZoneInfo, *, programme_name: str,
          page: str = "", feed: str = "", language: str | None = None, answer: str = "") -> Facts:
    """The facts of one message, in the mentor's language; the subject ends with the
    programme's name and says "cancelled" once. ``answer``: the mentor's answer page."""
    w = words(language)
    title = str(event.get("SUMMARY", ""))
    if title.startswith(_CANCELLED_SUMMARY):
        title = title[len(_CANCELLED_SUMMARY):]
    when, start = _when(event, tz, w)
    day = when.split(" (")[0]  # with the time, without the zone
    if inv.reason == "handover":  # a CANCEL from the old organiser address, a REQUEST follows
        subject, lead = f"{w['handover']}: {title}", w["lead_handover"]
    elif inv.method == CANCEL:
        subject, lead = f"{w['cancelled']}: {title}", w["lead_cancelled"]
    elif inv.reason == "changed":
        subject, lead = f"{w['updated']}: {title}, {day}", w["lead_updated"]
    else:
        subject, lead = f"{w['invited']}: {title}, {day}", w["lead_invited"]
    others = tuple(name for name, email in inv.attendees if email != inv.address and name)
    return Facts(title, when, start, str(event.get("LOCATION", "")), others,
                 str(event.get("DESCRIPTION", "")), str(event.get("URL", "")), page, feed,
                 f"{subject} – {programme_name}", lead, language or "fi", w,
                 tuple((w[a], f"{answer}?answer={a}") for a in ("accepted", "tentative", "declined"))
                 if answer and inv.method != CANCEL else ())


def plain_text(f: Facts) -> str:
    """The text/plain part: the lead, then one labelled line per fact."""
    w = f.labels
    lines = [f.lead, "", f.title, f"{w['when']}: {f.when}"]
    if f.place:
        lines.append(f"{w['where']}: {f.place}")
    if f.others:
        lines.append(f"{w['others']}: {', '.join(f.others)}")
    if f.description:
        lines += ["", f.description, ""]
    for key, url in (("details", f.url), ("programme", f.page), ("feed", f.feed)):
        if url:
            lines.append(f"{w[key]}: {url}")
    if f.answers:
        lines += ["", f"{w['answer']}:", *(f"{label}: {url}" for label, url in f.answers)]
    return "\n".join(lines) + "\n"


def _link(label: str, url: str) -> str:
    return f'<li>{escape(label)}: <a href="{escape(url)}">{escape(url)}</a></li>'


def html_text(f: Facts) -> str:
    """The text/html part: the same facts as ``plain_text``, escaped, as one small HTML5 page."""
    e, w = escape, f.labels
    rows = [f'<tr><th scope="row">{e(w["when"])}</th><td><time datetime="{e(f.start)}">{e(f.when)}'
            "</time></td></tr>"]
    if f.place:
        rows.append(f'<tr><th scope="row">{e(w["where"])}</th><td>{e(f.place)}</td></tr>')
    if f.others:
        rows.append(f'<tr><th scope="row">{e(w["others"])}</th><td>{e(", ".join(f.others))}</td></tr>')
    parts = ["<!DOCTYPE html>", f'<html lang="{e(f.language)}">', "<head>", '<meta charset="utf-8">',
             f"<title>{e(f.subject)}</title>", "</head>", "<body>", f"<p>{e(f.lead)}</p>",
             f"<h1>{e(f.title)}</h1>", "<table>", "<tbody>", *rows, "</tbody>", "</table>"]
    if f.description:
        paragraphs = [p for p in f.description.split("\n\n") if p.strip()]
        parts += [f"<p>{'<br>'.join(e(line) for line in p.splitlines())}</p>" for p in paragraphs]
    links = [_link(w[key], url) for key, url in (
        ("details", f.url), ("programme", f.page), ("feed", f.feed)) if url]
    if links:
        parts += ["<ul>", *links, "</ul>"]
    if f.answers:
        parts += [f"<p>{e(w['answer'])}:</p>", "<ul>",
                  *(f'<li><a href="{e(url)}">{e(label)}</a></li>' for label, url in f.answers), "</ul>"]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
