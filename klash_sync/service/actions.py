"""The operator's writing actions: each is one function from a context to an ``Outcome``.

``purge``, ``sync``, ``invites --send``, ``feeds rotate``, ``accounts``, ``replies`` and
``export --all`` run in the command's own process (``local.LocalContext``) when it can
take the state directory, or in the running daemon (``inside.DaemonContext``), handed
over through ``control.py``: the very same function, so the effect, the lines and the
exit code are the same either way. Nothing here prints: an ``Outcome`` collects the
lines (for standard output or standard error) and ``cli/`` prints them.

Exit codes, for every command: 0 done; 1 a calendar or recipient failed, or something
was held; 2 bad input (an unknown mentor, an invalid programme or setting, a state
directory that cannot be used), nothing done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from klash_sync.deliver.caldav.sync import CalendarResult, Job
from klash_sync.deliver.invite.channel import Delivery, InviteReport, send
from klash_sync.deliver.invite.items import Invitation
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.replies import ReadReport
from klash_sync.deliver.invite.smtp import SmtpConfig
from klash_sync.embedded.mount import Embedded
from klash_sync.errors import MassDeleteRefused, ProgrammeError, SettingsError, UserError
from klash_sync.programme.model import Mentor, Programme
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.web.static import export_all
from klash_sync.web.tokens import FeedKeys, answer_links, rotate

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


@dataclass
class Outcome:
    """The lines an action has for the operator, and its exit code.

    ``echo`` sees each line as it is added (the command prints it at once, so a long
    sync shows its progress); the daemon has none and sends ``lines`` back instead.
    """

    code: int = EXIT_OK
    lines: list[tuple[str, str]] = field(default_factory=list)
    echo: Callable[[str, str], None] | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def out(self, text: str) -> None:
        self._add("out", text)

    def err(self, text: str) -> None:
        self._add("err", text)

    def _add(self, stream: str, text: str) -> None:
        with self._lock:  # sync results arrive from several worker threads
            self.lines.append((stream, text))
            if self.echo is not None:
                self.echo(stream, text)


class Context(Protocol):
    """What an action works with: the one-shot command's own, or the running daemon's."""

    settings: Settings
    store: Store

    @property
    def programme(self) -> Programme: ...
    @property
    def snapshot(self) -> Snapshot: ...
    def now(self) -> datetime: ...
    def keys(self) -> FeedKeys | None: ...
    def embedded(self) -> Embedded | None: ...
    def jobs(self) -> list[Job]: ...
    def sync(self, jobs: list[Job] | None, *, allow_mass_delete: bool,
             on_result: Callable[[CalendarResult], None]) -> list[CalendarResult]:
        """Sync these calendars (None: every calendar of the programme) and return the results."""
    def smtp_config(self) -> SmtpConfig | None: ...
    def invitations(self, work: Callable[[Outbox], InviteReport]) -> InviteReport:
        """Run ``work`` on the outbox, never beside another invitation pass."""
    def published(self) -> None:
        """Feed addresses changed: the static site (KLASH_SITE_DIR) follows."""
    def read_replies(self) -> ReadReport: ...  # the mailbox once, never beside another read


def failure(command: str, error: UserError, outcome: Outcome) -> Outcome:
    """A UserError as the operator sees it: its message alone, and its exit code."""
    if isinstance(error, ProgrammeError | SettingsError):
        outcome.err(f"klash-sync: {command}: invalid input\n{error}")
        outcome.code = EXIT_INVALID
    else:
        outcome.err(f"klash-sync: {error}")
        outcome.code = EXIT_FAILED if isinstance(error, MassDeleteRefused) else EXIT_INVALID
    return outcome


def result_line(result: CalendarResult) -> str:
    label = result.mentor + (" (leaving)" if result.leaving else "")
    if not result.ok:
        return f"FAILED  {label:<28} {result.error}"
    counts = f"+{result.created} ~{result.updated} -{result.deleted}"
    extra = f", restored {len(result.restored)}" if result.restored else ""
    return f"ok      {label:<28} {counts}{extra}  ({result.requests} requests, {result.seconds:.2f} s)"


def summary_lines(results: list[CalendarResult], *, table: bool) -> list[str]:
    total, failed = len(results), sum(1 for r in results if not r.ok)
    created, updated, deleted, requests = (sum(getattr(r, k) for r in results)
                                           for k in ("created", "updated", "deleted", "requests"))
    if table:  # in a terminal
        return ["", f"{'calendars':<12}{'failed':<8}{'created':<9}{'updated':<9}{'deleted':<9}requests",
                f"{total:<12}{failed:<8}{created:<9}{updated:<9}{deleted:<9}{requests}"]
    return [f"summary: {total} calendars, {failed} failed, {created} created, {updated} updated, "
            f"{deleted} deleted, {requests} requests"]


def invitation_line(inv: Invitation) -> str:
    return (f"  {inv.method:<8}{inv.session:<28} SEQUENCE {inv.sequence:<6} to {inv.mentor} "
            f"<{inv.address}> ({inv.reason})")


def held_lines(held: dict[str, list[Invitation]]) -> Iterable[str]:
    for mentor, items in sorted(held.items()):
        yield (f"{mentor}: {len(items)} cancellations HELD (more than half of their upcoming "
               "sessions); --allow-mass-cancel sends them")
        yield from (invitation_line(inv) for inv in items)


def address_lines(settings: Settings, keys: FeedKeys | None, mentor: Mentor) -> str:
    base = settings.base_url
    if settings.private_feeds and keys is not None:
        token = keys.token(mentor.id)
        feed = f"{base}/feeds/mentors/{mentor.id}/{token}.ics"
        page = f"{base}/mentors/{mentor.id}/{token}"
    else:
        feed = f"{base}/feeds/mentors/{mentor.id}.ics"
        page = f"{base}/mentors/{mentor.id}"
    return (f"{mentor.name} ({mentor.id})\n  feed:   {feed}\n  webcal: webcal://"
            f"{feed.split('://', 1)[1]}\n  page:   {page}")


PUBLIC_NOTE = "(public addresses: set KLASH_PRIVATE_FEEDS=true and a secret for secret ones)"


def sync(ctx: Context, out: Outcome, *, allow_mass_delete: bool = False, table: bool = False) -> None:
    """One pass over every calendar."""
    results = ctx.sync(None, allow_mass_delete=allow_mass_delete,
                       on_result=lambda r: out.out(result_line(r)))
    for line in summary_lines(results, table=table):
        out.out(line)
    out.code = EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def purge_line(result: CalendarResult, *, leaving: bool) -> str:
    """A purged calendar: how many events of ours the server held, and how many went."""
    label = result.mentor + (" (leaving)" if leaving else "")
    took = f"  ({result.requests} requests, {result.seconds:.2f} s)"
    if not result.ok:
        done = f" ({result.deleted} of ours deleted before that)" if result.deleted else ""
        return f"FAILED  {label:<28} {result.error}{done}"
    if not result.found:
        where = f": {result.missing}" if result.missing else " in the calendar, nothing deleted"
        return f"ok      {label:<28} no event of ours{where}{took}"
    s = "" if result.found == 1 else "s"
    return f"ok      {label:<28} {result.found} event{s} of ours found, {result.deleted} deleted{took}"


def purge(ctx: Context, out: Outcome, *, mentor: str) -> None:
    """Delete every event of ours from the mentor's calendars (theirs are never touched).

    Ours is what the server holds with our UID domain and our marker (``Job.purge``), not
    what the state store remembers: a lost or fresh state directory purges the same.
    """
    jobs = [j for j in ctx.jobs() if j.mentor == mentor]
    if not jobs:
        if ctx.programme.mentor(mentor) is None:
            raise UserError(f"no calendar of mentor '{mentor}' is known (not in the programme, and "
                            "this state directory has no calendar of theirs)")
        out.out(f"{mentor} has no calendar of ours: nothing to purge")
        return
    leaving = {j.key: j.leaving for j in jobs}
    doomed = [Job(j.key, j.mentor, j.target, {}, leaving=True, title=j.title, purge=True) for j in jobs]
    results = ctx.sync(doomed, allow_mass_delete=True,
                       on_result=lambda r: out.out(purge_line(r, leaving=leaving.get(r.key, False))))
    out.code = EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def invites_send(ctx: Context, out: Outcome, *, allow_mass_cancel: bool = False) -> None:
    """Send the due invitations now, without waiting for KLASH_INVITE_DELAY."""
    config = ctx.smtp_config()
    if config is None:
        raise UserError("no SMTP server: set KLASH_SMTP_URL (see the README, 'Invitations by e-mail')")
    snapshot, settings = ctx.snapshot, ctx.settings

    def shown(delivery: Delivery) -> None:
        inv, o = delivery.invitation, delivery.outcome
        state = "sent" if o.ok else ("RETRY" if o.temporary else "FAILED")
        out.out(f"{state:<7}{inv.method:<8}{inv.session} to {inv.mentor}" + ("" if o.ok else f": {o.answer}"))

    report = ctx.invitations(lambda outbox: send(
        snapshot, outbox, config, now=ctx.now, allow_mass_cancel=allow_mass_cancel, on_delivery=shown,
        retry_max=settings.retry_max, retry_waiting=True, public_feeds=not settings.private_feeds,
        answer_link=answer_links(settings, ctx.keys())))
    for line in held_lines(report.held):
        out.out(line)
    out.out(f"summary: {len(report.sent)} sent, {len(report.failed)} not sent, "
            f"{sum(len(v) for v in report.held.values())} held")
    out.code = EXIT_OK if report.ok else EXIT_FAILED


def feeds_rotate(ctx: Context, out: Outcome, *, mentor: str | None) -> None:
    """Invalidate a mentor's secret feed address; show the new one."""
    keys = ctx.keys()
    programme = ctx.programme
    chosen = programme.mentor(mentor) if mentor else None
    if chosen is None:
        known = ", ".join(m.id for m in programme.mentors)
        raise UserError(f"name a mentor to rotate: klash-sync feeds rotate MENTOR ({known})")
    if keys is None:
        raise UserError("there is no server secret, so there are no secret addresses to "
                        "rotate (set KLASH_SECRET or KLASH_SECRET_FILE)")
    rotate(ctx.store, chosen.id)
    out.out(f"{chosen.id}: the old address no longer works; the new one is")
    out.out(address_lines(ctx.settings, keys, chosen))
    if not ctx.settings.private_feeds:
        out.out(PUBLIC_NOTE)
    ctx.published()


