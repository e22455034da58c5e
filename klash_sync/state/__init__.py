"""State: what klash-sync remembers between runs, in one SQLite file per state directory.

``store.Store`` is the one object the floors above use. It is put together from parts
that share one connection, one lock and one transaction helper (mixins over
``db.Database``), so each part is a module of one job while ``Store`` keeps one API:

* ``db``: opening the file (WAL, integrity check, moving a bad file aside, one-line
  errors), transactions, the "is it still the same file" check, the key-value table;
* ``files``: the file looked at without writing to it (its version, the read-only copy
  in memory) and what is wrong with it in one line;
* ``schema``: the tables and their version; ``migrations``: the upgrade of stores made by
  older releases, and the copy kept before it;
* ``revisions``: session revisions (SEQUENCE, stamps under a high-water mark) and feed stamps;
* ``calendars``: what each calendar holds, its record, claims, moves, foreign resources;
* ``changelog``: the log of applied changes shown to people;
* ``answers``: mentors' answers (who is coming), once per source, and the mail reader's position;
* ``records``: the plain values all of them hand out (rendering reads only these);
* ``lock``: makes one process the writer of a state directory.

The channels' ledgers (the invitations' outbox) keep their own tables in the same file
through ``Store.add_schema`` and ``Store.transaction``.

**The schema version** is SQLite's ``PRAGMA user_version`` in the file's header
(``schema.VERSION``; releases before 5 left 0, and their version is read from the
tables' shape). A store marked newer than this code is refused before any connection
that could write to it is made: the version is read from the header, or through a
read-only connection when a WAL is beside the file, so the file, its WAL and its tables
stay as they are (``StateError``, exit 2). An older store is copied with SQLite's backup
API to ``state.sqlite3.schema-N.bak`` beside it, then migrated by the steps in
``migrations.STEPS`` (one function per version) in one transaction. The read-only copy
(``Store.readonly``) is upgraded in memory only. A change to any table, here or in a
part's ``add_schema``, is ``VERSION + 1`` and one more step.

**Another program holding the database** (a backup tool, an ``sqlite3`` shell in a
transaction) is waited for up to ``files.BUSY_TIMEOUT`` (10 s), by writers and by the
read-only copy alike, then reported in one line (``StateError``): never a traceback,
never a hang.

May import: the foundation and ``programme``. Never rendering, delivery, web or service.
"""
