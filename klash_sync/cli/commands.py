"""The commands that change nothing (and ``serve`` and ``run``); their writing variants
(``export --all``, ``feeds rotate``, ``invites --send``) are passed on to ``operate.py``."""

from __future__ import annotations

import argparse
import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from klash_sync.cli import output
from klash_sync.cli.operate import (
    daemon_holds,
    export_site,
    now,
    record_programme,
    rotate_feed,
    send_invites,
    settings_of,
    writer,
)
from klash_sync.deliver.caldav.plan import Create, Delete, Update
from klash_sync.deliver.invite.channel import message_for, plan_now
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.errors import UserError
from klash_sync.programme.load import load
from klash_sync.programme.model import Programme
from klash_sync.render.snapshot import Snapshot, feed_path
from klash_sync.service.actions import (
    EXIT_FAILED,
    EXIT_OK,
    PUBLIC_NOTE,
    address_lines,
    held_lines,
    invitation_line,
)
from klash_sync.service.local import syncer_context
from klash_sync.service.publish import publish
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.web.tokens import FeedKeys, answer_links

log = logging.getLogger("klash_sync")

RECORD_GRACE = 5.0  # seconds beyond KLASH_DEBOUNCE the preview waits for the daemon to record an edit


def cmd_validate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)
    timed = sum(1 for s in programme.sessions if not s.all_day)
    cancelled = sum(1 for s in programme.sessions if s.status == "cancelled")
    output.say(
        f"{settings.programme}: OK – {len(programme.sessions)} sessions "
        f"({timed} timed, {len(programme.sessions) - timed} all-day, {cancelled} cancelled), "
        f"{len(programme.mentors)} mentors, "
        f"{len(programme.municipalities())} municipalities"
    )
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)
    if args.all:
        return export_site(settings, programme, args)
    store = Store.readonly(settings.state_db)  # a private copy: writes nothing
    try:
        snapshot = publish(programme, store, now=now(), base_url=settings.event_base_url)
    finally:
        store.close()
    if args.mentor:
        path, what = feed_path("mentor", args.mentor), f"mentor '{args.mentor}'"
    elif args.municipality:
        path, what = feed_path("municipality", args.municipality), f"municipality '{args.municipality}'"
    else:
        path, what = feed_path("programme"), "programme"
    feed = snapshot.feeds.get(path)
    if feed is None:
        known = [m.id for m in programme.mentors] if args.mentor else list(programme.municipalities())
        raise UserError(f"no {what} in the programme; known: {', '.join(known) or 'none'}")
    if args.output in (None, "-"):
        output.write_bytes(feed.body)
    else:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(feed.body)
        tmp.chmod(0o644)  # a feed to be served, as with the usual umask (main() sets 077)
        tmp.replace(out)
        output.note(f"wrote {out} ({len(feed.sessions)} events)")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from klash_sync.web.server import stop_signals

    stop = threading.Event()
    # SIGINT/SIGTERM set ``stop`` from the first moment (server.stop_signals), before the
    # lock file names us and before the port answers; the stop is bounded (server.shutdown).
    with stop_signals(stop):
        return _serve(args, stop)


def _serve(args: argparse.Namespace, stop: threading.Event) -> int:
    from klash_sync.service.notify import notify
    from klash_sync.status import Live
    from klash_sync.web.app import App
    from klash_sync.web.server import bind, bound_url, serve, shutdown

    settings = settings_of(args)
    programme = load(settings.programme)  # fail before binding a port
    writer(settings, "serve")
    live = Live()
    store = Store(settings.state_db)
    app = App(live, settings, keys=FeedKeys.from_settings(settings, store),
              changes=lambda: store.recent_changes(30))
    server, settings = bind(app, settings)
    live.set_snapshot(publish(programme, store, now=now(), base_url=settings.event_base_url))
    # The loop runs in a thread and the main thread only waits for ``stop``.
    thread = threading.Thread(target=serve, args=(server,), name="http", daemon=True)
    try:
        if not stop.is_set():
            thread.start()
            log.info("serving feeds on %s (public base %s)", bound_url(server), settings.base_url)
            notify("READY=1")
        while not stop.wait(0.5) and thread.is_alive():
            pass
    finally:
        shutdown(server, thread)
        store.close()
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from klash_sync.web.server import stop_signals

    # First thing: SIGTERM/SIGINT set ``stop`` and SIGHUP sets ``reload`` before the lock
    # file names us or /healthz answers; the daemon honours both from its first step
    # (service/daemon.run), so a `systemctl reload` right after a start never kills it.
    stop, reload = threading.Event(), threading.Event()
    with stop_signals(stop, reload=reload):
        from klash_sync.service.daemon import run

        settings = settings_of(args)
        writer(settings, "run")
        return run(settings, stop=stop, reload=reload)


