"""The local calendar day of a time zone: today, the day of an instant, a day's UTC bounds."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone


def local_today(*, timezone_name: str, now: datetime | None = None) -> date:
    """Return today's date in the time zone ``timezone_name``."""
    return local_date(instant=now or timezone.now(), timezone_name=timezone_name)


def local_date(*, instant: datetime, timezone_name: str) -> date:
    """Return the calendar day ``instant`` (aware) falls on in ``timezone_name``."""
    return instant.astimezone(ZoneInfo(timezone_name)).date()


def local_day_bounds(*, day: date, timezone_name: str) -> tuple[datetime, datetime]:
    """Return [local midnight, next local midnight) of ``day`` in UTC; 23 h or 25 h on DST days.

    A midnight that does not exist or occurs twice (zones that switch at 00:00) resolves with
    fold=0, for both ends alike, so consecutive days still tile the time line.
    """
    zone = ZoneInfo(timezone_name)
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)
