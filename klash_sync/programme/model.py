"""The programme as data: frozen pydantic models, and nothing that does I/O.

These models are the schema of ``config/programme.toml``. Each field's description
is the documentation an organiser reads (the README's schema tables say the same,
more briefly), and each constraint exists so that a mistake is caught when
the file is loaded, never halfway through a sync. Checks that need the whole
programme (unknown mentor ids, duplicate ids, time-zone gaps) live in
``load.check`` because they need the file's context to be reported well. The field
types (ids, lines of text, reminders, URLs) and their messages are in ``fields``.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from klash_sync.programme.fields import (
    Email,
    FilePath,
    HttpUrl,
    MultiLine,
    OneLine,
    Reminder,
    RequiredLine,
    Slug,
    Status,
    slugify,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class CalDAVTarget(_Frozen):
    """Where one mentor's events are pushed. The password never lives in the programme file."""

    url: HttpUrl = Field(
        description="CalDAV server root, principal URL or calendar collection URL (https://…)."
    )
    username: RequiredLine = Field(description="Login name on that server.")
    password_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable that holds the password.",
    )
    password_file: FilePath | None = Field(
        default=None,
        min_length=1,
        description="Path of a file that holds the password (Docker/systemd secrets).",
    )
    calendar: RequiredLine = Field(
        default="Klash",
        description="Display name of the calendar to use; created if the server allows it.",
    )
    ca_bundle: FilePath | None = Field(
        default=None,
        description="Extra CA bundle (PEM) to trust for this server. TLS is always verified.",
    )
    auth: Literal["basic", "digest"] = Field(
        default="basic",
        description="HTTP authentication scheme; sent with the first request, saving a round trip.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: object) -> object:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "an inline 'password' is not accepted: the programme file is shared and "
                "versioned. Put the password in an environment variable and name it with "
                "password_env = \"KLASH_PW_…\", or in a file named by password_file"
            )
        return data

    @model_validator(mode="after")
    def _one_password_source(self) -> CalDAVTarget:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env or password_file")
        return self


class Mentor(_Frozen):
    """A person who meets teams; gets the sessions they take part in."""

    id: Slug = Field(description="ASCII slug of the name, e.g. 'milja-kopsi'. Never change it.")
    name: RequiredLine = Field(description="Full name as shown in events and on the page.")
    email: Email | None = Field(
        default=None,
        description="E-mail address (one bare address, ASCII); invitations go here when 'invite' is true.",
    )
    caldav: CalDAVTarget | None = Field(
        default=None,
        description="The mentor's own CalDAV calendar; without it, the embedded server is used.",
    )
    invite: bool = Field(
        default=False,
        description="Send this mentor e-mail invitations (iMIP) to 'email' instead of a CalDAV push.",
    )
    language: Literal["fi", "sv", "en"] = Field(
        default="fi",
        description="The language of this mentor's invitations: fi, sv or en.",
    )


