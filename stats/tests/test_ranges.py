"""Named periods as calendar arithmetic on the tenant's today; the rules of a range."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework import serializers

from stats.ranges import (
    STATS_RANGE_MAX_DAYS,
    Period,
    parse_period,
    period_dates,
    range_length_error,
)


@pytest.mark.parametrize(
    ("period", "today", "expected"),
    [
        (Period.LAST_MONTH, date(2025, 1, 15), (date(2024, 12, 1), date(2024, 12, 31))),
        (Period.LAST_MONTH, date(2024, 3, 31), (date(2024, 2, 1), date(2024, 2, 29))),
        (Period.THIS_WEEK, date(2025, 8, 11), (date(2025, 8, 11), date(2025, 8, 11))),  # Mon
        (Period.THIS_WEEK, date(2025, 8, 17), (date(2025, 8, 11), date(2025, 8, 17))),  # Sun
        (Period.THIS_WEEK, date(2025, 1, 1), (date(2024, 12, 30), date(2025, 1, 1))),
        (Period.THIS_QUARTER, date(2025, 3, 31), (date(2025, 1, 1), date(2025, 3, 31))),
        (Period.THIS_QUARTER, date(2025, 9, 30), (date(2025, 7, 1), date(2025, 9, 30))),
        (Period.THIS_QUARTER, date(2025, 12, 31), (date(2025, 10, 1), date(2025, 12, 31))),
        (Period.YESTERDAY, date(2025, 3, 1), (date(2025, 2, 28), date(2025, 2, 28))),
        (Period.LAST_30_DAYS, date(2025, 3, 1), (date(2025, 1, 31), date(2025, 3, 1))),
    ],
)
def test_period_edges(period, today, expected):
    assert period_dates(period=period, today=today) == expected


@given(today=st.dates(min_value=date(2000, 3, 1), max_value=date(2100, 1, 1)))
def test_every_period_is_an_answerable_range_that_ends_no_later_than_today(today):
    for period in Period:
        date_from, date_to = period_dates(period=period, today=today)
        assert range_length_error(date_from=date_from, date_to=date_to) is None
        assert date_to <= today
        if period is not Period.YESTERDAY and period is not Period.LAST_MONTH:
            assert date_to == today
    week_start, _ = period_dates(period=Period.THIS_WEEK, today=today)
    assert week_start.weekday() == 0 and today - week_start < timedelta(days=7)


def test_the_longest_quarter_is_the_longest_range():
    date_from, date_to = period_dates(period=Period.THIS_QUARTER, today=date(2025, 9, 30))
    assert (date_to - date_from).days + 1 == STATS_RANGE_MAX_DAYS
    assert range_length_error(date_from=date_from, date_to=date_to + timedelta(days=1))


def test_an_unknown_period_lists_the_known_ones():
    with pytest.raises(serializers.ValidationError) as raised:
        parse_period("fortnight")
    assert "the periods are today, yesterday, last_7_days" in str(raised.value.detail[0])
