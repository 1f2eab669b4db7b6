"""Residents API: list a tenant's residents and read one, so a client can find the
``patient_id`` (and ``facility_id``) that recording a note needs."""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from carenotes.core.params import PositiveIdField
from carenotes.notes.api.params import CursorField, QueryParamsSerializer
from carenotes.notes.api.views import BAD_QUERY, SCOPE_NOTES_READ, next_page_url
from carenotes.notes.selectors import (
    PATIENT_PAGE_SIZE_DEFAULT,
    PATIENT_PAGE_SIZE_MAX,
    PATIENT_REFERENCE_MAX_LENGTH,
    PatientCursor,
    PatientFilters,
    patient_get,
    patient_list,
    patient_page,
)
from tenants.selectors import principal_from_request, tenant_get_for_request

RESIDENT_NOT_FOUND = OpenApiResponse(
    description="No such tenant or resident, or the caller is not a member (the same answer)."
)
RESIDENT_EXAMPLE = {
    "id": 42,
    "tenant_id": 1,
    "facility_id": 3,
    "reference": "OAK-0042",
    "display_name": "Margaret Ellis",
}


@extend_schema_serializer(
    component_name="Resident",
    examples=[OpenApiExample("A resident", value=RESIDENT_EXAMPLE, response_only=True)],
)
class ResidentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The `patient_id` of notes about this resident.")
    tenant_id = serializers.IntegerField()
    facility_id = serializers.IntegerField(help_text="The facility the resident lives in.")
    reference = serializers.CharField(help_text="The tenant's reference code, unique in it.")
    display_name = serializers.CharField()


class ResidentListView(APIView):
    """A tenant's residents by reference, keyset-paginated; the same rules as the notes list.

    Order of checks: credentials (401), every query parameter (400, independent of the
    tenant), membership (404, the same for a tenant that does not exist), then a
    ``facility_id`` of another tenant (400).
    """

    throttle_scope = SCOPE_NOTES_READ

    class FilterSerializer(QueryParamsSerializer):
        tenant_id = PositiveIdField(help_text="The tenant whose residents to list (required).")
        facility_id = PositiveIdField(
            required=False, help_text="Only residents of this facility of the tenant."
        )
        reference = serializers.CharField(
            required=False,
            max_length=PATIENT_REFERENCE_MAX_LENGTH,
            help_text="Only the resident with exactly this reference (0 or 1 result).",
        )
        cursor = CursorField(cursor_class=PatientCursor, required=False)
        page_size = serializers.IntegerField(
            min_value=1, max_value=PATIENT_PAGE_SIZE_MAX, default=PATIENT_PAGE_SIZE_DEFAULT
        )

    @extend_schema_serializer(
        component_name="ResidentPage",
        examples=[
            OpenApiExample(
                "A page with a next page",
                value={
                    "next": "https://carenotes.example/api/residents/?tenant_id=1"
                    "&page_size=1&cursor=T0FLLTAwNDI",
                    "results": [RESIDENT_EXAMPLE],
                },
                response_only=True,
            ),
        ],
    )
    class PageSerializer(serializers.Serializer):
        next = serializers.URLField(allow_null=True, help_text="URL of the next page, or null.")
        results = ResidentOutputSerializer(many=True)

    @extend_schema(
        operation_id="residents_list",
        summary="List a tenant's residents",
        description=(
            "Residents (patients) of one tenant, ordered by reference, to find the "
            "`patient_id` (a resident's `id`) and `facility_id` that `POST /api/notes/` "
            "needs. Callers must be a member of the tenant (any role) or a superuser."
        ),
        parameters=[FilterSerializer],
        responses={200: PageSerializer, 400: BAD_QUERY, 404: RESIDENT_NOT_FOUND},
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        tenant = tenant_get_for_request(request=request, tenant_id=data["tenant_id"])
        filters = PatientFilters(
            facility_id=data.get("facility_id"), reference=data.get("reference")
        )
        rows, next_cursor = patient_page(
            queryset=patient_list(tenant=tenant, filters=filters),
            cursor=data.get("cursor"),
            page_size=data["page_size"],
        )
        page = {"next": next_page_url(request, next_cursor), "results": rows}
        return Response(self.PageSerializer(page).data)


class ResidentDetailView(APIView):
    """One resident of a tenant the caller belongs to."""

    throttle_scope = SCOPE_NOTES_READ

    @extend_schema(
        operation_id="residents_retrieve",
        summary="Read one resident",
        responses={200: ResidentOutputSerializer, 404: RESIDENT_NOT_FOUND},
    )
    def get(self, request: Request, patient_id: int) -> Response:
        patient = patient_get(principal=principal_from_request(request), patient_id=patient_id)
        return Response(ResidentOutputSerializer(patient).data)
