"""Django settings for carenotes, read from the environment in one place (12-factor)."""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from carenotes.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_match,
    env_required,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

INSECURE_SECRET_PREFIX = "django-insecure-"
MIN_SECRET_KEY_LENGTH = 50
# How a shell gets the variables `make run` uses (its embedded servers and secret key).
MAKE_RUN_ENV_HINT = (
    'For the servers `make run` uses, run `eval "$(.venv/bin/python tools/devenv.py env)"` '
    'first, or use `make manage ARGS="..."`.'
)


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to 50+ random characters, or set "
            f"DJANGO_DEBUG=1 (development) to use an insecure development key. {MAKE_RUN_ENV_HINT}"
        )
    SECRET_KEY = INSECURE_SECRET_PREFIX + "development-only-key-never-use-in-production-0123456789"
elif not DEBUG and (
    SECRET_KEY.startswith(INSECURE_SECRET_PREFIX) or len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH
):
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} random characters and not "
        f"start with {INSECURE_SECRET_PREFIX!r} when DJANGO_DEBUG is off."
    )

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Trigger-written change history of care records (carenotes/notes/history.py).
    "pgtrigger",
    "pghistory",
    "tenants",
    "audit",
    "carenotes.notes",
    "stats",
    "dashboard",
]

MIDDLEWARE = [
    # First, so its id and duration cover every other middleware (and their early answers).
    "carenotes.core.observability.RequestLogMiddleware",
    # Oversized bodies (413) and query strings (400) are refused before anything reads them.
    "carenotes.core.limits.RequestLimitsMiddleware",
    # A view whose PostgreSQL connection died answers 503 + Retry-After (core/resilience.py).
    "carenotes.core.resilience.DatabaseUnavailableMiddleware",
    # Before anything that may query: every statement of the request runs under row-level
    # security scoped to the caller's tenants (tenants/middleware.py).
    "tenants.middleware.RowLevelSecurityMiddleware",
    # GET reads of DATABASE_REPLICA_READ_VIEWS may use a fresh replica (core/replicas.py);
    # without DATABASE_REPLICA_URLS every read uses the primary whatever it says.
    "carenotes.core.replicas.ReplicaReadsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who changed a care record: the signed-in user (or, once DRF has authenticated, the
    # token's user) and the path go into the history rows the triggers write.
    "pghistory.middleware.HistoryMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "carenotes.urls"
WSGI_APPLICATION = "carenotes.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- PostgreSQL -----------------------------------------------------------------------------
DATABASE_URL = env_required(
    "DATABASE_URL",
    how="Set DATABASE_URL=postgres://user:pass@host:5432/dbname. " + MAKE_RUN_ENV_HINT,
)
DATABASE_POOL = env_bool("DATABASE_POOL", False)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=0 if DATABASE_POOL else env_int("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=not DATABASE_POOL,
    )
}
if DATABASE_POOL:
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN_SIZE", 1),
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 4),
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 10),
    }
# What sits between the app and PostgreSQL: nothing (or a session pooler), or a transaction
# pooler (PgBouncer pool_mode = transaction). Behind a transaction pooler nothing may live
# in the session: row-level-security scopes are sent with every statement, transaction-local
# (tenants/rls.py), and server-side cursors (DECLARE ... WITH HOLD) are off.
DATABASE_POOLERS = ("", "session", "transaction")
DATABASE_POOLER = env_choice("DATABASE_POOLER", "", choices=DATABASE_POOLERS)
BEHIND_TRANSACTION_POOLER = DATABASE_POOLER == "transaction"
# Prepared statements for the hot, fixed SQL sent through carenotes.core.db.prepared_cursor (the
# stats selector). Django disables them for transaction-mode poolers; they default to off
# behind one (DATABASE_POOLER=transaction): PgBouncer keeps them only from 1.21 on, with
# max_prepared_statements set. Django's own cursors bind on the client either way.
# Citus (README, "Scale out on Citus"): DATABASE_URL names the coordinator. A worker sees
# none of the coordinator session's settings, only the SET LOCAL commands of a transaction
# block: every statement then carries its row-level-security scope that way (tenants/rls.py).
DATABASE_CITUS = env_bool("DATABASE_CITUS", False)
DATABASE_PREPARED_STATEMENTS = env_bool(
    "DATABASE_PREPARED_STATEMENTS", not BEHIND_TRANSACTION_POOLER and not DATABASE_CITUS
)


