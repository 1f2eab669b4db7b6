"""Query parameters of the care-notes API's lists: ids, cursors, and the checks every list
applies (each parameter known, given once, not blank), with errors naming the parameter."""

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from carenotes.core.params import BIGINT_MAX, parse_positive_id

# DRF's own ?format=json|api switch (browsable API) is accepted besides the documented ones.
FORMAT_PARAM = "format"
BLANK_PARAM_ERROR = "Must not be empty; leave the parameter out instead."
REPEATED_PARAM_ERROR = "Give this parameter once."
ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX}


def unknown_param_error(known: set[str]) -> str:
    return f"Unknown query parameter; the parameters are {', '.join(sorted(known))}."


@extend_schema_field(ID_SCHEMA)
class PositiveIdField(serializers.Field):
    """A positive bigint id written as plain ASCII digits (``carenotes.core.params``)."""

    def to_internal_value(self, data) -> int:
        return parse_positive_id(str(data))

    def to_representation(self, value: int) -> int:
        return value


class CursorField(serializers.CharField):
    """An opaque page cursor, decoded by ``cursor_class.decode`` (which raises ValueError)."""

    def __init__(self, *, cursor_class, **kwargs) -> None:
        self.cursor_class = cursor_class
        kwargs.setdefault("help_text", "The `next` cursor of the previous page.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return self.cursor_class.decode(super().to_internal_value(data))
        except ValueError as exc:
            raise serializers.ValidationError("Invalid cursor; use the `next` link.") from exc


def query_param_errors(params: QueryDict, *, known: set[str]) -> dict[str, list[str]]:
    """Return an error per unknown, repeated or empty query parameter.

    The answer depends only on the parameter names and counts, never on their values or
    the caller, so it can be given before any tenant check without revealing anything.
    """
    errors = {}
    for name, values in params.lists():
        if name not in known and name != FORMAT_PARAM:
            errors[name] = [unknown_param_error(known)]
        elif len(values) > 1:
            errors[name] = [REPEATED_PARAM_ERROR]
        elif values == [""] and name != FORMAT_PARAM:
            # DRF reads an empty optional query value as "not given"; the schema (and a
            # careful client) means a value, so `?cursor=` is an error, not page one.
            errors[name] = [BLANK_PARAM_ERROR]
    return errors


class QueryParamsSerializer(serializers.Serializer):
    """Base of a list's query parameters: the fields' errors and ``query_param_errors``
    together, one entry per offending parameter (the parameter's own check wins)."""

    def to_internal_value(self, data: QueryDict) -> dict:
        errors = query_param_errors(data, known=set(self.fields))
        try:
            values = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors = {**exc.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return values
