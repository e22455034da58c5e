"""``klash-sync invites``: the preview (like ``plan``) and ``--send``, printed for a person."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime

from klash_sync.deliver.invite.channel import Delivery, plan_now
from klash_sync.deliver.invite.channel import send as send_all
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.plan import Invitation
from klash_sync.deliver.invite.smtp import smtp_config
from klash_sync.errors import UserError
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import Store

EXIT_OK, EXIT_FAILED = 0, 1


def _line(inv: Invitation) -> str:
    return (f"  {inv.method:<8}{inv.session:<28} SEQUENCE {inv.sequence:<6} to {inv.mentor} "
            f"({inv.reason})")


def _held(held: dict[str, list[Invitation]]) -> None:
    for mentor, items in sorted(held.items()):
        print(f"{mentor}: {len(items)} cancellations HELD (more than half of their upcoming "
              "sessions); --allow-mass-cancel sends them")
        for inv in items:
            print(_line(inv))


def invites(snapshot: Snapshot, store: Store, settings: Settings, *, now: Callable[[], datetime],
            send: bool, allow_mass_cancel: bool) -> int:
    """The preview (``send=False``: on a read-only store, writes nothing) or a send now."""
    outbox = Outbox(store)
    try:
        if not send:
            plan = plan_now(snapshot, outbox, now=now())
            messages = plan.messages
            if not messages and not plan.held:
                print("no invitations to send")
            for inv in messages:
                print(_line(inv))
            _held(plan.held)
            if plan.waiting:
                print(f"({plan.waiting} waiting to be retried after a temporary SMTP refusal)")
            return EXIT_OK
        config = smtp_config(settings)
        if config is None:
            raise UserError("no SMTP server: set KLASH_SMTP_URL (see the README, "
                            "'Invitations by e-mail')")

        def shown(delivery: Delivery) -> None:
            inv, outcome = delivery.invitation, delivery.outcome
            state = "sent" if outcome.ok else ("RETRY" if outcome.temporary else "FAILED")
            extra = "" if outcome.ok else f": {outcome.answer}"
            print(f"{state:<7}{inv.method:<8}{inv.session} to {inv.mentor}{extra}", flush=True)

        report = send_all(snapshot, outbox, config, now=now, allow_mass_cancel=allow_mass_cancel,
                      retry_max=settings.retry_max, retry_waiting=True,
                          on_delivery=shown)
        _held(report.held)
        print(f"summary: {len(report.sent)} sent, {len(report.failed)} not sent, "
              f"{sum(len(v) for v in report.held.values())} held", file=sys.stdout)
        return EXIT_OK if report.ok else EXIT_FAILED
    finally:
        outbox.close()
