"""The service: the long-running daemon and the rooms it is made of.

``daemon`` runs the loop (one screen) and wires the channels; ``watch`` notices edits of
the programme, ``reload`` loads it (or keeps the last good one) and ``publish`` revises
and renders it; ``scheduler`` delivers through every channel (``channels/``: one adapter a
channel), with ``dispatch`` deciding which unit runs next and ``timing`` the debounce,
backoff and periodic pass; ``health`` and ``metrics`` report over ``klash_sync.status``;
``control`` carries operator requests; ``loopback`` serves /dav/ to one-shot commands.

May import everything below it; never ``cli``.
"""
