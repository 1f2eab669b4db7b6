"""gunicorn configuration for carenotes (used by `make run`, `make load`, docker compose).

Every setting is read from a ``GUNICORN_*`` environment variable; the defaults are what
measurement on a 2-core machine chose (docs/PERFORMANCE.md, "Serving and load").
"""

import os
import shutil
import sys
import tempfile

from gunicorn import glogging

from carenotes.env import (
    env_choice,
    env_int,
    env_str,
    exit_on_misconfiguration,
)

# Measured on 2 cores (docs/PERFORMANCE.md): gthread keeps client connections alive, which
# spares a TCP handshake per request on both ends. One thread per process: with several,
# requests of one process queue on the GIL and the seed profile's p95 suffered (gthread 3 x 4
# vs 5 x 1 under the same load); 2 x CPUs + 1 processes overlap the short waits on Redis and
# PostgreSQL.
DEFAULT_WORKER_CLASS = "gthread"
# CPUs this process may run on (respects a container's cpuset, unlike cpu_count()).
DEFAULT_WORKERS = 2 * len(os.sched_getaffinity(0)) + 1
DEFAULT_THREADS = 1
DEFAULT_ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)sB %(M)sms request_id=%({x-request-id}o)s'
LOG_FORMATS = ("json", "text")

# A malformed variable stops gunicorn with one line naming it, not a traceback.
with exit_on_misconfiguration("gunicorn.conf.py"):
    bind = env_str("GUNICORN_BIND", "127.0.0.1:8000")
    workers = env_int("GUNICORN_WORKERS", DEFAULT_WORKERS)
    worker_class = env_str("GUNICORN_WORKER_CLASS", DEFAULT_WORKER_CLASS)
    # Each thread holds its own persistent PostgreSQL connection: workers x threads in all.
    threads = env_int("GUNICORN_THREADS", DEFAULT_THREADS)
    backlog = env_int("GUNICORN_BACKLOG", 2048)

    # Protocol limits, enforced by gunicorn before Django with a 400: the request line bounds
    # path and query string (Django answers a JSON 400 beyond DJANGO_MAX_QUERY_STRING first),
    # header count and size bound what one client can make a worker buffer.
    limit_request_line = env_int("GUNICORN_LIMIT_REQUEST_LINE", 8190)
    limit_request_fields = env_int("GUNICORN_LIMIT_REQUEST_FIELDS", 100)
    limit_request_field_size = env_int("GUNICORN_LIMIT_REQUEST_FIELD_SIZE", 8190)

    # A request slower than this is stuck (stats are served from Redis in milliseconds).
    timeout = env_int("GUNICORN_TIMEOUT", 30)
    graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 20)
    # Seconds an idle keep-alive connection stays open (gthread; sync closes after each).
    keepalive = env_int("GUNICORN_KEEPALIVE", 5)

    # Recycle workers to bound slow leaks; jitter keeps them from restarting all at once.
    max_requests = env_int("GUNICORN_MAX_REQUESTS", 20000)
    max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 2000)

    # Off by default: the application's JSON request line (carenotes.core.observability)
    # carries the same facts plus tenant and user, and a second line per request cost
    # measurable throughput under the seed load profile (docs/PERFORMANCE.md).
    # GUNICORN_ACCESSLOG=- turns it on (stderr).
    accesslog = env_str("GUNICORN_ACCESSLOG") or None
    access_log_format = env_str("GUNICORN_ACCESS_LOG_FORMAT", DEFAULT_ACCESS_LOG_FORMAT)
    errorlog = env_str("GUNICORN_ERRORLOG", "-")
    loglevel = env_str("GUNICORN_LOGLEVEL", "info")
    log_format = env_choice("DJANGO_LOG_FORMAT", "json", choices=LOG_FORMATS)

    # gunicorn 27's control socket defaults to one path per user: several servers on a
    # machine (make load, tests, other checkouts) would fight over it. On only when a path
    # is given.
    control_socket = env_str("GUNICORN_CONTROL_SOCKET")
    control_socket_disable = not control_socket

# With DJANGO_LOG_FORMAT=json (the default) gunicorn's own lines are JSON too, so stderr is
# one JSON object per line throughout: error log records as the app's, access records with
# their atoms as fields (carenotes/core/logjson.py has no Django import, so the master loads it).
if log_format == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "carenotes.core.logjson.JsonFormatter"},
            "access_json": {"()": "carenotes.core.logjson.AccessJsonFormatter"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json"},
            "access": {"class": "logging.StreamHandler", "formatter": "access_json"}
            if accesslog
            else {"class": "logging.NullHandler"},
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {
                "level": loglevel.upper(),
                "handlers": ["stderr"],
                "propagate": False,
            },
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


class AccessLogWhenConfigured(glogging.Logger):
    """gunicorn's logger, except that access records are built only when ``accesslog`` is set.

    gunicorn builds every access record (its atoms: a dict of the request's headers and
    environ) whenever any logging config is given, as logconfig_dict above is, even when its
    handler then drops the record: measurable CPU on every warm stats hit.
    """

    @property
    def access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)

    def access(self, resp, req, environ, request_time) -> None:
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


logger_class = AccessLogWhenConfigured

# The application is loaded in each worker, not in the master (no preload_app), so no
# PostgreSQL connection, psycopg pool thread or Redis socket exists before the fork. `make run`
# (tools/devenv.py serve) preloads for a fast start: it closes its connections before gunicorn
# forks, and post_fork below closes any database connection all the same.


def post_fork(server, worker):
    """Close any database connection inherited from the master so workers never share one."""
    from django.conf import settings

    if settings.configured:
        from django.db import connections

        connections.close_all()


# --- Prometheus metrics across worker processes (carenotes/core/metrics.py) ----------------
# Each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR and /metrics sums them.
# prometheus_client chooses that mode when it is imported, so the variable is put in the
# master's environment (raw_env) before any application code loads, preloaded or not. The
# directory is emptied at start (a previous run's counts are not this run's); a dead worker's
# counts are merged into archive files, so the totals never go back when workers are recycled
# and the directory does not grow (carenotes/core/metrics_files.py). Unset, each master uses a
# directory of its own, removed when it exits.
PROMETHEUS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PROMETHEUS_DIR_DEFAULT = os.path.join(tempfile.gettempdir(), f"carenotes-prometheus-{os.getpid()}")
prometheus_dir = env_str("PROMETHEUS_MULTIPROC_DIR") or PROMETHEUS_DIR_DEFAULT
raw_env = [f"{PROMETHEUS_DIR_VARIABLE}={prometheus_dir}"]


def on_starting(server):
    """Give the workers an empty metrics directory (before any of them is forked)."""
    # raw_env has set the variable already, so prometheus_client (imported here, in the
    # process the workers fork from) is in multiprocess mode.
    from carenotes.core.metrics_files import metrics_directory_prepare

    metrics_directory_prepare(prometheus_dir)
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        server.log.warning(
            "metrics: prometheus_client was imported before %s was set; /metrics will show "
            "one worker's counts. Set it in the environment before the app is loaded.",
            PROMETHEUS_DIR_VARIABLE,
        )


def child_exit(server, worker):
    """Merge a dead worker's counts into the archives (mark_process_dead for any gauges)."""
    from carenotes.core.metrics_files import metrics_worker_retire

    metrics_worker_retire(prometheus_dir, worker.pid)


def on_exit(server):
    """Remove the metrics directory when this config chose it (not an operator's)."""
    if prometheus_dir == PROMETHEUS_DIR_DEFAULT:
        shutil.rmtree(prometheus_dir, ignore_errors=True)
