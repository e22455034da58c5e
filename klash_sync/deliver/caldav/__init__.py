"""The CalDAV channel: each mentor's calendar on their own server, or on the embedded one.

``jobs`` says what each calendar should hold (the channel's desired state and results),
``remote`` reads what a calendar holds, ``answers`` records what mentors answered on
their copies, ``plan`` is the pure planner, ``apply`` writes
with preconditions and records each confirmed write, ``sync`` runs a pass.
The adapter (the only code that speaks CalDAV) is ``calendar.CalDAVCalendar``: reading
and conditional writes, over ``discovery`` (finding or creating the collection), over
``webdav`` (one counted request on ``pool``'s shared connections, multistatus parsing,
href spelling), with failures put in our error tree by ``translate``.
"""
