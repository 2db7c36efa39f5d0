"""Schedules: cron expressions, time zones and durations parsed, and one schedule per topic.

Pure functions around APScheduler 3.x triggers; nothing here touches the database or processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = [
    "DEFAULT_CRON",
    "ScheduleError",
    "parse_cron",
    "parse_timezone",
    "parse_duration",
    "TopicSchedule",
    "build_schedules",
    "next_due_after",
]

DEFAULT_CRON = "0 6 * * *"


class ScheduleError(ValueError):
    """A bad schedule, time zone or duration, with a message naming where it came from."""


_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_CRON_FIELD_NAMES = {"day": "day of month", "day_of_week": "day of week"}
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: 0 (and 7) = Sunday


def parse_cron(expr: str, tz) -> CronTrigger:
    """A CronTrigger for a standard 5-field crontab expression (or @daily & co) in ``tz``.

    Day-of-week numbers follow cron (0 or 7 = Sunday), not APScheduler 3.x (0 = Monday).
    Raises ScheduleError naming the faulty field.
    """
    text = " ".join(str(expr).split())
    text = _CRON_ALIASES.get(text.lower(), text)
    if text.startswith("@"):
        raise ScheduleError(f"{expr!r}: unknown shortcut; use one of {', '.join(sorted(_CRON_ALIASES))} or 5 cron fields")
    values = text.split(" ")
    if len(values) != 5:
        raise ScheduleError(
            f"{expr!r} has {len(values)} field(s); a cron expression has 5: minute hour day-of-month month day-of-week, "
            f"e.g. \"0 6 * * *\" for 06:00 every day"
        )
    fields = dict(zip(_CRON_FIELDS, values))
    fields["day_of_week"] = _cron_weekdays(fields["day_of_week"], expr)
    for name, value in fields.items():  # one at a time, so the message can name the field
        try:
            CronTrigger(**{name: value}, timezone=tz)
        except ValueError as exc:
            label = _CRON_FIELD_NAMES.get(name, name)
            raise ScheduleError(f"{expr!r}: bad {label} field {value!r}: {exc}") from None
    return CronTrigger(**fields, timezone=tz)


def _cron_weekdays(value: str, expr: str) -> str:
    """Translate a cron day-of-week field into APScheduler 3.x day names."""
    if value in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in value.lower().split(","):
        days |= _cron_weekday_part(part, expr)
    if len(days) == 7:
        return "*"
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def _cron_weekday_part(part: str, expr: str) -> set[int]:
    match = re.fullmatch(r"(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/(\d+))?", part)
    if not match or (match.group(1) == "*" and match.group(2)):
        raise ScheduleError(f"{expr!r}: bad day of week field: {part!r} is not a day, a range or a step (e.g. 1-5, mon,wed, */2)")
    start, end, step = match.groups()
    if start == "*":
        first, last = 0, 6
    else:
        first = _cron_weekday(start, expr)
        last = _cron_weekday(end, expr) if end else (6 if step else first)
    if last < first:
        raise ScheduleError(f"{expr!r}: bad day of week field: range {part!r} runs backwards; write it as e.g. 1-5 or mon-fri")
    stride = int(step) if step else 1
    if stride < 1:
        raise ScheduleError(f"{expr!r}: bad day of week field: step in {part!r} must be at least 1")
    return {day % 7 for day in range(first, last + 1, stride)}


def _cron_weekday(token: str, expr: str) -> int:
    """0-7 as written (7 = Sunday again, so that 1-7 works), or a day name as 0-6."""
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token in _DAY_NAMES:
        return _DAY_NAMES.index(token)
    raise ScheduleError(f"{expr!r}: bad day of week field: {token!r} is not a day (0-7, 0 and 7 = Sunday, or sun-sat)")


def parse_timezone(name: str | None):
    """The named IANA time zone, or the server's own when ``name`` is empty."""
    if not name:
        import tzlocal  # an APScheduler 3.x dependency

        return tzlocal.get_localzone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC") from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '30m', '2h' or '1d'."""
    match = _DURATION.match(str(text))
    if not match:
        raise ScheduleError(f"{text!r} is not a duration; write seconds (90) or use a unit: 90s, 30m, 2h, 1d")
    number, unit = match.groups()
    return float(number) * _UNITS[unit.lower() if unit else None]


@dataclass(frozen=True)
class TopicSchedule:
    name: str
    trigger: CronTrigger | IntervalTrigger
    expr: str  # as given, for display
    source: str  # default | --cron | topics file | --interval
    interval: float | None = None

    @property
    def job_id(self) -> str:
        return f"topic:{self.name}"


def build_schedules(topics, *, default_cron: str, cron_source: str, tz, interval: float | None, topics_path) -> list[TopicSchedule]:
    """One schedule per topic: --interval, else the topic's own `schedule`, else --cron / the default."""
    if interval is not None:
        return [
            TopicSchedule(t.name, IntervalTrigger(seconds=interval, timezone=tz), f"every {interval:g}s", "--interval", interval)
            for t in topics
        ]
    try:
        default = parse_cron(default_cron, tz)
    except ScheduleError as exc:
        raise ScheduleError(f"{cron_source}: {exc}") from None
    schedules = []
    for index, topic in enumerate(topics, 1):
        if topic.schedule:
            try:
                trigger = parse_cron(topic.schedule, tz)
            except ScheduleError as exc:
                raise ScheduleError(f"{topics_path}: topic #{index} ({topic.name!r}), field 'schedule': {exc}") from None
            schedules.append(TopicSchedule(topic.name, trigger, topic.schedule, "topics file"))
        else:
            schedules.append(TopicSchedule(topic.name, default, default_cron, cron_source))
    return schedules


def next_due_after(schedule: TopicSchedule, when: datetime) -> datetime:
    """The first scheduled time strictly after ``when``."""
    if schedule.interval is not None:
        return when + timedelta(seconds=schedule.interval)
    return schedule.trigger.get_next_fire_time(None, when + timedelta(microseconds=1))
