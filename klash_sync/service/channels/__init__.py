"""The delivery channels as the scheduler drives them: one adapter a channel.

Each adapter turns a snapshot into the channel's units, runs one unit through the
channel's own code in ``klash_sync.deliver``, and says what came of it in the
scheduler's terms (``scheduler.Outcome``, ``status.Record``). A new channel is a folder
under ``deliver/``, an adapter here, and one line in ``daemon.channels``.
"""
