"""The e-mail channel: iMIP invitations for mentors whose calendars CalDAV cannot reach.

``plan`` decides purely what to send, ``message`` builds each e-mail, ``smtp`` hands it to
the mail server, ``outbox`` records what was sent, ``channel`` runs a pass.
"""
