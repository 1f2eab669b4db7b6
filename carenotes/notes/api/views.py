"""Care-notes API: record a note and list a tenant's notes (residents: residents.py). Notes are
never edited or deleted here (405): a correction is an amendment (amendments.py). Every
answered note read appends an access audit record (audit.services)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from audit.services import audit_request_read
from carenotes.core.observability import request_tenant_tag
from carenotes.core.params import (
    BIGINT_MAX,
    REPEATED_PARAM_ERROR,
    JsonIntegerField,
    JsonStringField,
    PositiveIdField,
)
from carenotes.notes.api.params import CursorField, QueryParamsSerializer
from carenotes.notes.idempotency import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_KEY_REUSED_ERROR,
    REPLAYED_HEADER,
    REPLAYED_VALUE,
    Answer,
    idempotency_key_parse,
    idempotent_write,
    request_fingerprint,
)
from carenotes.notes.models import IDEMPOTENCY_KEY_MAX_LENGTH, PRIORITY_MAX, PRIORITY_MIN, Category
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

# Throttle scopes of the notes API (rates: settings.THROTTLE_RATES).
SCOPE_NOTES_READ = "notes_read"
SCOPE_NOTES_WRITE = "notes_write"
CURSOR_PARAM = "cursor"

NOTE_NOT_FOUND = OpenApiResponse(
    description="No such tenant or note, or the caller is not a member (the same answer)."
)
BAD_QUERY = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="Invalid query parameters; each key names one, with its errors: a bad value, "
    "an unknown parameter, or one given twice or empty.",
    examples=[
        OpenApiExample(
            "A repeated parameter and a bad value",
            value={
                "tenant_id": [REPEATED_PARAM_ERROR],
                "page_size": [f"Ensure this value is less than or equal to {NOTE_PAGE_SIZE_MAX}."],
            },
        )
    ],
)
BAD_BODY = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="Invalid body; each key names a field, with its errors.",
    examples=[
        OpenApiExample(
            "A resident of another tenant",
            value={"patient_id": ["No such patient in this tenant."]},
        )
    ],
)
IDEMPOTENCY_KEY_REUSED = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="The `Idempotency-Key` was used before with a different body (or for another "
    "tenant): send a new key for a new note.",
    examples=[
        OpenApiExample(
            "A key reused for another note",
            value={IDEMPOTENCY_HEADER: [IDEMPOTENCY_KEY_REUSED_ERROR]},
        )
    ],
)


def _id_field(**kwargs) -> serializers.IntegerField:
    return JsonIntegerField(min_value=1, max_value=BIGINT_MAX, **kwargs)


def note_created_response(request: Request, data: dict, *, note_id: int) -> Response:
    """Return a 201 with ``data`` and the note's URL (``GET /api/notes/{note_id}/``) as Location."""
    location = reverse("note-detail", kwargs={"note_id": note_id}, request=request)
    return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})


NOTE_LOCATION = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    location=OpenApiParameter.HEADER,
    response=[201],
    required=True,
    description="URL of the note (`GET /api/notes/{note_id}/`).",
)


def next_page_url(request: Request, cursor) -> str | None:
    """Return the URL of the page after ``cursor`` (this request's, cursor replaced)."""
    if cursor is None:
        return None
    return replace_query_param(request.build_absolute_uri(), CURSOR_PARAM, cursor.encode())


@extend_schema_serializer(component_name="Note")
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
    amendment_count = serializers.IntegerField(
        help_text="How many amendments corrected this note; category, priority and body are "
        "the current (amended) values."
    )


