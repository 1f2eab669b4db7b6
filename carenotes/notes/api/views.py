"""Care-notes API: record a note, list a tenant's notes, read one note. Notes are never
edited or deleted here (405): corrections are new notes."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from carenotes.core.observability import request_tenant_tag
from carenotes.core.params import BIGINT_MAX
from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, Category
from carenotes.notes.selectors import (
    NOTE_PAGE_SIZE_DEFAULT,
    NOTE_PAGE_SIZE_MAX,
    NoteCursor,
    NoteFilters,
    note_get,
    note_list,
    note_page,
)
from carenotes.notes.services import NOTE_BODY_MAX_LENGTH, note_create
from tenants.selectors import (
    principal_from_request,
    tenant_get_for_member,
    tenant_get_for_request,
)

# PostgreSQL bigint: larger ids would make the database raise instead of answering.
DB_ID_MAX = BIGINT_MAX
# Throttle scopes of the notes API (rates: settings.THROTTLE_RATES).
SCOPE_NOTES_READ = "notes_read"
SCOPE_NOTES_WRITE = "notes_write"

BLANK_PARAM_ERROR = "Must not be empty; leave the parameter out instead."

NOT_FOUND = OpenApiResponse(description="No such tenant or note, or the caller is not a member.")
BAD_INPUT = OpenApiResponse(
    response=OpenApiTypes.OBJECT, description="Invalid input; keys name the fields."
)


def _id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=DB_ID_MAX, **kwargs)


class CursorField(serializers.CharField):
    """An opaque page cursor, decoded into a ``NoteCursor``."""

    def to_internal_value(self, data) -> NoteCursor:
        try:
            return NoteCursor.decode(super().to_internal_value(data))
        except ValueError as exc:
            raise serializers.ValidationError("Invalid cursor; use the `next` link.") from exc


class NoteOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    tenant_id = serializers.IntegerField()
    facility_id = serializers.IntegerField()
    patient_id = serializers.IntegerField()
    patient_reference = serializers.CharField(source="patient.reference")
    author_id = serializers.IntegerField()
    author_username = serializers.CharField(source="author.username")
    category = serializers.ChoiceField(choices=Category.choices)
    priority = serializers.IntegerField()
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class NoteListCreateView(APIView):
    """``GET``: a tenant's notes, newest first, keyset-paginated. ``POST``: record a note."""

    parser_classes = [JSONParser]
    throttle_scope = SCOPE_NOTES_READ
    throttle_scope_write = SCOPE_NOTES_WRITE

    class FilterSerializer(serializers.Serializer):
        tenant_id = _id_field(help_text="The tenant whose notes to list (required).")
        facility_id = _id_field(required=False)
        patient_id = _id_field(required=False)
        category = serializers.ChoiceField(choices=Category.choices, required=False)
        priority = serializers.IntegerField(
            min_value=PRIORITY_MIN, max_value=PRIORITY_MAX, required=False
        )
        created_after = serializers.DateTimeField(
            required=False, help_text="Notes with created_at at or after this instant."
        )
        created_before = serializers.DateTimeField(
            required=False, help_text="Notes with created_at strictly before this instant."
        )
        author = _id_field(required=False, help_text="User id of the author.")
        cursor = CursorField(required=False, help_text="The `next` cursor of the previous page.")
        page_size = serializers.IntegerField(
            min_value=1, max_value=NOTE_PAGE_SIZE_MAX, default=NOTE_PAGE_SIZE_DEFAULT
        )

        def to_internal_value(self, data):
            # DRF reads an empty optional query value as "not given"; the schema (and a
            # careful client) means a value, so `?cursor=` is an error, not page one.
            blank = {name: [BLANK_PARAM_ERROR] for name in self.fields if data.get(name) == ""}
            if blank:
                raise serializers.ValidationError(blank)
            return super().to_internal_value(data)

    class InputSerializer(serializers.Serializer):
        tenant_id = _id_field()
        facility_id = _id_field()
        patient_id = _id_field()
        category = serializers.ChoiceField(choices=Category.choices)
        priority = serializers.IntegerField(min_value=PRIORITY_MIN, max_value=PRIORITY_MAX)
        body = serializers.CharField(max_length=NOTE_BODY_MAX_LENGTH)
        created_at = serializers.DateTimeField(
            required=False, help_text="When the care happened; default now."
        )

    class PageSerializer(serializers.Serializer):
        next = serializers.URLField(allow_null=True, help_text="URL of the next page, or null.")
        results = NoteOutputSerializer(many=True)

    @extend_schema(
        operation_id="notes_list",
        summary="List a tenant's care notes",
        parameters=[FilterSerializer],
        responses={200: PageSerializer, 400: BAD_INPUT, 404: NOT_FOUND},
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        tenant = tenant_get_for_request(request=request, tenant_id=data["tenant_id"])
        filters = NoteFilters(
            facility_id=data.get("facility_id"),
            patient_id=data.get("patient_id"),
            category=data.get("category"),
            priority=data.get("priority"),
            created_after=data.get("created_after"),
            created_before=data.get("created_before"),
            author_id=data.get("author"),
        )
        queryset = note_list(tenant=tenant, filters=filters)
        rows, next_cursor = note_page(
            queryset=queryset, cursor=data.get("cursor"), page_size=data["page_size"]
        )
        next_url = None
        if next_cursor is not None:
            next_url = replace_query_param(
                request.build_absolute_uri(), "cursor", next_cursor.encode()
            )
        return Response(self.PageSerializer({"next": next_url, "results": rows}).data)

    @extend_schema(
        operation_id="notes_create",
        summary="Record a care note",
        request=InputSerializer,
        responses={
            201: NoteOutputSerializer,
            400: BAD_INPUT,
            403: OpenApiResponse(description="Superuser who is not a member of the tenant."),
            404: NOT_FOUND,
            415: OpenApiResponse(description="The body is not application/json."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        principal = principal_from_request(request)
        tenant = tenant_get_for_member(principal=principal, tenant_id=data.pop("tenant_id"))
        request_tenant_tag(request, tenant.id)  # the tenant is in the body, not the query
        note = note_create(tenant=tenant, author=request.user, **data)
        # The output needs the author's name and patient's reference: re-read with joins.
        note = note_get(principal=principal, note_id=note.pk)
        return Response(NoteOutputSerializer(note).data, status=status.HTTP_201_CREATED)


class NoteDetailView(APIView):
    """One care note of a tenant the caller belongs to."""

    throttle_scope = SCOPE_NOTES_READ

    @extend_schema(
        operation_id="notes_retrieve",
        summary="Read one care note",
        responses={200: NoteOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, note_id: int) -> Response:
        principal = principal_from_request(request)
        note = note_get(principal=principal, note_id=note_id)
        return Response(NoteOutputSerializer(note).data)
