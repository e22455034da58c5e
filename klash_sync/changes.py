"""What changed, in words: "Vantaa siirretty 8.10. → 9.10. 9–12", for people without calendars.

Each applied programme version is compared, session by session, with the summary the
state store kept of the version before. The sentences are built here, purely, in
Finnish and English; the store keeps them, and the page and the Atom feed show them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .ical import when
from .model import Programme, Session

_MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def summary(session: Session, programme: Programme) -> dict[str, Any]:
    """What people notice about a session, in a form the store can keep as JSON."""
    tz = ZoneInfo(programme.programme.timezone)
    start, end = when(session, tz)
    return {
        "title": session.title,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "location": session.location,
        "status": session.status,
        "mentors": [m.name for mid in session.mentors if (m := programme.mentor(mid))],
    }


def _parse(text: str) -> date | datetime:
    return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)


def when_text(info: dict[str, Any], lang: str) -> str:
    """'8.10. 9–12' / '8 Oct 9:00–12:00'; all-day: just the day (or the span of days)."""
    start, end = _parse(info["start"]), _parse(info["end"])
    if isinstance(start, datetime) and isinstance(end, datetime):
        if lang == "fi":
            def clock(t: datetime) -> str:
                return f"{t.hour}" if t.minute == 0 else f"{t.hour}.{t.minute:02d}"
            return f"{start.day}.{start.month}. {clock(start)}–{clock(end)}"
        return f"{start.day} {_MONTHS_EN[start.month - 1]} {start:%H:%M}–{end:%H:%M}"
    last = date.fromordinal(end.toordinal() - 1)
    if lang == "fi":
        text = f"{start.day}.{start.month}."
        return text if last == start else f"{text}–{last.day}.{last.month}."
    text = f"{start.day} {_MONTHS_EN[start.month - 1]}"
    return text if last == start else f"{text}–{last.day} {_MONTHS_EN[last.month - 1]}"


def describe(kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> tuple[str, str]:
    """One sentence in Finnish and one in English for a session that was added, changed,
    removed or restored."""
    info = new or old or {}
    title = info.get("title", "?")
    if kind == "added":
        return (f"Uusi tilaisuus: {title}, {when_text(info, 'fi')}",
                f"New session: {title}, {when_text(info, 'en')}")
    if kind == "removed":
        return (f"{title}, {when_text(info, 'fi')}, poistettu ohjelmasta",
                f"{title}, {when_text(info, 'en')}, removed from the programme")
    if kind == "restored" or old is None or new is None:
        return (f"{title}, {when_text(info, 'fi')}, palasi ohjelmaan",
                f"{title}, {when_text(info, 'en')}, is back in the programme")
    fi: list[str] = []
    en: list[str] = []
    if new["status"] != old["status"]:
        if new["status"] == "cancelled":
            return (f"{title}, {when_text(new, 'fi')}, peruttu",
                    f"{title}, {when_text(new, 'en')}, cancelled")
        if old["status"] == "cancelled":
            fi.append("ei enää peruttu")
            en.append("no longer cancelled")
        else:
            fi.append("alustava" if new["status"] == "tentative" else "vahvistettu")
            en.append(new["status"])
    if (new["start"], new["end"]) != (old["start"], old["end"]):
        fi.append(f"siirretty {when_text(old, 'fi')} → {when_text(new, 'fi')}")
        en.append(f"moved from {when_text(old, 'en')} to {when_text(new, 'en')}")
    if new["title"] != old["title"]:
        fi.append(f"uusi nimi (ennen: {old['title']})")
        en.append(f"renamed (was: {old['title']})")
    if new["location"] != old["location"]:
        fi.append(f"paikka: {new['location'] or '–'} (ennen: {old['location'] or '–'})")
        en.append(f"place: {new['location'] or '–'} (was: {old['location'] or '–'})")
    if new["mentors"] != old["mentors"]:
        fi.append(f"mentorit: {', '.join(new['mentors']) or '–'}")
        en.append(f"mentors: {', '.join(new['mentors']) or '–'}")
    if not fi:
        fi.append(f"tiedot päivitetty, {when_text(new, 'fi')}")
        en.append(f"details updated, {when_text(new, 'en')}")
    return f"{title}: {'; '.join(fi)}", f"{title}: {'; '.join(en)}"
