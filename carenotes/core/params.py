"""The one parser of ids and dates in requests, with one set of bounds, for every path."""

import re
from datetime import date

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

BIGINT_MAX = 2**63 - 1  # ids are PostgreSQL bigint; larger values can name nothing
# The query parameter that names the tenant a request is about, on every endpoint.
TENANT_PARAM = "tenant_id"
# DRF's own ?format=json|api switch (browsable API) is accepted besides the documented ones.
FORMAT_PARAM = "format"
BLANK_PARAM_ERROR = "Must not be empty; leave the parameter out instead."
REPEATED_PARAM_ERROR = "Give this parameter once."
ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX}
STATS_MAX_FACILITY_IDS = 100
STATS_DATE_MIN = date(2000, 1, 1)

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


def id_or_none(raw: str) -> int | None:
    """Return ``raw`` as a positive bigint id, or None when it is not one (for code that looks)."""
    try:
        return parse_positive_id(raw)
    except serializers.ValidationError:
        return None


def parse_facility_ids(raw: str) -> tuple[int, ...]:
    """Return comma-separated positive ids (at most STATS_MAX_FACILITY_IDS) sorted, unique."""
    items = raw.split(",")
    if len(items) > STATS_MAX_FACILITY_IDS:
        raise serializers.ValidationError(
            f"At most {STATS_MAX_FACILITY_IDS} facility ids, got {len(items)}."
        )
    try:
        ids = {parse_positive_id(item) for item in items}
    except serializers.ValidationError as exc:
        raise serializers.ValidationError(
            f"Expected comma-separated positive integer ids such as 1,2,3, got {raw!r}; "
            "omit facility_ids for every facility of the tenant."
        ) from exc
    return tuple(sorted(ids))


def facility_ids_of_tenant(value: tuple[int, ...], *, tenant_facility_ids) -> tuple[int, ...]:
    """Return ``value`` when every id is one of the tenant's facilities; else a 400 naming the
    foreign ids, without saying whether they exist in another tenant."""
    foreign = sorted(set(value) - set(tenant_facility_ids))
    if foreign:
        listed = ", ".join(str(facility_id) for facility_id in foreign)
        raise serializers.ValidationError(f"Not facilities of this tenant: {listed}.")
    return value


def parse_iso_date(raw: str) -> date:
    """Return a calendar date written exactly as YYYY-MM-DD."""
    if not _DATE_PATTERN.fullmatch(raw):
        raise serializers.ValidationError(f"Expected a date as YYYY-MM-DD, got {raw!r}.")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise serializers.ValidationError(f"{raw} is not a real calendar date.") from exc


def one_year_after(day: date) -> date:
    """Return the same calendar day a year later (28 February for 29 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


def unknown_param_error(known: set[str]) -> str:
    return f"Unknown query parameter; the parameters are {', '.join(sorted(known))}."


def query_param_errors(
    params: QueryDict, *, known: set[str], reject_blank: bool = True
) -> dict[str, list[str]]:
    """Return an error per unknown, repeated or (with ``reject_blank``) empty parameter.

    The answer depends only on the parameter names and counts, never on their values or
    the caller, so it can be given before any tenant check without revealing anything.
    ``format`` (DRF's renderer switch) is always allowed.
    """
    errors = {}
    for name, values in params.lists():
        if name not in known and name != FORMAT_PARAM:
            errors[name] = [unknown_param_error(known - {FORMAT_PARAM})]
        elif len(values) > 1:
            errors[name] = [REPEATED_PARAM_ERROR]
        elif reject_blank and values == [""] and name != FORMAT_PARAM:
            # DRF reads an empty optional query value as "not given"; the schema (and a
            # careful client) means a value, so `?cursor=` is an error, not page one.
            errors[name] = [BLANK_PARAM_ERROR]
    return errors


@extend_schema_field(ID_SCHEMA)
class PositiveIdField(serializers.Field):
    """A positive bigint id written as plain ASCII digits (``parse_positive_id``)."""

    def to_internal_value(self, data) -> int:
        return parse_positive_id(str(data))

    def to_representation(self, value: int) -> int:
        return value


class JsonStringField(serializers.CharField):
    """A JSON string: numbers and booleans are refused (400), not turned into text."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class JsonIntegerField(serializers.IntegerField):
    """A JSON integer: strings, booleans and fractions are refused (400), not converted."""

    def to_internal_value(self, data) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)
