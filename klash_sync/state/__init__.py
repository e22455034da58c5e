"""State: what klash-sync remembers between runs, in one SQLite file per state directory.

``store.Store`` is the one object the floors above use. It is put together from parts
that share one connection, one lock and one transaction helper (mixins over
``db.Database``), so each part is a module of one job while ``Store`` keeps one API:

* ``db``: opening the file (WAL, integrity check, moving a bad file aside, one-line
  errors), transactions, the "is it still the same file" check, the key-value table;
* ``schema``: the tables, and the upgrade of stores made by older releases;
* ``revisions``: session revisions (SEQUENCE, stamps under a high-water mark) and feed stamps;
* ``calendars``: what each calendar holds, its record, claims, moves, foreign resources;
* ``changelog``: the log of applied changes shown to people;
* ``records``: the plain values all of them hand out (rendering reads only these);
* ``lock``: makes one process the writer of a state directory.

The channels' ledgers (the invitations' outbox) keep their own tables in the same file
through ``Store.add_schema`` and ``Store.transaction``.

May import: the foundation and ``programme``. Never rendering, delivery, web or service.
"""
