"""In-process measurements for one data size, run by bench.stats as a subprocess.

It has Django set up against the benchmark database, so it can time the reference
implementation directly, replay the selector's exact SQL through raw psycopg (the database
floor), force cold caches through the real invalidation mechanism, and read EXPLAIN. It
prints one JSON object on stdout.
"""

import argparse
import contextvars
import http.client
import json
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")
django.setup()

import psycopg  # noqa: E402
from django.db import close_old_connections, connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django_redis import get_redis_connection  # noqa: E402

from stats.cache import StatsQuestion, care_stats_question_keys  # noqa: E402
from stats.ranges import STATS_RANGE_MAX_DAYS  # noqa: E402
from stats.reference import care_stats_reference  # noqa: E402
from stats.selectors import care_stats_get, care_stats_range_get  # noqa: E402
from stats.services import care_stats_invalidate_tenant  # noqa: E402
from tenants.rls import rls_owner  # noqa: E402
from tenants.selectors import tenant_info_get  # noqa: E402

CONCURRENT_REQUESTS = 20
STATS_PATH = "/api/care-stats/"
BARE_PATH = "/healthz"  # a plain Django JSON view: no DRF, no authentication
BUSIEST_DAY_SQL = """
    SELECT n.tenant_id, (n.created_at AT TIME ZONE t.timezone)::date AS day, count(*) AS notes
    FROM carenotes_carenote n JOIN tenants_tenant t ON t.id = n.tenant_id
    GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 1
"""
# Keys of Django's connection parameters that are not libpq/psycopg connect() arguments.
DJANGO_ONLY_CONNECTION_PARAMS = (
    "cursor_factory",
    "context",
    "prepare_threshold",
    "server_side_binding",
    "pool",
    "isolation_level",
    "assume_role",
)
HEAP_FETCHES = re.compile(r"Heap Fetches: (\d+)")
LAST_ROLLUP_DAY_SQL = "SELECT max(day) FROM stats_day_counts WHERE tenant_id = %s"


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def timed(fn: Callable[[], object], repeat: int, before: Callable[[], None] | None = None):
    """Return the wall-clock seconds of ``repeat`` calls of ``fn`` (``before`` runs untimed)."""
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def busiest_tenant_day() -> tuple[int, date, int]:
    with connection.cursor() as cursor:
        cursor.execute(BUSIEST_DAY_SQL)
        return cursor.fetchone()


class StatsClient:
    """A keep-alive HTTP client for the served endpoint, one per thread."""

    def __init__(self, base_url: str, token: str):
        host, port = base_url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"Authorization": f"Token {token}"}

    def get(self, params: dict) -> dict:
        return json.loads(self.fetch(params))

    def fetch(self, params: dict, *, path: str = STATS_PATH) -> bytes:
        """Return the body of a 200 answer, unparsed (what timing loops call)."""
        self.connection.request("GET", f"{path}?{urlencode(params)}", headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"stats answered {response.status}: {body[:300]!r}")
        return body


