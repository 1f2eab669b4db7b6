"""Read replicas with read-your-writes: which database answers a read, and why it is fresh.

Configured by ``settings.DATABASE_REPLICAS`` (aliases made from ``DATABASE_REPLICA_URLS``);
with none, nothing here changes anything. The rules:

- **Which reads.** Only reads of a request whose view is listed in
  ``settings.DATABASE_REPLICA_READ_VIEWS`` (GET and HEAD: stats, note lists and details,
  admin changelists; ``ReplicaReadsMiddleware``), or of a ``replica_reads()`` block, may go
  to a replica, and never while a transaction is open on the primary. Writes, migrations and
  everything else use the primary (``carenotes.core.routers.ReplicaRouter``).
- **Fresh, exactly.** After a transaction that wrote commits on the primary, before anything
  else runs (the stats invalidation, the response), its WAL position
  (``pg_current_wal_insert_lsn()``, at or past the commit record) is recorded in Redis for the
  tenants it could have written: those of its row-level-security scope for a write to a
  tenant table, every tenant for a write to any other table or under an all-tenants scope. A
  read may use a replica only when the replica's ``pg_last_wal_replay_lsn()`` has reached the
  highest position recorded for the tenants the reader's scope can see. The check is made at
  each read, not once per request, so a cache refill (the stats answer stamped with the
  version an invalidation just bumped) never reads a replica that lags the write.
- **Unknown means primary.** Redis unreachable, or its positions lost (a restarted, empty
  Redis, an evicted hash): reads use the primary, and the first reader afterwards records the
  primary's current position as a floor every replica must reach.
- **Failing replicas are skipped.** A replica that refuses connections, has died, answers as
  a primary, or lags more than ``DATABASE_REPLICA_MAX_LAG`` seconds is skipped (down for
  ``REPLICA_RETRY_SECONDS``, then tried again); a statement that fails on a replica runs again
  on the primary, so the request never sees the error.
"""

import contextlib
import contextvars
import fnmatch
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest
from django_redis import get_redis_connection

from carenotes.core.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)

PRIMARY = DEFAULT_DB_ALIAS
SAFE_METHODS = frozenset({"GET", "HEAD"})
# A replica's replay position and lag are re-read at most this often per process, unless a
# read needs a later position (then at most every REPLICA_RECHECK_SECONDS).
REPLICA_POSITION_MAX_AGE = 1.0
REPLICA_RECHECK_SECONDS = 0.02
# A replica that failed is not tried again for this long (per process).
REPLICA_RETRY_SECONDS = 5.0

# One Redis hash holds every recorded position, so an eviction loses all of them together
# (and the missing floor says so). Fields: FLOOR; ALL (writes that may touch any tenant);
# ANY (the latest write of all); t:<id> (writes to that tenant's rows).
WAL_POSITIONS_KEY = "replicas:wal"
FLOOR_FIELD = "floor"
ALL_FIELD = "all"
ANY_FIELD = "any"
# HSET each field to ARGV[1] unless it already holds a later position.
_RECORD_LUA = """
local position = tonumber(ARGV[1])
for i = 2, #ARGV do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if position > current then redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
end
return 1
"""
INSERT_POSITION_SQL = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"
# Caught up with what it received: no lag; else the age of the last replayed transaction.
REPLICA_POSITION_SQL = (
    "SELECT pg_is_in_recovery(), "
    "COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, -1), "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)

# The target table of a write as Django writes it (quoted names), else no table.
_WRITE_TABLE = re.compile(r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?([A-Za-z0-9_]+)"?', re.I)
_READ_KEYWORDS = frozenset({"SELECT", "SHOW", "SET", "RESET", "VALUES", "TABLE", "FETCH"})
_DML = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.I)


@dataclass(frozen=True)
class Reach:
    """The tenants whose rows a statement can see or change: some of them, or every one."""

    tenant_ids: tuple[int, ...] = ()
    every_tenant: bool = False


EVERY_TENANT = Reach(every_tenant=True)


@dataclass(frozen=True)
class Tenancy:
    """What the bookkeeping learns from the tenancy layer (tenants.rls registers it)."""

    tenant_tables: frozenset[str]
    # The reach of the statement about to run (its row-level-security scope).
    reach: Callable[[], Reach]


# Until the tenancy layer says otherwise, every statement may reach every tenant.
_tenancy = Tenancy(tenant_tables=frozenset(), reach=lambda: EVERY_TENANT)


def replicas_configured() -> tuple[str, ...]:
    """Return the aliases of the configured replicas (empty: replicas are off)."""
    return settings.DATABASE_REPLICAS


# --- which reads may use a replica ------------------------------------------------------------


@dataclass
class _ReplicaReads:
    allowed: bool = False


_replica_reads: contextvars.ContextVar[_ReplicaReads | None] = contextvars.ContextVar(
    "carenotes_replica_reads", default=None
)


@contextlib.contextmanager
def replica_reads() -> Iterator[None]:
    """Let the block's reads use a replica (each still only when it is fresh enough)."""
    token = _replica_reads.set(_ReplicaReads(allowed=True))
    try:
        yield
    finally:
        _replica_reads.reset(token)


