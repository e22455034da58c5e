"""The invitation channel: plan against the outbox, send in order, record each confirmed effect.

It has the shape of the CalDAV channel: what should be there (the snapshot), what
was delivered (the outbox), a pure plan (``plan.plan_invitations``), an apply step
that records every message the SMTP server accepted before it sends the next, and a
report (``InviteReport``; per mentor, the channels' common ``Report``). ``now`` is passed in.

One failing recipient never stops the others. When the server cannot be reached
at all, every message of the pass stays pending with that answer, to be tried again
after a backoff; nothing is lost and nothing is sent twice once it answers again.

``Invitations`` is this channel as the scheduler drives it (``deliver.base.Channel``):
the planner works over the whole outbox (a message's SEQUENCE and the mass-cancel guard
need it), a pass starts once the programme has been quiet for ``KLASH_INVITE_DELAY``
(so an organiser's three quick edits make one message) or when a message that met a
temporary refusal is due again (the outbox keeps those retry times itself); status is
per mentor, read from the outbox after every pass.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from klash_sync.clock import Clock
from klash_sync.deliver import base
from klash_sync.deliver.base import Report, Result
from klash_sync.deliver.invite.items import Invitation, InvitePlan
from klash_sync.deliver.invite.mailboxes import Mailbox, mailboxes, record
from klash_sync.deliver.invite.message import build_message
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.plan import invited, plan_invitations, release
from klash_sync.deliver.invite.smtp import Outcome, SmtpConfig, Transport, smtp_config
from klash_sync.errors import SettingsError
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.status import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What became of one invitation."""

    invitation: Invitation
    outcome: Outcome
    seconds: float = 0.0  # handing it to the SMTP server
    tried: bool = True  # False: not offered, the server was already known to be down


@dataclass
class MailboxResult(Result):
    """One invited mentor's pass, as every channel reports it: ``key`` is the mentor id."""

    sent: int = 0
    not_sent: int = 0
    held: int = 0  # cancellations the mass-change guard holds back

    def counts(self) -> dict[str, int]:
        return {"sent": self.sent}


@dataclass
class InviteReport:
    """A pass of the invitation channel: each message's fate, and what the guard held.

    ``by_recipient`` is the same pass as the channels' common ``Report``, one
    ``MailboxResult`` per mentor who was sent something or had something held.
    """

    deliveries: list[Delivery] = field(default_factory=list)
    held: dict[str, list[Invitation]] = field(default_factory=dict)

    @property
    def sent(self) -> list[Invitation]:
        return [d.invitation for d in self.deliveries if d.outcome.ok]

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.outcome.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.held

    def by_recipient(self) -> Report[MailboxResult]:
        found: dict[str, MailboxResult] = {}

        def line(mentor: str) -> MailboxResult:
            return found.setdefault(mentor, MailboxResult(mentor, mentor, ok=True))

        for d in self.deliveries:
            r = line(d.invitation.mentor)
            r.requests += d.tried
            r.seconds += d.seconds
            if d.outcome.ok:
                r.sent += 1
            else:
                r.not_sent += 1
                r.ok = False
                r.error = d.outcome.answer  # already one line, addresses masked
        for mentor, items in self.held.items():
            r = line(mentor)
            r.held = len(items)
            r.ok = False
            r.error = r.error or (f"holding {len(items)} cancellations: more than half of "
                                  "their upcoming sessions")
        return Report([found[m] for m in sorted(found)])


def plan_now(snapshot: Snapshot, outbox: Outbox, *, now: datetime,
             retry_waiting: bool = False, only: str | None = None) -> InvitePlan:
    """The current plan (for one mentor's mailbox with ``only``); an empty one when the
    programme has no sender for invitations."""
    email = snapshot.programme.programme.organiser_email
    if email is None:
        return InvitePlan()
    return plan_invitations(snapshot, outbox.sent(), outbox.pending(), now=now, organiser_email=email,
                            retry_waiting=retry_waiting, only=only, names=outbox.names(),
                            removed=outbox.store.removed_at())


