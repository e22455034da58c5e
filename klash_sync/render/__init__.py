"""Rendering: a programme (and its revisions) becomes bytes. Pure and deterministic.

``ical`` makes events and feeds, ``vtimezone`` the time zones, ``normalise`` reads an
event back into comparable content, ``changes`` words a change for people, ``snapshot``
holds everything rendered from one programme, ``participation`` names the organiser and
asks the mentor on a copy pushed to their calendar. Nothing here reads the clock, the network
or a file: time and identity are passed in, so the same input gives the same bytes.

May import: the foundation, ``programme`` and the value records of ``state``.
"""
