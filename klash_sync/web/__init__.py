"""The web face: feeds, the page, the static site, health and metrics endpoints, /dav/.

``app`` is the WSGI application, ``page``, ``texts`` and ``templates`` the HTML, ``atom``
the change feed, ``static`` the exported site, ``server`` the waitress server around the app.

May import: the foundation, ``programme``, ``state``, ``render``, ``embedded`` and
``klash_sync.status`` (what the service knows, filled by it). Never ``deliver``,
``service`` or ``cli``.
"""
