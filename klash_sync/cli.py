"""The ``klash-sync`` command line: parses arguments, calls the library, prints results.

This is the only module that prints. Every ``UserError`` raised below is shown as
its message alone (exit 2 for a bad programme or setting, 1 for failed targets);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from . import __version__, logs
from .config import load
from .errors import MassDeleteRefused, ProgrammeError, SettingsError, UserError
from .feeds import Snapshot, feed_path, publish
from .settings import Settings, load_settings
from .state import Store

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


def _snapshot(settings: Settings) -> tuple[Snapshot, Store]:
    programme = load(settings.programme)
    store = Store(settings.state_db)
    return publish(programme, store, now=_now(), base_url=settings.base_url), store


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
    snapshot, store = _snapshot(settings)
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
    from .live import Live
    from .server import bind, bound_url
    from .web import App

    settings = _settings(args)
    programme = load(settings.programme)  # fail before binding a port
    live = Live()
    app = App(live, settings)
    server, settings = bind(app, settings)
    store = Store(settings.state_db)
    live.set_snapshot(publish(programme, store, now=_now(), base_url=settings.base_url))
    log.info("serving feeds on %s (public base %s)", bound_url(server), settings.base_url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        store.close()
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
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve the feeds and the page over HTTP (no calendar sync)",
                       description="Serve /feeds/… and the page. `run` does this and syncs too.")
    _common(p)
    _network(p)
    p.set_defaults(func=cmd_serve)
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
