"""API view of the daily care analytics: GET /api/care-stats/."""

import re
import time
from contextlib import contextmanager
from datetime import date

from django.db import connection
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from carenotes.models import Category
from carenotes.throttling import SCOPE_STATS
from stats.cache import CacheStatus, care_stats_get_cached
from stats.selectors import PRIORITY_KEYS, CareStats, local_today
from tenants.selectors import principal_from_request, tenant_get_for_principal

BIGINT_MAX = 2**63 - 1  # ids are PostgreSQL bigint; larger values can name nothing
STATS_MAX_FACILITY_IDS = 100
STATS_DATE_MIN = date(2000, 1, 1)
# DRF's own ?format=json|api switch (browsable API) is accepted besides the documented ones.
FORMAT_PARAM = "format"

_ID_PATTERN = re.compile(r"[0-9]{1,19}")
_DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_positive_id(raw: str) -> int:
    """Return ``raw`` as a positive bigint id, or raise a ValidationError saying why not."""
    if not _ID_PATTERN.fullmatch(raw):
        raise serializers.ValidationError(f"Expected a positive integer id, got {raw!r}.")
    value = int(raw)
    if not 1 <= value <= BIGINT_MAX:
        raise serializers.ValidationError(f"Ids run from 1 to {BIGINT_MAX}, got {raw}.")
    return value


