"""klash-sync: the Klash mentoring programme in every mentor's calendar."""

from __future__ import annotations

__version__ = "0.1.0"
