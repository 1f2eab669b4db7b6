"""Request middleware of tenancy: every statement of a request runs scoped to its caller."""

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from tenants.rls import NO_TENANTS, DbScope, db_scope, principal_scope
from tenants.selectors import principal_get_for_user


class RequestScope:
    """The scope of one HTTP request, following whoever the request is authenticated as.

    Resolved at each statement from ``request.user``: DRF's token authentication puts the
    token's user (carrying ``.principal``) there, Django's session middleware a lazy user.
    A user that has not been loaded yet has no tenants: nothing is evaluated just for RLS.
    """

    def __init__(self, request: HttpRequest):
        self.request = request
        self._user = None
        self._scope = NO_TENANTS

    def resolve(self) -> DbScope:
        user = self.request.__dict__.get("user")
        if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
            return NO_TENANTS
        if user is not self._user:
            self._scope = self._scope_of(user)
            self._user = user
        return self._scope

    @staticmethod
    def _scope_of(user) -> DbScope:
        if not user.is_authenticated:
            return NO_TENANTS
        principal = getattr(user, "principal", None)
        if principal is None:
            # A session user (the admin, the browsable API): their cached principal.
            principal = principal_get_for_user(user=user)
        return principal_scope(principal)


class RowLevelSecurityMiddleware:
    """Scope each request's statements to its caller's tenants (tenants/rls.py).

    On a direct connection the scope is not reset when the request ends: whatever uses the
    connection next passes through ``db_scope_wrapper`` before its first statement, which
    puts that code's own scope in force (``NO_TENANTS`` outside requests). Not resetting
    saves a round trip per request, and a second one on the next request of the same caller,
    whose scope is then already in force (docs/PERFORMANCE.md, "Uncached stats"). Behind a
    transaction pooler there is nothing to reset: each statement's scope ends with its
    transaction.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with db_scope(RequestScope(request)):
            return self.get_response(request)
