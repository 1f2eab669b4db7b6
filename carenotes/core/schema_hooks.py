"""drf-spectacular hook: the error answers every API operation can give, documented once.

Authentication (401), throttling (429 with ``Retry-After``) and the request limits of
``carenotes.core.limits`` (400, and 413 for bodies) apply to every authenticated operation, so
they are added here rather than repeated in each view's ``extend_schema``.
"""

DETAIL_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "description": "Seconds until the caller's budget for this endpoint refills.",
    }
}
COMMON_ERRORS = {
    "400": "Invalid input, or the request is over the query size limits.",
    "401": "Missing, invalid, revoked or expired credentials.",
    "429": "Too many requests by this user to this endpoint; retry after Retry-After seconds.",
}
BODY_TOO_LARGE = "The request body is larger than the configured limit."


def _error(description: str, **extra) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": DETAIL_SCHEMA}},
        **extra,
    }


def postprocess_common_errors(result: dict, generator, request, public) -> dict:
    """Return the schema with 400/401/429 (and 413 for bodies) on every secured operation."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not operation.get("security"):
                continue
            responses = operation.setdefault("responses", {})
            for status, description in COMMON_ERRORS.items():
                extra = {"headers": RETRY_AFTER_HEADER} if status == "429" else {}
                responses.setdefault(status, _error(description, **extra))
            if "requestBody" in operation:
                responses.setdefault("413", _error(BODY_TOO_LARGE))
    return result
