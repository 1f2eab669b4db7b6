"""Time one throttle check: DRF's ScopedRateThrottle vs carenotes' Redis fixed window.

Run with the project's settings and a real Redis (``make bench-throttle``). Prints the mean
cost per check and the Redis commands each sends; the figures are in docs/SECURITY.md.
"""

import argparse
import os
import statistics
import time
from types import SimpleNamespace

import django

DEFAULT_CHECKS = 5000
DEFAULT_ROUNDS = 5
# Far above the checks made, so every check takes the "allowed" path, as on the hot path.
BENCH_RATE = "100000000/h"
BENCH_SCOPE = "stats"


def _checks_per_second(throttle_factory, *, checks: int) -> float:
    request = SimpleNamespace(user=SimpleNamespace(pk=1, is_authenticated=True), method="GET")
    request.META = {"REMOTE_ADDR": "127.0.0.1"}
    view = SimpleNamespace(throttle_scope=BENCH_SCOPE)
    started = time.perf_counter()
    for _ in range(checks):
        assert throttle_factory().allow_request(request, view)
    return checks / (time.perf_counter() - started)


def _commands_per_check(throttle_factory) -> int:
    from django_redis import get_redis_connection

    redis = get_redis_connection("default")
    before = redis.info("commandstats")
    _checks_per_second(throttle_factory, checks=100)
    after = redis.info("commandstats")
    calls = sum(v["calls"] for v in after.values()) - sum(v["calls"] for v in before.values())
    return round((calls - 1) / 100)  # the INFO call itself is counted once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=DEFAULT_CHECKS, help="checks per round")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="rounds (median)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")
    os.environ.setdefault("CACHE_KEY_PREFIX", "bench-throttle")
    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    from carenotes.core.throttling import RedisFixedWindowThrottle

    settings.THROTTLE_RATES = {BENCH_SCOPE: BENCH_RATE}

    class DrfScoped(ScopedRateThrottle):
        THROTTLE_RATES = {BENCH_SCOPE: BENCH_RATE}

    candidates = {
        "DRF ScopedRateThrottle (GET + SET of a timestamp list)": DrfScoped,
        "RedisFixedWindowThrottle (pipelined INCR + EXPIRE)": RedisFixedWindowThrottle,
    }
    for name, factory in candidates.items():
        cache.delete_pattern("*")
        rates = [_checks_per_second(factory, checks=args.checks) for _ in range(args.rounds)]
        median = statistics.median(rates)
        print(
            f"{name}: {1e6 / median:.0f} us per check ({median:,.0f} checks/s, "
            f"median of {args.rounds} x {args.checks}), "
            f"{_commands_per_check(factory)} Redis commands per check"
        )
    cache.delete_pattern("*")


if __name__ == "__main__":
    main()