def replica_read_view(view_name: str) -> bool:
    """Return True when a GET of the view ``view_name`` may read from a replica."""
    return any(fnmatch.fnmatchcase(view_name, p) for p in settings.DATABASE_REPLICA_READ_VIEWS)


class ReplicaReadsMiddleware:
    """Let the reads of GET/HEAD requests to the views of DATABASE_REPLICA_READ_VIEWS use a
    replica; everything else reads from the primary."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        token = _replica_reads.set(_ReplicaReads())
        try:
            return self.get_response(request)
        finally:
            _replica_reads.reset(token)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        reads = _replica_reads.get()
        match = request.resolver_match
        if reads is not None and match is not None and request.method in SAFE_METHODS:
            reads.allowed = replica_read_view(match.view_name)


# --- recorded WAL positions (Redis) -----------------------------------------------------------


def _wal_key() -> str:
    return cache.make_key(WAL_POSITIONS_KEY)


def _fields_written(reach: Reach) -> list[str]:
    if reach.every_tenant or not reach.tenant_ids:
        return [ALL_FIELD, ANY_FIELD]
    return [*(f"t:{tenant_id}" for tenant_id in reach.tenant_ids), ANY_FIELD]


def _fields_read(reach: Reach) -> list[str]:
    if reach.every_tenant:
        return [FLOOR_FIELD, ANY_FIELD]
    return [FLOOR_FIELD, ALL_FIELD, *(f"t:{tenant_id}" for tenant_id in reach.tenant_ids)]


def insert_position(db) -> int:
    """Return the primary's WAL insert position, as bytes (at or past every commit so far)."""
    db.ensure_connection()
    with db.wrap_database_errors:
        return db.connection.execute(INSERT_POSITION_SQL).fetchone()[0]


def wal_positions_record(*, fields: set[str], position: int) -> None:
    """Raise the recorded position of ``fields`` to ``position`` (a failure is logged)."""
    if not fields:
        return
    try:
        redis = get_redis_connection("default")
        redis.register_script(_RECORD_LUA)(keys=[_wal_key()], args=[position, *sorted(fields)])
    except CACHE_ERRORS as exc:
        logger.warning("replica bookkeeping: recording WAL position %s failed: %s", position, exc)


def wal_position_needed(reach: Reach) -> int | None:
    """Return the position a replica must have replayed to answer a reader of ``reach``.

    None when unknown (Redis unreachable, or its positions lost): read from the primary.
    """
    try:
        redis = get_redis_connection("default")
        values = redis.hmget(_wal_key(), _fields_read(reach))
        if values[0] is None:
            # Lost (restart, eviction) or never set: no later write may be missed, so every
            # replica must first reach what the primary holds now.
            redis.hsetnx(_wal_key(), FLOOR_FIELD, insert_position(connections[PRIMARY]))
            return None
    except (*CACHE_ERRORS, DatabaseError) as exc:
        logger.warning("replica bookkeeping unavailable, reading from the primary: %s", exc)
        return None
    return max(int(value) for value in values if value is not None)


# --- writes on the primary --------------------------------------------------------------------


def write_reach(sql: str) -> Reach | None:
    """Return the tenants a statement may write (None: it writes nothing).

    Django's own SQL names its target first: a write to a tenant table reaches the tenants of
    the statement's scope, a write to any other table (sessions, users) or any other kind of
    statement (DDL, TRUNCATE, WITH ... DELETE) reaches every tenant. Writes to
    ``settings.DATABASE_REPLICA_UNTRACKED_TABLES`` are not recorded at all.
    """
    words = sql.lstrip(" \t\n(").split(None, 1)
    keyword = words[0].upper() if words else ""
    if keyword in _READ_KEYWORDS:
        return None
    if keyword == "EXPLAIN" and "ANALYZE" not in sql.upper():
        return None
    if keyword == "WITH" and not _DML.search(sql):
        return None
    match = _WRITE_TABLE.match(sql)
    if match is not None and match.group(1) in settings.DATABASE_REPLICA_UNTRACKED_TABLES:
        return None  # no read needs to see it fresh (settings: the access audit)
    if match is not None and match.group(1) in _tenancy.tenant_tables:
        return _tenancy.reach()
    return EVERY_TENANT


@dataclass
class _PendingWrites:
    """The fields a connection's open transaction has written, recorded after it commits."""

    db: object
    fields: set[str] = field(default_factory=set)

    def record(self) -> None:
        fields, self.fields = self.fields, set()
        try:
            position = insert_position(self.db)
        except DatabaseError as exc:
            logger.warning("replica bookkeeping: no WAL position after commit: %s", exc)
            return
        wal_positions_record(fields=fields, position=position)


_PENDING_ATTR = "_carenotes_pending_writes"


