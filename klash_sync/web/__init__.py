"""The web face: feeds, the page, the static site, health and metrics endpoints, /dav/.

``app`` is the WSGI application, ``page`` and ``templates`` the HTML, ``atom`` the change
feed, ``static`` the exported site, ``server`` the waitress server around the app.

May import: the foundation, ``programme``, ``state``, ``render`` and ``embedded``, and
the status the service publishes. Never ``deliver`` internals, ``service`` or ``cli``.
"""
