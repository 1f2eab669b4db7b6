"""API view of the care analytics: GET /api/care-stats/, for a local day or a range of days."""

import time
from contextlib import ExitStack, contextmanager
from datetime import date

from django.db import connections
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from carenotes.core.days import local_today
from carenotes.core.params import (
    BIGINT_MAX,
    STATS_DATE_MIN,
    STATS_MAX_FACILITY_IDS,
    PositiveIdField,
    facility_ids_of_tenant,
    one_year_after,
    parse_facility_ids,
    parse_iso_date,
    query_param_errors,
)
from carenotes.core.request_state import request_state
from carenotes.notes.models import Category
from stats.cache import CacheStatus, care_stats_get_cached, care_stats_range_get_cached
from stats.fastpath import SCOPE_STATS, care_stats_warm_hit
from stats.ranges import (
    PERIOD_DESCRIPTIONS,
    STATS_RANGE_MAX_DAYS,
    Period,
    parse_period,
    period_dates,
    range_length_error,
)
from stats.selectors import PRIORITY_KEYS, CareRangeStats, CareStats
from tenants.selectors import tenant_get_for_request


class FacilityIdsField(serializers.Field):
    """Comma-separated positive ids, at most STATS_MAX_FACILITY_IDS; returned sorted, unique."""

    def to_internal_value(self, data) -> tuple[int, ...]:
        return parse_facility_ids(str(data))


class IsoDateField(serializers.Field):
    """A calendar date written exactly as YYYY-MM-DD."""

    def to_internal_value(self, data) -> date:
        return parse_iso_date(str(data))


class PeriodField(serializers.Field):
    """One of the named periods of stats.ranges.Period."""

    def to_internal_value(self, data) -> Period:
        return parse_period(str(data))


# The ways of naming the days of an answer; a request uses at most one (none: today).
DAY_FORMS = (("date",), ("date_from", "date_to"), ("period",))
EXCLUSIVE_DAYS_MESSAGE = (
    "Give one of date, date_from with date_to, or period: they exclude each other."
)


class _FixedCountsSerializer(serializers.Serializer):
    """A count per key of a fixed key set (every key present, zeros included)."""

    keys: tuple[str, ...] = ()

    def get_fields(self):
        return {key: serializers.IntegerField(min_value=0) for key in self.keys}


@extend_schema_serializer(component_name="CareStatsByCategory")
class ByCategorySerializer(_FixedCountsSerializer):
    keys = tuple(Category.values)


@extend_schema_serializer(component_name="CareStatsByPriority")
class ByPrioritySerializer(_FixedCountsSerializer):
    keys = PRIORITY_KEYS


@extend_schema_serializer(component_name="CareStatsRangeDay")
class RangeDaySerializer(serializers.Serializer):
    """One local day of a range answer."""

    date = serializers.DateField()
    total_notes = serializers.IntegerField(min_value=0)
    by_category = ByCategorySerializer()
    by_priority = ByPrioritySerializer()


@extend_schema_serializer(component_name="ErrorDetail")
class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "One entry per offending query parameter, DRF's error format.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "example": {"facility_ids": ["Not facilities of this tenant: 7."]},
}


def _example_counts(medication: int, observation: int, treatment: int, *by_priority: int):
    return {
        "by_category": {
            "medication": medication,
            "observation": observation,
            "treatment": treatment,
        },
        "by_priority": {str(priority): n for priority, n in enumerate(by_priority, start=1)},
    }


ANSWER_EXAMPLES = [
    OpenApiExample(
        "One day",
        summary="?tenant_id=1&date=2025-03-10",
        response_only=True,
        value={
            "tenant_id": 1,
            "date": "2025-03-10",
            "timezone": "Europe/London",
            "facility_ids": [1, 2],
            "total_notes": 4,
            **_example_counts(2, 1, 1, 1, 1, 0, 0, 2),
            "by_facility": {"1": 3, "2": 1},
            "patients": 3,
            "avg_notes_per_patient": 1.33,
        },
    ),
    OpenApiExample(
        "A range of days",
        summary="?tenant_id=1&date_from=2025-03-09&date_to=2025-03-11 (or a period)",
        response_only=True,
        value={
            "tenant_id": 1,
            "date_from": "2025-03-09",
            "date_to": "2025-03-11",
            "timezone": "Europe/London",
            "facility_ids": [1, 2],
            "total_notes": 7,
            **_example_counts(3, 2, 2, 1, 2, 1, 1, 2),
            "by_facility": {"1": 5, "2": 2},
            "patients": 3,
            "avg_notes_per_patient": 2.33,
            "by_day": [
                {"date": "2025-03-09", "total_notes": 3, **_example_counts(1, 1, 1, 0, 1, 1, 1, 0)},
                {"date": "2025-03-10", "total_notes": 4, **_example_counts(2, 1, 1, 1, 1, 0, 0, 2)},
                {"date": "2025-03-11", "total_notes": 0, **_example_counts(0, 0, 0, 0, 0, 0, 0, 0)},
            ],
        },
    ),
]