def one_year_after(day: date) -> date:
    """Return the same calendar day a year later (28 February for 29 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


class PositiveIdField(serializers.Field):
    """A positive bigint id written as plain ASCII digits."""

    def to_internal_value(self, data) -> int:
        return parse_positive_id(str(data))


class FacilityIdsField(serializers.Field):
    """Comma-separated positive ids, at most STATS_MAX_FACILITY_IDS; returned sorted, unique."""

    def to_internal_value(self, data) -> tuple[int, ...]:
        items = str(data).split(",")
        if len(items) > STATS_MAX_FACILITY_IDS:
            raise serializers.ValidationError(
                f"At most {STATS_MAX_FACILITY_IDS} facility ids, got {len(items)}."
            )
        try:
            ids = {parse_positive_id(item) for item in items}
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(
                f"Expected comma-separated positive integer ids such as 1,2,3, got {data!r}; "
                "omit facility_ids for every facility of the tenant."
            ) from exc
        return tuple(sorted(ids))


class IsoDateField(serializers.Field):
    """A calendar date written exactly as YYYY-MM-DD."""

    def to_internal_value(self, data) -> date:
        raw = str(data)
        if not _DATE_PATTERN.fullmatch(raw):
            raise serializers.ValidationError(f"Expected a date as YYYY-MM-DD, got {raw!r}.")
        try:
            return date.fromisoformat(raw)
        except ValueError as exc:
            raise serializers.ValidationError(f"{raw} is not a real calendar date.") from exc


def query_param_errors(params: QueryDict, *, allowed: set[str]) -> dict[str, list[str]]:
    """Return an error per unknown or repeated query parameter."""
    errors = {}
    for name, values in params.lists():
        if name not in allowed:
            known = ", ".join(sorted(allowed - {FORMAT_PARAM}))
            errors[name] = [f"Unknown query parameter; the parameters are {known}."]
        elif len(values) > 1:
            errors[name] = ["Give this parameter once."]
    return errors


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


@extend_schema_serializer(component_name="ErrorDetail")
class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "One entry per offending query parameter, DRF's error format.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "example": {"facility_ids": ["Not facilities of this tenant: 7."]},
}


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
        with connection.execute_wrapper(self._time_query):
            yield

    def header(self) -> str:
        return f"db;dur={self.db_seconds * 1000:.2f}, cache;dur={self.cache_seconds * 1000:.2f}"


class CareStatsView(APIView):
    """One tenant's care notes of one local day, counted; served from Redis when fresh.

    Order of checks, so that a caller outside the tenant learns nothing: credentials (401),
    a well-formed ``tenant_id`` (400), membership (404 — the same for a tenant that does not
    exist), then every other parameter (400), then the work.
    """

    class TenantSerializer(serializers.Serializer):
        tenant_id = PositiveIdField(
            error_messages={"required": "Give the id of the tenant to report on: tenant_id=1."}
        )

    class InputSerializer(TenantSerializer):
        facility_ids = FacilityIdsField(required=False)
        date = IsoDateField(required=False)

        def to_internal_value(self, data: QueryDict) -> dict:
            errors = query_param_errors(data, allowed=set(self.fields) | {FORMAT_PARAM})
            try:
                values = super().to_internal_value(data.dict())
            except serializers.ValidationError as exc:
                errors = {**exc.detail, **errors}
            if errors:
                raise serializers.ValidationError(errors)
            return values

        def validate_facility_ids(self, value: tuple[int, ...]) -> tuple[int, ...]:
            # Checked against the cached tenant facts: no query, and foreign ids are named
            # without saying whether they exist in another tenant.
            foreign = sorted(set(value) - set(self.context["tenant"].facility_ids))
            if foreign:
                listed = ", ".join(str(facility_id) for facility_id in foreign)
                raise serializers.ValidationError(f"Not facilities of this tenant: {listed}.")
            return value

        def validate_date(self, value: date) -> date:
            latest = one_year_after(local_today(timezone_name=self.context["tenant"].timezone))
            if not STATS_DATE_MIN <= value <= latest:
                raise serializers.ValidationError(
                    f"Dates run from {STATS_DATE_MIN.isoformat()} to {latest.isoformat()} "
                    "(a year after today in the tenant's time zone)."
                )
            return value

        def validate(self, attrs: dict) -> dict:
            tenant = self.context["tenant"]
            attrs.setdefault("facility_ids", tuple(sorted(tenant.facility_ids)))
            attrs.setdefault("date", local_today(timezone_name=tenant.timezone))
            return attrs

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
        avg_notes_per_patient = serializers.FloatField(
            min_value=0,
            help_text="total_notes / distinct patients with a note that day, 2 decimals "
            "(halves round up); 0 when there is none.",
        )

    throttle_scope = SCOPE_STATS

    def dispatch(self, request, *args, **kwargs):
        self.timing = ServerTiming()
        with self.timing.measuring_db():
            response = super().dispatch(request, *args, **kwargs)
        response["Server-Timing"] = self.timing.header()
        return response

    @extend_schema(
        summary="Daily care analytics of one tenant",
        description=(
            "Counts the care notes of one day — [local midnight, next local midnight) in the "
            "tenant's time zone, so 23 or 25 hours on DST days — by category, priority and "
            "facility. Callers must be a member of the tenant (any role) or a superuser."
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
                    "today; default: today in the tenant's time zone."
                ),
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
            200: OutputSerializer,
            400: OpenApiResponse(VALIDATION_ERROR_SCHEMA, description="Invalid parameters."),
            401: OpenApiResponse(ErrorDetailSerializer, description="Missing or bad token."),
            404: OpenApiResponse(
                ErrorDetailSerializer,
                description="No such tenant, or the caller is not a member (same answer).",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        tenant_params = self.TenantSerializer(data=request.query_params.dict())
        tenant_params.is_valid(raise_exception=True)
        tenant = tenant_get_for_principal(
            principal=principal_from_request(request),
            tenant_id=tenant_params.validated_data["tenant_id"],
        )
        params = self.InputSerializer(data=request.query_params, context={"tenant": tenant})
        params.is_valid(raise_exception=True)
        result = care_stats_get_cached(
            tenant=tenant,
            day=params.validated_data["date"],
            facility_ids=params.validated_data["facility_ids"],
            serialize=self._serialize,
        )
        self.timing.cache_seconds += result.cache_seconds
        return Response(result.data, headers={"X-Cache": result.status.value})

    def _serialize(self, stats: CareStats) -> dict:
        return self.OutputSerializer(stats.as_dict()).data
