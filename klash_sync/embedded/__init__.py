"""The embedded CalDAV server: Radicale as a library, its accounts and its storage.

Mentors without a calendar server of their own get a calendar here, mounted by the web
app at /dav/ and written by the CalDAV channel like any other server. ``mount.Embedded``
is the one object the floors above use: the WSGI mount, the storage and its paths, and
the upgrade of old layouts (``migrate``), over ``accounts.Accounts`` (the service's and
the mentors' logins, bcrypt hashes in htpasswd, the rights file) and ``logins.Logins``
(the check of every request's credentials before Radicale, and the failed-login budget).

May import: the foundation. Never delivery, web or service (they use it, not the reverse).
"""