class NoteListCreateView(APIView):
    """``GET``: a tenant's notes, newest first, keyset-paginated. ``POST``: record a note.

    Order of checks for ``GET``: credentials (401), every query parameter (400; none of
    these checks depends on the tenant), membership (404, the same for a tenant that does
    not exist), then filters naming the tenant's facilities and residents (400).
    """

    parser_classes = [JSONParser]
    throttle_scope = SCOPE_NOTES_READ
    throttle_scope_write = SCOPE_NOTES_WRITE

    class FilterSerializer(QueryParamsSerializer):
        tenant_id = PositiveIdField(help_text="The tenant whose notes to list (required).")
        facility_id = PositiveIdField(required=False)
        patient_id = PositiveIdField(
            required=False, help_text="A resident's id (see `GET /api/residents/`)."
        )
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
        author = PositiveIdField(required=False, help_text="User id of the author.")
        cursor = CursorField(cursor_class=NoteCursor, required=False)
        page_size = serializers.IntegerField(
            min_value=1, max_value=NOTE_PAGE_SIZE_MAX, default=NOTE_PAGE_SIZE_DEFAULT
        )

    @extend_schema_serializer(component_name="NoteCreate")
    class InputSerializer(serializers.Serializer):
        tenant_id = _id_field()
        facility_id = _id_field()
        patient_id = _id_field(help_text="A resident's id (see `GET /api/residents/`).")
        category = serializers.ChoiceField(choices=Category.choices)
        priority = JsonIntegerField(min_value=PRIORITY_MIN, max_value=PRIORITY_MAX)
        body = JsonStringField(max_length=NOTE_BODY_MAX_LENGTH)
        created_at = serializers.DateTimeField(
            required=False, help_text="When the care happened; default now."
        )

    @extend_schema_serializer(component_name="NotePage")
    class PageSerializer(serializers.Serializer):
        next = serializers.URLField(allow_null=True, help_text="URL of the next page, or null.")
        results = NoteOutputSerializer(many=True)

    @extend_schema(
        operation_id="notes_list",
        summary="List a tenant's care notes",
        parameters=[FilterSerializer],
        responses={200: PageSerializer, 400: BAD_QUERY, 404: NOTE_NOT_FOUND},
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
        page = {"next": next_page_url(request, next_cursor), "results": rows}
        audit_request_read(request, tenant_id=tenant.id, note_ids=[row.pk for row in rows])
        return Response(self.PageSerializer(page).data)

    @extend_schema(
        operation_id="notes_create",
        summary="Record a care note",
        request=InputSerializer,
        description="Clients should send an `Idempotency-Key` (a fresh UUID per new note) and "
        "retry a request whose answer they did not get (a timeout, a dropped connection, a "
        "503) with the same key and body: the note is recorded once, and the retry gets the "
        "first answer again. Without the header a retry may record the note twice.",
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                location=OpenApiParameter.HEADER,
                required=False,
                description=f"1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters "
                "(else a 400 naming the header), unique per new note and remembered for the "
                "caller for `IDEMPOTENCY_KEY_TTL_HOURS` (default 24). "
                "The same key with the same body answers the first 201 again (same note id, "
                f"`{REPLAYED_HEADER}: true`), also while the first request is still running; "
                "with a different body it is a 422.",
            ),
            NOTE_LOCATION,
            OpenApiParameter(
                REPLAYED_HEADER,
                {"type": "string", "enum": [REPLAYED_VALUE]},
                location=OpenApiParameter.HEADER,
                response=[201],
                description="Present when this is the stored answer of an earlier request "
                "with the same `Idempotency-Key`, not a new note.",
            ),
        ],
        responses={
            201: NoteOutputSerializer,
            400: BAD_BODY,
            422: IDEMPOTENCY_KEY_REUSED,
            403: OpenApiResponse(description="Superuser who is not a member of the tenant."),
            404: NOTE_NOT_FOUND,
            415: OpenApiResponse(description="The body is not application/json."),
        },
    )
    def post(self, request: Request) -> Response:
        key = idempotency_key_parse(request.headers.get(IDEMPOTENCY_HEADER))
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        principal = principal_from_request(request)
        tenant = tenant_get_for_member(principal=principal, tenant_id=data.pop("tenant_id"))
        request_tenant_tag(request, tenant.id)  # the tenant is in the body, not the query

        def write() -> Answer:
            note = note_create(tenant=tenant, author=request.user, **data)
            # The output needs the author's name and patient's reference: re-read with joins.
            note = note_get(principal=principal, note_id=note.pk)
            return Answer(status=status.HTTP_201_CREATED, body=NoteOutputSerializer(note).data)

        if key is None:
            answer = write()
        else:
            answer = idempotent_write(
                tenant_id=tenant.id,
                user_id=request.user.pk,
                key=key,
                fingerprint=request_fingerprint(request.data),
                write=write,
            )
        response = note_created_response(request, answer.body, note_id=answer.body["id"])
        if answer.replayed:
            response[REPLAYED_HEADER] = REPLAYED_VALUE
        return response
