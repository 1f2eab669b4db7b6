"""API views for the caller's own identity and access."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.selectors import principal_from_request

# The throttle scope of the caller's own identity (its rate: settings.THROTTLE_RATES["me"]).
SCOPE_ME = "me"


class MeView(APIView):
    """Who the caller is and their role in each tenant; served from the principal cache."""

    throttle_scope = SCOPE_ME

    @extend_schema_serializer(component_name="Me")
    class OutputSerializer(serializers.Serializer):
        class MembershipSerializer(serializers.Serializer):
            tenant_id = serializers.IntegerField()
            role = serializers.CharField()

        user_id = serializers.IntegerField()
        username = serializers.CharField()
        is_superuser = serializers.BooleanField()
        memberships = MembershipSerializer(many=True)

    @extend_schema(responses=OutputSerializer, summary="The authenticated caller")
    def get(self, request: Request) -> Response:
        principal = principal_from_request(request)
        data = {
            "user_id": principal.user_id,
            "username": principal.username,
            "is_superuser": principal.is_superuser,
            "memberships": [
                {"tenant_id": tenant_id, "role": role}
                for tenant_id, role in sorted(principal.roles.items())
            ],
        }
        return Response(self.OutputSerializer(data).data)
