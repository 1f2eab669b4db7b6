"""The chart of `make bench`: latency and floors, true misses vs warm hits, throughput."""

from pathlib import Path


def chart(run: dict, path: Path, *, load_labels: tuple[str, ...]) -> None:
    """Draw latency (log scale), true misses and throughput (``load_labels``) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = run["sizes"]
    names = [size["size"] for size in sizes]
    series = {
        "reference (in-process)": [s["challenge"]["single"]["reference_ms"] for s in sizes],
        "served, uncached": [s["latency"]["stats_uncached"]["p50_ms"] for s in sizes],
        "served, cached": [s["latency"]["stats_cached"]["p50_ms"] for s in sizes],
        "floor: raw SQL": [s["raw_sql_p50_ms"] for s in sizes],
        "floor: DRF + auth": [s["latency"]["drf_auth"]["p50_ms"] for s in sizes],
        "floor: bare Django": [s["latency"]["bare_django"]["p50_ms"] for s in sizes],
    }
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(19, 5))
    width = 0.8 / len(series)
    for index, (label, values) in enumerate(series.items()):
        positions = [i + index * width for i in range(len(names))]
        left.bar(positions, values, width, label=label)
    left.set_yscale("log")
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    left.set_ylabel("p50 latency, ms (log scale; 1 connection)")
    left.set_title("Daily stats: implementations and floors")
    left.legend(fontsize=8)
    _range_panel(middle, sizes)
    labels = [label for label in load_labels if all(label in s["load"] for s in sizes)]
    width = 0.8 / len(labels)
    for index, label in enumerate(labels):
        positions = [i + index * width for i in range(len(names))]
        right.bar(positions, [s["load"][label]["rps"] for s in sizes], width, label=label)
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    right.set_ylabel("requests/s at 16 connections")
    right.set_title("Throughput (gunicorn, same config as make run)")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _range_panel(axes, sizes: list[dict]) -> None:
    """Draw true misses and warm hits, one day vs the longest range, against the floor."""
    measured = [s for s in sizes if "ranges" in s]
    series = {
        "true miss, one day": [s["ranges"]["true_miss_p50_ms"]["day"] for s in measured],
        "true miss, longest range": [s["ranges"]["true_miss_p50_ms"]["range"] for s in measured],
        "warm hit, one day": [s["ranges"]["warm_hit_p50_ms"]["day"] for s in measured],
        "warm hit, longest range": [s["ranges"]["warm_hit_p50_ms"]["range"] for s in measured],
        "floor: bare Django + raw SQL (day)": [
            s["ranges"].get("bare_django_p50_ms", 0) + s["raw_sql_p50_ms"] for s in measured
        ],
    }
    width = 0.8 / len(series)
    for index, (label, values) in enumerate(series.items()):
        positions = [i + index * width for i in range(len(measured))]
        axes.bar(positions, values, width, label=label)
    axes.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(measured))], [s["size"] for s in measured]
    )
    axes.set_ylabel("p50 latency, ms (one keep-alive connection)")
    axes.set_title("True misses and warm hits: one day vs the longest range")
    axes.legend(fontsize=8)
