"""Request ids, one JSON log line and the request metrics per request, cheap for the hot path."""

import logging
import re
import time
import uuid

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from carenotes.core.metrics import request_observe
from carenotes.core.params import TENANT_PARAM, id_or_none
from carenotes.core.request_state import RequestState, request_state

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META_KEY = "HTTP_X_REQUEST_ID"
REQUEST_ID_MAX_LENGTH = 128
# Ids from clients or proxies are echoed into headers and logs: accept only characters that
# cannot split a header or a log line, and a bounded length.
REQUEST_ID_PATTERN = re.compile(rf"[A-Za-z0-9._:-]{{1,{REQUEST_ID_MAX_LENGTH}}}")
REQUEST_LOGGER_NAME = "carenotes.request"
REQUEST_LOG_MESSAGE = "request"

logger = logging.getLogger(REQUEST_LOGGER_NAME)


def request_id_from(value: str | None) -> str:
    """Return ``value`` when it is a safe request id, otherwise a new uuid4 hex string."""
    if value and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return uuid.uuid4().hex


def request_tenant_tag(request, tenant_id: int) -> None:
    """Record the tenant a request acted on (e.g. from a JSON body) for the request log line."""
    request_state(request).tenant_id = tenant_id


def _tenant_id(request: HttpRequest, state: RequestState) -> int | None:
    if state.tenant_id is not None:
        return state.tenant_id
    try:
        raw = request.GET.get(TENANT_PARAM, "")
    except TooManyFieldsSent:
        # Already answered 400 by carenotes.core.limits; the log line must not turn it into another.
        return None
    return id_or_none(raw)


def request_user_tag(request: HttpRequest, user_id: int) -> None:
    """Record the user a request was authenticated as, when ``request.user`` is not set."""
    request_state(request).user_id = user_id


def _user_id(request: HttpRequest, state: RequestState) -> int | None:
    if state.user_id is not None:
        return state.user_id
    user = request.__dict__.get("user")
    # Never evaluate a lazy session user just to log it: that would cost a query.
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return getattr(user, "pk", None)


def _route(request: HttpRequest) -> str | None:
    match = request.resolver_match
    return match.view_name if match is not None else None


class RequestLogMiddleware:
    """Tag each request with an id (echoed in ``X-Request-ID``), log one JSON line, count it.

    The count and duration by route and status go to carenotes.core.metrics.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = request_id_from(request.META.get(REQUEST_ID_META_KEY))
        state = request_state(request)
        state.request_id = request_id
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        seconds = time.perf_counter() - started
        route = _route(request)
        request_observe(
            route=route, method=request.method, status=response.status_code, seconds=seconds
        )
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                REQUEST_LOG_MESSAGE,
                extra={
                    "request_id": request_id,
                    "method": request.method,
                    "route": route,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 2),
                    "tenant_id": _tenant_id(request, state),
                    "user_id": _user_id(request, state),
                },
            )
        return response
