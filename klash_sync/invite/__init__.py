"""E-mail invitations (iMIP): the delivery channel for mentors whose calendars CalDAV cannot reach.

plan (pure) -> message (pure e-mail building) -> smtp (transport) -> outbox (state) -> channel.
"""