def _database_options(database: dict, *, connect_timeout: int) -> dict:
    database.setdefault("OPTIONS", {})
    database["OPTIONS"]["connect_timeout"] = connect_timeout
    if DATABASE_PREPARED_STATEMENTS:
        database["OPTIONS"]["prepare_threshold"] = 5
    if BEHIND_TRANSACTION_POOLER:
        database["DISABLE_SERVER_SIDE_CURSORS"] = True
    return database


_database_options(DATABASES["default"], connect_timeout=env_int("DATABASE_CONNECT_TIMEOUT", 5))
DATABASES["default"]["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME") or None}

# Read replicas (streaming standbys of the primary), comma-separated URLs; none by default.
# Listed views' GET reads go to a replica that has replayed the reader's tenants' last writes
# (read-your-writes: carenotes/core/replicas.py); a replica that is down, refuses connections
# or lags more than DATABASE_REPLICA_MAX_LAG seconds is skipped.
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS")
DATABASE_REPLICA_MAX_LAG = env_int("DATABASE_REPLICA_MAX_LAG", 5)
DATABASE_REPLICAS = tuple(f"replica{n}" for n in range(1, len(DATABASE_REPLICA_URLS) + 1))
for _alias, _url in zip(DATABASE_REPLICAS, DATABASE_REPLICA_URLS, strict=True):
    DATABASES[_alias] = _database_options(
        # No health check: a statement that fails on a replica is run on the primary.
        dj_database_url.parse(_url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600)),
        # A replica that does not answer must cost a request little: it is skipped.
        connect_timeout=env_int("DATABASE_REPLICA_CONNECT_TIMEOUT", 1),
    )
    # Test runs make no database for it: reads of the test database stay on the primary.
    DATABASES[_alias]["TEST"] = {"MIRROR": "default"}
# The views whose GET/HEAD reads may be answered by a replica (URL names, fnmatch patterns).
DATABASE_REPLICA_READ_VIEWS = [
    "care-stats",
    "note-list",
    "note-detail",
    "resident-list",
    "resident-detail",
    "admin:*_changelist",
]
# Writes no read needs to see fresh: they are not recorded for read-your-writes, so the
# audit record every note read appends costs no WAL-position round trip and does not send
# the reader's next reads to the primary. The audit admin may lag a replica by at most
# DATABASE_REPLICA_MAX_LAG seconds.
DATABASE_REPLICA_UNTRACKED_TABLES = frozenset({"audit_readrecord"})
DATABASE_ROUTERS = ["carenotes.core.routers.ReplicaRouter"] if DATABASE_REPLICAS else []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis ----------------------------------------------------------------------------------
REDIS_URL = env_required("REDIS_URL", how="Set REDIS_URL=redis://host:6379/0. " + MAKE_RUN_ENV_HINT)
# Short timeouts: a dead Redis must cost milliseconds, not a hung request.
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 0.25)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "cn"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "CONNECTION_POOL_KWARGS": {"max_connections": 50},
        },
    }
}

# Serve daily stats from Redis. Off: every request computes from PostgreSQL (X-Cache: BYPASS).
STATS_CACHE_ENABLED = env_bool("STATS_CACHE_ENABLED", True)

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# How long an authenticated principal (token -> user + memberships) may be served from
# Redis. Revocation deletes the entry at once; the TTL bounds staleness if that fails.
PRINCIPAL_CACHE_TTL = env_int("PRINCIPAL_CACHE_TTL", 30)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Per user and per endpoint scope, counted in Redis (carenotes/core/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["carenotes.core.throttling.RedisFixedWindowThrottle"],
}

# --- Throttling (requests per user and scope; "<count>/<s|m|h|d>", "off" disables a scope) --
# Defaults sit well above the load profiles (docs/SECURITY.md, "Throttling"): the seed
# profile shares five manager tokens among 50 users, ~180 stats req/s per token on average.
THROTTLE_RATE_OFF = "off"
THROTTLE_RATE_PATTERN = rf"[1-9][0-9]*/[smhd]|{THROTTLE_RATE_OFF}"
THROTTLE_RATE_EXPECTED = "like 600/m (count per s, m, h or d) or be off"
_THROTTLE_RATES_CONFIGURED = {
    "stats": env_match(
        "THROTTLE_RATE_STATS",
        "60000/m",
        pattern=THROTTLE_RATE_PATTERN,
        expected=THROTTLE_RATE_EXPECTED,
    ),
    "notes_read": env_match(
        "THROTTLE_RATE_NOTES_READ",
        "3000/m",
        pattern=THROTTLE_RATE_PATTERN,
        expected=THROTTLE_RATE_EXPECTED,
    ),
    "notes_write": env_match(
        "THROTTLE_RATE_NOTES_WRITE",
        "2400/m",
        pattern=THROTTLE_RATE_PATTERN,
        expected=THROTTLE_RATE_EXPECTED,
    ),
    "me": env_match(
        "THROTTLE_RATE_ME", "3000/m", pattern=THROTTLE_RATE_PATTERN, expected=THROTTLE_RATE_EXPECTED
    ),
}
THROTTLE_RATES = {
    scope: rate for scope, rate in _THROTTLE_RATES_CONFIGURED.items() if rate != THROTTLE_RATE_OFF
}

