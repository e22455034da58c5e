"""Mentors' answers by e-mail: the organiser's mailbox read, each REPLY judged, answers kept.

What counts (``judge``, pure) is only a real answer: the UID is one of ours
(``{session}@{uid_domain}``) for a session in the programme now; the ATTENDEE is a mentor
of that session now, and the ``From`` is the same address (case does not matter); when the
topmost ``Authentication-Results`` header is the organiser's own mail system's
(``KLASH_IMAP_AUTHSERV_ID``), it says DMARC passed (or, without DMARC, DKIM or SPF); the
SEQUENCE is no higher than what that address was sent for the session (the outbox) or the
session's current one, whichever is higher. An answer to an earlier SEQUENCE is kept with
it (``for_sequence``) and shown as such. A REPLY without a SEQUENCE answers what the
address was last sent. Anything else (ordinary mail, garbage MIME, a forged or foreign
reply, one for a mentor who was removed, an oversized message, the same answer again) is
ignored with one log line, and the reader goes on.

How far it read is kept as (UIDVALIDITY, last UID) in the store, moved in the same
transaction as the answers of each batch (``Store.record_answers(cursor=…)``): a kill -9
between batches loses nothing and counts nothing twice, and a restart starts after the
last recorded UID. A changed UIDVALIDITY reads the folder again; the answers' sources
(``email:<uidvalidity>:<uid>``) and the duplicate check keep that harmless.

A lost store is filled again from the mailbox. With ``KLASH_IMAP_MOVE_TO`` the answers
already counted are no longer in the read folder, so a store without a position for the
mailbox (new or rebuilt) first reads the move-to folder, read-only and once (noted in the
store's kv), its sources ``email:<folder>:<uidvalidity>:<uid>`` apart from the read folder's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from klash_sync.deliver.invite.imap import ImapConfig, ImapError, Mailbox, NoFolder
from klash_sync.deliver.invite.items import Sent
from klash_sync.deliver.invite.reply import NotAnswer, Reply, authentication_passes, read_reply
from klash_sync.render.snapshot import Snapshot
from klash_sync.state.records import Answer
from klash_sync.state.store import Store

log = logging.getLogger(__name__)

BATCH = 10  # messages read and recorded together, with the position after them


def judge(reply: Reply, snapshot: Snapshot, sent: dict[tuple[str, str], Sent], *,
          source: str, authserv_id: str = "", received: datetime) -> Answer:
    """The answer this REPLY gives, or ``NotAnswer`` saying why it does not count."""
    programme = snapshot.programme
    suffix = "@" + programme.programme.uid_domain
    if not reply.uid.endswith(suffix):
        raise NotAnswer("foreign UID: not one of our events")
    session_id = reply.uid[: -len(suffix)]
    session = next((s for s in programme.sessions if s.id == session_id), None)
    if session is None:
        raise NotAnswer(f"session {session_id!r} is not in the programme")
    if reply.sender != reply.attendee:
        raise NotAnswer(f"forged: From is not the ATTENDEE (session {session_id})")
    mentor = next((m for m in (programme.mentor(i) for i in session.mentors)
                   if m is not None and m.email and m.email.lower() == reply.attendee), None)
    if mentor is None:
        raise NotAnswer(f"the ATTENDEE is not a mentor of {session_id} now")
    if authserv_id and reply.authentication is not None:
        passes = authentication_passes(reply.authentication, authserv_id)
        if passes is False:
            raise NotAnswer(f"forged: our mail system's Authentication-Results do not pass "
                            f"({mentor.id}, {session_id})")
    revision = snapshot.revisions.get(session_id)
    was_sent = sent.get((reply.attendee, session_id))
    highest = max(revision.sequence if revision else 0, was_sent.sequence if was_sent else 0)
    sequence = reply.sequence if reply.sequence is not None else (
        was_sent.sequence if was_sent else highest)
    if sequence > highest:
        raise NotAnswer(f"SEQUENCE {sequence} was never sent ({mentor.id}, {session_id})")
    return Answer(mentor.id, session_id, reply.answer, "email", reply.stamp or received, sequence,
                  source, reply.comment)


@dataclass
class ReadReport:
    """One read of the mailbox: how many messages, which answers were new, what was ignored."""

    mailbox: str
    read: int = 0
    answers: list[Answer] = field(default_factory=list)
    ignored: list[tuple[int, str]] = field(default_factory=list)  # (IMAP UID, why)
    moved: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def lines(self) -> list[str]:
        found = [f"answer  {a.mentor} {a.answer} {a.session} (SEQUENCE {a.for_sequence})"
                 for a in self.answers]
        found += [f"ignored message {uid}: {why}" for uid, why in self.ignored]
        if self.error:
            found.append(f"FAILED  {self.error}")
        found.append(f"summary: {self.read} messages read, {len(self.answers)} new answers, "
                     f"{len(self.ignored)} ignored")
        return found


def _verdict(box: Mailbox, uid: int, size: int | None, config: ImapConfig,
             check: Callable[[Reply, str], Answer], prefix: str) -> Answer:
    if size is None:
        raise NotAnswer("gone before it was read")
    if size > config.max_bytes:
        raise NotAnswer(f"{size} bytes, over KLASH_IMAP_MAX_BYTES; not downloaded")
    raw = box.fetch(uid)
    if raw is None:
        raise NotAnswer("gone before it was read")
    return check(read_reply(raw), f"{prefix}{box.uidvalidity}:{uid}")


def _moved_key(config: ImapConfig) -> str:
    """The store's note that the move-to folder was read into this store (kv)."""
    return f"replies.moved_read:{config.key}:{config.move_to}"


