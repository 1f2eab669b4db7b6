"""A lost PostgreSQL connection answers 503 with Retry-After, not a bare 500.

With persistent connections and health checks (``CONN_HEALTH_CHECKS``) the next request on
the same thread reconnects, so the failure is worth one retry. The answer means "outcome
unknown" for a write: the transaction may have committed just before the connection died
(a 201 is only ever sent after the commit and the re-read succeeded).
"""

import logging
from http import HTTPStatus

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse

from carenotes.core.metrics import BACKEND_POSTGRESQL, SITE_REQUEST, backend_error

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 1
DATABASE_UNAVAILABLE_DETAIL = "The database connection was lost; retry the request."


class DatabaseUnavailableMiddleware:
    """Turn a view's lost or refused database connection into 503 + Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        backend_error(backend=BACKEND_POSTGRESQL, site=SITE_REQUEST)
        logger.warning(
            "database unavailable during %s %s: %s", request.method, request.path, exception
        )
        response = JsonResponse(
            {"detail": DATABASE_UNAVAILABLE_DETAIL}, status=HTTPStatus.SERVICE_UNAVAILABLE
        )
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
