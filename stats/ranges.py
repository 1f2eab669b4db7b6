"""Ranges of tenant-local days: the named periods, and the rules every requested range obeys.

A period is resolved from "today" in the tenant's time zone (carenotes.core.days.local_today,
the one place that knows the tenant-local day); from there it is calendar arithmetic on
dates. Weeks start on Monday. The periods that run to today (this_week, this_month,
this_quarter) end today, not at the end of the week, month or quarter.
"""

from datetime import date, timedelta
from enum import StrEnum

from rest_framework import serializers

# The longest range answered: a quarter has at most 92 days (July to September).
STATS_RANGE_MAX_DAYS = 92


class Period(StrEnum):
    TODAY = "today"
    YESTERDAY = "yesterday"
    LAST_7_DAYS = "last_7_days"
    LAST_30_DAYS = "last_30_days"
    THIS_WEEK = "this_week"
    THIS_MONTH = "this_month"
    LAST_MONTH = "last_month"
    THIS_QUARTER = "this_quarter"


PERIOD_DESCRIPTIONS = {
    Period.TODAY: "today",
    Period.YESTERDAY: "yesterday",
    Period.LAST_7_DAYS: "the 7 days ending today",
    Period.LAST_30_DAYS: "the 30 days ending today",
    Period.THIS_WEEK: "Monday of this week to today",
    Period.THIS_MONTH: "the 1st of this month to today",
    Period.LAST_MONTH: "the whole previous calendar month",
    Period.THIS_QUARTER: "the first day of this calendar quarter to today",
}


def parse_period(raw: str) -> Period:
    """Return the named period, or raise a ValidationError listing the names."""
    try:
        return Period(raw)
    except ValueError:
        names = ", ".join(period.value for period in Period)
        raise serializers.ValidationError(
            f"Unknown period {raw!r}; the periods are {names}."
        ) from None


def period_dates(*, period: Period, today: date) -> tuple[date, date]:
    """Return the first and last local day (inclusive) of ``period`` as seen on ``today``."""
    first_of_month = today.replace(day=1)
    if period is Period.TODAY:
        return today, today
    if period is Period.YESTERDAY:
        yesterday = today - timedelta(days=1)
        return yesterday, yesterday
    if period is Period.LAST_7_DAYS:
        return today - timedelta(days=6), today
    if period is Period.LAST_30_DAYS:
        return today - timedelta(days=29), today
    if period is Period.THIS_WEEK:
        return today - timedelta(days=today.weekday()), today
    if period is Period.THIS_MONTH:
        return first_of_month, today
    if period is Period.LAST_MONTH:
        last_of_previous = first_of_month - timedelta(days=1)
        return last_of_previous.replace(day=1), last_of_previous
    if period is Period.THIS_QUARTER:
        return first_of_month.replace(month=(today.month - 1) // 3 * 3 + 1), today
    raise AssertionError(f"unhandled period {period}")


def range_length_error(*, date_from: date, date_to: date) -> str | None:
    """Return why date_from..date_to is not an answerable range (reversed, too long), or None."""
    if date_to < date_from:
        return (
            f"date_to ({date_to.isoformat()}) is before date_from ({date_from.isoformat()}); "
            "give the first day as date_from and the last as date_to."
        )
    days = (date_to - date_from).days + 1
    if days > STATS_RANGE_MAX_DAYS:
        return (
            f"A range covers at most {STATS_RANGE_MAX_DAYS} days (both ends included); "
            f"{date_from.isoformat()} to {date_to.isoformat()} is {days}."
        )
    return None