def message_for(inv: Invitation, snapshot: Snapshot, at: datetime, *,
                public_feeds: bool, answer_link: Callable[[str, str], str] | None = None) -> EmailMessage:
    """The e-mail of one invitation, as ``send`` hands it over and ``invites --messages``
    writes it: one function, so the preview is the message. ``public_feeds``: it links the
    mentor's feed (a private feed's address is a secret, never mailed)."""
    info = snapshot.programme.programme
    assert info.organiser_email is not None
    # a CANCEL speaks for the organiser address its copy came from (an earlier one's, too)
    msg = build_message(inv, programme_name=info.name, organiser=info.organiser,
                        organiser_email=inv.organiser or info.organiser_email, timezone=info.timezone,
                        uid_domain=info.uid_domain, now=at, page=snapshot.base_url or "",
                        public_feeds=public_feeds, language=language_of(snapshot, inv.mentor),
                        answer=answer_link(inv.mentor, inv.session) if answer_link else "")
    # MIME boundaries from the invitation, not at random: the same message, the same bytes
    # ('=_' and '.' never occur in base64 or quoted-printable lines)
    seed = hashlib.sha256(f"{inv.key}|{inv.sequence}|{inv.hash}".encode()).hexdigest()[:24]
    for n, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_klash.{seed}.{n}")
    return msg


def send(
    snapshot: Snapshot, outbox: Outbox, config: SmtpConfig, *, now: Callable[[], datetime],
    allow_mass_cancel: bool = False, retry_max: float = 900.0, retry_waiting: bool = False,
    on_delivery: Callable[[Delivery], None] | None = None, only: str | None = None,
    public_feeds: bool = False,
    answer_link: Callable[[str, str], str] | None = None,  # (mentor, session) -> answer page
) -> InviteReport:
    """Plan and send every due invitation (to one mentor with ``only``), recording each
    step in the outbox. ``public_feeds``: the messages link the mentor's feed."""
    moment = now()
    plan = plan_now(snapshot, outbox, now=moment, retry_waiting=retry_waiting, only=only)
    if allow_mass_cancel:
        plan = release(plan)
    outbox.drop_pending_except(plan.keep, mentor=only)
    report = InviteReport(held=plan.held)
    for mentor, items in plan.held.items():
        log.warning("holding %d cancellations for %s: more than half of their upcoming sessions "
                    "(klash-sync invites --send --allow-mass-cancel sends them)", len(items), mentor)
    if not plan.messages:
        return report
    fallback = snapshot.programme.programme.organiser_email or ""  # every plan sets inv.organiser
    with Transport(config) as transport:
        unreachable: Outcome | None = None
        stopped: set[tuple[str, str]] = set()  # a handover's CANCEL not sent: no REQUEST yet
        for inv in plan.messages:
            if inv.key in stopped:
                continue
            at = now()
            outbox.record_pending(inv, at)
            started, tried = time.monotonic(), unreachable is None
            if unreachable is None:
                msg = message_for(inv, snapshot, at, public_feeds=public_feeds, answer_link=answer_link)
                outcome = transport.send(msg, inv.organiser or fallback, inv.address)
                if not outcome.ok and outcome.temporary and not transport.connect().ok:
                    unreachable = outcome  # no server: keep the rest pending, do not hammer it
            else:
                outcome = unreachable
            if outcome.ok:
                outbox.record_sent(inv, now())
                log.info("invitation %s (SEQUENCE %d) for %s sent to %s", inv.method, inv.sequence,
                         inv.session, inv.mentor)
            else:
                stopped.add(inv.key)
                outbox.record_failure(inv, outcome.answer, temporary=outcome.temporary, now=now(),
                                      retry_max=retry_max)
                log.warning("invitation for %s to %s %s: %s", inv.session, inv.mentor,
                            "will be retried" if outcome.temporary else "failed", outcome.answer)
            delivery = Delivery(inv, outcome, time.monotonic() - started, tried)
            report.deliveries.append(delivery)
            if on_delivery is not None:
                on_delivery(delivery)
    return report


