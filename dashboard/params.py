"""The dashboard's URL parameters: what a bookmarked or shared dashboard URL may say.

Parsed with the same functions and bounds as the API (carenotes.core.params, stats.ranges);
anything wrong is a DashboardParamError naming the parameter, shown as a 400 page.
"""

from dataclasses import dataclass, replace
from datetime import date, timedelta
from urllib.parse import urlencode

from django.http import QueryDict
from rest_framework import serializers

from carenotes.core.days import local_today
from carenotes.core.params import STATS_DATE_MIN, one_year_after, parse_facility_ids, parse_iso_date
from carenotes.notes.selectors import (
    ATTENTION_HOURS_DEFAULT,
    ATTENTION_HOURS_MAX,
    ATTENTION_HOURS_MIN,
    AttentionCursor,
    NoteCursor,
)
from stats.ranges import Period, parse_period, period_dates, range_length_error
from tenants.principal import TenantInfo

CUSTOM_PERIOD = "custom"
DEFAULT_PERIOD = Period.LAST_7_DAYS
SCOPE_PARAMS = ("period", "date_from", "date_to", "facility_ids", "hours")
CURSOR_PARAM = "cursor"


class DashboardParamError(Exception):
    """A URL parameter of a dashboard page is wrong; ``param`` names it."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class DashboardScope:
    """What a dashboard shows: a range of tenant-local days, facilities, the attention window."""

    tenant: TenantInfo
    period: str  # a stats.ranges.Period value, or CUSTOM_PERIOD
    date_from: date
    date_to: date
    facility_ids: tuple[int, ...] | None  # None: every facility of the tenant
    hours: int

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    def previous(self) -> "DashboardScope":
        """Return the scope of the period of the same length that ends the day before."""
        length = timedelta(days=self.days)
        return replace(
            self,
            period=CUSTOM_PERIOD,
            date_from=self.date_from - length,
            date_to=self.date_to - length,
        )

    def query_items(self) -> list[tuple[str, str]]:
        """Return the URL parameters that say this scope (a preset, not its dates)."""
        items = [("period", self.period)]
        if self.period == CUSTOM_PERIOD:
            items += [
                ("date_from", self.date_from.isoformat()),
                ("date_to", self.date_to.isoformat()),
            ]
        if self.facility_ids is not None:
            items.append(("facility_ids", ",".join(map(str, self.facility_ids))))
        if self.hours != ATTENTION_HOURS_DEFAULT:
            items.append(("hours", str(self.hours)))
        return items

    def query_string(self) -> str:
        return urlencode(self.query_items())


def _single(params: QueryDict, name: str) -> str | None:
    values = params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise DashboardParamError(name, "give this parameter once.")
    return values[0]


def _facility_ids(params: QueryDict, tenant: TenantInfo) -> tuple[int, ...] | None:
    # A <select multiple> sends facility_ids once per choice; a shared link may join them.
    raw = ",".join(value for value in params.getlist("facility_ids") if value != "")
    if raw == "":
        return None
    try:
        ids = parse_facility_ids(raw)
    except serializers.ValidationError as exc:
        raise DashboardParamError("facility_ids", str(exc.detail[0])) from None
    foreign = sorted(set(ids) - set(tenant.facility_ids))
    if foreign:
        listed = ", ".join(map(str, foreign))
        raise DashboardParamError("facility_ids", f"not facilities of this tenant: {listed}.")
    return ids


def _date(params: QueryDict, name: str, *, today: date) -> date:
    raw = _single(params, name)
    if raw is None:
        raise DashboardParamError(name, "a custom range needs date_from and date_to (YYYY-MM-DD).")
    try:
        value = parse_iso_date(raw)
    except serializers.ValidationError as exc:
        raise DashboardParamError(name, str(exc.detail[0])) from None
    latest = one_year_after(today)
    if not STATS_DATE_MIN <= value <= latest:
        raise DashboardParamError(
            name, f"dates run from {STATS_DATE_MIN.isoformat()} to {latest.isoformat()}."
        )
    return value


def _dates(params: QueryDict, period: str, *, today: date) -> tuple[date, date]:
    if period != CUSTOM_PERIOD:
        # A preset is resolved from today; dates sent beside it (the form always sends the
        # shown ones) are not read.
        return period_dates(period=Period(period), today=today)
    date_from = _date(params, "date_from", today=today)
    date_to = _date(params, "date_to", today=today)
    error = range_length_error(date_from=date_from, date_to=date_to)
    if error is not None:
        raise DashboardParamError("date_to", error)
    return date_from, date_to


def _period(params: QueryDict) -> str:
    raw = _single(params, "period")
    if raw is None:
        has_dates = params.get("date_from") or params.get("date_to")
        return CUSTOM_PERIOD if has_dates else DEFAULT_PERIOD.value
    if raw == CUSTOM_PERIOD:
        return raw
    try:
        return parse_period(raw).value
    except serializers.ValidationError as exc:
        message = f"{exc.detail[0]} Or {CUSTOM_PERIOD} with date_from and date_to."
        raise DashboardParamError("period", message) from None


def _hours(params: QueryDict) -> int:
    raw = _single(params, "hours")
    if raw is None or raw == "":
        return ATTENTION_HOURS_DEFAULT
    if (
        not raw.isascii()
        or not raw.isdigit()
        or not (ATTENTION_HOURS_MIN <= int(raw) <= ATTENTION_HOURS_MAX)
    ):
        raise DashboardParamError(
            "hours",
            f"a whole number of hours from {ATTENTION_HOURS_MIN} to {ATTENTION_HOURS_MAX}, "
            f"got {raw!r}.",
        )
    return int(raw)


def dashboard_scope_parse(
    *, params: QueryDict, tenant: TenantInfo, extra: tuple[str, ...] = ()
) -> DashboardScope:
    """Return the scope a dashboard URL asks for; raise DashboardParamError naming a bad one.

    ``extra``: further parameters the page reads itself (a page cursor).
    """
    allowed = set(SCOPE_PARAMS) | set(extra)
    for name in params:
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise DashboardParamError(name, f"unknown parameter; the parameters are {known}.")
    today = local_today(timezone_name=tenant.timezone)
    period = _period(params)
    date_from, date_to = _dates(params, period, today=today)
    return DashboardScope(
        tenant=tenant,
        period=period,
        date_from=date_from,
        date_to=date_to,
        facility_ids=_facility_ids(params, tenant),
        hours=_hours(params),
    )


def note_cursor_parse(params: QueryDict) -> NoteCursor | None:
    """Return the high-priority feed's page cursor, or None for the first page."""
    raw = _single(params, CURSOR_PARAM)
    if raw is None:
        return None
    try:
        return NoteCursor.decode(raw)
    except ValueError:
        raise DashboardParamError(CURSOR_PARAM, "not a page cursor; use the Next link.") from None


def attention_cursor_parse(params: QueryDict) -> AttentionCursor | None:
    """Return the attention list's page cursor, or None for the first page."""
    raw = _single(params, CURSOR_PARAM)
    if raw is None:
        return None
    try:
        return AttentionCursor.decode(raw)
    except ValueError:
        raise DashboardParamError(CURSOR_PARAM, "not a page cursor; use the Next link.") from None
