"""What changed, in words ("…: siirretty 8.10. → 9.10. 9–12"), for people without calendars.

Each applied programme version is compared, session by session, with the summary the
state store kept of the version before. The sentences are built here, purely, in
Finnish, English and Swedish; the store keeps them, and the page and the Atom feed show
them. Dates are numeric (8.10.) in Finnish and Swedish, as both are written in Finland.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from klash_sync.programme.model import Programme, Session
from klash_sync.render.ical import when
from klash_sync.state.records import Change

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
    """'8.10. 9–12' / '8.10. kl. 9–12' / '8 Oct 9:00–12:00'; all-day: the day (or the days)."""
    start, end = _parse(info["start"]), _parse(info["end"])
    if isinstance(start, datetime) and isinstance(end, datetime):
        if lang in ("fi", "sv"):
            def clock(t: datetime) -> str:
                return f"{t.hour}" if t.minute == 0 else f"{t.hour}.{t.minute:02d}"
            at = " kl." if lang == "sv" else ""
            return f"{start.day}.{start.month}.{at} {clock(start)}–{clock(end)}"
        return f"{start.day} {_MONTHS_EN[start.month - 1]} {start:%H:%M}–{end:%H:%M}"
    last = date.fromordinal(end.toordinal() - 1)
    if lang in ("fi", "sv"):
        text = f"{start.day}.{start.month}."
        return text if last == start else f"{text}–{last.day}.{last.month}."
    text = f"{start.day} {_MONTHS_EN[start.month - 1]}"
    return text if last == start else f"{text}–{last.day} {_MONTHS_EN[last.month - 1]}"


def change_text(change: Change, lang: str) -> str:
    """A logged change in ``lang``; entries logged before Swedish existed show the Finnish."""
    if lang == "sv":
        return change.text_sv or change.text_fi
    return change.text_en if lang == "en" else change.text_fi


def describe(kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> tuple[str, str, str]:
    """One sentence each in Finnish, English and Swedish for a session that was added,
    changed, removed or restored."""
    info = new or old or {}
    title = info.get("title", "?")

    def w(lang: str, which: dict[str, Any] | None = None) -> str:
        return when_text(which or info, lang)

    if kind == "added":
        return (f"Uusi tilaisuus: {title}, {w('fi')}", f"New session: {title}, {w('en')}",
                f"Nytt tillfälle: {title}, {w('sv')}")
    if kind == "removed":
        return (f"{title}, {w('fi')}, poistettu ohjelmasta",
                f"{title}, {w('en')}, removed from the programme",
                f"{title}, {w('sv')}, har strukits ur programmet")
    if kind == "restored" or old is None or new is None:
        return (f"{title}, {w('fi')}, palasi ohjelmaan",
                f"{title}, {w('en')}, is back in the programme",
                f"{title}, {w('sv')}, är tillbaka i programmet")
    fi: list[str] = []
    en: list[str] = []
    sv: list[str] = []
    if new["status"] != old["status"]:
        if new["status"] == "cancelled":
            return (f"{title}, {w('fi', new)}, peruttu", f"{title}, {w('en', new)}, cancelled",
                    f"{title}, {w('sv', new)}, inställd")
        if old["status"] == "cancelled":
            fi.append("ei enää peruttu")
            en.append("no longer cancelled")
            sv.append("inte längre inställd")
        else:
            fi.append("alustava" if new["status"] == "tentative" else "vahvistettu")
            en.append(new["status"])
            sv.append("preliminär" if new["status"] == "tentative" else "bekräftad")
    if (new["start"], new["end"]) != (old["start"], old["end"]):
        fi.append(f"siirretty {w('fi', old)} → {w('fi', new)}")
        en.append(f"moved from {w('en', old)} to {w('en', new)}")
        sv.append(f"flyttad {w('sv', old)} → {w('sv', new)}")
    if new["title"] != old["title"]:
        fi.append(f"uusi nimi (ennen: {old['title']})")
        en.append(f"renamed (was: {old['title']})")
        sv.append(f"nytt namn (tidigare: {old['title']})")
    if new["location"] != old["location"]:
        fi.append(f"paikka: {new['location'] or '–'} (ennen: {old['location'] or '–'})")
        en.append(f"place: {new['location'] or '–'} (was: {old['location'] or '–'})")
        sv.append(f"plats: {new['location'] or '–'} (tidigare: {old['location'] or '–'})")
    if new["mentors"] != old["mentors"]:
        fi.append(f"mentorit: {', '.join(new['mentors']) or '–'}")
        en.append(f"mentors: {', '.join(new['mentors']) or '–'}")
        sv.append(f"mentorer: {', '.join(new['mentors']) or '–'}")
    if not fi:
        fi.append(f"tiedot päivitetty, {w('fi', new)}")
        en.append(f"details updated, {w('en', new)}")
        sv.append(f"uppgifterna uppdaterade, {w('sv', new)}")
    return f"{title}: {'; '.join(fi)}", f"{title}: {'; '.join(en)}", f"{title}: {'; '.join(sv)}"
