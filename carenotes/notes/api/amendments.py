"""Care-notes API: read one note with its amendments, and amend a note (correct its category,
priority or body, saying why). The original stays in the amendment and the change history."""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_request_read
from carenotes.core.observability import request_tenant_tag
from carenotes.core.params import JsonIntegerField, JsonStringField
from carenotes.notes.api.views import (
    BAD_BODY,
    NOTE_LOCATION,
    NOTE_NOT_FOUND,
    SCOPE_NOTES_READ,
    SCOPE_NOTES_WRITE,
    NoteOutputSerializer,
    note_created_response,
)
from carenotes.notes.models import AMENDMENT_REASON_MAX_LENGTH, PRIORITY_MAX, PRIORITY_MIN, Category
from carenotes.notes.selectors import note_amendment_list, note_get
from carenotes.notes.services import NOTE_BODY_MAX_LENGTH, note_amend
from tenants.selectors import principal_from_request, tenant_get_for_member


@extend_schema_serializer(component_name="NoteAmendment")
class AmendmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    author_id = serializers.IntegerField()
    author_username = serializers.CharField(source="author.username")
    created_at = serializers.DateTimeField(help_text="When the amendment was recorded.")
    reason = serializers.CharField()
    previous_category = serializers.ChoiceField(choices=Category.choices)
    previous_priority = serializers.IntegerField()
    previous_body = serializers.CharField()
    category = serializers.ChoiceField(choices=Category.choices)
    priority = serializers.IntegerField()
    body = serializers.CharField()


@extend_schema_serializer(component_name="NoteDetail")
class NoteDetailOutputSerializer(NoteOutputSerializer):
    # Read from the list _note_detail attaches (one query), not the related manager.
    amendments = AmendmentOutputSerializer(
        source="amendments_listed",
        many=True,
        help_text="Corrections of the note, oldest first, each with the values before.",
    )


def _note_detail(note) -> dict:
    note.amendments_listed = note_amendment_list(note=note)
    return NoteDetailOutputSerializer(note).data


class NoteDetailView(APIView):
    """One care note of a tenant the caller belongs to, with its amendments."""

    throttle_scope = SCOPE_NOTES_READ

    @extend_schema(
        operation_id="notes_retrieve",
        summary="Read one care note and its amendments",
        responses={200: NoteDetailOutputSerializer, 404: NOTE_NOT_FOUND},
    )
    def get(self, request: Request, note_id: int) -> Response:
        note = note_get(principal=principal_from_request(request), note_id=note_id)
        audit_request_read(request, tenant_id=note.tenant_id, note_ids=[note.pk])
        return Response(_note_detail(note))


class NoteAmendmentCreateView(APIView):
    """``POST``: amend a note of a tenant the caller belongs to (any role).

    Order of checks: credentials (401), the body (400 naming the field), the note among the
    caller's tenants (404, the same for a missing one), membership of its tenant (403 for a
    superuser who is not a member, as for recording a note), then the amendment's own rules
    (400: nothing changed, the same content rules as a new note).
    """

    parser_classes = [JSONParser]
    throttle_scope = SCOPE_NOTES_WRITE

    @extend_schema_serializer(
        component_name="NoteAmendmentCreate",
        examples=[
            OpenApiExample(
                "A wrong category",
                value={
                    "reason": "Recorded as an observation; it was a medication round.",
                    "category": "medication",
                },
                request_only=True,
            )
        ],
    )
    class InputSerializer(serializers.Serializer):
        reason = JsonStringField(
            max_length=AMENDMENT_REASON_MAX_LENGTH, help_text="Why the note is corrected."
        )
        category = serializers.ChoiceField(
            choices=Category.choices, required=False, help_text="The corrected category."
        )
        priority = JsonIntegerField(
            min_value=PRIORITY_MIN,
            max_value=PRIORITY_MAX,
            required=False,
            help_text="The corrected priority.",
        )
        body = JsonStringField(
            max_length=NOTE_BODY_MAX_LENGTH, required=False, help_text="The corrected text."
        )

    @extend_schema(
        operation_id="notes_amend",
        summary="Amend a care note",
        description=(
            "Correct a note's category, priority or body (fields left out keep their value), "
            "saying why. The note then shows the corrected values, which the care stats count; "
            "the previous values stay in the amendment, listed with the note. A note's time, "
            "resident, facility and author cannot be changed."
        ),
        request=InputSerializer,
        parameters=[NOTE_LOCATION],
        responses={
            201: NoteDetailOutputSerializer,
            400: BAD_BODY,
            403: OpenApiResponse(description="Superuser who is not a member of the tenant."),
            404: NOTE_NOT_FOUND,
            415: OpenApiResponse(description="The body is not application/json."),
        },
    )
    def post(self, request: Request, note_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        principal = principal_from_request(request)
        note = note_get(principal=principal, note_id=note_id)
        tenant = tenant_get_for_member(principal=principal, tenant_id=note.tenant_id)
        request_tenant_tag(request, tenant.id)
        note_amend(tenant=tenant, author=request.user, note_id=note.pk, **serializer.validated_data)
        note = note_get(principal=principal, note_id=note.pk)
        return note_created_response(request, _note_detail(note), note_id=note.pk)
