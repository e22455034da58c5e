"""The state store: what klash-sync remembers between runs, in one SQLite file.

``Store`` is assembled from one base and four parts, each in its own module and each a
set of methods over the same connection, lock and transactions:

* ``db.Database``: opening (WAL, integrity check, a bad file moved aside), transactions,
  ``check``, ``close``, ``add_schema`` and the key-value table (``get``/``set``);
* ``revisions.Revisions``: sessions' SEQUENCE and stamps that never go backwards
  (``revise``, ``raise_sequence``), and feeds' Last-Modified (``feeds_changed``);
* ``calendars.Calendars``: the calendars we write to, our events on each, foreign resources;
* ``changelog.ChangeLog``: the change log shown to people;
* ``answers.Answers``: mentors' answers (who is coming) and the mail reader's position.

The records it hands out live in ``records``; they are re-exported here, with
``sequence_floor``, so that ``from klash_sync.state.store import Store, Item`` keeps working.
"""

from __future__ import annotations

from klash_sync.state.answers import Answers
from klash_sync.state.calendars import Calendars
from klash_sync.state.changelog import ChangeLog
from klash_sync.state.records import Answer, CalendarRecord, Change, Item, Revised, Revision
from klash_sync.state.revisions import Revisions, sequence_floor

__all__ = ["Answer", "CalendarRecord", "Change", "Item", "Revised", "Revision", "Store", "sequence_floor"]


class Store(Revisions, Calendars, ChangeLog, Answers):
    """Thread-safe access to the state database; every method is one transaction.

    ``Store.readonly(path)`` is a copy in memory for commands that promise to change
    nothing (``plan``, ``export``): they compute exactly what a writer would, and
    everything they "write" vanishes with the process.
    """