def accounts(ctx: Context, out: Outcome, *, reset: str | None = None) -> None:
    """Mentors' read-only logins to the embedded calendars; a password is shown once."""
    settings = ctx.settings
    embedded = ctx.embedded() if settings.embedded_caldav else None
    if embedded is None:
        raise UserError("the embedded CalDAV server is off (KLASH_EMBEDDED_CALDAV=false)")
    users = [m for m in ctx.programme.mentors if m.caldav is None]
    if reset and reset not in {m.id for m in users}:
        raise UserError(f"'{reset}' is not a mentor on the embedded server")
    server = settings.base_url + Embedded.server_path()
    out.out("Read-only logins to the embedded calendars (give each mentor their own lines).\n"
            "In a calendar app, add a CalDAV account with the server address, user and password;\n"
            "the app finds the calendar itself. The calendar address is for apps that ask for it.")
    for mentor in users:
        embedded.ensure_home(mentor.id)  # so the login finds its principal before the first sync
        if reset == mentor.id or not embedded.has_login(mentor.id):
            shown = f"{embedded.set_password(mentor.id)}   (new: shown only now)"
        else:
            shown = f"set earlier (new one: klash-sync accounts --reset {mentor.id})"
        out.out(f"  {mentor.name}\n"
                f"    server    {server}\n"
                f"    user      {mentor.id}\n"
                f"    password  {shown}\n"
                f"    calendar  {settings.base_url + Embedded.calendar_path(mentor.id)}")
    gone = embedded.remove_logins(m.id for m in users)
    if gone:
        out.out(f"removed logins of mentors no longer in the programme: {', '.join(gone)}")


