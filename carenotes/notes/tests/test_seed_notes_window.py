"""seed_notes note times: never after the moment the run starts, reproducible for past windows."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError
from django.db.models import Max
from django.utils import timezone

from carenotes.core.days import local_date, local_day_bounds
from carenotes.notes import seeding
from carenotes.notes.models import CareNote
from carenotes.notes.tests.test_seed_notes import (
    DISTRIBUTION_NOTES,
    END_DATE,
    SMALL,
    _call,
    _compact_tables_afterwards,  # noqa: F401 (autouse: compacts what these tests bloat)
    _notes,
    _row_counts,
    _seed,
    _small_args,
)
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

# Mid-morning of END_DATE in London: the middle of the last day in every default zone.
PARTIAL_DAY_NOW = datetime(2025, 1, 31, 10, 30, 15, tzinfo=UTC)


def _latest_per_tenant() -> dict[int, datetime]:
    rows = CareNote.objects.values("tenant_id").annotate(latest=Max("created_at"))
    return {row["tenant_id"]: row["latest"] for row in rows}


def test_the_command_dates_no_note_after_it_started_yet_fills_today(tmp_path):
    started = timezone.now()
    args = [arg for arg in _small_args() if not arg.startswith("--end-date=")]
    _call(*args, credentials=tmp_path / "c.json", quiet=True)
    assert CareNote.objects.filter(created_at__gt=started).count() == 0
    assert CareNote.objects.count() == SMALL["notes"]
    # Today (up to now) is in the window: where half a day has passed, it holds notes. At
    # any hour, half a day has passed in at least one of the three default zones.
    checked = 0
    for tenant in Tenant.objects.all():
        today = local_date(instant=started, timezone_name=tenant.timezone)
        today_start, _ = local_day_bounds(day=today, timezone_name=tenant.timezone)
        if started - today_start > timedelta(hours=12):
            assert CareNote.objects.filter(tenant=tenant, created_at__gte=today_start).exists()
            checked += 1
    assert checked >= 1


def test_a_window_reaching_now_ends_at_now_in_every_zone():
    result = _seed(notes=DISTRIBUTION_NOTES, now=PARTIAL_DAY_NOW)
    latest = _latest_per_tenant()
    assert set(latest) == set(result.tenant_ids)
    assert max(latest.values()) < PARTIAL_DAY_NOW
    # The cut is at now, not at the end of the day before (05:00 UTC in New York, the
    # latest of the three): the hours just before now hold notes in every zone.
    assert min(latest.values()) > PARTIAL_DAY_NOW - timedelta(hours=5)
    assert CareNote.objects.count() == DISTRIBUTION_NOTES


def test_note_window_is_whole_days_in_the_past_and_cut_at_now_otherwise():
    config = seeding.seed_config_build(**{**SMALL, "now": PARTIAL_DAY_NOW})
    window = seeding.note_window(config=config, timezone_name="Australia/Sydney")
    first_day = END_DATE - timedelta(days=SMALL["days"] - 1)
    start, _ = local_day_bounds(day=first_day, timezone_name="Australia/Sydney")
    assert window == seeding.NoteWindow(end_date=END_DATE, start=start, end=PARTIAL_DAY_NOW)
    later = seeding.seed_config_build(**{**SMALL, "now": PARTIAL_DAY_NOW + timedelta(days=2)})
    _, after_end = local_day_bounds(day=END_DATE, timezone_name="Australia/Sydney")
    assert seeding.note_window(config=later, timezone_name="Australia/Sydney").end == after_end


def test_default_end_date_is_today_in_each_zone_at_the_run_start():
    now = datetime(2025, 1, 31, 20, 0, tzinfo=UTC)  # already 1 February in Sydney
    config = seeding.seed_config_build(**{**SMALL, "end_date": None, "now": now})
    window = seeding.note_window(config=config, timezone_name="Australia/Sydney")
    assert (window.end_date, window.end) == (END_DATE + timedelta(days=1), now)
    assert seeding.note_window(config=config, timezone_name="Europe/London").end_date == END_DATE


def test_a_past_end_date_gives_the_same_rows_whenever_the_run_happens():
    _seed(now=datetime(2025, 2, 1, 12, 0, tzinfo=UTC))
    first = _notes()
    _seed(mode="reset", now=datetime(2026, 7, 4, 3, 0, tzinfo=UTC))
    assert _notes() == first
    # The end of 31 January in New York, the last of the three zones to finish it.
    assert max(row[-1] for row in first) < datetime(2025, 2, 1, 5, 0, tzinfo=UTC)


def test_same_seed_and_now_give_the_same_rows_when_the_window_reaches_now():
    _seed(now=PARTIAL_DAY_NOW)
    first = _notes()
    _seed(mode="reset", now=PARTIAL_DAY_NOW)
    assert _notes() == first


def test_an_end_date_that_has_not_begun_is_refused_before_writing(tmp_path):
    tomorrow = (timezone.now() + timedelta(days=2)).date().isoformat()
    credentials = tmp_path / "c.json"
    with pytest.raises(CommandError, match=r"--end-date: .* has not begun yet in"):
        _call(*_small_args(end_date=tomorrow, days=1), credentials=credentials, quiet=True)
    assert _row_counts() == {"tenants": 0, "users": 0, "patients": 0, "notes": 0}
    assert not credentials.exists()


def test_local_hours_follow_the_weights_up_to_now_on_the_last_day():
    # The last day, cut at now, holds only hours before now and in the same proportions.
    london = "Europe/London"
    _seed(notes=DISTRIBUTION_NOTES, tenants=1, timezones=london, now=PARTIAL_DAY_NOW)
    day_start, _ = local_day_bounds(day=END_DATE, timezone_name=london)
    last_day = CareNote.objects.filter(created_at__gte=day_start)
    hours = sorted({instant.hour for instant in last_day.values_list("created_at", flat=True)})
    assert hours == list(range(11))  # 00:00 to 10:30 London time (UTC in January)
    per_full_day = DISTRIBUTION_NOTES / (SMALL["days"] - 1 + _elapsed_share(PARTIAL_DAY_NOW))
    expected = per_full_day * _elapsed_share(PARTIAL_DAY_NOW)
    assert abs(last_day.count() - expected) < 5 * expected**0.5  # five standard deviations


def _elapsed_share(now: datetime) -> float:
    """Share of a London January day's note weight that lies before ``now`` (UTC = local)."""
    weights = seeding.HOUR_WEIGHTS
    full_hours = sum(weights[: now.hour])
    partial = weights[now.hour] * (now.minute * 60 + now.second) / 3600
    return (full_hours + partial) / sum(weights)
