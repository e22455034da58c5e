"""A decline close to a session, mailed to the organiser at once: coffee for one less.

When a mentor's latest answer for a session (from any channel: e-mail, their calendar,
the page) is "declined", given within 48 hours before the session starts and before it
has started, a short message goes to the programme's ``organiser_email`` through the
invitations' SMTP server, in Finnish (the programme has no language of its own).

Each decline is mailed once, ever: its answer's source is written to the store's ``kv``
table (``decline_mail``) *before* the message is handed over, and removed again only when
the server refuses it, so that it is tried again. A kill between the two leaves it marked:
at most once, never twice after a restart (an organiser told twice is worse than a
message lost to a crash in that second, which the attendance list still shows).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from klash_sync.deliver.invite.smtp import SmtpConfig, Transport
from klash_sync.programme.model import Mentor, Session
from klash_sync.render.ical import start_instant
from klash_sync.render.snapshot import Snapshot
from klash_sync.state.records import Answer
from klash_sync.state.store import Store

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=48)
KEY = "decline_mail"  # kv: JSON list of the answer sources already mailed (or being mailed)


@dataclass(frozen=True)
class Decline:
    answer: Answer
    mentor: Mentor
    session: Session
    start: datetime


def _mailed(store: Store) -> list[str]:
    try:
        found = json.loads(store.get(KEY) or "[]")
    except ValueError:
        return []
    return [s for s in found if isinstance(s, str)] if isinstance(found, list) else []


def due(snapshot: Snapshot, store: Store, now: datetime) -> list[Decline]:
    """Declines within 48 hours before a session that is still to come, not mailed yet."""
    programme = snapshot.programme
    zone = ZoneInfo(programme.programme.timezone)
    mailed = set(_mailed(store))
    sessions = {s.id: s for s in programme.sessions}
    found = []
    for (mentor_id, session_id), answer in sorted(store.latest_answers().items()):
        session = sessions.get(session_id)
        mentor = programme.mentor(mentor_id)
        if answer.answer != "declined" or answer.source in mailed or session is None or mentor is None:
            continue
        if mentor_id not in session.mentors or session.status == "cancelled":
            continue
        start = start_instant(session, zone)
        if start - WINDOW <= answer.at < start and now < start:
            found.append(Decline(answer, mentor, session, start))
    return found


def message(decline: Decline, snapshot: Snapshot, now: datetime) -> EmailMessage:
    """The organiser's short message, in Finnish."""
    info = snapshot.programme.programme
    assert info.organiser_email is not None
    zone = ZoneInfo(info.timezone)
    start = decline.start.astimezone(zone)
    day = f"{start.day}.{start.month}."
    when = day if decline.session.all_day else f"{day} klo {start:%H.%M}"
    said = decline.answer.at.astimezone(zone)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = info.organiser_email
    msg["To"] = info.organiser_email
    msg["Subject"] = f"{decline.mentor.name} ei pääse: {decline.session.title} {day}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=info.uid_domain)
    text = (f"{decline.mentor.name} ilmoitti {said.day}.{said.month}. klo {said:%H.%M}, "
            f"ettei pääse tilaisuuteen {decline.session.title} ({when}).\n")
    if decline.answer.comment:
        text += f"\nViesti: {decline.answer.comment}\n"
    text += f"\n{info.name}, klash-sync\n"
    msg.set_content(text)
    return msg


def mail_declines(snapshot: Snapshot, store: Store, config: SmtpConfig,
                  now: datetime) -> tuple[int, str | None]:
    """Mail every due decline; (how many were sent, the server's answer to a failure)."""
    email = snapshot.programme.programme.organiser_email
    found = due(snapshot, store, now) if email else []
    if not found:
        return 0, None
    sent, error = 0, None
    with Transport(config) as transport:
        for decline in found:
            store.set(KEY, json.dumps([*_mailed(store), decline.answer.source]))
            outcome = transport.send(message(decline, snapshot, now), email or "", email or "")
            if outcome.ok:
                sent += 1
                log.info("decline mail: %s declined %s; the organiser was told", decline.mentor.id,
                         decline.session.id)
                continue
            store.set(KEY, json.dumps([s for s in _mailed(store) if s != decline.answer.source]))
            error = outcome.answer
            log.warning("decline mail: %s declined %s; not sent: %s", decline.mentor.id,
                        decline.session.id, outcome.answer)
    return sent, error
