"""Liveness probe: answers without touching any dependency."""

from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Return 200 while the process can serve requests."""
    return JsonResponse({"status": "ok"})