def cmd_feeds(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)
    if args.action == "rotate":
        return rotate_feed(settings, programme, args)
    store = Store.readonly(settings.state_db)
    try:
        keys = FeedKeys.from_settings(settings, store)
        for mentor in programme.mentors:
            output.say(address_lines(settings, keys, mentor))
    finally:
        store.close()
    if not settings.private_feeds:
        output.say(PUBLIC_NOTE)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)
    store = Store.readonly(settings.state_db)
    try:
        snapshot = publish(programme, store, now=now(), base_url=settings.event_base_url)
        with syncer_context(settings, store, readonly=True, note=output.note) as syncer:
            report = syncer.run(snapshot, dry_run=True, allow_mass_delete=True)
    finally:
        store.close()
    for result in sorted(report.results, key=lambda r: r.mentor):
        label = result.mentor + (" (leaving)" if result.leaving else "")
        if not result.ok:
            output.say(f"{label}: cannot plan: {result.error}")
            continue
        writes = result.plan.writes if result.plan else []
        output.say(f"{label}: {len(writes) or 'nothing'} to do")
        for action in writes:
            verb = {Create: "create", Update: "update", Delete: "delete"}[type(action)]
            note = " (put back)" if getattr(action, "restore", False) else ""
            output.say(f"  {verb:<7} {action.uid}{note}")
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_invites(args: argparse.Namespace) -> int:
    """The preview, or ``--send``.

    Each line is built from the very message ``--send`` would hand over (``message_for``):
    METHOD, SEQUENCE, recipient and Subject; ``--messages DIR`` writes those messages. An
    edit's SEQUENCE and stamps are fixed when it is recorded (``state/revisions``), so an
    edit not yet recorded is recorded first (``record_programme``), or, when the daemon holds
    the state directory, waited for: then the preview is the message, also on a first run.
    A programme already recorded is previewed on a private copy: nothing is written."""
    settings = settings_of(args)
    programme = load(settings.programme)
    if args.send:
        return send_invites(settings, programme, args)
    store, snapshot, at = _look(settings, programme)
    if snapshot.happened:  # an edit no writer has recorded yet
        store.close()
        edit = _edit_time(settings)
        if record_programme(settings, programme):
            output.say(f"recorded the edit of {edit} as the current revision; nothing sent")
        elif not _recorded_by_daemon(settings, programme):
            output.say(f"the running daemon has not recorded the edit of {edit} yet (it does "
                       f"within KLASH_DEBOUNCE, {settings.debounce:g} s, of the last save); "
                       "nothing shown: run `klash-sync invites` again in a moment")
            return EXIT_FAILED
        store, snapshot, at = _look(settings, programme)
    try:
        plan = plan_now(snapshot, Outbox(store), now=at)
        link = answer_links(settings, FeedKeys.from_settings(settings, store))
        links = {(i.mentor, i.session): link(i.mentor, i.session) for i in plan.messages} if link else {}
    finally:
        store.close()
    folder: Path | None = args.messages
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{folder}: cannot make the folder ({e.strerror})") from None
    if not plan.messages and not plan.held:
        output.say("no invitations to send")
    for n, inv in enumerate(plan.messages, 1):
        msg = message_for(inv, snapshot, at, public_feeds=not settings.private_feeds,
                          answer_link=(lambda m, s: links[(m, s)]) if links else None)
        output.say(invitation_line(inv))
        output.say(f"    Subject: {msg['Subject']}")
        if folder is not None:
            name = folder / f"{n:03d}-{inv.session}-{inv.mentor}-{inv.method.lower()}.eml"
            try:
                name.write_bytes(msg.as_bytes())
            except OSError as e:
                raise UserError(f"{name}: cannot be written ({e.strerror})") from None
    for line in held_lines(plan.held):
        output.say(line)
    if plan.waiting:
        output.say(f"({plan.waiting} waiting to be retried after a temporary SMTP refusal)")
    return EXIT_OK


def _look(settings: Settings, programme: Programme) -> tuple[Store, Snapshot, datetime]:
    """The programme published on a private copy of the store (the caller closes it)."""
    store, at = Store.readonly(settings.state_db), now()
    try:
        return store, publish(programme, store, now=at, base_url=settings.event_base_url), at
    except BaseException:
        store.close()
        raise


def _edit_time(settings: Settings) -> str:
    """When the programme file was saved, HH:MM local time (what the organiser remembers)."""
    try:
        return datetime.fromtimestamp(settings.programme.stat().st_mtime).strftime("%H:%M")
    except OSError:
        return now().astimezone().strftime("%H:%M")


def _recorded_by_daemon(settings: Settings, programme: Programme) -> bool:
    """Wait, at most KLASH_DEBOUNCE and a few seconds (as a handed-over command does), for the
    running daemon to record the programme; record it here if the daemon stops meanwhile."""
    until = time.monotonic() + settings.debounce + RECORD_GRACE
    while time.monotonic() < until:
        time.sleep(0.25)
        store, snapshot, _ = _look(settings, programme)
        store.close()
        if not snapshot.happened:
            return True
        if not daemon_holds(settings) and record_programme(settings, programme):
            return True
    return False