def concurrent_wall(calls: list[Callable[[], object]]) -> float:
    """Start all ``calls`` at once in threads; return seconds until the last one finished."""
    barrier = threading.Barrier(len(calls) + 1)
    errors: list[BaseException] = []

    def worker(call, context):
        barrier.wait()
        try:
            # Threads start with an empty context; run in a copy of ours so the database
            # scope (tenants.rls) entered by the caller applies here too.
            context.run(call)
        except BaseException as exc:  # reported below; a benchmark must not hide failures
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [
        threading.Thread(target=worker, args=(call, contextvars.copy_context())) for call in calls
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def captured_sql(tenant, day, facility_ids) -> list[str]:
    """Return the exact statements the selector sends, parameters interpolated."""
    with CaptureQueriesContext(connection) as captured:
        care_stats_get(tenant=tenant, day=day, facility_ids=facility_ids)
    return _statements(captured)


# Transaction control Django logs too (on Citus every statement runs in a transaction).
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


def _statements(captured: CaptureQueriesContext) -> list[str]:
    """Return the captured statements but for transaction control."""
    return [q["sql"] for q in captured.captured_queries if q["sql"] not in TRANSACTION_CONTROL]


def raw_sql_samples(statements: list[str], repeat: int) -> list[float]:
    """Time the statements over one raw psycopg connection (no Django, no HTTP)."""
    params = connection.get_connection_params()
    for django_only in DJANGO_ONLY_CONNECTION_PARAMS:
        params.pop(django_only, None)
    with psycopg.connect(**params, autocommit=True) as raw:

        def run():
            for sql in statements:
                raw.execute(sql).fetchall()

        run()  # warm the connection and plan caches as a pooled app connection would be
        return timed(run, repeat)


def explain(statements: list[str]) -> dict:
    plans = []
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    text = "\n\n".join(plans)
    fetches = [int(value) for value in HEAP_FETCHES.findall(text)]
    return {
        "plan": text,
        "index_only": all("Index Only Scan" in plan for plan in plans),
        "heap_fetches": sum(fetches) if fetches else None,
    }


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("inf")


def range_measurements(*, client: StatsClient, tenant, day: date, repeat: int) -> dict:
    """Return the day answer of ``day`` against the longest range, side by side.

    The range is the STATS_RANGE_MAX_DAYS days ending on the tenant's last day with notes,
    so that (on a data set seeded over at least as many days) every day of it has notes.

    True misses: the cache is on and the entry key is absent (deleted before each sample,
    nothing else touched), so each request does what a first request does — look up, lock,
    compute, store. Warm hits: the entry present (the fast path). The plain Django view
    (``/healthz``: the floor a true miss is held to) is timed by the same client in the same
    rotation, so the ratio compares like with like. The kinds are timed in alternation, the
    order rotated every round, so a shared machine's noise falls on all of them.
    """
    with connection.cursor() as cursor:
        cursor.execute(LAST_ROLLUP_DAY_SQL, [tenant.id])
        (date_to,) = cursor.fetchone()
    date_from = date_to - timedelta(days=STATS_RANGE_MAX_DAYS - 1)
    day_params = {"tenant_id": tenant.id, "date": day.isoformat()}
    range_params = {
        "tenant_id": tenant.id,
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
    }
    entries = {
        "day": care_stats_question_keys(
            StatsQuestion.for_day(tenant_id=tenant.id, day=day, facility_ids=None)
        )[-1],
        "range": care_stats_question_keys(
            StatsQuestion.for_range(
                tenant_id=tenant.id, date_from=date_from, date_to=date_to, facility_ids=None
            )
        )[-1],
    }
    params = {"day": day_params, "range": range_params, "bare": {}}
    paths = {"day": STATS_PATH, "range": STATS_PATH, "bare": BARE_PATH}
    redis = get_redis_connection("default")

    def alternate(*, absent: bool) -> dict[str, list[float]]:
        kinds = ("day", "range", "bare")
        samples: dict[str, list[float]] = {kind: [] for kind in kinds}
        for round_number in range(repeat):
            shift = round_number % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                if absent and kind in entries:
                    redis.delete(entries[kind])
                started = time.perf_counter()
                client.fetch(params[kind], path=paths[kind])
                samples[kind].append(time.perf_counter() - started)
        return samples

    answer = client.get(range_params)
    reference = care_stats_range_get(tenant=tenant, date_from=date_from, date_to=date_to)
    if answer["total_notes"] != reference.total_notes or len(answer["by_day"]) != len(
        reference.by_day
    ):
        raise RuntimeError("the served range answer disagrees with the rollups")
    alternate(absent=True)  # warm the workers' plans and connections alike
    misses = alternate(absent=True)
    client.get(day_params)
    client.get(range_params)
    hits = alternate(absent=False)
    with CaptureQueriesContext(connection) as captured:
        care_stats_range_get(tenant=tenant, date_from=date_from, date_to=date_to)
    statements = _statements(captured)
    bare = misses.pop("bare") + hits.pop("bare")
    miss_ms = {kind: median_ms(values) for kind, values in misses.items()}
    hit_ms = {kind: median_ms(values) for kind, values in hits.items()}
    return {
        "range": {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()},
        "range_days": STATS_RANGE_MAX_DAYS,
        "range_notes": reference.total_notes,
        "range_days_with_notes": sum(1 for entry in reference.by_day if entry.total_notes),
        "bare_django_p50_ms": median_ms(bare),
        "true_miss_p50_ms": miss_ms,
        "true_miss_range_over_day": _ratio(miss_ms["range"], miss_ms["day"]),
        "warm_hit_p50_ms": hit_ms,
        "warm_hit_range_over_day": _ratio(hit_ms["range"], hit_ms["day"]),
        "raw_sql_p50_ms": median_ms(raw_sql_samples(statements, repeat * 3)),
        "explain": explain(statements),
    }


def measure(*, base_url: str, credentials: Path, repeat: int) -> dict:
    """Return the size's in-process numbers (reference, served, database floor, EXPLAIN)."""
    creds = json.loads(credentials.read_text())
    tokens = {
        tenant["tenant_id"]: next(u["token"] for u in tenant["users"] if u["role"] == "manager")
        for tenant in creds["tenants"]
    }
    tenant_id, day, day_notes = busiest_tenant_day()
    tenant = tenant_info_get(tenant_id=tenant_id)
    one_facility = tenant.facility_ids[:1]
    params_all = {"tenant_id": tenant_id, "date": day.isoformat()}
    params_one = {**params_all, "facility_ids": str(one_facility[0])}
    client = StatsClient(base_url, tokens[tenant_id])

    def cold():
        care_stats_invalidate_tenant(tenant_id=tenant_id)

    results: dict = {
        "busiest_tenant_day": {"tenant_id": tenant_id, "date": day.isoformat(), "notes": day_notes}
    }

    # The challenge's four measurements, reference (in-process, no HTTP) vs served (HTTP).
    ref_single = timed(
        lambda: care_stats_reference(tenant=tenant, day=day, facility_ids=tenant.facility_ids),
        max(3, repeat // 3),
    )
    ref_filtered = timed(
        lambda: care_stats_reference(tenant=tenant, day=day, facility_ids=one_facility),
        max(3, repeat // 3),
    )
    reference = care_stats_reference(tenant=tenant, day=day, facility_ids=tenant.facility_ids)
    served = client.get(params_all)
    if (reference.total_notes, served["total_notes"]) != (day_notes, day_notes):
        # A benchmark that times the wrong work is worse than none (e.g. a lost RLS scope).
        raise RuntimeError(
            f"busiest day has {day_notes} notes, reference counted {reference.total_notes}, "
            f"the endpoint {served['total_notes']}"
        )
    served_single = timed(lambda: client.get(params_all), repeat, before=cold)
    served_filtered = timed(lambda: client.get(params_one), repeat, before=cold)
    client.get(params_all)  # warm
    served_hit = timed(lambda: client.get(params_all), repeat * 3)

    tenants = [tenant_info_get(tenant_id=tid) for tid in sorted(tokens)[:CONCURRENT_REQUESTS]]
    spread = [tenants[i % len(tenants)] for i in range(CONCURRENT_REQUESTS)]

    # What each tenant's day holds, computed here so the threads' answers can be checked.
    expected = {
        info.id: care_stats_get(tenant=info, day=day, facility_ids=info.facility_ids).total_notes
        for info in spread
    }

    def ref_call(info):
        def call():
            stats = care_stats_reference(tenant=info, day=day, facility_ids=info.facility_ids)
            if stats.total_notes != expected[info.id]:
                raise RuntimeError(
                    f"reference counted {stats.total_notes} notes of tenant {info.id} on {day}, "
                    f"expected {expected[info.id]}"
                )

        return call

    def served_call(info):
        http_client = StatsClient(base_url, tokens[info.id])
        return lambda: http_client.get({"tenant_id": info.id, "date": day.isoformat()})

    ref_concurrent = [concurrent_wall([ref_call(t) for t in spread]) for _ in range(3)]
    served_concurrent = []
    for _ in range(max(3, repeat // 3)):
        for info in tenants:
            care_stats_invalidate_tenant(tenant_id=info.id)
        served_concurrent.append(concurrent_wall([served_call(t) for t in spread]))

    results["challenge"] = {
        "single": {"reference_ms": median_ms(ref_single), "served_ms": median_ms(served_single)},
        "filtered": {
            "reference_ms": median_ms(ref_filtered),
            "served_ms": median_ms(served_filtered),
        },
        "concurrent_20": {
            "reference_ms": median_ms(ref_concurrent),
            "served_ms": median_ms(served_concurrent),
        },
        # The reference has no cache: its "cache hit" is another full computation.
        "cache_hit": {"reference_ms": median_ms(ref_single), "served_ms": median_ms(served_hit)},
    }

    # The statements of the benchmarked request: every facility (no facility_ids).
    statements = captured_sql(tenant, day, None)
    results["raw_sql_p50_ms"] = median_ms(raw_sql_samples(statements, repeat * 3))
    results["statements"] = len(statements)
    results["explain"] = explain(statements)
    # A fresh keep-alive connection: the first one has idled past the server's keep-alive.
    results["ranges"] = range_measurements(
        client=StatsClient(base_url, tokens[tenant_id]), tenant=tenant, day=day, repeat=repeat
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the running server, http://host:port")
    parser.add_argument("--credentials", required=True, type=Path, help="seed credentials file")
    parser.add_argument("--repeat", type=int, default=15, help="samples per measurement")
    args = parser.parse_args()
    # The owner, as before row-level security: the reference, the statements' text and
    # EXPLAIN read across tenants; the served numbers go through the app's own scoping.
    with rls_owner():
        result = measure(base_url=args.base_url, credentials=args.credentials, repeat=args.repeat)
    json.dump(result, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
