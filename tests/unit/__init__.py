"""Unit tests: the pure parts (rendering, the planners, timing, dispatch) and static checks, no server."""
