"""The one per-request object that layers share: who the caller is, the tenant, counts made.

Made by the first middleware (``carenotes.core.observability.RequestLogMiddleware``) and
filled in by whoever learns a fact: a view that reads the tenant from a JSON body, the
warm-hit path that authenticates without DRF, the token lookup, throttle count and cache
misses that path already made.
Nothing else about a request travels between the request paths; read and write it only
through ``request_state``.
"""

from dataclasses import dataclass

# The attribute of the Django HttpRequest that holds the state.
REQUEST_STATE_ATTRIBUTE = "carenotes_state"


@dataclass(frozen=True)
class ThrottleCount:
    """A request already counted in a throttle window: the window's key and the count."""

    key: str
    count: int


@dataclass(frozen=True)
class TokenLookup:
    """An API key already looked up for this request: its digest and what it authenticates.

    ``auth`` is what token authentication hands a view (tenants.principal.TokenAuth; opaque
    here, since infrastructure imports no app).
    """

    digest: str
    auth: object


@dataclass
class RequestState:
    """Facts about one request, shared by the layers that handle it."""

    request_id: str | None = None
    # The tenant the request acted on, when not named by its ``tenant_id`` query parameter.
    tenant_id: int | None = None
    # The caller, when authenticated without setting ``request.user`` (the warm-hit path).
    user_id: int | None = None
    # A throttle count already made for this request (the warm-hit path), reused by DRF's
    # throttle for the same window key so that no request is counted twice.
    throttle_count: ThrottleCount | None = None
    # The API key the warm-hit path found valid (a cached, unexpired principal that may read
    # the tenant) before it missed: DRF's token authentication reuses it for the same key.
    token_lookup: TokenLookup | None = None
    # Cache entry keys the warm-hit path read and found absent or stale: the full path takes
    # its lock (reading the entry again under it) without a first look of its own.
    cache_misses: frozenset[str] = frozenset()


def request_state(request) -> RequestState:
    """Return the state of a Django request or of the DRF Request wrapping it (made once)."""
    django_request = getattr(request, "_request", request)
    state = django_request.__dict__.get(REQUEST_STATE_ATTRIBUTE)
    if state is None:
        state = RequestState()
        setattr(django_request, REQUEST_STATE_ATTRIBUTE, state)
    return state
