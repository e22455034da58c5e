"""The CalDAV channel: each mentor's calendar on their own server, or on the embedded one.

The adapter (the only code that speaks CalDAV) is ``calendar.CalDAVCalendar``: reading
and conditional writes, over ``discovery`` (finding or creating the collection), over
``webdav`` (one counted request on ``pool``'s shared connections, multistatus parsing,
href spelling), with failures put in our error tree by ``translate``. ``plan`` is the
pure planner, ``sync`` lists, plans and applies per calendar.
"""