# --- Request limits (carenotes/core/limits.py answers 413 / 400 before any view runs) -----------
# The largest API body is a note: 10,000 characters, at most ~120 KB as JSON escapes.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_MAX_BODY_BYTES", 256 * 1024)
# Query parameters and form fields per request; the API takes at most ten.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DJANGO_MAX_FIELDS", 1000)
# Longer query strings are refused (400); gunicorn's limit_request_line bounds the whole line.
QUERY_STRING_MAX_LENGTH = env_int("DJANGO_MAX_QUERY_STRING", 4096)

SPECTACULAR_SETTINGS = {
    "TITLE": "carenotes API",
    "DESCRIPTION": "Multi-tenant care notes and daily care analytics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A note's category and an amendment's previous and new ones are one enum.
    "ENUM_NAME_OVERRIDES": {"CategoryEnum": "carenotes.notes.models.Category"},
    # 401, 429 and the request limits' 400/413 on every secured operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "carenotes.core.schema_hooks.postprocess_common_errors",
    ],
}

# --- Access audit (audit/) -------------------------------------------------------------------
# Days an audit record of a care-note read is kept; `manage.py audit_purge` deletes older ones.
# Seven years (2555 days) by default: longer than HIPAA's six years for security records and
# in line with common retention periods of adult health records (7-8 years), whose access
# history should live as long; an operator bound to a longer period sets more.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 2555)
if AUDIT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured(
        f"AUDIT_RETENTION_DAYS must be a positive number of days, got {AUDIT_RETENTION_DAYS}"
    )

# A record's own transaction (each audited read outside a transaction) commits without
# waiting for its WAL flush: on this project's disks the flush was most of the audit's cost
# (docs/PERFORMANCE.md). A PostgreSQL or host crash can then lose the records of the last
# moments (at most 3 x wal_writer_delay, 0.6 s by default), never a note. 1: wait (durable).
AUDIT_SYNCHRONOUS_COMMIT = env_bool("AUDIT_SYNCHRONOUS_COMMIT", False)

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise) --------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT") or BASE_DIR / ".data" / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security (HTTPS is terminated by a proxy in production) --------------------------------
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY", False) else None
)
# Production-safe by default when DEBUG is off; `make run` (plain HTTP on loopback) turns
# these off explicitly through the environment.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# /healthz must answer plain HTTP probes from the orchestrator even with SSL redirect on.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# --- Dashboard (dashboard/): session sign-in, vendored browser libraries, CSP ----------------
# The managers' dashboard signs in with Django's session login, not the admin's.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:index"
LOGOUT_REDIRECT_URL = "login"
# Browser libraries come from npm (package.json, installed by `make install` / the Dockerfile's
# node stage into node_modules/) and are served by the app under static/vendor/: no CDN.
NODE_MODULES_DIR = BASE_DIR / "node_modules"
STATICFILES_DIRS = [("vendor/chart.js", NODE_MODULES_DIR / "chart.js" / "dist")]

# --- Logging --------------------------------------------------------------------------------
LOG_FORMATS = ("json", "text")
LOG_FORMAT = env_choice("DJANGO_LOG_FORMAT", "json", choices=LOG_FORMATS)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # JSON lines (one object per record) unless DJANGO_LOG_FORMAT=text, e.g. for a terminal.
    "formatters": {
        "json": {"()": "carenotes.core.logjson.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
}

# --- Metrics (carenotes/core/metrics.py; docs/OPERATIONS.md) ------------------------------
# The bearer token Prometheus sends to /metrics. Unset (the default): /metrics answers 404.
METRICS_TOKEN_MIN_LENGTH = 32
METRICS_TOKEN = env_str("METRICS_TOKEN")
if METRICS_TOKEN and len(METRICS_TOKEN) < METRICS_TOKEN_MIN_LENGTH:
    raise ImproperlyConfigured(
        f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} random characters, e.g. "
        'python3 -c "import secrets; print(secrets.token_urlsafe(32))"; unset, /metrics is off.'
    )
# Scraped over plain HTTP inside the private network, like the probes.
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^metrics$"]

