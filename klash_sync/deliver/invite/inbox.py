"""The e-mail answers channel, as the scheduler drives it: two units, in this order.

* ``mailbox``: read the organiser's mailbox for mentors' iMIP REPLYs (``replies.py``),
  every ``KLASH_IMAP_INTERVAL`` seconds (its own clock, ``retry_due``) and on each
  periodic pass; a failure (no server, refused login) is retried with the scheduler's
  backoff and shows on ``/healthz`` as a warning, as one recipient's failure does.
* ``declines``: mail the organiser a decline given within 48 hours of a session
  (``declines.py``), due whenever an answer has been recorded since the last look, from
  any channel; on by default when there is an SMTP server and an ``organiser_email``.

One worker: the two never overlap, and an operator's ``klash-sync replies`` runs on the
same worker (``read_once``), never beside a scheduled read. Answers are written to the
store only here (and by the other answer channels), each with its own source.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from klash_sync.clock import Clock
from klash_sync.deliver import base
from klash_sync.deliver.invite.declines import mail_declines
from klash_sync.deliver.invite.imap import ImapConfig, imap_config
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.replies import ReadReport, read_replies
from klash_sync.deliver.invite.smtp import SmtpConfig, smtp_config
from klash_sync.errors import SettingsError
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.status import Record

log = logging.getLogger(__name__)

MAILBOX, DECLINES = "mailbox", "declines"


@dataclass(frozen=True)
class Job:
    key: str  # MAILBOX | DECLINES
    signature: object


class Replies:
    """The ``Channel`` that reads answers by e-mail and tells the organiser of late declines."""

    name = "replies"
    section = "replies"
    unit: str | None = "unit"
    levels: tuple[str, ...] = ()
    workers = 1
    per_group = 1
    quiet = 0.0
    reports = False

    def __init__(self, settings: Settings, clock: Clock, store: Store) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.imap: ImapConfig | None = None
        self.imap_error: str | None = None
        try:
            self.imap = imap_config(settings)
        except SettingsError as e:
            self.imap_error = str(e)
            log.error("answers by e-mail are not read: %s", e)
        self.smtp: SmtpConfig | None = None
        try:
            self.smtp = smtp_config(settings) if settings.decline_mail else None
        except SettingsError:
            self.smtp = None  # the invitation channel says so
        self.outbox = Outbox(store)
        self._next_read = 0.0  # monotonic: when the mailbox is read again
        self._seen_answers = -1  # answers recorded at the last decline look (-1: look once at start)
        self._lock = threading.Lock()

    # ------------------------------------------------------------- units

    def items(self, snapshot: Snapshot) -> Iterable[Job]:
        found = []
        if self.imap is not None or self.imap_error is not None:
            found.append(Job(MAILBOX, self.settings.imap_url))
        if self.smtp is not None and snapshot.programme.programme.organiser_email:
            found.append(Job(DECLINES, snapshot.programme.programme.organiser_email))
        return found

    def view(self, item: Job) -> base.Unit:
        return base.Unit(item.key, "organiser", item.signature)

    def retry_due(self) -> set[str]:
        """The mailbox every KLASH_IMAP_INTERVAL; the declines when an answer was recorded."""
        due = set()
        if self.clock.monotonic() >= self._next_read:
            due.add(MAILBOX)
        if self.smtp is not None and self._answers() != self._seen_answers:
            due.add(DECLINES)
        return due

    def _answers(self) -> int:
        """How many answers were recorded so far (asked every turn: no database read)."""
        return self.store.answers_recorded

    # --------------------------------------------------------------- runs

    def run(self, item: Job, snapshot: Snapshot, ask: base.Ask | None) -> base.Outcome:
        started = time.monotonic()
        if item.key == DECLINES:
            seen = self._answers()
            assert self.smtp is not None
            sent, error = mail_declines(snapshot, self.store, self.smtp, self.clock.now())
            if error is None:
                self._seen_answers = seen
            return base.Outcome(error is None, error, counts={"mailed": sent},
                                actions={"decline_mail": sent}, seconds=time.monotonic() - started,
                                lines=[f"decline mail: {sent} sent" + (f", {error}" if error else "")])
        report = self.read_once(snapshot)
        return base.Outcome(report.ok, report.error,
                            counts={"read": report.read, "answers": len(report.answers),
                                    "ignored": len(report.ignored)},
                            actions={"answers": len(report.answers)},
                            seconds=time.monotonic() - started, lines=report.lines(),
                            retry=self.imap is not None, result=report)

    def read_once(self, snapshot: Snapshot) -> ReadReport:
        """One read of the mailbox (the scheduled one, or an operator's)."""
        with self._lock:
            self._next_read = self.clock.monotonic() + self.settings.imap_interval
            if self.imap is None:
                return ReadReport("", error=self.imap_error or "KLASH_IMAP_URL is not set")
            sent = self.outbox.sent()
            return read_replies(self.imap, snapshot, self.store, sent, now=self.clock.now,
                                authserv_id=self.settings.imap_authserv_id)

    def status(self, snapshot: Snapshot | None) -> tuple[list[Record], list[str]] | None:
        return None

    def close(self, finished: bool) -> None:
        """Nothing kept open between runs: each read is one IMAP session."""
