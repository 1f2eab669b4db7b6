"""Times the daily stats statements with and without row-level security, side by side.

Takes the busiest tenant-day of the configured database, captures the exact statements
``stats.selectors.care_stats_get`` sends for it, and runs them over one raw psycopg
connection in three settings, interleaved round by round so that drift hits all alike:

- ``owner``: the connecting superuser, which bypasses row-level security (the state before);
- ``app_tenant``: ``carenotes_app`` scoped to that one tenant (what a member's request runs as);
- ``system_all``: ``carenotes_system`` with ``carenotes.all_tenants`` on (a superuser's
  request).

It also prints each setting's EXPLAIN, to show the scan stays index-only. Seed first, e.g.
``manage.py seed_notes --notes 1000000 --reset``; ``make bench-rls`` runs it.
"""

import argparse
import json
import statistics
import sys
import time


def _settings(tenant_id: int) -> dict[str, list[str]]:
    from tenants.rls import OWNER, SYSTEM, tenants_scope

    return {
        "owner": OWNER.as_params(),
        "app_tenant": tenants_scope([tenant_id]).as_params(),
        "system_all": SYSTEM.as_params(),
    }


def _statements():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.measure import BUSIEST_DAY_SQL
    from stats.selectors import care_stats_get
    from tenants.rls import rls_owner
    from tenants.selectors import tenant_info_get

    with rls_owner():
        with connection.cursor() as cursor:
            cursor.execute(BUSIEST_DAY_SQL)
            tenant_id, day, notes = cursor.fetchone()
        tenant = tenant_info_get(tenant_id=tenant_id)
        with CaptureQueriesContext(connection) as captured:
            care_stats_get(tenant=tenant, day=day, facility_ids=tuple(sorted(tenant.facility_ids)))
    return tenant_id, day, notes, [query["sql"] for query in captured.captured_queries]


def bench(*, rounds: int, per_round: int) -> dict:
    """Return per-setting timings (ms per call of both statements) and plans."""
    import psycopg
    from django.db import connection

    from bench.measure import DJANGO_ONLY_CONNECTION_PARAMS
    from tenants.rls import SCOPE_SQL

    tenant_id, day, notes, statements = _statements()
    params = connection.get_connection_params()
    for django_only in DJANGO_ONLY_CONNECTION_PARAMS:
        params.pop(django_only, None)
    settings = _settings(tenant_id)
    samples = {name: [] for name in settings}
    plans = {}
    with psycopg.connect(**params, autocommit=True) as raw:
        for name, values in settings.items():
            raw.execute(SCOPE_SQL, values)
            for sql in statements:
                raw.execute(sql).fetchall()  # warm caches
            plans[name] = [
                "\n".join(row[0] for row in raw.execute(f"EXPLAIN (ANALYZE, COSTS off) {sql}"))
                for sql in statements
            ]
        for _ in range(rounds):
            for name, values in settings.items():
                raw.execute(SCOPE_SQL, values)
                for _ in range(per_round):
                    started = time.perf_counter()
                    for sql in statements:
                        raw.execute(sql).fetchall()
                    samples[name].append((time.perf_counter() - started) * 1000)
    summary = {
        name: {
            "median_ms": round(statistics.median(values), 3),
            "p95_ms": round(statistics.quantiles(values, n=20)[-1], 3),
            "samples": len(values),
        }
        for name, values in samples.items()
    }
    base = summary["owner"]["median_ms"]
    for name in summary:
        summary[name]["vs_owner"] = f"{(summary[name]['median_ms'] / base - 1) * 100:+.1f}%"
    return {
        "tenant_id": tenant_id,
        "day": str(day),
        "notes_that_day": notes,
        "timings": summary,
        "index_only": {
            name: all("Index Only Scan" in plan for plan in texts) for name, texts in plans.items()
        },
        "plans": plans,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--per-round", type=int, default=25, help="timed calls per setting/round")
    parser.add_argument("--plans", action="store_true", help="print the EXPLAIN output too")
    args = parser.parse_args()
    if args.rounds < 1 or args.per_round < 2:
        parser.error("--rounds must be >= 1 and --per-round >= 2")
    import django

    django.setup()
    result = bench(rounds=args.rounds, per_round=args.per_round)
    if not args.plans:
        result.pop("plans")
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