# --- Per-address limits: token guessing, sign-in lockout (docs/SECURITY.md) -----------------
# Proxies in front that append to X-Forwarded-For; 0 means the caller is REMOTE_ADDR
# (carenotes/core/client_address.py). Behind the TLS proxy, 1 unless said otherwise.
TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXY_COUNT", 1 if SECURE_PROXY_SSL_HEADER else 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(
        f"DJANGO_TRUSTED_PROXY_COUNT must be 0 or more, got {TRUSTED_PROXY_COUNT}"
    )
# Failed API token lookups per address and window (carenotes/core/auth_throttle.py); "off"
# disables the limit.
AUTH_FAILURE_THROTTLE_RATE = env_match(
    "THROTTLE_RATE_AUTH_FAILURES",
    "30/m",
    pattern=THROTTLE_RATE_PATTERN,
    expected=THROTTLE_RATE_EXPECTED,
)
if AUTH_FAILURE_THROTTLE_RATE == THROTTLE_RATE_OFF:
    AUTH_FAILURE_THROTTLE_RATE = None
# Session sign-in lockout (django-axes, carenotes/core/signin.py): a username from one
# address is refused after SIGNIN_FAILURE_LIMIT failures, for SIGNIN_COOLOFF_MINUTES after
# the latest attempt. Failures live in PostgreSQL (axes' database handler), so a Redis
# restart does not lift a lockout and sign-in needs no Redis.
INSTALLED_APPS = [*INSTALLED_APPS, "axes"]
# Last, as axes asks: it turns a flagged sign-in into the lockout page.
MIDDLEWARE = [*MIDDLEWARE, "axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = [
    "carenotes.core.signin.SignInLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_MINUTES = env_int("SIGNIN_COOLOFF_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_MINUTES < 1:
    raise ImproperlyConfigured(
        "SIGNIN_FAILURE_LIMIT and SIGNIN_COOLOFF_MINUTES must be 1 or more, got "
        f"{AXES_FAILURE_LIMIT} and {AXES_COOLOFF_MINUTES}"
    )
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
# The pair: another user from the same address, and the same user elsewhere, still sign in.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "carenotes.core.client_address.client_address"
AXES_LOCKOUT_CALLABLE = "carenotes.core.signin.lockout_response"
# Attempts name users of every tenant: not for tenant admins' eyes (no admin pages), and
# successful sign-ins are in the request log already (no second, unbounded table).
AXES_ENABLE_ADMIN = False
AXES_DISABLE_ACCESS_LOG = True
# No "AXES: BEGIN" line from every process that starts.
AXES_VERBOSE = False

# --- Care notes -----------------------------------------------------------------------------
# How far back a carer may date a note (care recorded after the fact, e.g. after a night shift).
NOTE_BACKDATE_DAYS = env_int("NOTE_BACKDATE_DAYS", 7)
# How long an Idempotency-Key of POST /api/notes/ is remembered: a retry within it replays the
# first answer; after it the key is new again (carenotes/notes/idempotency.py). The
# purge_idempotency_keys command deletes the expired ones.
IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24)
if IDEMPOTENCY_KEY_TTL_HOURS < 1:
    raise ImproperlyConfigured(
        f"IDEMPOTENCY_KEY_TTL_HOURS must be 1 or more, got {IDEMPOTENCY_KEY_TTL_HOURS}"
    )
# Care notes are partitioned by calendar month (UTC; carenotes/notes/partitions.py).
# `manage.py notes_partitions` keeps partitions for the current month and this many after it.
NOTES_PARTITIONS_AHEAD = env_int("NOTES_PARTITIONS_AHEAD", 3)
if not 0 <= NOTES_PARTITIONS_AHEAD <= 120:
    raise ImproperlyConfigured(
        f"NOTES_PARTITIONS_AHEAD must be between 0 and 120 months, got {NOTES_PARTITIONS_AHEAD}"
    )
# Months of notes kept before the current one: `manage.py notes_partitions` drops the month
# partitions wholly older than that (docs/OPERATIONS.md). 0: notes are kept forever.
NOTES_RETENTION_MONTHS = env_int("NOTES_RETENTION_MONTHS", 0)
if not 0 <= NOTES_RETENTION_MONTHS <= 1200:
    raise ImproperlyConfigured(
        f"NOTES_RETENTION_MONTHS must be between 0 (keep forever) and 1200, "
        f"got {NOTES_RETENTION_MONTHS}"
    )
# Writes only: a read records nothing, so it need not carry the history context either.
PGHISTORY_MIDDLEWARE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
