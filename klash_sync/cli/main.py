"""The ``klash-sync`` command line: the parser, and main(), which maps errors to exit codes.

The commands live in ``commands.py`` (those that change nothing, ``serve`` and ``run``)
and ``operate.py`` (those that write, here or in the running daemon); ``output.py``
prints. Only ``cli/`` prints. Every ``UserError`` is shown as its message alone, with
the exit code of ``service.actions.failure``: 2 for bad input (an invalid programme or
setting, an unknown mentor, a state directory that cannot be used), 1 when a calendar
was refused a mass delete; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from klash_sync import __version__, logs
from klash_sync.cli import attendance, commands, operate, output
from klash_sync.errors import UserError
from klash_sync.service.actions import Outcome, failure
from klash_sync.settings import load_settings

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
    p.set_defaults(func=commands.cmd_validate)

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
    p.set_defaults(func=commands.cmd_export)

    p = sub.add_parser("serve", help="serve the feeds and the page over HTTP (no calendar sync)",
                       description="Serve /feeds/… and the page. `run` does this and syncs too.")
    _common(p)
    _network(p)
    p.set_defaults(func=commands.cmd_serve)

    p = sub.add_parser("run", help="the service: serve feeds and /dav/, sync calendars, watch the file",
                       description="Serve the feeds, the page and the embedded CalDAV server; sync "
                       "every calendar at start, every KLASH_SYNC_INTERVAL seconds and within "
                       "seconds of a change to the programme file. SIGHUP reloads, SIGTERM stops.")
    _common(p)
    _network(p)
    p.set_defaults(func=commands.cmd_run)

    p = sub.add_parser("plan", help="show what a sync would change in each calendar; change nothing",
                       description="List, per calendar, what a sync would create, update and delete.")
    _common(p)
    p.set_defaults(func=commands.cmd_plan)

    p = sub.add_parser("sync", help="push the programme into every mentor's calendar, once",
                       description="One sync pass. Exit 0 when every calendar is in sync, 1 when "
                       "a calendar failed (all are tried), 2 when the programme is invalid.")
    _common(p)
    p.add_argument("--allow-mass-delete", action="store_true",
                   help="allow deleting more than half of a calendar's events of ours")
    p.set_defaults(func=operate.cmd_sync)

    p = sub.add_parser("invites", help="show the e-mail invitations that are due; --send sends them",
                       description="List the invitations, updates and cancellations that mentors "
                       "with invite = true are due, as the next send sends them (an edit not yet "
                       "recorded in the state store is recorded first, or waited for while the "
                       "daemon runs; nothing is sent); --send sends them now, without waiting for "
                       "KLASH_INVITE_DELAY. Exit 1 when one failed or was held, or the daemon had not "
                       "recorded the edit yet.")
    _common(p)
    p.add_argument("--send", action="store_true", help="send them now")
    p.add_argument("--messages", type=Path, metavar="DIR",
                   help="also write each message the next send would hand over, as DIR/NNN-"
                   "SESSION-MENTOR-METHOD.eml (the same bytes but the Date header)")
    p.add_argument("--allow-mass-cancel", action="store_true",
                   help="send cancellations for more than half of a mentor's upcoming sessions")
    p.set_defaults(func=commands.cmd_invites)

    p = sub.add_parser("attendance", help="show who is coming to each session; change nothing",
                       description="Per session, each mentor's latest answer (coming, maybe, not "
                       "coming, no answer), when and how it came: by e-mail, in their calendar or "
                       "on the page. Reads a private copy of the state: runs beside the daemon.")
    _common(p)
    p.add_argument("--session", metavar="ID", help="only this session")
    p.add_argument("--json", action="store_true", help="print JSON (shape in the README)")
    p.set_defaults(func=attendance.cmd_attendance)

    p = sub.add_parser("replies", help="read mentors' answers from the organiser's mailbox, once",
                       description="Read the new messages in KLASH_IMAP_URL's folder and keep the "
                       "mentors' iMIP answers (`run` does it every KLASH_IMAP_INTERVAL). Prints each "
                       "answer and each message ignored, with why. Mail is never altered.")
    _common(p)
    p.set_defaults(func=operate.cmd_replies)

    p = sub.add_parser("purge", help="remove every event of ours from one mentor's calendar",
                       description="Delete every event klash-sync put into MENTOR's calendar. "
                       "Events the mentor made themselves are never touched.")
    _common(p)
    p.add_argument("mentor", metavar="MENTOR", help="mentor id")
    p.set_defaults(func=operate.cmd_purge)

    p = sub.add_parser("feeds", help="list each mentor's subscribe address; `feeds rotate MENTOR`",
                       description="List each mentor's feed and page address (the secret ones when "
                       "KLASH_PRIVATE_FEEDS is on). `feeds rotate MENTOR` invalidates that mentor's "
                       "secret address and prints the new one.")
    _common(p)
    p.add_argument("action", nargs="?", choices=["rotate"], help="make a new secret address")
    p.add_argument("mentor", nargs="?", metavar="MENTOR", help="mentor id (with rotate)")
    p.set_defaults(func=commands.cmd_feeds)

    p = sub.add_parser("accounts", help="show mentors' read-only logins to the embedded calendars",
                       description="List each mentor's login to the embedded calendars: the server "
                       "address to type into a calendar app, the user name, the password and the "
                       "calendar's own address. A password is shown once, when it is made; --reset "
                       "makes a new one.")
    _common(p)
    p.add_argument("--reset", metavar="MENTOR", help="give this mentor a new password")
    p.set_defaults(func=operate.cmd_accounts)
    return parser


EXIT_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the service creates (the store, Radicale's calendars, logins, requests) is
    # its user's alone, whatever umask it was started with; what is meant to be served (the
    # static site, a feed written to a file) is given its world-readable modes explicitly.
    os.umask(0o077)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        logs.setup("DEBUG" if args.verbose else settings.log_level, settings.log_format)
        return int(args.func(args))
    except UserError as e:
        return failure(args.command, e, Outcome(echo=output.echo)).code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`klash-sync plan | head`): stop quietly, as other tools do,
        # and keep Python from complaining again when it flushes standard output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
