"""API of the dashboard's attention list: GET /api/residents/attention/.

The list belongs to the dashboard (its managers and admins, not carers), so its view lives
here; the read itself is the notes domain's selector (carenotes.notes.selectors).
"""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from carenotes.core.params import (
    BIGINT_MAX,
    STATS_MAX_FACILITY_IDS,
    PositiveIdField,
    facility_ids_of_tenant,
    query_param_errors,
)
from carenotes.notes.api.views import BAD_QUERY, SCOPE_NOTES_READ
from carenotes.notes.selectors import (
    ATTENTION_HOURS_DEFAULT,
    ATTENTION_HOURS_MAX,
    ATTENTION_HOURS_MIN,
    ATTENTION_PAGE_SIZE_DEFAULT,
    ATTENTION_PAGE_SIZE_MAX,
    AttentionCursor,
    attention_cutoff,
    patient_attention_list,
)
from dashboard.access import CARER_REFUSED, may_see_dashboard
from stats.views import ErrorDetailSerializer, FacilityIdsField
from tenants.selectors import principal_from_request, tenant_get_for_request


class AttentionCursorField(serializers.CharField):
    """An opaque page cursor, decoded into an ``AttentionCursor``."""

    def to_internal_value(self, data) -> AttentionCursor:
        try:
            return AttentionCursor.decode(super().to_internal_value(data))
        except ValueError as exc:
            raise serializers.ValidationError("Invalid cursor; use the `next` link.") from exc


@extend_schema_serializer(component_name="ResidentAttention")
class ResidentAttentionSerializer(serializers.Serializer):
    patient_id = serializers.IntegerField()
    patient_reference = serializers.CharField(source="reference")
    display_name = serializers.CharField()
    facility_id = serializers.IntegerField()
    facility_name = serializers.CharField()
    last_note_at = serializers.DateTimeField(
        allow_null=True, help_text="The resident's newest note; null when they have none."
    )


class ResidentAttentionView(APIView):
    """Residents of a tenant's facilities with no care note in the last ``hours`` hours.

    Checks in the order of the stats endpoint: credentials (401), a repeated parameter and
    a well-formed ``tenant_id`` (400), membership (404, the same for a tenant that does not
    exist), the dashboard's roles (403 for carers), then every other parameter (400).
    """

    throttle_scope = SCOPE_NOTES_READ

    class TenantSerializer(serializers.Serializer):
        tenant_id = PositiveIdField(
            error_messages={"required": "Give the id of the tenant: tenant_id=1."}
        )

    class InputSerializer(TenantSerializer):
        facility_ids = FacilityIdsField(required=False)
        hours = serializers.IntegerField(
            min_value=ATTENTION_HOURS_MIN,
            max_value=ATTENTION_HOURS_MAX,
            default=ATTENTION_HOURS_DEFAULT,
        )
        cursor = AttentionCursorField(required=False)
        page_size = serializers.IntegerField(
            min_value=1, max_value=ATTENTION_PAGE_SIZE_MAX, default=ATTENTION_PAGE_SIZE_DEFAULT
        )

        def to_internal_value(self, data):
            errors = query_param_errors(data, known=set(self.fields))
            try:
                values = super().to_internal_value(data.dict())
            except serializers.ValidationError as exc:
                errors = {**exc.detail, **errors}
            if errors:
                raise serializers.ValidationError(errors)
            return values

        def validate_facility_ids(self, value: tuple[int, ...]) -> tuple[int, ...]:
            tenant = self.context["tenant"]
            return facility_ids_of_tenant(value, tenant_facility_ids=tenant.facility_ids)

    @extend_schema_serializer(component_name="ResidentAttentionPage")
    class OutputSerializer(serializers.Serializer):
        tenant_id = serializers.IntegerField()
        hours = serializers.IntegerField()
        cutoff = serializers.DateTimeField(help_text="Residents with no note since this instant.")
        next = serializers.URLField(allow_null=True, help_text="URL of the next page, or null.")
        results = ResidentAttentionSerializer(many=True)

    @extend_schema(
        operation_id="residents_attention",
        summary="Residents needing attention",
        description=(
            "Residents of the tenant (or of the named facilities) with no care note in the "
            "last `hours` hours, those who never had one first, then by their last note, "
            "oldest first. Keyset-paginated (`next`). For the tenant's managers and admins "
            "and superusers; carers get 403."
        ),
        parameters=[
            OpenApiParameter(
                "tenant_id",
                {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX},
                required=True,
                description="Tenant to list; the caller must be its manager or admin.",
            ),
            OpenApiParameter(
                "facility_ids",
                OpenApiTypes.STR,
                description=(
                    f"Comma-separated facility ids of the tenant (at most "
                    f"{STATS_MAX_FACILITY_IDS}); default: every facility."
                ),
                pattern=r"^[0-9]+(,[0-9]+)*$",
            ),
            OpenApiParameter(
                "hours",
                {"type": "integer", "minimum": ATTENTION_HOURS_MIN, "maximum": ATTENTION_HOURS_MAX},
                description=f"The window in hours (default {ATTENTION_HOURS_DEFAULT}).",
            ),
            OpenApiParameter(
                "cursor", OpenApiTypes.STR, description="The `next` cursor of the previous page."
            ),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": ATTENTION_PAGE_SIZE_MAX},
                description=f"Residents per page (default {ATTENTION_PAGE_SIZE_DEFAULT}).",
            ),
        ],
        responses={
            200: OutputSerializer,
            # An object either way: one key per offending parameter, or the request limits'
            # {"detail": ...} (carenotes.core.limits).
            400: BAD_QUERY,
            401: OpenApiResponse(ErrorDetailSerializer, description="Missing or bad token."),
            403: OpenApiResponse(ErrorDetailSerializer, description="A carer of the tenant."),
            404: OpenApiResponse(
                ErrorDetailSerializer,
                description="No such tenant, or the caller is not a member (same answer).",
            ),
        },
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
        tenant_id = tenant_params.validated_data["tenant_id"]
        tenant = tenant_get_for_request(request=request, tenant_id=tenant_id)
        principal = principal_from_request(request)
        if not may_see_dashboard(principal=principal, tenant_id=tenant_id):
            raise PermissionDenied(CARER_REFUSED.format(role=principal.role_in(tenant_id)))
        params = self.InputSerializer(data=request.query_params, context={"tenant": tenant})
        params.is_valid(raise_exception=True)
        data = params.validated_data
        now = timezone.now()
        rows, next_cursor = patient_attention_list(
            tenant=tenant,
            facility_ids=data.get("facility_ids"),
            hours=data["hours"],
            now=now,
            cursor=data.get("cursor"),
            page_size=data["page_size"],
        )
        next_url = None
        if next_cursor is not None:
            next_url = replace_query_param(
                request.build_absolute_uri(), "cursor", next_cursor.encode()
            )
        body = {
            "tenant_id": tenant.id,
            "hours": data["hours"],
            "cutoff": attention_cutoff(now=now, hours=data["hours"]),
            "next": next_url,
            "results": rows,
        }
        return Response(self.OutputSerializer(body).data)
