"""Query parameters of the care-notes API's lists: cursors, and the checks every list
applies (each parameter known, given once, not blank), with errors naming the parameter."""

from django.http import QueryDict
from rest_framework import serializers

from carenotes.core.params import query_param_errors


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
