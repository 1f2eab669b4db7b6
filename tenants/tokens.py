"""API keys on the wire: the one parser of ``Authorization: Token <key>`` and the key's digest.

Both request paths use these: DRF's ``tenants.authentication.TokenAuthentication`` and the
warm-hit path of the analytics (``stats.fastpath``), which answers before DRF.
"""

import hashlib

TOKEN_KEYWORD = "Token"
# Schemes that are not ours, said alone (a bare "Basic" is not a bare key).
OTHER_SCHEMES = frozenset({b"basic", b"bearer", b"digest", b"negotiate", b"session"})
# The user an API key belongs to never changes. Each process remembers it for the keys it
# has authenticated, so that the warm-hit path can name the caller's throttle counter in the
# same Redis round trip that fetches the principal. Bounded; cleared when full.
TOKEN_USERS_MAX = 10_000


class TokenHeaderError(ValueError):
    """An ``Authorization: Token`` header that is malformed (the message says how)."""


def token_key_parse(header: str) -> str | None:
    """Return the key of an ``Authorization: Token <key>`` header value.

    None when the header is absent or names another scheme; TokenHeaderError when it names
    this scheme but is malformed, or is a bare key without the scheme (the usual mistake in
    Swagger UI's Authorize box). Splits on ASCII whitespace, as DRF does.
    """
    parts = header.encode("latin-1", "replace").split()
    if len(parts) == 1 and parts[0].lower() not in OTHER_SCHEMES:
        raise TokenHeaderError(
            f"Invalid token header: expected 'Authorization: {TOKEN_KEYWORD} <key>' "
            "(the word Token, a space, then the key)."
        )
    if not parts or parts[0].lower() != TOKEN_KEYWORD.lower().encode():
        return None
    if len(parts) != 2:
        raise TokenHeaderError("Invalid token header: expected 'Authorization: Token <key>'.")
    try:
        return parts[1].decode("ascii")
    except UnicodeError as exc:
        raise TokenHeaderError("Invalid token header: non-ASCII key.") from exc


def token_digest(key: str) -> str:
    """Return the stored form of an API key (hex SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()


class TokenUsers:
    """A per-process memo of which user an API key (by digest) belongs to.

    Only an optimisation: a key's user never changes, a forgotten or cleared entry sends the
    request down the full path, and nothing is decided from it alone (the principal fetched
    from the shared cache must name the same user, else the entry is forgotten).
    """

    def __init__(self, capacity: int = TOKEN_USERS_MAX) -> None:
        self.capacity = capacity
        self._users: dict[str, int] = {}

    def recall(self, digest: str) -> int | None:
        """Return the user id of a key this process has authenticated before, else None."""
        return self._users.get(digest)

    def remember(self, digest: str, user_id: int) -> None:
        if len(self._users) >= self.capacity:
            self._users.clear()
        self._users[digest] = user_id

    def forget(self, digest: str) -> None:
        self._users.pop(digest, None)


token_users = TokenUsers()
