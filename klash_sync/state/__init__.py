"""State: what klash-sync remembers between runs, in one SQLite file per state directory.

``store`` keeps session revisions (SEQUENCE, stamps), feed stamps, what each calendar
holds, the change log and the channels' ledgers; ``lock`` makes one process the writer;
``records`` are the plain values it hands out.

May import: the foundation and ``programme``. Never rendering, delivery, web or service.
"""
