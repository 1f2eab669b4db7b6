"""The local day: its UTC bounds follow DST (23 h and 25 h days) and are local midnights."""

from datetime import UTC, date, datetime, timedelta

import pytest

from carenotes.core.days import local_day_bounds


@pytest.mark.parametrize(
    ("timezone_name", "day", "hours"),
    [
        ("Europe/London", date(2025, 3, 30), 23),
        ("Europe/London", date(2025, 10, 26), 25),
        ("America/New_York", date(2025, 3, 9), 23),
        ("America/New_York", date(2025, 11, 2), 25),
        ("Asia/Kolkata", date(2025, 3, 30), 24),
    ],
)
def test_local_day_bounds_follow_dst(timezone_name, day, hours):
    start, end = local_day_bounds(day=day, timezone_name=timezone_name)
    assert end - start == timedelta(hours=hours)


def test_local_day_bounds_are_local_midnights_in_utc():
    assert local_day_bounds(day=date(2025, 10, 26), timezone_name="Europe/London") == (
        datetime(2025, 10, 25, 23, 0, tzinfo=UTC),  # 00:00 BST
        datetime(2025, 10, 27, 0, 0, tzinfo=UTC),  # 00:00 GMT
    )
    assert local_day_bounds(day=date(2025, 3, 10), timezone_name="Asia/Kolkata") == (
        datetime(2025, 3, 9, 18, 30, tzinfo=UTC),
        datetime(2025, 3, 10, 18, 30, tzinfo=UTC),
    )
