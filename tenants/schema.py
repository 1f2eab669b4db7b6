"""OpenAPI description of the token authentication (loaded through TenantsConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

TOKEN_SCHEME_NAME = "tokenAuth"
# Swagger UI's Authorize box sends what is typed as the whole Authorization header: a bare
# key is no credential at all (401 "not provided"). The description says what to type.
TOKEN_HEADER_FORMAT = "Token <key>"
TOKEN_SCHEME_DESCRIPTION = (
    f"API token. The value is the whole `Authorization` header: type `{TOKEN_HEADER_FORMAT}` "
    "— the word `Token`, one space, then the key (e.g. `Token 3f9a0c…`). A bare key is "
    "answered 401 saying what to type."
)


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.TokenAuthentication"
    name = TOKEN_SCHEME_NAME

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": TOKEN_SCHEME_DESCRIPTION,
        }
