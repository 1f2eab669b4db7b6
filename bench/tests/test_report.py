"""The benchmark's arithmetic: wrk parsing, targets, and the docs section it rewrites."""

import pytest

from bench import report
from bench.wrk import parse_wrk_output


def _timing(p50, rps=100.0):
    return {
        "p50_ms": p50,
        "p95_ms": p50 * 2,
        "p99_ms": p50 * 3,
        "rps": rps,
        "generator_cpu_share": 0.3,
    }


def _size(
    name="1m",
    *,
    uncached=3.0,
    drf=1.0,
    sql=1.0,
    cached_rps=600.0,
    bare_rps=1000.0,
    ref_ms=200.0,
    served_ms=5.0,
    hit_ms=1.0,
    heap_fetches=0,
    index_only=True,
):
    return {
        "size": name,
        "notes": 1_000_000,
        "tenants": 5,
        "busiest_tenant_day": {"tenant_id": 5, "date": "2026-11-20", "notes": 10_000},
        "raw_sql_p50_ms": sql,
        "statements": 2,
        "challenge": {
            "single": {"reference_ms": ref_ms, "served_ms": served_ms},
            "filtered": {"reference_ms": ref_ms / 3, "served_ms": served_ms / 2},
            "concurrent_20": {"reference_ms": ref_ms * 20, "served_ms": served_ms * 5},
            "cache_hit": {"reference_ms": ref_ms, "served_ms": hit_ms},
        },
        "latency": {
            "bare_django": _timing(0.5),
            "drf_auth": _timing(drf),
            "stats_cached": _timing(1.0),
            "stats_uncached": _timing(uncached),
        },
        "load": {
            "bare_django": _timing(1, bare_rps),
            "drf_auth": _timing(1, 700),
            "stats_cached": _timing(1, cached_rps),
            "stats_uncached": _timing(1, 300),
        },
        "explain": {
            "plan": "Index Only Scan ...",
            "index_only": index_only,
            "heap_fetches": heap_fetches,
        },
    }


def _met(targets):
    return {t["target"]: t["met"] for t in targets}


def test_all_targets_met_when_the_numbers_are_inside_the_bounds():
    targets = report.size_targets(_size())
    assert all(t["met"] for t in targets), targets
    assert len(targets) == 5  # 3 per size + 2 speed-ups at 1m


@pytest.mark.parametrize(
    ("override", "missed"),
    [
        ({"uncached": 3.01 * report.UNCACHED_FLOOR_FACTOR}, "uncached p50"),
        ({"cached_rps": 499.0}, "cached req/s"),
        ({"heap_fetches": 3}, "heap fetches"),
        ({"index_only": False}, "heap fetches"),
        ({"served_ms": 21.0}, "served uncached"),
        ({"hit_ms": 2.1}, "served cached"),
    ],
)
def test_each_target_misses_when_its_number_is_out_of_bounds(override, missed):
    targets = report.size_targets(_size(**override))
    failed = [name for name, met in _met(targets).items() if not met]
    assert len(failed) == 1 and missed in failed[0], failed


def test_scale_target_compares_10m_with_100k():
    small = _size("100k", uncached=2.0)
    big = _size("10m", uncached=2.0 * report.SCALE_LATENCY_FACTOR + 0.01)
    [target] = report.scale_targets({"100k": small, "10m": big})
    assert target["met"] is False
    assert report.scale_targets({"100k": small}) == []


def test_challenge_rows_report_improvement_percent_and_factor():
    rows = report.challenge_rows(_size(ref_ms=200.0, served_ms=5.0))
    assert rows[0] == ("single", 200.0, 5.0, 97.5, 40.0)


def test_docs_section_is_replaced_between_markers_and_nothing_else():
    document = (
        "# Performance\n\n## Stats\n"
        f"{report.SECTION_START}\nold\n{report.SECTION_END}\n\n## Seeding\nkeep me\n"
    )
    run = report.build_run(sizes=[_size()], seconds=12.0)
    updated = report.replace_section(document, report.markdown(run, "stats.png"))
    assert "old" not in updated
    assert updated.startswith("# Performance\n\n## Stats\n")
    assert updated.endswith("## Seeding\nkeep me\n")
    assert "| single | 200.00 | 5.00 | 97.5 % | 40.0x |" in updated


def test_wrk_summary_is_parsed_from_the_done_hook_line():
    output = 'Running 1s test\nWRK_RESULT {"requests":10,"p50_us":1500}\n'
    assert parse_wrk_output(output) == {"requests": 10, "p50_us": 1500}
    with pytest.raises(RuntimeError):
        parse_wrk_output("no summary here")


def test_interleaved_wrk_rounds_combine_as_medians_and_sums():
    from bench.wrk import WrkResult, median_of

    def run(rps, p50, errors):
        return WrkResult("u", 16, 3.0, int(rps * 3), rps, p50, p50, p50, p50, errors, 0.2)

    combined = median_of([run(100, 5.0, 0), run(300, 1.0, 1), run(200, 2.0, 0)])
    assert (combined.rps, combined.p50_ms, combined.requests, combined.errors) == (
        200,
        2.0,
        1800,
        1,
    )
    assert combined.seconds == 9.0


def _with_ranges(size, *, day_miss=2.0, range_miss=3.0, bare=0.5, range_rps=600.0):
    size["ranges"] = {
        "range": {"date_from": "2026-08-21", "date_to": "2026-11-20"},
        "range_days": 92,
        "range_notes": 300_000,
        "range_days_with_notes": 30,
        "bare_django_p50_ms": bare,
        "true_miss_p50_ms": {"day": day_miss, "range": range_miss},
        "warm_hit_p50_ms": {"day": 1.0, "range": 1.2},
        "raw_sql_p50_ms": 1.5,
    }
    for bucket in ("latency", "load"):
        size[bucket]["range_cached"] = _timing(1.2, range_rps)
    return size


def test_true_miss_and_range_targets_are_met_inside_their_bounds():
    # Day miss 2.0 ms vs 2 x (0.5 + 1.0); range miss 3.0 vs 2 x 2.0; 600 vs 0.5 x 1000 req/s.
    targets = report.size_targets(_with_ranges(_size()))
    assert all(t["met"] for t in targets), targets
    assert [t["target"] for t in report.range_targets(_with_ranges(_size()))] == [
        "1m: 92-day range true miss p50 / one-day true miss p50",
        "1m: one-day true miss p50 / (bare Django p50 + raw SQL p50)",
        "1m: 92-day range warm req/s / bare Django req/s",
    ]


@pytest.mark.parametrize(
    ("override", "missed"),
    [
        ({"range_miss": 4.01}, "range true miss"),
        ({"day_miss": 3.01, "range_miss": 3.0}, "one-day true miss"),
        ({"range_rps": 499.0}, "range warm req/s"),
    ],
)
def test_each_true_miss_and_range_target_misses_out_of_bounds(override, missed):
    targets = report.size_targets(_with_ranges(_size(), **override))
    failed = [name for name, met in _met(targets).items() if not met]
    assert len(failed) == 1 and missed in failed[0], failed


def test_docs_section_shows_true_misses_and_warm_hits_of_a_day_and_the_range():
    run = report.build_run(sizes=[_with_ranges(_size())], seconds=12.0)
    section = report.markdown(run, "stats.png")
    assert "| one day | 2.00 | 1.00 |" in section
    assert "| 92-day range | 3.00 | 1.20 |" in section
    assert "| range_cached | 1.20 / 2.40 / 3.60 | 600 |" in section
    assert "| 1m: 92-day range true miss p50 / one-day true miss p50 | 1.5 | 2.0 | yes |" in section