class Session(_Frozen):
    """One mentoring session. Its ``id`` is its identity: titles and dates may change."""

    id: Slug = Field(description="Stable slug; the event's UID is built from it. Never reuse one.")
    title: RequiredLine = Field(description="Event title.")
    municipality: OneLine | None = Field(
        default=None, description="Host municipality; leave out for joint sessions."
    )
    location: OneLine = Field(default="", description="Place, as mentors' calendars show it.")
    date: dt.date | None = Field(default=None, description="All-day session: the day (2019-09-24).")
    end_date: dt.date | None = Field(
        default=None, description="Last day of a multi-day all-day session (inclusive)."
    )
    start: dt.datetime | None = Field(
        default=None, description="Timed session: start (local time of the programme, or with offset)."
    )
    end: dt.datetime | None = Field(default=None, description="Timed session: end.")
    mentors: tuple[Slug, ...] = Field(default=(), description="Mentor ids taking part.")
    status: Status = Field(default="confirmed", description="confirmed | tentative | cancelled.")
    description: MultiLine = Field(default="", description="Free text, may span lines.")
    url: HttpUrl | None = Field(default=None, description="Link for the event; default: its page.")
    reminders: tuple[Reminder, ...] | None = Field(
        default=None,
        description="Override of the programme's reminders; [] for none.",
    )

    @model_validator(mode="after")
    def _when(self) -> Session:
        if self.date is not None and (self.start is not None or self.end is not None):
            raise ValueError(
                "give either 'date' (an all-day session) or 'start' and 'end' (a timed one), "
                "not both"
            )
        if self.date is None:
            if self.start is None and self.end is None:
                raise ValueError("a session needs 'date', or 'start' and 'end'")
            if self.start is None or self.end is None:
                missing = "end" if self.end is None else "start"
                raise ValueError(f"a timed session needs both 'start' and 'end' ('{missing}' is missing)")
            if (self.start.tzinfo is None) != (self.end.tzinfo is None):
                raise ValueError("'start' and 'end' must both have an offset or both be local times")
            if self.end <= self.start:
                raise ValueError(f"'end' ({self.end}) must be after 'start' ({self.start})")
        if self.end_date is not None:
            if self.date is None:
                raise ValueError("'end_date' goes with 'date' (all-day sessions) only")
            if self.end_date < self.date:
                raise ValueError(f"'end_date' ({self.end_date}) is before 'date' ({self.date})")
        return self

    @property
    def all_day(self) -> bool:
        return self.date is not None

    @property
    def municipality_slug(self) -> str | None:
        return slugify(self.municipality) if self.municipality else None


class ProgrammeInfo(_Frozen):
    """The ``[programme]`` table: settings that apply to every session."""

    name: RequiredLine = Field(description="Name of the programme; used in calendar names.")
    timezone: str = Field(
        default="Europe/Helsinki",
        description="IANA time zone of local times in this file.",
    )
    uid_domain: str = Field(
        pattern=r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$",
        max_length=200,
        description="Domain part of every event UID; never change it once published.",
    )
    organiser: RequiredLine = Field(description="Who runs the programme (shown, never invited).")
    reminders: tuple[Reminder, ...] = Field(
        default=(timedelta(days=1),),
        description="Reminders before each session's start, ISO 8601 durations.",
    )
    url: HttpUrl | None = Field(default=None, description="Home page of the programme.")
    organiser_email: Email | None = Field(
        default=None,
        description="Sender and ORGANIZER of e-mail invitations; mentors' replies go here.",
    )


class Programme(_Frozen):
    """The whole programme file."""

    programme: ProgrammeInfo
    mentors: tuple[Mentor, ...] = ()
    sessions: tuple[Session, ...] = ()

    @cached_property
    def _mentor_index(self) -> dict[str, Mentor]:
        return {m.id: m for m in self.mentors}

    @cached_property
    def _sessions_by_mentor(self) -> dict[str, tuple[Session, ...]]:
        """Each mentor's sessions, in file order: built once, not once per mentor (O(M·S))."""
        found: dict[str, list[Session]] = {}
        for session in self.sessions:
            for mentor_id in dict.fromkeys(session.mentors):
                found.setdefault(mentor_id, []).append(session)
        return {k: tuple(v) for k, v in found.items()}

    def mentor(self, mentor_id: str) -> Mentor | None:
        return self._mentor_index.get(mentor_id)

    def sessions_of(self, mentor_id: str) -> tuple[Session, ...]:
        return self._sessions_by_mentor.get(mentor_id, ())

    def municipalities(self) -> dict[str, str]:
        """Slug -> display name of every municipality that hosts a session, in slug order."""
        found = {s.municipality_slug: s.municipality for s in self.sessions
                 if s.municipality and s.municipality_slug}
        return {slug: found[slug] for slug in sorted(found)}

    def sessions_of_municipality(self, slug: str) -> tuple[Session, ...]:
        """A municipality's own sessions plus the joint ones (those without a municipality)."""
        return tuple(
            s for s in self.sessions if s.municipality is None or s.municipality_slug == slug
        )