# ------------------------------------------------ the channel, as the scheduler drives it


class Invitations:
    """The ``Channel`` of e-mail invitations: one unit per mentor's mailbox."""

    name = "invite"
    section = "invitations"
    unit: str | None = None
    levels: tuple[str, ...] = ("sent", "pending", "failed")
    workers = 1  # one mailbox at a time: two sends never overlap on the SMTP server
    per_group = 1
    reports = True  # status is per mentor, read from the outbox

    def __init__(self, settings: Settings, clock: Clock, store: Store) -> None:
        self.settings = settings
        self.clock = clock
        self.quiet = settings.invite_delay
        self.outbox = Outbox(store)
        self.config: SmtpConfig | None = None
        self.config_error: str | None = None
        try:
            self.config = smtp_config(settings)
        except SettingsError as e:
            self.config_error = str(e)
        self._warned = False
        self._lock = threading.Lock()
        self.held: dict[str, list[Invitation]] = {}
        self.answer_link: Callable[[str, str], str] | None = None  # the daemon's, when answers are taken

    def items(self, snapshot: Snapshot) -> Iterable[Mailbox]:
        return mailboxes(snapshot, self.outbox)

    def view(self, item: Mailbox) -> base.Unit:
        return base.Unit(item.mentor, item.mentor, item.signature)

    def run(self, item: Mailbox, snapshot: Snapshot, ask: base.Ask | None) -> base.Outcome:
        if self.config is None:
            if not self._warned:
                log.error("mentors have invite = true but no invitations are sent: %s",
                          self._no_server())
                self._warned = True
            return base.Outcome(False, self._no_server(), lines=["no SMTP server: " + self._no_server()],
                                retry=False)
        # An operator's `invites --send` also sends what waits out a backoff, at once.
        report = send(snapshot, self.outbox, self.config, now=self.clock.now,
                      allow_mass_cancel=ask is not None and ask.allow_mass,
                      retry_max=self.settings.retry_max, retry_waiting=ask is not None,
                      only=item.mentor, public_feeds=not self.settings.private_feeds,
                      answer_link=self.answer_link)
        with self._lock:
            if item.mentor in report.held:
                self.held[item.mentor] = report.held[item.mentor]
            else:
                self.held.pop(item.mentor, None)
        summary = (f"{item.mentor}: {len(report.sent)} sent, {len(report.failed)} not sent, "
                   f"{sum(len(v) for v in report.held.values())} held")
        return base.Outcome(report.ok, None if report.ok else summary, actions={"send": len(report.sent)},
                            counts={"sent": len(report.sent), "not_sent": len(report.failed),
                                    "held": sum(len(v) for v in report.held.values())},
                            failed=tuple(sorted({d.invitation.mentor for d in report.failed})),
                            lines=[summary], retry=False)

    def retry_due(self) -> set[str]:
        """The mailboxes with a message whose 4xx pause is over (only those: marking every
        mailbox would let the first ones in the queue starve the one that is due)."""
        retry = self.outbox.next_retry()
        if retry is None or retry > self.clock.now():
            return set()
        return self.outbox.due_retries(self.clock.now())

    def status(self, snapshot: Snapshot | None) -> tuple[list[Record], list[str]]:
        problems = []
        with self._lock:
            if self.held:
                problems.append(f"cancellations held (klash-sync invites --send --allow-mass-cancel): "
                                f"{', '.join(sorted(self.held))}")
        if self.config is None and snapshot is not None and invited(snapshot.programme):
            problems.append("invitations cannot be sent: " + self._no_server())
        return [record(line) for line in self.outbox.status().values()], problems

    def _no_server(self) -> str:
        return self.config_error or "KLASH_SMTP_URL is not set"

    def close(self, finished: bool) -> None:
        self.outbox.close()


def language_of(snapshot: Snapshot, mentor: str) -> str | None:
    """The language a mentor's invitations are written in (Finnish for one who has left)."""
    found = snapshot.programme.mentor(mentor)
    return found.language if found is not None else None
