"""The CalDAV channel: each mentor's calendar on their own server, or on the embedded one.

``calendar`` is the adapter (the only code that speaks CalDAV), ``pool`` its shared
connections, ``plan`` the pure planner, ``sync`` lists, plans and applies per calendar.
"""
