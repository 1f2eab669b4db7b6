"""Turns benchmark numbers into targets, a terminal table, JSON, a chart and a docs section."""

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

UNCACHED_FLOOR_FACTOR = 1.5  # uncached p50 <= 1.5 x (DRF+auth p50 + raw SQL p50)
CACHED_THROUGHPUT_SHARE = 0.5  # cached req/s >= 0.5 x bare Django req/s
UNCACHED_SPEEDUP_AT_1M = 10
CACHED_SPEEDUP_AT_1M = 100
SCALE_LATENCY_FACTOR = 1.3  # uncached p50 at 10M within 1.3 x that at 100K
RANGE_MISS_FACTOR = 2.0  # longest range's true miss p50 <= 2 x a one-day true miss p50
DAY_MISS_FLOOR_FACTOR = 2.0  # one-day true miss p50 <= 2 x (bare Django p50 + raw SQL p50)
RANGE_THROUGHPUT_SHARE = 0.5  # range warm hits req/s >= 0.5 x bare Django req/s
SECTION_START = "<!-- bench:stats:start -->"
SECTION_END = "<!-- bench:stats:end -->"
CHALLENGE_ROWS = ("single", "filtered", "concurrent_20", "cache_hit")
LOAD_LABELS = ("bare_django", "drf_auth", "stats_cached", "stats_uncached", "range_cached")


def _target(name: str, measured: float, bound: float, met: bool, detail: str) -> dict:
    return {
        "target": name,
        "measured": round(measured, 3),
        "bound": round(bound, 3),
        "met": met,
        "detail": detail,
    }


def size_targets(size: dict) -> list[dict]:
    """Return the per-size targets with their measured values."""
    latency, load = size["latency"], size["load"]
    floor = latency["drf_auth"]["p50_ms"] + size["raw_sql_p50_ms"]
    uncached = latency["stats_uncached"]["p50_ms"]
    share = load["stats_cached"]["rps"] / load["bare_django"]["rps"]
    targets = [
        _target(
            f"{size['size']}: uncached p50 / (DRF+auth p50 + raw SQL p50)",
            uncached / floor,
            UNCACHED_FLOOR_FACTOR,
            uncached <= UNCACHED_FLOOR_FACTOR * floor,
            f"{uncached:.2f} ms vs {floor:.2f} ms",
        ),
        _target(
            f"{size['size']}: cached req/s / bare Django req/s",
            share,
            CACHED_THROUGHPUT_SHARE,
            share >= CACHED_THROUGHPUT_SHARE,
            f"{load['stats_cached']['rps']:.0f} vs {load['bare_django']['rps']:.0f} req/s",
        ),
    ]
    targets += range_targets(size)
    explain = size["explain"]
    targets.append(
        _target(
            f"{size['size']}: EXPLAIN heap fetches (index-only scan)",
            explain["heap_fetches"] if explain["heap_fetches"] is not None else -1,
            0,
            explain["index_only"] and explain["heap_fetches"] == 0,
            "Index Only Scan" if explain["index_only"] else "NOT an index-only scan",
        )
    )
    if size["size"] == "1m":
        challenge = size["challenge"]
        uncached_x = challenge["single"]["reference_ms"] / challenge["single"]["served_ms"]
        cached_x = challenge["cache_hit"]["reference_ms"] / challenge["cache_hit"]["served_ms"]
        targets += [
            _target(
                "1m: reference / served uncached (single)",
                uncached_x,
                UNCACHED_SPEEDUP_AT_1M,
                uncached_x >= UNCACHED_SPEEDUP_AT_1M,
                "speed-up factor",
            ),
            _target(
                "1m: reference / served cached",
                cached_x,
                CACHED_SPEEDUP_AT_1M,
                cached_x >= CACHED_SPEEDUP_AT_1M,
                "speed-up factor",
            ),
        ]
    return targets


def range_targets(size: dict) -> list[dict]:
    """Return the true-miss and range targets of a size measured with them (else none)."""
    ranges = size.get("ranges")
    if ranges is None or "bare_django_p50_ms" not in ranges:
        return []
    name, days = size["size"], ranges.get("range_days", "longest")
    miss = ranges["true_miss_p50_ms"]
    floor = ranges["bare_django_p50_ms"] + size["raw_sql_p50_ms"]
    targets = [
        _target(
            f"{name}: {days}-day range true miss p50 / one-day true miss p50",
            miss["range"] / miss["day"],
            RANGE_MISS_FACTOR,
            miss["range"] <= RANGE_MISS_FACTOR * miss["day"],
            f"{miss['range']:.2f} ms vs {miss['day']:.2f} ms",
        ),
        _target(
            f"{name}: one-day true miss p50 / (bare Django p50 + raw SQL p50)",
            miss["day"] / floor,
            DAY_MISS_FLOOR_FACTOR,
            miss["day"] <= DAY_MISS_FLOOR_FACTOR * floor,
            f"{miss['day']:.2f} ms vs {ranges['bare_django_p50_ms']:.2f} + "
            f"{size['raw_sql_p50_ms']:.2f} ms",
        ),
    ]
    load = size["load"]
    if "range_cached" in load:
        share = load["range_cached"]["rps"] / load["bare_django"]["rps"]
        targets.append(
            _target(
                f"{name}: {days}-day range warm req/s / bare Django req/s",
                share,
                RANGE_THROUGHPUT_SHARE,
                share >= RANGE_THROUGHPUT_SHARE,
                f"{load['range_cached']['rps']:.0f} vs {load['bare_django']['rps']:.0f} req/s",
            )
        )
    return targets


