"""Unit tests: the pure parts (rendering, the planners, routing, the delivery base, the
scheduler on a fake clock, timing, dispatch) and static checks of the house; no server."""
