"""The service: the long-running daemon and what it is made of.

``daemon`` runs the loop, ``publish`` revises and renders a programme, ``dispatch`` and
``timing`` decide when each job runs, ``control`` takes operator requests,
``observe`` answers /healthz and /metrics, ``live`` is what the web reads.

May import everything below it; never ``cli``.
"""