def scale_targets(sizes: dict[str, dict]) -> list[dict]:
    if "10m" not in sizes or "100k" not in sizes:
        return []
    big = sizes["10m"]["latency"]["stats_uncached"]["p50_ms"]
    small = sizes["100k"]["latency"]["stats_uncached"]["p50_ms"]
    return [
        _target(
            "10m vs 100k: uncached p50 ratio",
            big / small,
            SCALE_LATENCY_FACTOR,
            big <= SCALE_LATENCY_FACTOR * small,
            f"{big:.2f} ms vs {small:.2f} ms",
        )
    ]


def build_run(*, sizes: list[dict], seconds: float) -> dict:
    """Return the whole run: machine, sizes and every target."""
    by_name = {size["size"]: size for size in sizes}
    targets = [t for size in sizes for t in size_targets(size)] + scale_targets(by_name)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "duration_s": seconds,
        "sizes": sizes,
        "targets": targets,
    }


def _labels(size: dict) -> list[str]:
    return [label for label in LOAD_LABELS if label in size["latency"]]


def range_rows(size: dict) -> list[tuple[str, float, float]]:
    """Return (answer, true miss p50 ms, warm hit p50 ms) for the day and the longest range."""
    ranges = size.get("ranges")
    if ranges is None:
        return []
    days = ranges.get("range_days", "longest")
    miss, hit = ranges["true_miss_p50_ms"], ranges["warm_hit_p50_ms"]
    return [
        ("one day", miss["day"], hit["day"]),
        (f"{days}-day range", miss["range"], hit["range"]),
    ]


def challenge_rows(size: dict) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for row in CHALLENGE_ROWS:
        ref = size["challenge"][row]["reference_ms"]
        served = size["challenge"][row]["served_ms"]
        rows.append((row, ref, served, (1 - served / ref) * 100, ref / served))
    return rows


def table(run: dict) -> str:
    """Return the run as plain-text tables for the terminal."""
    lines = []
    for size in run["sizes"]:
        lines.append(f"\n== {size['size']}: {size['notes']:,} notes, {size['tenants']} tenants")
        busiest = size["busiest_tenant_day"]
        lines.append(
            f"busiest tenant-day: tenant {busiest['tenant_id']} on {busiest['date']}"
            f" ({busiest['notes']:,} notes); raw SQL p50 {size['raw_sql_p50_ms']:.2f} ms"
        )
        lines.append(
            f"{'measurement':<16}{'reference ms':>14}{'served ms':>12}{'better':>10}{'x':>9}"
        )
        for name, ref, served, pct, factor in challenge_rows(size):
            lines.append(f"{name:<16}{ref:>14.2f}{served:>12.2f}{pct:>9.1f}%{factor:>9.1f}")
        lines.append(
            f"{'endpoint':<16}{'p50 ms (1c)':>12}{'p95':>8}{'p99':>8}"
            f"{'req/s (16c)':>13}{'p50':>8}{'p95':>8}{'p99':>8}{'wrk cpu':>9}"
        )
        for label in _labels(size):
            one, many = size["latency"][label], size["load"][label]
            lines.append(
                f"{label:<16}{one['p50_ms']:>12.2f}{one['p95_ms']:>8.2f}{one['p99_ms']:>8.2f}"
                f"{many['rps']:>13.0f}{many['p50_ms']:>8.2f}{many['p95_ms']:>8.2f}"
                f"{many['p99_ms']:>8.2f}{many['generator_cpu_share']:>9.2f}"
            )
        for answer, miss, hit in range_rows(size):
            lines.append(f"{answer:<16} true miss p50 {miss:>8.2f} ms, warm hit p50 {hit:>6.2f} ms")
    lines.append("\n== targets")
    for target in run["targets"]:
        mark = "MET " if target["met"] else "MISS"
        lines.append(
            f"[{mark}] {target['target']}: {target['measured']} (bound {target['bound']})"
            f" — {target['detail']}"
        )
    return "\n".join(lines)


