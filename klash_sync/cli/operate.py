"""The commands that write: done here when the state directory is free, by the daemon when
``klash-sync run`` holds it.

Each is one action of ``service/actions.py``. A command takes the state directory's
lock and runs the action itself; when ``run`` holds the lock it hands the action over
(``service/control.py``), the daemon runs the very same function, and the answer is
printed the same way, so the output and the exit code do not depend on whether the
daemon is running. Should the daemon stop before it takes the request, the command
does the work itself after all.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from klash_sync.cli import output
from klash_sync.errors import StateBusy, UserError
from klash_sync.programme.load import load
from klash_sync.programme.model import Programme
from klash_sync.service import actions, control
from klash_sync.service.actions import EXIT_FAILED, Outcome
from klash_sync.service.local import LocalContext
from klash_sync.service.publish import publish
from klash_sync.settings import Settings, load_settings
from klash_sync.state.lock import StateLock
from klash_sync.state.store import Store

HANDED_OVER = "klash-sync run holds the state directory; handed over to it, waiting for the result"


def now() -> datetime:
    return datetime.now(UTC)


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(
        programme=getattr(args, "programme", None),
        state_dir=getattr(args, "state_dir", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


# The lock of a writing command, held until the process exits (the kernel drops it then,
# even after kill -9).
_held: list[StateLock] = []


def writer(settings: Settings, command: str) -> None:
    """Take the state directory for this process, or stop: one writer at a time."""
    _held.append(StateLock(settings.state_dir).acquire(command, now()))


def daemon_holds(settings: Settings) -> bool:
    holder = StateLock(settings.state_dir).holder()
    return holder is not None and holder.command == "run"


def daemon_user(settings: Settings) -> int | None:
    """The uid the running daemon runs as (from /proc), None if it cannot be told."""
    holder = StateLock(settings.state_dir).holder()
    if holder is None or not holder.pid:
        return None
    try:
        return os.stat(f"/proc/{holder.pid}").st_uid
    except OSError:
        return None


def perform(settings: Settings, programme: Programme, command: str, action: str,
            args: dict[str, Any]) -> int:
    """Run ``action`` here, or hand it to the running daemon; print its lines; its exit code."""
    try:
        writer(settings, command)
    except StateBusy:
        if not daemon_holds(settings):
            raise
        code = hand_over(settings, action, args)
        if code is not None:
            return code
        writer(settings, command)  # the daemon stopped before it took the request
    with LocalContext(settings, programme) as ctx:
        return actions.perform(action, args, ctx, Outcome(echo=output.echo)).code


def hand_over(settings: Settings, action: str, args: dict[str, Any]) -> int | None:
    """Let the running daemon do it; its exit code, or None when it is gone before taking it."""
    try:
        raw = settings.programme.read_bytes()
    except OSError as e:
        raise UserError(f"{settings.programme}: the file cannot be read ({e.strerror})") from None
    rid = control.submit(settings.state_dir, action, args, programme=control.digest(raw),
                         owner=daemon_user(settings))
    output.note(HANDED_OVER)
    got = control.wait(settings.state_dir, rid, daemon_alive=lambda: daemon_holds(settings))
    if isinstance(got, control.Answer):
        output.show(got.lines)
        return got.code
    if got.daemon_gone and not got.taken:
        output.note("the daemon stopped before it took the request; doing it here")
        return None
    if not got.taken:
        problem = (f"the running daemon did not take the request within {control.TAKE_WITHIN:.0f} s "
                   "(see its log and /healthz); nothing was done")
    elif got.daemon_gone:
        problem = ("the daemon stopped before it answered; see its log for what was done, and "
                   "run the command again")
    else:
        problem = f"the running daemon did not answer within {control.LONGEST:.0f} s; see its log"
    output.note(f"klash-sync: {problem}")
    return EXIT_FAILED


# ------------------------------------------------------------------ commands


def cmd_sync(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)  # a broken file is reported before anything else
    return perform(settings, programme, "sync", "sync",
                   {"allow_mass_delete": args.allow_mass_delete, "table": output.terminal()})


def cmd_purge(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)
    return perform(settings, programme, "purge", "purge", {"mentor": args.mentor})


def cmd_accounts(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)
    return perform(settings, programme, "accounts", "accounts", {"reset": args.reset})


def cmd_replies(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)
    return perform(settings, programme, "replies", "replies", {})


def send_invites(settings: Settings, programme: Programme, args: argparse.Namespace) -> int:
    return perform(settings, programme, "invites --send", "invites-send",
                   {"allow_mass_cancel": args.allow_mass_cancel})


def record_programme(settings: Settings, programme: Programme) -> bool:
    """For the preview: record the programme as the current revision, as `sync` and the daemon
    do (``publish``: revisions and change-log entries in one transaction, under the writer
    lock), and send nothing; an edit's SEQUENCE and stamps are fixed from then on, so the
    preview shows what `--send` will send. False when the running daemon holds the state
    directory (it records the edit itself, within KLASH_DEBOUNCE); ``StateBusy`` when
    another command does."""
    try:
        writer(settings, "invites")
    except StateBusy:
        if daemon_holds(settings):
            return False
        raise
    store = Store(settings.state_db)
    try:
        publish(programme, store, now=now(), base_url=settings.event_base_url)
    finally:
        store.close()
    return True


def rotate_feed(settings: Settings, programme: Programme, args: argparse.Namespace) -> int:
    return perform(settings, programme, "feeds rotate", "feeds-rotate", {"mentor": args.mentor})


def export_site(settings: Settings, programme: Programme, args: argparse.Namespace) -> int:
    # absolute here: the daemon's working directory is not ours
    return perform(settings, programme, "export --all", "export-all",
                   {"target": str(Path(args.all).absolute())})
