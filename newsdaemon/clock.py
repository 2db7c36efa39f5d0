"""UTC time for the daemon's records: the current time, and ISO text to and from datetimes."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["utcnow", "iso", "parse_time"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