def _read(box: Mailbox, uids: list[int], store: Store, report: ReadReport, *,
          check: Callable[[Reply, str], Answer], now: Callable[[], datetime],
          cursor: str | None, prefix: str = "email:") -> None:
    """Read ``uids`` of ``box`` in batches, recording each batch's answers (with the position
    after it when ``cursor`` names the mailbox), and move the counted ones when asked."""
    config, where = box.config, box.config.folder
    for start in range(0, len(uids), BATCH):
        chunk = uids[start:start + BATCH]
        sizes = box.sizes(chunk)
        found: list[Answer] = []
        counted: list[int] = []
        for uid in chunk:
            report.read += 1
            try:
                answer = _verdict(box, uid, sizes.get(uid), config, check, prefix)
            except NotAnswer as why:
                report.ignored.append((uid, str(why) + ("" if cursor else f" (in {where})")))
                log.info("replies: message %d of %s ignored: %s", uid, where, why)
                continue
            except ImapError:
                raise
            except Exception as e:  # a message no rule foresaw must not stop the reader
                report.ignored.append((uid, f"could not be read ({type(e).__name__})"))
                log.warning("replies: message %d of %s ignored: could not be read (%s)", uid,
                            where, type(e).__name__)
                continue
            found.append(answer)
            counted.append(uid)
        position = (cursor, box.uidvalidity, chunk[-1]) if cursor is not None else None
        new = store.record_answers(found, now(), cursor=position)
        for answer in new:
            log.info("replies: %s %s %s (SEQUENCE %d)", answer.mentor, answer.answer,
                     answer.session, answer.for_sequence)
        report.answers += new
        if config.move_to and counted:
            try:
                box.move(counted)
                report.moved += len(counted)
            except ImapError as e:
                log.warning("replies: could not move %d answers to %s: %s", len(counted),
                            config.move_to, e)


def _read_moved(config: ImapConfig, store: Store, report: ReadReport, *,
                check: Callable[[Reply, str], Answer], now: Callable[[], datetime]) -> None:
    """A new or rebuilt store: the answers already moved out of the read folder are read
    back from the move-to folder, read-only (nothing is moved again), once. Their sources
    name the folder, so they never meet the read folder's UIDs."""
    try:
        with Mailbox(replace(config, folder=config.move_to, move_to="")) as moved:
            uids = moved.uids_after(0)
            log.info("replies: a new store: reading the %d messages in %s again", len(uids),
                     config.move_to)
            _read(moved, uids, store, report, check=check, now=now, cursor=None,
                  prefix=f"email:{config.move_to}:")
            store.set(_moved_key(config), f"{moved.uidvalidity}:{uids[-1] if uids else 0}")
    except NoFolder:
        log.info("replies: no folder %s yet: no answers were moved there", config.move_to)


def read_replies(config: ImapConfig, snapshot: Snapshot, store: Store,
                 sent: dict[tuple[str, str], Sent], *, now: Callable[[], datetime],
                 authserv_id: str = "") -> ReadReport:
    """Read what is new in the mailbox, batch by batch, recording each batch's answers with
    the position after it (after the move-to folder, once, when the store is new). Never
    raises for the mailbox: its failure is ``error``."""
    report = ReadReport(config.key)
    kept = {(a.mentor, a.session, a.answer, a.at, a.comment): a.source for a in store.all_answers()}

    def check(reply: Reply, source: str) -> Answer:
        answer = judge(reply, snapshot, sent, source=source, authserv_id=authserv_id,
                       received=now())
        key = (answer.mentor, answer.session, answer.answer, answer.at, answer.comment)
        if kept.setdefault(key, source) != source:  # the same answer in another message
            raise NotAnswer(f"duplicate of an answer kept ({answer.mentor}, {answer.session})")
        return answer

    try:
        known = store.reply_cursor(config.key)
        if known is None and config.move_to and store.get(_moved_key(config)) is None:
            _read_moved(config, store, report, check=check, now=now)
        with Mailbox(config) as box:
            last = known[1] if known is not None and known[0] == box.uidvalidity else 0
            if known is not None and known[0] != box.uidvalidity:
                log.warning("replies: UIDVALIDITY of %s changed (%d to %d); reading the folder again",
                            config.key, known[0], box.uidvalidity)
            _read(box, box.uids_after(last), store, report, check=check, now=now,
                  cursor=config.key)
    except ImapError as e:
        report.error = str(e)
    return report
