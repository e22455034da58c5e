"""The invitation channel: plan against the outbox, send in order, record each confirmed effect.

It has the shape of the CalDAV channel: what should be there (the snapshot), what
was delivered (the outbox), a pure plan (``plan.plan_invitations``), an apply step
that records every message the SMTP server accepted before it sends the next, and a
report (``InviteReport``; per mentor, the channels' common ``Report``). ``now`` is passed
in by the caller (the daemon's clock, or the CLI's).

One failing recipient never stops the others. When the server cannot be reached
at all, every message of the pass stays pending with that answer, to be tried again
after a backoff; nothing is lost and nothing is sent twice once it answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from klash_sync.deliver.base import Report, Result
from klash_sync.deliver.invite.message import build_message
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.plan import Invitation, InvitePlan, plan_invitations, release
from klash_sync.deliver.invite.smtp import Outcome, SmtpConfig, Transport
from klash_sync.render.snapshot import Snapshot

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
             retry_waiting: bool = False) -> InvitePlan:
    """The current plan; an empty one when the programme has no sender for invitations."""
    email = snapshot.programme.programme.organiser_email
    if email is None:
        return InvitePlan()
    return plan_invitations(snapshot, outbox.sent(), outbox.pending(), now=now,
                            organiser_email=email, retry_waiting=retry_waiting)


def send(
    snapshot: Snapshot,
    outbox: Outbox,
    config: SmtpConfig,
    *,
    now: Callable[[], datetime],
    allow_mass_cancel: bool = False,
    retry_max: float = 900.0,
    retry_waiting: bool = False,
    on_delivery: Callable[[Delivery], None] | None = None,
) -> InviteReport:
    """Plan and send every due invitation, recording each step in the outbox."""
    moment = now()
    plan = plan_now(snapshot, outbox, now=moment, retry_waiting=retry_waiting)
    if allow_mass_cancel:
        plan = release(plan)
    outbox.drop_pending_except(plan.keep)
    report = InviteReport(held=plan.held)
    for mentor, items in plan.held.items():
        log.warning("holding %d cancellations for %s: more than half of their upcoming sessions "
                    "(klash-sync invites --send --allow-mass-cancel sends them)", len(items), mentor)
    if not plan.messages:
        return report
    info = snapshot.programme.programme
    assert info.organiser_email is not None
    with Transport(config) as transport:
        unreachable: Outcome | None = None
        for inv in plan.messages:
            at = now()
            outbox.record_pending(inv, at)
            started, tried = time.monotonic(), unreachable is None
            if unreachable is None:
                msg = build_message(inv, programme_name=info.name, organiser=info.organiser,
                                    organiser_email=info.organiser_email, timezone=info.timezone,
                                    uid_domain=info.uid_domain, now=at)
                outcome = transport.send(msg, info.organiser_email, inv.address)
                if not outcome.ok and outcome.temporary and not transport.connect().ok:
                    unreachable = outcome  # no server: keep the rest pending, do not hammer it
            else:
                outcome = unreachable
            if outcome.ok:
                outbox.record_sent(inv, now())
                log.info("invitation %s (SEQUENCE %d) for %s sent to %s", inv.method, inv.sequence,
                         inv.session, inv.mentor)
            else:
                outbox.record_failure(inv, outcome.answer, temporary=outcome.temporary, now=now(),
                                      retry_max=retry_max)
                log.warning("invitation for %s to %s %s: %s", inv.session, inv.mentor,
                            "will be retried" if outcome.temporary else "failed", outcome.answer)
            delivery = Delivery(inv, outcome, time.monotonic() - started, tried)
            report.deliveries.append(delivery)
            if on_delivery is not None:
                on_delivery(delivery)
    return report