class ServerTiming:
    """Accumulates the time a request spends in PostgreSQL and in the stats cache."""

    def __init__(self) -> None:
        self.db_seconds = 0.0
        self.cache_seconds = 0.0

    def _time_query(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.db_seconds += time.perf_counter() - started

    @contextmanager
    def measuring_db(self):
        # Every configured database: a read may be answered by a replica.
        with ExitStack() as stack:
            for alias in connections:
                stack.enter_context(connections[alias].execute_wrapper(self._time_query))
            yield

    def header(self) -> str:
        return f"db;dur={self.db_seconds * 1000:.2f}, cache;dur={self.cache_seconds * 1000:.2f}"


class CareStatsView(APIView):
    """One tenant's care notes of a local day or a range of days, counted; from Redis if fresh.

    Order of checks, so that a caller outside the tenant learns nothing: credentials (401),
    a repeated parameter (400, with the unknown ones: names only, whatever the values), a
    well-formed ``tenant_id`` (400), membership (404 — the same for a tenant that does not
    exist), then every other parameter (400), then the work.
    """

    class TenantSerializer(serializers.Serializer):
        tenant_id = PositiveIdField(
            error_messages={"required": "Give the id of the tenant to report on: tenant_id=1."}
        )

    class InputSerializer(TenantSerializer):
        facility_ids = FacilityIdsField(required=False)
        date = IsoDateField(required=False)
        date_from = IsoDateField(required=False)
        date_to = IsoDateField(required=False)
        period = PeriodField(required=False)

        def to_internal_value(self, data: QueryDict) -> dict:
            errors = query_param_errors(data, known=set(self.fields), reject_blank=False)
            try:
                values = super().to_internal_value(data.dict())
            except serializers.ValidationError as exc:
                errors = {**exc.detail, **errors}
            if errors:
                raise serializers.ValidationError(errors)
            return values

        def validate_facility_ids(self, value: tuple[int, ...]) -> tuple[int, ...]:
            # Checked against the cached tenant facts: no query.
            tenant = self.context["tenant"]
            return facility_ids_of_tenant(value, tenant_facility_ids=tenant.facility_ids)

        def validate_date(self, value: date) -> date:
            latest = one_year_after(self._today())
            if not STATS_DATE_MIN <= value <= latest:
                raise serializers.ValidationError(
                    f"Dates run from {STATS_DATE_MIN.isoformat()} to {latest.isoformat()} "
                    "(a year after today in the tenant's time zone)."
                )
            return value

        validate_date_from = validate_date_to = validate_date

        def validate(self, attrs: dict) -> dict:
            """Resolve the days asked for: ``date``, or ``date_from`` and ``date_to``."""
            forms = [form for form in DAY_FORMS if any(name in attrs for name in form)]
            if len(forms) > 1:
                given = [name for form in forms for name in form if name in attrs]
                raise serializers.ValidationError(
                    {name: [EXCLUSIVE_DAYS_MESSAGE] for name in given}
                )
            if "period" in attrs:
                attrs["date_from"], attrs["date_to"] = period_dates(
                    period=attrs.pop("period"), today=self._today()
                )
            elif "date_from" in attrs or "date_to" in attrs:
                self._check_range(attrs)
            else:
                attrs.setdefault("date", self._today())
            return attrs

        def _check_range(self, attrs: dict) -> None:
            for given, missing in (("date_from", "date_to"), ("date_to", "date_from")):
                if missing not in attrs:
                    raise serializers.ValidationError(
                        {missing: [f"Give {missing} with {given}: a range names both ends."]}
                    )
            error = range_length_error(date_from=attrs["date_from"], date_to=attrs["date_to"])
            if error is not None:
                raise serializers.ValidationError({"date_to": [error]})

        def _today(self) -> date:
            return local_today(timezone_name=self.context["tenant"].timezone)

    # The documented shape of the answer (OpenAPI schema, response validation in tests); the
    # body itself is CareStats.as_json, which a test holds equal to this serializer's output.
    @extend_schema_serializer(component_name="CareStats")
    class OutputSerializer(serializers.Serializer):
        tenant_id = serializers.IntegerField()
        date = serializers.DateField()
        timezone = serializers.CharField(help_text="IANA time zone that defines the day.")
        facility_ids = serializers.ListField(
            child=serializers.IntegerField(), help_text="The facility scope used, sorted."
        )
        total_notes = serializers.IntegerField(min_value=0)
        by_category = ByCategorySerializer()
        by_priority = ByPrioritySerializer()
        by_facility = serializers.DictField(
            child=serializers.IntegerField(min_value=0),
            help_text="Notes per facility id of the scope, zeros included.",
        )
        patients = serializers.IntegerField(
            min_value=0, help_text="Distinct residents with at least one note that day."
        )
        avg_notes_per_patient = serializers.FloatField(
            min_value=0,
            help_text="total_notes / distinct patients with a note that day, 2 decimals "
            "(halves round up); 0 when there is none.",
        )

    # A range answer: the day answer's fields over date_from..date_to, and every day of it.
    @extend_schema_serializer(component_name="CareRangeStats")
    class RangeOutputSerializer(serializers.Serializer):
        tenant_id = serializers.IntegerField()
        date_from = serializers.DateField(help_text="First local day of the range.")
        date_to = serializers.DateField(help_text="Last local day of the range (included).")
        timezone = serializers.CharField(help_text="IANA time zone that defines the days.")
        facility_ids = serializers.ListField(
            child=serializers.IntegerField(), help_text="The facility scope used, sorted."
        )
        total_notes = serializers.IntegerField(min_value=0)
        by_category = ByCategorySerializer()
        by_priority = ByPrioritySerializer()
        by_facility = serializers.DictField(
            child=serializers.IntegerField(min_value=0),
            help_text="Notes per facility id of the scope, zeros included.",
        )
        patients = serializers.IntegerField(
            min_value=0,
            help_text="Distinct residents with at least one note in the range (exact: a "
            "resident noted on several days counts once).",
        )
        avg_notes_per_patient = serializers.FloatField(
            min_value=0,
            help_text="total_notes / patients, 2 decimals (halves round up); 0 when none.",
        )
        by_day = serializers.ListField(
            child=RangeDaySerializer(),
            help_text="One entry per local day of the range, in order, zeros included.",
        )

    throttle_scope = SCOPE_STATS

    def dispatch(self, request, *args, **kwargs):
        # A warm hit asked for plainly is answered from one Redis round trip, before DRF;
        # everything else (misses, errors, other formats) takes the full path below.
        hit = care_stats_warm_hit(request)
        if hit is not None:
            # DRF's own response headers (Allow, Vary), as on every answer of this view.
            self.headers = self.default_response_headers
            return self.finalize_response(request, hit)
        self.timing = ServerTiming()
        with self.timing.measuring_db():
            response = super().dispatch(request, *args, **kwargs)
        response["Server-Timing"] = self.timing.header()
        return response

    @extend_schema(
        summary="Care analytics of one tenant for a local day or a range of days",
        description=(
            "Counts the care notes of one day — [local midnight, next local midnight) in the "
            "tenant's time zone, so 23 or 25 hours on DST days — by category, priority and "
            "facility (`date`, default today), or of a range of such days: `date_from` to "
            f"`date_to`, both included, at most {STATS_RANGE_MAX_DAYS} days, or a named "
            "`period` resolved in the tenant's time zone (weeks start on Monday). A range "
            "answer has the day answer's fields, with `date_from`/`date_to` instead of "
            "`date`, and `by_day`: every day of the range in order, zeros included. "
            "`patients` counts distinct residents exactly over the whole day or range. "
            "`date`, `date_from`/`date_to` and `period` exclude each other. Callers must be "
            "a member of the tenant (any role) or a superuser."
        ),
        parameters=[
            OpenApiParameter(
                "tenant_id",
                {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX},
                required=True,
                description="Tenant to report on; the caller must be a member.",
            ),
            OpenApiParameter(
                "facility_ids",
                OpenApiTypes.STR,
                description=(
                    f"Comma-separated facility ids of the tenant (at most "
                    f"{STATS_MAX_FACILITY_IDS}); default: every facility of the tenant."
                ),
                pattern=r"^[0-9]+(,[0-9]+)*$",
            ),
            OpenApiParameter(
                "date",
                OpenApiTypes.DATE,
                description=(
                    f"Local day, YYYY-MM-DD, from {STATS_DATE_MIN.isoformat()} to a year after "
                    "today; default (when no range or period is given): today in the tenant's "
                    "time zone."
                ),
            ),
            OpenApiParameter(
                "date_from",
                OpenApiTypes.DATE,
                description=(
                    "First local day of a range, YYYY-MM-DD (same bounds as date); needs date_to."
                ),
            ),
            OpenApiParameter(
                "date_to",
                OpenApiTypes.DATE,
                description=(
                    "Last local day of a range, included; needs date_from, not before it, and "
                    f"at most {STATS_RANGE_MAX_DAYS} days from it (both ends counted)."
                ),
            ),
            OpenApiParameter(
                "period",
                OpenApiTypes.STR,
                enum=[period.value for period in Period],
                description="A named range of local days: "
                + "; ".join(f"`{p.value}`: {text}" for p, text in PERIOD_DESCRIPTIONS.items())
                + ".",
            ),
            OpenApiParameter(
                "X-Cache",
                OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                response=[200],
                enum=[status.value for status in CacheStatus],
                description="HIT: from Redis. MISS: computed and cached. BYPASS: Redis "
                "unavailable, computed from PostgreSQL.",
            ),
            OpenApiParameter(
                "Server-Timing",
                OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                response=True,
                description="Milliseconds spent in the database and the stats cache, "
                "e.g. `db;dur=1.20, cache;dur=0.31`.",
            ),
        ],
        responses={
            200: PolymorphicProxySerializer(
                component_name="CareStatsAnswer",
                serializers=[OutputSerializer, RangeOutputSerializer],
                resource_type_field_name=None,
            ),
            400: OpenApiResponse(VALIDATION_ERROR_SCHEMA, description="Invalid parameters."),
            401: OpenApiResponse(ErrorDetailSerializer, description="Missing or bad token."),
            404: OpenApiResponse(
                ErrorDetailSerializer,
                description="No such tenant, or the caller is not a member (same answer).",
            ),
        },
        examples=ANSWER_EXAMPLES,
    )
    def get(self, request: Request) -> Response:
        # Before the tenant is chosen: ``.dict()`` keeps the last of repeated values, so
        # which one was checked for membership would depend on their order.
        if any(len(values) > 1 for _, values in request.query_params.lists()):
            known = set(self.InputSerializer().fields)
            raise serializers.ValidationError(
                query_param_errors(request.query_params, known=known, reject_blank=False)
            )
        tenant_params = self.TenantSerializer(data=request.query_params.dict())
        tenant_params.is_valid(raise_exception=True)
        tenant = tenant_get_for_request(
            request=request, tenant_id=tenant_params.validated_data["tenant_id"]
        )
        params = self.InputSerializer(data=request.query_params, context={"tenant": tenant})
        params.is_valid(raise_exception=True)
        asked = params.validated_data
        # Entries the warm-hit path already found missing are not looked up twice.
        known_misses = request_state(request).cache_misses
        if "date" in asked:
            result = care_stats_get_cached(
                tenant=tenant,
                day=asked["date"],
                facility_ids=asked.get("facility_ids"),
                serialize=CareStats.as_json,
                known_misses=known_misses,
            )
        else:
            result = care_stats_range_get_cached(
                tenant=tenant,
                date_from=asked["date_from"],
                date_to=asked["date_to"],
                facility_ids=asked.get("facility_ids"),
                serialize=CareRangeStats.as_json,
                known_misses=known_misses,
            )
        self.timing.cache_seconds += result.cache_seconds
        return Response(result.data, headers={"X-Cache": result.status.value})
