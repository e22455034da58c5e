"""Delivery: getting the programme into mentors' calendars, one folder per channel.

``caldav`` pushes events into CalDAV calendars; ``invite`` mails iMIP invitations.
Each channel says what should be where per recipient, reads what is there or was
sent, plans purely and applies while recording every confirmed effect.

May import: the foundation, ``programme``, ``state``, ``render`` and ``embedded``.
Never ``web``, ``service`` or ``cli``; channels do not import each other.
"""