def _writes_seen(db, reach: Reach) -> None:
    pending: _PendingWrites | None = getattr(db, _PENDING_ATTR, None)
    if pending is None:
        pending = _PendingWrites(db)
        setattr(db, _PENDING_ATTR, pending)
    pending.fields.update(_fields_written(reach))
    if not db.in_atomic_block:
        pending.record()  # autocommit: the statement has committed
    elif not any(callback == pending.record for _, callback, _ in db.run_on_commit):
        # First write of this transaction (or of it since a rolled-back savepoint dropped the
        # registration): recorded first thing after commit, before the callbacks that follow
        # (stats invalidation), which are registered after the write that precedes them.
        db.on_commit(pending.record)


def _write_observer(execute, sql, params, many, context):
    """Execute wrapper of the primary: note which tenants each committed write reached."""
    result = execute(sql, params, many, context)
    if replicas_configured() and isinstance(sql, str):
        reach = write_reach(sql)
        if reach is not None:
            _writes_seen(context["connection"], reach)
    return result


# --- replicas: position, health, choice -------------------------------------------------------


@dataclass(frozen=True)
class _ReplicaState:
    checked_at: float = float("-inf")
    replay_position: int = -1
    usable: bool = False
    down_until: float = float("-inf")


_states: dict[str, _ReplicaState] = {}
_rotation = itertools.count()


def replica_mark_down(alias: str, reason: object) -> None:
    """Skip replica ``alias`` in this process for REPLICA_RETRY_SECONDS."""
    logger.warning("replica %s skipped for %ss: %s", alias, REPLICA_RETRY_SECONDS, reason)
    _states[alias] = _ReplicaState(down_until=time.monotonic() + REPLICA_RETRY_SECONDS)
    with contextlib.suppress(DatabaseError):
        connections[alias].close()


def replica_states_reset() -> None:
    """Forget what this process knows of its replicas (tests; a changed configuration)."""
    _states.clear()


def _position_read(alias: str, now: float) -> _ReplicaState:
    db = connections[alias]
    db.ensure_connection()
    with db.wrap_database_errors:
        in_recovery, replayed, lag = db.connection.execute(REPLICA_POSITION_SQL).fetchone()
    if not in_recovery:
        logger.warning("replica %s answers as a primary; not reading from it", alias)
    state = _ReplicaState(
        checked_at=now,
        replay_position=replayed,
        usable=bool(in_recovery) and float(lag) <= settings.DATABASE_REPLICA_MAX_LAG,
    )
    _states[alias] = state
    return state


def _replica_fresh(alias: str, needed: int) -> bool:
    now = time.monotonic()
    state = _states.get(alias, _ReplicaState())
    if now < state.down_until:
        return False
    age = now - state.checked_at
    # A read also needs a connection now: refreshing makes one, or finds the replica down.
    known = age < REPLICA_POSITION_MAX_AGE and connections[alias].connection is not None
    # Replay positions only grow: one seen at or past `needed` still is.
    if known and state.usable and state.replay_position >= needed:
        return True
    if known and age < REPLICA_RECHECK_SECONDS:
        return False
    try:
        state = _position_read(alias, now)
    except DatabaseError as exc:
        replica_mark_down(alias, exc)
        return False
    return state.usable and state.replay_position >= needed


def read_alias() -> str:
    """Return the database the current read should use: a fresh replica, else the primary."""
    aliases = replicas_configured()
    reads = _replica_reads.get()
    if not aliases or reads is None or not reads.allowed or connections[PRIMARY].in_atomic_block:
        return PRIMARY
    needed = wal_position_needed(_tenancy.reach())
    if needed is None:
        return PRIMARY
    start = next(_rotation)
    for offset in range(len(aliases)):
        alias = aliases[(start + offset) % len(aliases)]
        if _replica_fresh(alias, needed):
            return alias
    return PRIMARY


def _replica_fallback(execute, sql, params, many, context):
    """Execute wrapper of a replica: a statement that fails there runs on the primary."""
    try:
        return execute(sql, params, many, context)
    except (OperationalError, InterfaceError) as exc:
        db = context["connection"]
        if db.alias not in replicas_configured() or db.in_atomic_block:
            raise
        raw = db.connection
        if raw is None or raw.closed or raw.broken:
            replica_mark_down(db.alias, exc)
        else:  # e.g. canceled by a conflict with recovery: the replica itself is fine
            logger.warning("replica %s failed a statement, the primary runs it: %s", db.alias, exc)
        # The caller holds the replica's cursor: give it the primary's, with the results.
        cursor = context["cursor"]
        fallback = connections[PRIMARY].cursor()
        if many:
            fallback.executemany(sql, params)
        else:
            fallback.execute(sql, params)
        cursor.cursor, cursor.db = fallback.cursor, fallback.db
        return fallback.cursor


def replica_bookkeeping_install(connection, *, tenancy: Tenancy) -> None:
    """Add the replica wrappers to a new connection, outermost (before the scope wrapper).

    On the primary: the write observer; on a replica: the fallback to the primary. Both do
    nothing while no replica is configured.
    """
    global _tenancy
    _tenancy = tenancy
    wrapper = _write_observer if connection.alias == PRIMARY else _replica_fallback
    if wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, wrapper)
