"""The CalDAV channel: each mentor's calendar on their own server, or on the embedded one.

``jobs`` says what each calendar should hold (the channel's desired state and results),
``calendar`` is the adapter (the only code that speaks CalDAV) and ``pool`` its shared
connections, ``remote`` reads what a calendar holds, ``plan`` is the pure planner,
``apply`` writes with preconditions and records each confirmed write, ``sync`` runs a pass.
"""
