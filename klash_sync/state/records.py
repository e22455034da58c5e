"""Records the state store hands out, as plain values that every floor above may read:
a session's revision, and one entry of the change log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Revision:
    """What the state store knows of a session's history: its SEQUENCE and when it changed."""

    sequence: int
    changed: datetime
    created: datetime

    @classmethod
    def zero(cls) -> Revision:
        """A fixed revision for fingerprints, where only the content must count."""
        return cls(0, _EPOCH, _EPOCH)


@dataclass(frozen=True)
class Change:
    seq: int
    at: datetime
    session: str
    kind: str
    text_fi: str
    text_en: str
    text_sv: str = ""
