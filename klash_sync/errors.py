"""One error tree for klash-sync.

Every failure a person can act on is a ``UserError``: its ``str()`` is a complete
message that says what is wrong and, where possible, what to do. The command line
prints those without a traceback; anything else is a bug and is reported as one.

    KlashError
     ├── UserError                     printed as is, never with a traceback
     │    ├── ProgrammeError           the programme file is broken (carries every Problem)
     │    ├── SettingsError            a KLASH_* setting or a secret cannot be used
     │    ├── StateError               the state directory cannot be used (rights, lock, disk)
     │    │    └── StateBusy           another klash-sync holds the state directory
     │    └── MassDeleteRefused        a sync would wipe most of a calendar
     └── TargetError                   a calendar server failed (the caller names the calendar)
          ├── TargetUnreachable        connection refused, timeout, DNS, TLS
          ├── TargetAuthError          401 / 403
          ├── TargetProtocolError      malformed answers, unexpected status codes
          │    └── TargetMissing       no such calendar (where we would not create one: purge)
          ├── TargetConflict           a precondition kept failing after re-reads
          └── PreconditionFailed       412 on one write: internal, the sync re-reads (never shown)
"""

from __future__ import annotations

from dataclasses import dataclass


class KlashError(Exception):
    """Base of every error klash-sync raises on purpose."""


class UserError(KlashError):
    """An error whose message tells a person what to fix. Never shown with a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the programme file, located as precisely as we can.

    ``place`` is what an organiser searches for (``session 'vantaa-2019'``,
    ``[programme]``); ``line``/``column`` point into the file where we know them;
    ``field`` is the key inside that place, if any.
    """

    file: str
    line: int | None
    column: int | None
    place: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
            if self.column is not None:
                where += f", column {self.column}"
        where += f": {self.place}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class ProgrammeError(UserError):
    """The programme file cannot be used; it lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SettingsError(UserError):
    """A setting (environment, .env file or a secret file) cannot be used."""


class StateError(UserError):
    """The state directory or its database cannot be used: one line saying what and what to do."""


class StateBusy(StateError):
    """Another klash-sync process is writing to the same state directory."""


class MassDeleteRefused(UserError):
    """A sync would delete most of a calendar's events; refused unless forced."""


class TargetError(KlashError):
    """A calendar server failed. ``reason`` is one line, free of secrets.

    It does not name the calendar: the code that runs a calendar's sync catches it and
    says whose calendar it was (``calendar of <mentor>: <reason>``).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TargetUnreachable(TargetError):
    """The server could not be reached or did not answer in time."""


class TargetAuthError(TargetError):
    """The server refused our credentials or our access."""


class TargetProtocolError(TargetError):
    """The server answered something we cannot use."""


class TargetMissing(TargetProtocolError):
    """The calendar is not on the server, and this run does not create one.

    ``purge`` looks for a calendar and never makes one: a calendar that is not there
    holds nothing of ours, which it says (a sync creates it, or fails as before).
    """


class TargetConflict(TargetError):
    """A conditional write kept failing: someone else keeps changing the resource."""


class PreconditionFailed(TargetError):
    """412: the resource is not in the state a conditional write assumed.

    Internal to the CalDAV channel: the sync catches it, re-reads the resource and
    tries again, and after repeated failures raises ``TargetConflict`` instead. It
    never reaches a user; it is a ``TargetError`` so that one that escaped a bug is
    still reported as that calendar's failure, not as a crash.
    """
