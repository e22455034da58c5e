"""Who is coming: the programme's sessions, each with every mentor's latest answer.

Pure: made from the programme, the sessions' revisions and the answers the store kept
(``state.answers``), so the CLI (``attendance``), the organisers' page and the metrics
show the same thing. Only mentors the programme puts in a session are listed for it; an
answer from a mentor taken off it, or for a session that is gone, is kept in the store
(it comes back if they do) but shown nowhere. An answer given to an earlier version of
the session (``for_sequence`` below the current SEQUENCE) is shown as that, with the
version, not as an answer to the session as it now is: the organiser sees that the
mentor said yes before the time moved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from klash_sync.programme.model import Programme, Session
from klash_sync.render.ical import start_instant
from klash_sync.state.records import ANSWERS, Answer, Revision

NONE = "none"  # no answer yet


@dataclass(frozen=True)
class MentorAnswer:
    """One mentor's standing answer for one session."""

    id: str
    name: str
    answer: str  # accepted | tentative | declined | none
    via: str | None = None
    at: datetime | None = None
    comment: str = ""
    for_sequence: int | None = None
    earlier: bool = False  # given to an earlier version of the session

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "answer": self.answer, "via": self.via,
                "at": self.at.isoformat() if self.at else None, "comment": self.comment,
                "for_sequence": self.for_sequence}


@dataclass(frozen=True)
class SessionAttendance:
    """A session and its mentors' answers, in the programme's order of mentors."""

    id: str
    title: str
    start: datetime  # all-day: local midnight of the first day
    all_day: bool
    status: str
    sequence: int | None
    mentors: tuple[MentorAnswer, ...]

    def counts(self) -> dict[str, int]:
        """How many mentors gave each answer (``none``: not yet), every key present."""
        found = Counter(m.answer for m in self.mentors)
        return {key: found.get(key, 0) for key in (*ANSWERS, NONE)}

    def as_json(self) -> dict[str, Any]:
        start = self.start.date().isoformat() if self.all_day else self.start.isoformat()
        return {"id": self.id, "title": self.title, "start": start,
                "mentors": [m.as_json() for m in self.mentors]}


def _mentor_answer(mentor_id: str, name: str, answer: Answer | None,
                   sequence: int | None) -> MentorAnswer:
    if answer is None:
        return MentorAnswer(mentor_id, name, NONE)
    earlier = sequence is not None and answer.for_sequence < sequence
    return MentorAnswer(mentor_id, name, answer.answer, answer.via, answer.at, answer.comment,
                        answer.for_sequence, earlier)


def attendance(programme: Programme, revisions: Mapping[str, Revision],
               latest: Mapping[tuple[str, str], Answer],
               only: str | None = None) -> list[SessionAttendance]:
    """Every session (or only the one with id ``only``), by start, with its mentors' answers."""
    tz = ZoneInfo(programme.programme.timezone)
    chosen: list[Session] = [s for s in programme.sessions if only is None or s.id == only]
    rows: list[SessionAttendance] = []
    for s in sorted(chosen, key=lambda s: (start_instant(s, tz), s.id)):
        revision = revisions.get(s.id)
        sequence = revision.sequence if revision else None
        mentors = []
        for mid in s.mentors:
            mentor = programme.mentor(mid)
            mentors.append(_mentor_answer(mid, mentor.name if mentor else mid,
                                          latest.get((mid, s.id)), sequence))
        rows.append(SessionAttendance(s.id, s.title, start_instant(s, tz), s.all_day, s.status,
                                      sequence,
                                      tuple(mentors)))
    return rows


def as_json(rows: list[SessionAttendance]) -> dict[str, Any]:
    """The shape of ``klash-sync attendance --json``."""
    return {"sessions": [r.as_json() for r in rows]}
