"""The embedded CalDAV server: Radicale as a library, its accounts and its storage.

Mentors without a calendar server of their own get a calendar here, mounted by the web
app at /dav/ and written by the CalDAV channel like any other server.

May import: the foundation. Never delivery, web or service (they use it, not the reverse).
"""
