"""The ``klash-sync`` command line: parses arguments, calls the library, prints results.

This is the only module that prints. Every ``UserError`` raised below is shown as
its message alone (exit 2 for a bad programme or setting, 1 for failed targets);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from klash_sync import __version__, logs
from klash_sync.deliver.caldav.sync import CalendarResult, Syncer, SyncReport
from klash_sync.embedded.mount import Embedded
from klash_sync.errors import MassDeleteRefused, ProgrammeError, SettingsError, StateBusy, UserError
from klash_sync.programme.load import load
from klash_sync.programme.model import Programme
from klash_sync.render.snapshot import Snapshot, feed_path
from klash_sync.service.loopback import loopback_server
from klash_sync.service.publish import publish
from klash_sync.settings import Settings, load_settings
from klash_sync.state.lock import StateLock
from klash_sync.state.store import Store

log = logging.getLogger("klash_sync")

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        programme=getattr(args, "programme", None),
        state_dir=getattr(args, "state_dir", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


# The lock of a writing command, held until the process exits (the kernel drops it then,
# even after kill -9).
_held: list[StateLock] = []


def _writer(settings: Settings, command: str) -> None:
    """Take the state directory for this process, or stop: one writer at a time."""
    _held.append(StateLock(settings.state_dir).acquire(command, _now()))


def _snapshot(settings: Settings, *, readonly: bool = False,
              programme: Programme | None = None) -> tuple[Snapshot, Store]:
    """The programme (loaded here unless given) published against the store; ``readonly``
    works on a private copy."""
    programme = programme if programme is not None else load(settings.programme)
    store = Store.readonly(settings.state_db) if readonly else Store(settings.state_db)
    return publish(programme, store, now=_now(), base_url=settings.event_base_url), store


# ------------------------------------------------------------------ commands


def cmd_validate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    programme = load(settings.programme)
    timed = sum(1 for s in programme.sessions if not s.all_day)
    cancelled = sum(1 for s in programme.sessions if s.status == "cancelled")
    print(
        f"{settings.programme}: OK – {len(programme.sessions)} sessions "
        f"({timed} timed, {len(programme.sessions) - timed} all-day, {cancelled} cancelled), "
        f"{len(programme.mentors)} mentors, "
        f"{len(programme.municipalities())} municipalities"
    )
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.all:
        _writer(settings, "export --all")
    snapshot, store = _snapshot(settings, readonly=not args.all)
    if args.all:
        from klash_sync.web.static import export_all
        from klash_sync.web.tokens import FeedKeys

        try:
            version = export_all(snapshot, settings, Path(args.all), FeedKeys.from_settings(settings, store),
                                 store.recent_changes(30))
        finally:
            store.close()
        print(f"exported {len(snapshot.feeds)} feeds and the page to {args.all} (-> {version.name})",
              file=sys.stderr)
        return EXIT_OK
    store.close()
    if args.mentor:
        path = feed_path("mentor", args.mentor)
        what = f"mentor '{args.mentor}'"
    elif args.municipality:
        path = feed_path("municipality", args.municipality)
        what = f"municipality '{args.municipality}'"
    else:
        path, what = feed_path("programme"), "programme"
    feed = snapshot.feeds.get(path)
    if feed is None:
        known = (
            [m.id for m in snapshot.programme.mentors] if args.mentor
            else list(snapshot.programme.municipalities())
        )
        raise UserError(f"no {what} in the programme; known: {', '.join(known) or 'none'}")
    if args.output in (None, "-"):
        sys.stdout.buffer.write(feed.body)
        sys.stdout.flush()
    else:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(feed.body)
        tmp.replace(out)
        print(f"wrote {out} ({len(feed.sessions)} events)", file=sys.stderr)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import threading

    from klash_sync.status import Live
    from klash_sync.web.app import App
    from klash_sync.web.server import bind, bound_url, serve, shutdown, stop_signals
    from klash_sync.web.tokens import FeedKeys

    settings = _settings(args)
    programme = load(settings.programme)  # fail before binding a port
    _writer(settings, "serve")
    live = Live()
    store = Store(settings.state_db)
    app = App(live, settings, keys=FeedKeys.from_settings(settings, store),
              changes=lambda: store.recent_changes(30))
    server, settings = bind(app, settings)
    live.set_snapshot(publish(programme, store, now=_now(), base_url=settings.event_base_url))
    stop = threading.Event()
    # The loop runs in a thread and the main thread only waits: SIGINT/SIGTERM set ``stop``
    # (see server.stop_signals), and the stop is bounded (server.shutdown).
    thread = threading.Thread(target=serve, args=(server,), name="http", daemon=True)
    try:
        with stop_signals(stop):
            thread.start()
            log.info("serving feeds on %s (public base %s)", bound_url(server), settings.base_url)
            while not stop.wait(0.5) and thread.is_alive():
                pass
    finally:
        shutdown(server, thread)
        store.close()
    return EXIT_OK


def cmd_feeds(args: argparse.Namespace) -> int:
    from klash_sync.web.tokens import FeedKeys, rotate

    settings = _settings(args)
    programme = load(settings.programme)
    if args.action == "rotate":
        _writer(settings, "feeds rotate")
    store = Store(settings.state_db) if args.action == "rotate" else Store.readonly(settings.state_db)
    try:
        keys = FeedKeys.from_settings(settings, store)
        if args.action == "rotate":
            if not args.mentor or programme.mentor(args.mentor) is None:
                known = ", ".join(m.id for m in programme.mentors)
                raise UserError(f"name a mentor to rotate: klash-sync feeds rotate MENTOR ({known})")
            if keys is None:
                raise UserError("there is no server secret, so there are no secret addresses to "
                                "rotate (set KLASH_SECRET or KLASH_SECRET_FILE)")
            rotate(store, args.mentor)
            print(f"{args.mentor}: the old address no longer works; the new one is")
        base = settings.base_url
        for mentor in programme.mentors:
            if args.action == "rotate" and mentor.id != args.mentor:
                continue
            if settings.private_feeds and keys is not None:
                token = keys.token(mentor.id)
                feed = f"{base}/feeds/mentors/{mentor.id}/{token}.ics"
                page = f"{base}/mentors/{mentor.id}/{token}"
            else:
                feed = f"{base}/feeds/mentors/{mentor.id}.ics"
                page = f"{base}/mentors/{mentor.id}"
            print(f"{mentor.name} ({mentor.id})\n  feed:   {feed}\n  webcal: webcal://"
                  f"{feed.split('://', 1)[1]}\n  page:   {page}")
        if not settings.private_feeds:
            print("(public addresses: set KLASH_PRIVATE_FEEDS=true and a secret for secret ones)")
    finally:
        store.close()
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from klash_sync.service.daemon import run

    settings = _settings(args)
    _writer(settings, "run")
    return run(settings)


@contextlib.contextmanager
def _syncer_context(settings: Settings, store: Store, *, readonly: bool = False) -> Iterator[Syncer]:
    """A Syncer, with the embedded server on a private loopback port when it is needed.

    ``readonly`` (``plan``) uses the embedded server as a writer left it, creating and
    moving nothing; before any writer has set it up there is nothing on it to plan against.
    """
    if not settings.embedded_caldav:
        yield Syncer(settings, store)
        return
    if readonly and not Embedded.is_set_up(settings.state_dir):
        print("(the embedded CalDAV server has not been set up yet: its calendars are not "
              "planned; `klash-sync sync` or `run` creates them)", file=sys.stderr)
        yield Syncer(settings.model_copy(update={"embedded_caldav": False}), store)
        return
    embedded = Embedded(settings.state_dir, prefix=urlsplit(settings.base_url).path,
                        readonly=readonly)
    with loopback_server(embedded) as base:
        yield Syncer(settings, store, embedded=embedded, dav_base=base)


def _print_result(result: CalendarResult, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    label = result.mentor + (" (leaving)" if result.leaving else "")
    if result.ok:
        counts = f"+{result.created} ~{result.updated} -{result.deleted}"
        extra = f", restored {len(result.restored)}" if result.restored else ""
        print(f"ok      {label:<28} {counts}{extra}  ({result.requests} requests, "
              f"{result.seconds:.2f} s)", file=out, flush=True)
    else:
        print(f"FAILED  {label:<28} {result.error}", file=out, flush=True)


def _summary(report: SyncReport) -> None:
    total = len(report.results)
    failed = len(report.failed)
    created = sum(r.created for r in report.results)
    updated = sum(r.updated for r in report.results)
    deleted = sum(r.deleted for r in report.results)
    requests = sum(r.requests for r in report.results)
    if sys.stdout.isatty():
        print()
        print(f"{'calendars':<12}{'failed':<8}{'created':<9}{'updated':<9}{'deleted':<9}requests")
        print(f"{total:<12}{failed:<8}{created:<9}{updated:<9}{deleted:<9}{requests}")
    else:
        print(f"summary: {total} calendars, {failed} failed, {created} created, {updated} updated, "
              f"{deleted} deleted, {requests} requests")


def cmd_sync(args: argparse.Namespace) -> int:
    settings = _settings(args)
    programme = load(settings.programme)  # a broken file is reported before anything else
    try:
        _writer(settings, "sync")
    except StateBusy:
        if args.allow_mass_delete and _daemon_holds(settings):
            return _hand_over(settings, "sync", None)
        raise
    snapshot, store = _snapshot(settings, programme=programme)
    try:
        with _syncer_context(settings, store) as syncer:
            report = syncer.run(
                snapshot, allow_mass_delete=args.allow_mass_delete, on_result=_print_result,
                republish=lambda old: publish(old.programme, store, now=_now(),
                                              base_url=settings.event_base_url, previous=old))
    finally:
        store.close()
    _summary(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _daemon_holds(settings: Settings) -> bool:
    holder = StateLock(settings.state_dir).holder()
    return holder is not None and holder.command == "run"


def _hand_over(settings: Settings, action: str, mentor: str | None) -> int:
    """Let the running daemon do it (see handover.py) and print what it reports."""
    from klash_sync.service import control as handover

    rid = handover.submit(settings.state_dir, action, mentor)
    print("klash-sync run holds the state directory; handed over to it, waiting for the result",
          file=sys.stderr, flush=True)
    answer = handover.wait(settings.state_dir, rid, timeout=300)
    if answer is None:
        raise UserError("the running daemon did not answer within 300 s; see its log")
    for line in answer.get("lines", []):
        print(line)
    return EXIT_OK if answer.get("ok") else EXIT_FAILED


def cmd_plan(args: argparse.Namespace) -> int:
    from klash_sync.deliver.caldav.plan import Create, Delete, Update

    settings = _settings(args)
    snapshot, store = _snapshot(settings, readonly=True)
    try:
        with _syncer_context(settings, store, readonly=True) as syncer:
            report = syncer.run(snapshot, dry_run=True, allow_mass_delete=True)
    finally:
        store.close()
    for result in sorted(report.results, key=lambda r: r.mentor):
        label = result.mentor + (" (leaving)" if result.leaving else "")
        if not result.ok:
            print(f"{label}: cannot plan: {result.error}")
            continue
        writes = result.plan.writes if result.plan else []
        print(f"{label}: {len(writes) or 'nothing'} to do")
        for action in writes:
            verb = {Create: "create", Update: "update", Delete: "delete"}[type(action)]
            note = " (put back)" if getattr(action, "restore", False) else ""
            print(f"  {verb:<7} {action.uid}{note}")
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_invites(args: argparse.Namespace) -> int:
    from klash_sync.cli.invites import invites

    settings = _settings(args)
    programme = load(settings.programme)
    if args.send:
        try:
            _writer(settings, "invites --send")
        except StateBusy:
            if _daemon_holds(settings):
                action = "invites+mass-cancel" if args.allow_mass_cancel else "invites"
                return _hand_over(settings, action, None)
            raise
    snapshot, store = _snapshot(settings, readonly=not args.send, programme=programme)
    try:
        return invites(snapshot, store, settings, now=_now, send=args.send,
                       allow_mass_cancel=args.allow_mass_cancel)
    finally:
        store.close()


def cmd_purge(args: argparse.Namespace) -> int:
    from klash_sync.deliver.caldav.sync import jobs_for

    settings = _settings(args)
    programme = load(settings.programme)
    try:
        _writer(settings, "purge")
    except StateBusy:
        if _daemon_holds(settings):
            return _hand_over(settings, "purge", args.mentor)
        raise
    snapshot, store = _snapshot(settings, programme=programme)
    try:
        jobs = [j for j in jobs_for(snapshot, settings, store) if j.mentor == args.mentor]
        if not jobs:
            raise UserError(f"no calendar of mentor '{args.mentor}' is known")
        with _syncer_context(settings, store) as syncer:
            results = []
            for job in jobs:
                empty = type(job)(job.key, job.mentor, job.target, {}, leaving=True)
                result = syncer.sync_one(empty, snapshot.programme.programme.uid_domain,
                                         allow_mass_delete=True)
                _print_result(result)
                results.append(result)
    finally:
        store.close()
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def cmd_accounts(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.embedded_caldav:
        raise UserError("the embedded CalDAV server is off (KLASH_EMBEDDED_CALDAV=false)")
    programme = load(settings.programme)
    _writer(settings, "accounts")
    embedded = Embedded(settings.state_dir, prefix=urlsplit(settings.base_url).path)
    users = [m for m in programme.mentors if m.caldav is None]
    if args.reset and args.reset not in {m.id for m in users}:
        raise UserError(f"'{args.reset}' is not a mentor on the embedded server")
    server = settings.base_url + Embedded.server_path()
    print("Read-only logins to the embedded calendars (give each mentor their own lines).\n"
          "In a calendar app, add a CalDAV account with the server address, user and password;\n"
          "the app finds the calendar itself. The calendar address is for apps that ask for it.")
    for mentor in users:
        embedded.ensure_home(mentor.id)  # so the login finds its principal before the first sync
        if args.reset == mentor.id or not embedded.has_login(mentor.id):
            password = embedded.set_password(mentor.id)
            shown = f"{password}   (new: shown only now)"
        else:
            shown = f"set earlier (new one: klash-sync accounts --reset {mentor.id})"
        print(f"  {mentor.name}\n"
              f"    server    {server}\n"
              f"    user      {mentor.id}\n"
              f"    password  {shown}\n"
              f"    calendar  {settings.base_url + Embedded.calendar_path(mentor.id)}")
    gone = embedded.remove_logins(m.id for m in users)
    if gone:
        print(f"removed logins of mentors no longer in the programme: {', '.join(gone)}")
    return EXIT_OK


# -------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--programme", metavar="FILE", type=Path,
                   help="programme file (default: $KLASH_PROGRAMME or config/programme.toml)")
    p.add_argument("--state-dir", metavar="DIR", type=Path,
                   help="state directory (default: $KLASH_STATE_DIR or ./var)")


def _network(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="listen address (default: $KLASH_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port, 0 for any free one (default: $KLASH_PORT or 8080)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klash-sync",
        description="Keeps the Klash mentoring programme in every mentor's calendar.",
        epilog="Settings come from KLASH_* environment variables or a .env file; see the README.",
    )
    parser.add_argument("--version", action="version", version=f"klash-sync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check the programme file; exit 2 with every problem found",
                       description="Check the programme file. Exit 0 when it is valid, 2 with "
                       "one message per problem (file, line, session or mentor, field).")
    _common(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("export", help="write a feed (.ics) to a file or standard output",
                       description="Write the whole programme, one mentor's or one "
                       "municipality's feed as iCalendar.")
    _common(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--mentor", metavar="ID", help="only this mentor's sessions")
    which.add_argument("--municipality", metavar="SLUG",
                       help="this municipality's sessions plus the joint ones")
    which.add_argument("--all", metavar="DIR",
                       help="every feed and the page into DIR (a symlink swapped atomically), "
                       "for nginx, a CDN or object storage")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve the feeds and the page over HTTP (no calendar sync)",
                       description="Serve /feeds/… and the page. `run` does this and syncs too.")
    _common(p)
    _network(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("run", help="the service: serve feeds and /dav/, sync calendars, watch the file",
                       description="Serve the feeds, the page and the embedded CalDAV server; sync "
                       "every calendar at start, every KLASH_SYNC_INTERVAL seconds and within "
                       "seconds of a change to the programme file. SIGHUP reloads, SIGTERM stops.")
    _common(p)
    _network(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plan", help="show what a sync would change in each calendar; change nothing",
                       description="List, per calendar, what a sync would create, update and delete.")
    _common(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("sync", help="push the programme into every mentor's calendar, once",
                       description="One sync pass. Exit 0 when every calendar is in sync, 1 when "
                       "a calendar failed (all are tried), 2 when the programme is invalid.")
    _common(p)
    p.add_argument("--allow-mass-delete", action="store_true",
                   help="allow deleting more than half of a calendar's events of ours")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("invites", help="show the e-mail invitations that are due; --send sends them",
                       description="List the invitations, updates and cancellations that mentors "
                       "with invite = true are due (writes nothing); --send sends them now, "
                       "without waiting for KLASH_INVITE_DELAY. Exit 1 when one failed or was held.")
    _common(p)
    p.add_argument("--send", action="store_true", help="send them now")
    p.add_argument("--allow-mass-cancel", action="store_true",
                   help="send cancellations for more than half of a mentor's upcoming sessions")
    p.set_defaults(func=cmd_invites)

    p = sub.add_parser("purge", help="remove every event of ours from one mentor's calendar",
                       description="Delete every event klash-sync put into MENTOR's calendar. "
                       "Events the mentor made themselves are never touched.")
    _common(p)
    p.add_argument("mentor", metavar="MENTOR", help="mentor id")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("feeds", help="list each mentor's subscribe address; `feeds rotate MENTOR`",
                       description="List each mentor's feed and page address (the secret ones when "
                       "KLASH_PRIVATE_FEEDS is on). `feeds rotate MENTOR` invalidates that mentor's "
                       "secret address and prints the new one.")
    _common(p)
    p.add_argument("action", nargs="?", choices=["rotate"], help="make a new secret address")
    p.add_argument("mentor", nargs="?", metavar="MENTOR", help="mentor id (with rotate)")
    p.set_defaults(func=cmd_feeds)

    p = sub.add_parser("accounts", help="show mentors' read-only logins to the embedded calendars",
                       description="List each mentor's login to the embedded calendars: the server "
                       "address to type into a calendar app, the user name, the password and the "
                       "calendar's own address. A password is shown once, when it is made; --reset "
                       "makes a new one.")
    _common(p)
    p.add_argument("--reset", metavar="MENTOR", help="give this mentor a new password")
    p.set_defaults(func=cmd_accounts)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        logs.setup("DEBUG" if args.verbose else settings.log_level, settings.log_format)
        return int(args.func(args))
    except (ProgrammeError, SettingsError) as e:
        print(f"klash-sync: {args.command}: invalid input\n{e}", file=sys.stderr)
        return EXIT_INVALID
    except MassDeleteRefused as e:
        print(f"klash-sync: {e}", file=sys.stderr)
        return EXIT_FAILED
    except UserError as e:
        print(f"klash-sync: {e}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
