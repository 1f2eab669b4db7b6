"""Request size limits: oversized bodies get 413, oversized or malformed queries 400, in JSON.

Django enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only when ``request.body`` or a form is
read, and answers a generic 400; DRF's JSON parser reads the stream directly and is not
limited at all. This middleware refuses by the declared ``Content-Length`` before anything
reads the body, so no worker spends memory or time on it, and names what was too large.
"""

from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse


def _error(status: HTTPStatus, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def body_too_large(length: int) -> JsonResponse:
    """Return the 413 answer for a body of ``length`` bytes."""
    return _error(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"Request body too large: {length} bytes; the limit is "
        f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
    )


def too_many_fields() -> JsonResponse:
    """Return the 400 answer for more query parameters or form fields than allowed."""
    return _error(
        HTTPStatus.BAD_REQUEST,
        f"Too many query parameters or form fields; the limit is "
        f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}.",
    )


def request_limit_violation(request: HttpRequest) -> JsonResponse | None:
    """Return the error answer for a request over a size limit, or None when it is within."""
    raw_length = request.META.get("CONTENT_LENGTH") or "0"
    if not raw_length.isascii() or not raw_length.isdigit():
        return _error(HTTPStatus.BAD_REQUEST, f"Invalid Content-Length header: {raw_length!r}.")
    length = int(raw_length)
    if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return body_too_large(length)
    query_length = len(request.META.get("QUERY_STRING", ""))
    if query_length > settings.QUERY_STRING_MAX_LENGTH:
        return _error(
            HTTPStatus.BAD_REQUEST,
            f"Query string too long: {query_length} characters; the limit is "
            f"{settings.QUERY_STRING_MAX_LENGTH}.",
        )
    try:
        request.GET  # noqa: B018 -- parse now, so the count limit answers here, in JSON
    except TooManyFieldsSent:
        return too_many_fields()
    return None


class RequestLimitsMiddleware:
    """Refuse requests over the size limits before a view reads them, answering in JSON."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return request_limit_violation(request) or self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # A form body with too many fields is only found when a view reads it; Django would
        # answer a bare 400 page. (A body over the byte limit never gets that far.)
        if isinstance(exception, TooManyFieldsSent):
            return too_many_fields()
        return None