def replies(ctx: Context, out: Outcome) -> None:
    """Read the organiser's mailbox for mentors' answers now (``run`` reads it every interval)."""
    report = ctx.read_replies()
    for line in report.lines():
        (out.err if line.startswith("FAILED") else out.out)(line)
    out.code = EXIT_OK if report.ok else EXIT_FAILED


def export_site(ctx: Context, out: Outcome, *, target: str) -> None:
    """Every feed and the page into ``target`` (an absolute path), swapped in atomically."""
    snapshot = ctx.snapshot
    version = export_all(snapshot, ctx.settings, Path(target), ctx.keys(), ctx.store.recent_changes(30))
    out.err(f"exported {len(snapshot.feeds)} feeds and the page to {target} (-> {version.name})")


# name -> (the command named in messages, the function); the names travel in requests
ACTIONS: dict[str, tuple[str, Callable[..., None]]] = {
    "sync": ("sync", sync),
    "purge": ("purge", purge),
    "invites-send": ("invites", invites_send),
    "feeds-rotate": ("feeds", feeds_rotate),
    "accounts": ("accounts", accounts),
    "export-all": ("export", export_site),
    "replies": ("replies", replies),
}


def perform(name: str, args: dict[str, Any], ctx: Context, out: Outcome) -> Outcome:
    """Run action ``name`` with ``args``; a UserError becomes its lines and exit code."""
    command, action = ACTIONS[name]
    try:
        action(ctx, out, **args)
    except UserError as e:
        failure(command, e, out)
    return out