def markdown(run: dict, chart_name: str) -> str:
    """Return the stats section of docs/PERFORMANCE.md for this run."""
    out = [
        SECTION_START,
        f"Last run: {run['when']} on {run['machine']['cpus']} CPUs, "
        f"Python {run['machine']['python']}; whole run {run['duration_s']:.0f} s. "
        "Raw numbers: `docs/benchmarks/stats-latest.json`.",
        "",
        f"![stats benchmark](benchmarks/{chart_name})",
        "",
    ]
    for size in run["sizes"]:
        busiest = size["busiest_tenant_day"]
        out += [
            f"### {size['size']}: {size['notes']:,} notes over {size['tenants']} tenants",
            "",
            f"Busiest tenant-day: {busiest['notes']:,} notes. Raw SQL floor p50: "
            f"{size['raw_sql_p50_ms']:.2f} ms ({size['statements']} statements).",
            "",
            "| measurement | reference (ms) | served (ms) | improvement | speed-up |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, ref, served, pct, factor in challenge_rows(size):
            out.append(f"| {name} | {ref:.2f} | {served:.2f} | {pct:.1f} % | {factor:.1f}x |")
        out += [
            "",
            "| endpoint | p50 / p95 / p99 ms, 1 connection | req/s, 16 connections "
            "| p50 / p95 / p99 ms, 16 connections | wrk CPU (cores) |",
            "| --- | --- | ---: | --- | ---: |",
        ]
        for label in _labels(size):
            one, many = size["latency"][label], size["load"][label]
            out.append(
                f"| {label} | {one['p50_ms']:.2f} / {one['p95_ms']:.2f} / {one['p99_ms']:.2f} "
                f"| {many['rps']:.0f} | {many['p50_ms']:.2f} / {many['p95_ms']:.2f} / "
                f"{many['p99_ms']:.2f} | {many['generator_cpu_share']:.2f} |"
            )
        out += range_markdown(size)
        out.append("")
    out += [
        "### Targets",
        "",
        "| target | measured | bound | met | detail |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for target in run["targets"]:
        out.append(
            f"| {target['target']} | {target['measured']} | {target['bound']} | "
            f"{'yes' if target['met'] else '**no**'} | {target['detail']} |"
        )
    largest = run["sizes"][-1]
    out += [
        "",
        f"EXPLAIN (ANALYZE, BUFFERS) of the production query, busiest tenant-day at "
        f"{largest['size']}:",
        "",
        "```",
        largest["explain"]["plan"],
        "```",
        SECTION_END,
    ]
    return "\n".join(out)


def range_markdown(size: dict) -> list[str]:
    """Return the true-miss table of a size (one day against the longest range), if measured."""
    rows = range_rows(size)
    if not rows:
        return []
    ranges = size["ranges"]
    longest = ranges["range"]
    out = [
        "",
        f"True misses (cache on, entry absent: what a reader waits for after a write) and warm "
        f"hits, timed side by side over one keep-alive connection, the plain Django view "
        f"(`/healthz`) in the same rotation: {ranges.get('bare_django_p50_ms', 0):.2f} ms. "
        f"Longest range {longest['date_from']} to {longest['date_to']} "
        f"({ranges['range_notes']:,} notes on {ranges['range_days_with_notes']} days, from "
        f"the day rollups; their raw SQL p50 {ranges['raw_sql_p50_ms']:.2f} ms).",
        "",
        "| answer | true miss p50 (ms) | warm hit p50 (ms) |",
        "| --- | ---: | ---: |",
    ]
    out += [f"| {answer} | {miss:.2f} | {hit:.2f} |" for answer, miss, hit in rows]
    return out


def replace_section(document: str, section: str) -> str:
    """Replace the text between the markers (or append the section if they are missing)."""
    if SECTION_START in document and SECTION_END in document:
        head, rest = document.split(SECTION_START, 1)
        _, tail = rest.split(SECTION_END, 1)
        return head + section + tail
    return document.rstrip() + "\n\n" + section + "\n"


def write_outputs(run: dict, *, out_dir: Path, performance_md: Path | None) -> None:
    """Write stats-<stamp>.json, stats-latest.json, stats.png and the docs section."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = run["when"].replace(":", "").replace("-", "")[:15]
    payload = json.dumps(run, indent=2, default=str)
    (out_dir / f"stats-{stamp}.json").write_text(payload)
    (out_dir / "stats-latest.json").write_text(payload)
    from bench.chart import chart  # matplotlib is imported only to draw

    chart_name = "stats.png"
    chart(run, out_dir / chart_name, load_labels=LOAD_LABELS)
    if performance_md is not None and str(performance_md) != "-":
        document = performance_md.read_text() if performance_md.exists() else ""
        performance_md.write_text(replace_section(document, markdown(run, chart_name)))
